"""Migrations run once however many processes start at the same time, and a process with
auto_migrate off refuses an older schema with one line."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

from listmgr import schema
from tests.conftest import PG_URL, SECRET


@pytest.fixture
def empty_url(tmp_path: Path) -> Iterator[str]:
    """A database nobody has migrated yet."""
    if not PG_URL:
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    name = f"lmmigrate_{uuid.uuid4().hex[:10]}"
    admin = create_engine(make_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _env(url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "LISTMGR_DATABASE_URL": url,
        "LISTMGR_SECRET_KEY": SECRET,
        "LISTMGR_VAR_DIR": str(tmp_path / "var"),
        **extra,
    }


def _at_once(args: list[str], env: dict[str, str], n: int) -> list[tuple[int, str, str]]:
    """Start n processes together and wait for all of them."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "listmgr", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        results.append((p.returncode, out, err))
    return results


def _revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        return schema.current(engine)
    finally:
        engine.dispose()


def test_four_migrate_commands_at_once_migrate_once(empty_url, tmp_path):
    results = _at_once(["migrate"], _env(empty_url, tmp_path), 4)
    assert all(rc == 0 for rc, _, _ in results), results
    head = schema.head()
    migrated = [out for _, out, _ in results if out.startswith("migrated the database")]
    assert migrated == [f"migrated the database from empty to {head}\n"], results
    assert sum(out == f"database is up to date ({head})\n" for _, out, _ in results) == 3
    assert _revision(empty_url) == head


def test_processes_starting_at_once_on_a_fresh_database(empty_url, tmp_path):
    # auto_migrate is on by default: each start migrates under the lock; none fails.
    results = _at_once(["retention", "sweep"], _env(empty_url, tmp_path), 3)
    assert all(rc == 0 for rc, _, _ in results), results
    assert _revision(empty_url) == schema.head()


def test_auto_migrate_off_refuses_an_older_schema_with_one_line(empty_url, tmp_path):
    env = _env(empty_url, tmp_path, LISTMGR_AUTO_MIGRATE="false")
    [(rc, out, err)] = _at_once(["retention", "sweep"], env, 1)
    assert rc != 0 and out == ""
    assert err.count("\n") == 1 and "listmgr migrate" in err and "none (empty)" in err
    assert _revision(empty_url) is None  # nothing was applied behind the operator's back
    [(rc, out, _)] = _at_once(["migrate"], env, 1)
    assert rc == 0 and out.startswith("migrated the database from empty")
    [(rc, _, err)] = _at_once(["retention", "sweep"], env, 1)
    assert rc == 0, err
    [(rc, out, _)] = _at_once(["db", "upgrade"], env, 1)  # the older name still works
    assert rc == 0 and out == f"database is up to date ({schema.head()})\n"


def test_a_newer_schema_is_not_refused_nor_downgraded(empty_url, tmp_path):
    # A later release migrated first (expand): this release's processes keep running.
    [(rc, _, err)] = _at_once(["migrate"], _env(empty_url, tmp_path), 1)
    assert rc == 0, err
    engine = create_engine(empty_url)
    with engine.begin() as c:
        c.execute(text("UPDATE alembic_version SET version_num = 'zz99_later'"))
    engine.dispose()
    for auto in ("false", "true"):
        env = _env(empty_url, tmp_path, LISTMGR_AUTO_MIGRATE=auto)
        [(rc, _, err)] = _at_once(["retention", "sweep"], env, 1)
        assert rc == 0, err
    assert _revision(empty_url) == "zz99_later"


def test_a_lower_revision_is_older(empty_url, tmp_path):
    assert schema.older(None) and not schema.older(schema.head())
    assert schema.older("0001") and not schema.older("zz99_later")
