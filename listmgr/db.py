"""Engine, the unit of work (session_scope) and migrations."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import Connection, CursorResult, Engine, Executable, Row, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.orm import Session

from listmgr import schema, textlimits
from listmgr.errors import ConfigError
from listmgr.settings import Settings

_engines: dict[str, Engine] = {}
textlimits.install()  # every flush checks the text it writes (listmgr.textlimits)
_lock = threading.Lock()


def _sqlite_pragmas(dbapi_conn: DBAPIConnection, _record: object) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    # Take the write lock at BEGIN so concurrent claims serialize instead of failing on upgrade.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def rows_changed(s: Session, statement: Executable) -> int:
    """Run an UPDATE, INSERT or DELETE in the session and return how many rows it changed."""
    result = cast(CursorResult[Any], s.execute(statement))
    return int(result.rowcount or 0)


def insert_or_skip(s: Session, model: Any, keys: list[str]) -> Any:
    """INSERT into model's table that skips a row whose keys (a unique index) already exist:
    ON CONFLICT DO NOTHING, said the same way by PostgreSQL and SQLite. Chain .values() and,
    to learn the new ids, .returning() (a skipped row returns nothing)."""
    dialect = postgresql if s.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(model).on_conflict_do_nothing(index_elements=keys)


def get_engine(url: str) -> Engine:
    """One engine per database URL per process."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            if url.startswith("sqlite"):
                engine = create_engine(
                    url,
                    connect_args={
                        "check_same_thread": False,
                        "timeout": 30,
                        "isolation_level": None,
                    },
                )
                event.listen(engine, "connect", _sqlite_pragmas)
                event.listen(engine, "begin", _sqlite_begin)
            else:
                try:
                    engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
                except ModuleNotFoundError as exc:
                    # PostgreSQL's driver is an extra, so that SQLite alone needs no libpq.
                    raise ConfigError(
                        f"the database driver {exc.name!r} for this database URL "
                        "is not installed (PostgreSQL: pip install "
                        "'listmgr[postgres]')"
                    ) from exc
            _engines[url] = engine
        return engine


def _forget_parent_connections() -> None:
    """In a forked child (gunicorn's workers are forked from the master that migrated): the
    pooled connections belong to the parent; two processes talking over one socket corrupt
    each other's conversations, so the child opens its own (the parent's stay open for it)."""
    global _lock
    _lock = threading.Lock()  # another thread may have held it at the fork
    for engine in _engines.values():
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_parent_connections)


def dispose_engines() -> None:
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


class Database:
    """The database of one configuration: sessions and migrations."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.effective_database_url
        self.engine = get_engine(self.url)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """The unit of work: commit on success, roll back on any error."""
        session = Session(self.engine, expire_on_commit=False)
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def read(self, statement: Executable) -> Sequence[Row[Any]]:
        """The rows of one read-only statement, outside a unit of work: PostgreSQL runs it in
        autocommit (one round trip, where a transaction takes three); SQLite in a session."""
        if self.dialect == "postgresql":
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                return conn.execute(statement).all()
        with self.session() as s:
            return s.execute(statement).all()

    def upgrade(self) -> schema.Upgrade:
        """Apply the missing Alembic migrations, once across every host (see listmgr.schema)."""
        return schema.upgrade(self.engine, self.url)

    def check_schema(self) -> None:
        """Refuse to run on a schema older than this code (auto_migrate off)."""
        schema.check(self.engine)
