"""The schema's version: migrations applied under a lock every host shares, and the check that
refuses to run code on a database older than it."""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from listmgr import resource_dir
from listmgr.errors import ConfigError

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

# One advisory lock key for "migrating listmgr" in a PostgreSQL database (64-bit, stable).
LOCK_KEY = int.from_bytes(hashlib.sha256(b"listmgr:migrate").digest()[:8], "big", signed=True)


@dataclass(frozen=True)
class Upgrade:
    """What one upgrade did: the revision before (None: an empty database) and after."""

    before: str | None
    after: str

    @property
    def applied(self) -> bool:
        return self.before != self.after


def _scripts() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://"))


def head() -> str:
    """The revision this code needs."""
    return ",".join(sorted(_scripts().get_heads()))


def older(revision: str | None) -> bool:
    """Whether a database at this revision lacks migrations of this code. A revision this code
    does not know is newer (a later release migrated first): expand-only migrations keep it
    readable by this code, so that is not refused."""
    if revision == head():
        return False
    if revision is None:
        return True
    return all(_known(r) for r in revision.split(","))


def _known(revision: str) -> bool:
    from alembic.util import CommandError

    try:
        return _scripts().get_revision(revision) is not None
    except CommandError:
        return False


def current(engine: Engine) -> str | None:
    """The database's revision, None when it has none (empty)."""
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        heads = MigrationContext.configure(conn).get_current_heads()
    return ",".join(sorted(heads)) or None


@contextmanager
def _locked(engine: Engine) -> Iterator[None]:
    """Held by one process at a time per database: a PostgreSQL advisory lock (every host
    shares it), a lock file beside a SQLite database (SQLite lives on one host)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCK_KEY})
            conn.commit()  # the lock is the session's, not the transaction's
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
                conn.commit()
        return
    database = make_url(engine.url).database
    if not database or database == ":memory:":
        yield  # a private in-memory database: nobody else can migrate it
        return
    with open(Path(database).with_name(Path(database).name + ".migrate-lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def upgrade(engine: Engine, url: str) -> Upgrade:
    """Apply the missing migrations, once however many processes on however many hosts ask at
    the same time: the first holds the lock and migrates, the others then find nothing to do."""
    from alembic import command

    with _locked(engine):
        before = current(engine)
        if older(before):
            command.upgrade(alembic_config(url), "head")
        return Upgrade(before, current(engine) or "")


def check(engine: Engine) -> None:
    """Refuse (one line) to run on a schema that is not the one this code needs."""
    found, wanted = current(engine), head()
    if older(found):
        raise ConfigError(
            f"the database schema is at revision {found or 'none (empty)'} but this version "
            f"of listmgr needs {wanted}: run `listmgr migrate` once (or set auto_migrate = true)"
        )


def alembic_config(url: str) -> Config:
    """Alembic's configuration for this database URL (the scripts ship in the package)."""
    from alembic.config import Config  # Alembic loads only when migrating

    cfg = Config()
    cfg.set_main_option("script_location", str(resource_dir("migrations")))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg
