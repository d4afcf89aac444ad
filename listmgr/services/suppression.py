"""The suppression list as admins manage it: search, add an address by hand, lift an entry."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlmodel import col

from listmgr.addresses import normalize_email
from listmgr.errors import Conflict, NotFound, ValidationError
from listmgr.models import Suppression, id_of
from listmgr.runtime import Runtime

REASONS = ("unsubscribed_all", "hard_bounce", "complaint", "erased", "manual", "flagged")
# Entries that stand for a person's own wish or their erasure are never lifted by an admin:
# only the person signing up again (and confirming) brings them back.
PERMANENT = ("erased",)


@dataclass(frozen=True)
class Entry:
    id: int
    email: str | None
    reason: str
    detail: str
    created_at: str


def _entry(row: Suppression) -> Entry:
    return Entry(
        id_of(row),
        row.email,
        row.reason,
        row.detail,
        row.created_at.isoformat(timespec="seconds"),
    )


def search(
    rt: Runtime,
    *,
    q: str | None = None,
    reason: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[Entry], int]:
    """Entries newest first; q is an address prefix (or a whole address, erased ones too)."""
    if reason and reason not in REASONS:
        raise ValidationError(f"reason must be one of {', '.join(REASONS)}", field="reason")
    query = select(Suppression)
    if q:
        term = q.strip().lower()
        try:
            digest = rt.email_hash(normalize_email(term))
        except ValidationError:
            digest = None
        prefix = col(Suppression.email).startswith(term, autoescape=True)
        query = query.where(prefix | (col(Suppression.email_hash) == digest) if digest else prefix)
    if reason:
        query = query.where(col(Suppression.reason) == reason)
    with rt.db.session() as s:
        total = s.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = s.scalars(query.order_by(col(Suppression.id).desc()).offset(offset).limit(limit))
        return [_entry(r) for r in rows], total


def add(rt: Runtime, *, email: str, detail: str = "") -> int:
    """Suppress an address by hand (it need not be a subscriber); refuses duplicates."""
    address = normalize_email(email)
    if len(detail) > 500 or any(c in detail for c in "\r\n\0"):
        raise ValidationError("detail: one line of at most 500 characters", field="detail")
    digest = rt.email_hash(address)
    with rt.db.session() as s:
        existing = s.scalar(select(Suppression).where(col(Suppression.email_hash) == digest))
        if existing is not None:
            raise Conflict(f"already suppressed ({existing.reason})", field="email")
        row = Suppression(email_hash=digest, email=address, reason="manual", detail=detail)
        s.add(row)
        s.flush()
        return id_of(row)


def remove(rt: Runtime, entry_id: int) -> Entry:
    """Lift an entry (the address may get mail again once it is on a list and confirmed)."""
    with rt.db.session() as s:
        row = s.get(Suppression, entry_id)
        if row is None:
            raise NotFound("no such suppression entry")
        if row.reason in PERMANENT:
            raise Conflict(
                "an erased person stays suppressed; only a new sign-up by the "
                "person can bring them back",
                field="reason",
            )
        entry = _entry(row)
        s.delete(row)
        return entry
