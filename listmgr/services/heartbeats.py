"""Worker processes say they are alive: one row each, refreshed while it runs."""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlmodel import col

from listmgr.db import rows_changed
from listmgr.models import WorkerProcess, utcnow
from listmgr.runtime import Runtime

BEAT_SECONDS = 15  # how often a worker writes its row
SEEN_SECONDS = 60  # a worker is "seen" when its row is this fresh
FORGET_AFTER = timedelta(days=1)  # rows of processes long gone are removed by the next beat


@dataclass(frozen=True)
class Seen:
    name: str
    host: str
    pid: int
    threads: int
    started_at: datetime
    seen_at: datetime


def new_name() -> str:
    """This process's row name: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{secrets.token_hex(4)}"


def beat(rt: Runtime, name: str, *, threads: int, started_at: datetime) -> None:
    """Write (or refresh) this process's row and forget processes gone for a day."""
    now = utcnow()
    with rt.db.session() as s:
        changed = rows_changed(
            s,
            update(WorkerProcess)
            .where(col(WorkerProcess.name) == name)
            .values(seen_at=now, threads=threads),
        )
        if not changed:
            host, pid, _ = name.rsplit(":", 2)
            s.add(
                WorkerProcess(
                    name=name,
                    host=host,
                    pid=int(pid),
                    threads=threads,
                    started_at=started_at,
                    seen_at=now,
                )
            )
        s.execute(delete(WorkerProcess).where(col(WorkerProcess.seen_at) < now - FORGET_AFTER))


def forget(rt: Runtime, name: str) -> None:
    """A process that stops cleanly removes its row."""
    with rt.db.session() as s:
        s.execute(delete(WorkerProcess).where(col(WorkerProcess.name) == name))


def seen(rt: Runtime, within_seconds: int = SEEN_SECONDS) -> list[Seen]:
    """The worker processes whose heartbeat is that fresh, newest first."""
    since = utcnow() - timedelta(seconds=within_seconds)
    with rt.db.session() as s:
        rows = s.scalars(
            select(WorkerProcess)
            .where(col(WorkerProcess.seen_at) >= since)
            .order_by(col(WorkerProcess.seen_at).desc())
        ).all()
        return [Seen(r.name, r.host, r.pid, r.threads, r.started_at, r.seen_at) for r in rows]
