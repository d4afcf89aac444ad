"""Whether this instance can serve: the database answers."""

from __future__ import annotations

from sqlalchemy import text

from listmgr.runtime import Runtime


def check(rt: Runtime) -> None:
    """Run a trivial query; the database's error when it cannot."""
    with rt.db.session() as s:
        s.execute(text("SELECT 1"))
