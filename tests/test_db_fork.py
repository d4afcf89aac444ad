"""A forked process (gunicorn forks its web workers from the master, which has already used the
database to migrate) must open database connections of its own: two processes talking over one
PostgreSQL socket answer each other's queries and fail with protocol errors."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import text

from listmgr import db as dbmod
from tests.conftest import PG_URL

pytestmark = pytest.mark.skipif(
    not PG_URL, reason="needs PostgreSQL: a SQLite connection has no server process to compare"
)


def _backend(url: str) -> int:
    with dbmod.get_engine(url).connect() as c:
        return int(c.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_forked_child_does_not_reuse_its_parents_pooled_connection(database_url: str) -> None:
    # An engine of this test's own (another URL): threads left by other tests in this process
    # use the database's usual engine, and could take its pooled connection in between.
    database_url += ("&" if "?" in database_url else "?") + "application_name=fork-test"
    parent = _backend(database_url)  # the connection now waits in the pool
    assert _backend(database_url) == parent  # the pool hands the same one back in this process
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report the server process its query reached, then leave at once
        code = 1
        try:
            os.write(write, str(_backend(database_url)).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as answer:
        child = int(answer.read() or 0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert child and child != parent
    assert _backend(database_url) == parent  # and the parent's connection still works
