"""The embedded dev outbox: where mail goes when no SMTP server is configured. The transport
hands each message to the sink made here; the dev pages list and show what was captured."""

from __future__ import annotations

from email.parser import BytesHeaderParser
from email.policy import default as default_policy

from sqlalchemy import func, select
from sqlmodel import col

from listmgr.db import Database
from listmgr.mail.transport import DevSink
from listmgr.models import DevMail
from listmgr.runtime import Runtime


def store(db: Database, mail_from: str, rcpts: list[str], data: bytes) -> int:
    """Keep one captured message; returns its id."""
    subject = str(BytesHeaderParser(policy=default_policy).parsebytes(data).get("Subject", ""))
    row = DevMail(
        mail_from=mail_from[:500],
        rcpt_to=", ".join(rcpts)[:500],
        subject=subject[:1000],
        raw=data,
    )
    with db.session() as s:
        s.add(row)
        s.flush()
        assert row.id is not None
        return row.id


def sink(db: Database) -> DevSink:
    """The transport's dev outbox: every message stored in this database."""

    def capture(mail_from: str, rcpts: list[str], data: bytes) -> None:
        store(db, mail_from, rcpts, data)

    return capture


def count(rt: Runtime) -> int:
    with rt.db.session() as s:
        return s.scalar(select(func.count(col(DevMail.id)))) or 0


def newest(rt: Runtime, *, offset: int = 0, limit: int = 200) -> list[DevMail]:
    """Captured mails, newest first."""
    with rt.db.session() as s:
        return list(
            s.scalars(select(DevMail).order_by(col(DevMail.id).desc()).offset(offset).limit(limit))
        )


def get(rt: Runtime, mail_id: int) -> DevMail | None:
    with rt.db.session() as s:
        return s.get(DevMail, mail_id)
