"""The audit log: who viewed, exported, imported, erased, changed or sent what (append-only)."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlmodel import col

from listmgr.errors import ValidationError
from listmgr.models import AuditLog, id_of
from listmgr.runtime import Runtime

# The actions the product writes; the filter offers them, unknown ones are still stored.
ACTIONS = (
    "login",
    "login_failed",
    "logout",
    "password_changed",
    "subscriber.view",
    "subscriber.create",
    "subscriber.edit",
    "subscriber.unsubscribe",
    "subscriber.erase",
    "people.export",
    "people.import",
    "list.create",
    "list.edit",
    "segment.create",
    "segment.edit",
    "segment.delete",
    "campaign.create",
    "campaign.edit",
    "campaign.test",
    "campaign.send",
    "campaign.schedule",
    "campaign.pause",
    "campaign.resume",
    "campaign.cancel",
    "campaign.ab_winner",
    "template.create",
    "template.edit",
    "template.delete",
    "settings.change",
    "settings.smtp_check",
    "dkim.generate",
    "suppression.add",
    "suppression.remove",
    "inbound.handled",
    "inbound.reply",
    "user.create",
    "user.edit",
    "token.create",
    "token.revoke",
    "token.use",
    "api.call",
)


# The client's address of the web request being served ("" outside one: the command line or a
# worker); the web sets it for each request, so every entry written while serving it has it.
request_ip: ContextVar[str] = ContextVar("request_ip", default="")
# Entries that keep no address: the erasure of a person leaves nothing that could name them.
NO_IP = frozenset({"subscriber.erase"})


def shown_ip(ip: str, action: str) -> str:
    """The IP column as the log shows it: the address, or why there is none."""
    if ip:
        return ip
    if action in NO_IP:
        return "— (not kept for an erasure)"
    return "— (command line or background job)"


@dataclass(frozen=True)
class Entry:
    id: int
    at: str
    actor: str
    user_id: int | None
    token_id: int | None
    action: str
    target_type: str
    target_id: str
    ip: str
    detail: dict[str, Any]

    @property
    def shown_ip(self) -> str:
        return shown_ip(self.ip, self.action)


def entry(
    *,
    actor: str,
    action: str,
    target_type: str = "",
    target_id: object = "",
    ip: str = "",
    detail: dict[str, Any] | None = None,
    user_id: int | None = None,
    token_id: int | None = None,
) -> AuditLog:
    """One audit entry, each value cut to its column, for the caller's unit of work to add;
    without an `ip`, the address of the web request being served (if any)."""
    ip = "" if action in NO_IP else ip or request_ip.get()
    return AuditLog(
        actor=actor[:320],
        action=action[:64],
        target_type=target_type[:32],
        target_id=str(target_id if target_id is not None else "")[:64],
        ip=ip[:64],
        detail=detail or {},
        user_id=user_id,
        token_id=token_id,
    )


def record(rt: Runtime, **fields: Any) -> int:
    """Append one entry (the fields of entry()) in its own unit of work: an audit line survives
    a later failure."""
    with rt.db.session() as s:
        row = entry(**fields)
        s.add(row)
        s.flush()
        return id_of(row)


def _parse_day(value: str | None, field: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(f"{field} must be a date like 2024-05-31", field=field) from None


def search(
    rt: Runtime,
    *,
    actor: str | None = None,
    action: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    since: str | None = None,
    until: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[Entry], int]:
    """Entries newest first, filtered by actor (substring), action (prefix), target, time."""
    query = select(AuditLog)
    if actor:
        query = query.where(col(AuditLog.actor).contains(actor.strip(), autoescape=True))
    if action:
        query = query.where(col(AuditLog.action).startswith(action.strip(), autoescape=True))
    if target_type:
        query = query.where(col(AuditLog.target_type) == target_type)
    if target_id:
        query = query.where(col(AuditLog.target_id) == str(target_id))
    start, end = _parse_day(since, "since"), _parse_day(until, "until")
    if start:
        query = query.where(col(AuditLog.at) >= start)
    if end:
        if len(until or "") <= 10:  # a bare date means the whole day
            end = end.replace(hour=23, minute=59, second=59, microsecond=999999)
        query = query.where(col(AuditLog.at) <= end)
    with rt.db.session() as s:
        total = s.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = s.scalars(query.order_by(col(AuditLog.id).desc()).offset(offset).limit(limit))
        return [
            Entry(
                id_of(r),
                r.at.isoformat(timespec="seconds"),
                r.actor,
                r.user_id,
                r.token_id,
                r.action,
                r.target_type,
                r.target_id,
                r.ip,
                dict(r.detail or {}),
            )
            for r in rows
        ], total
