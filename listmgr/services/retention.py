"""Retention: what is older than its period (settings retention_*_days; 0 keeps it) is deleted.

The same settings are what the privacy notice says (listmgr.notice). Each kind is deleted in
its own transaction, so one kind failing leaves the others done:

- unconfirmed: a pending membership last asked for before the period, of a subscriber with no
  confirmed membership anywhere. The subscriber goes too, but only when nothing else is left
  of them: no membership at all, no delivery, open, click, activity, inbound mail or
  re-permission request, no mail still waiting in the outbox, and no consent event beyond
  sign-up attempts (someone who once confirmed keeps their proof of consent). Their sign-up
  attempts (IP addresses) and the sent confirmation mails go with them. Anyone else stays,
  with only the stale membership gone.
- activity: activity events; engagement: opens and clicks; inbound: received mail;
  audit: the audit log of staff actions.
- repermission: re-permission requests that ended (kept or expired) before the period; an open
  request stays until its own deadline's sweep ends it.
- delivery: the ledger of a campaign that ended before the period; its figures are kept on the
  campaign first (services/ledger_archive). The worker's sweep deletes for at most
  LEDGER_SECONDS at a time and comes back within a minute while rows are left.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session
from sqlmodel import col

from listmgr.db import rows_changed
from listmgr.models import (
    ActivityEvent,
    AuditLog,
    ConsentEvent,
    Delivery,
    Engagement,
    InboundMessage,
    Membership,
    MemberStatus,
    Outbox,
    Repermission,
    Subscriber,
    utcnow,
)
from listmgr.runtime import Runtime
from listmgr.services import ledger_archive, settings_store
from listmgr.settings import Settings

SIGN_UP_KINDS = ("subscribe", "subscribe_repeat")
EVERY_SECONDS = 3600  # the worker's sweep runs retention at most this often
AGAIN_SECONDS = 60  # ... or this often while ledger rows past their period are left
LEDGER_SECONDS = 20.0  # the longest the worker's sweep spends deleting ledger rows
KINDS = {  # what each count of sweep() is
    "unconfirmed": "unconfirmed sign-ups (pending memberships)",
    "subscribers": "subscribers left with nothing",
    "activity": "activity events",
    "engagement": "opens and clicks",
    "inbound": "inbound messages",
    "audit": "audit log entries",
    "repermission": "re-permission requests (kept or expired)",
    "ledgers": "campaign ledgers past their period (their figures kept)",
    "ledger_rows": "ledger rows deleted",
}


def _cutoff(now: datetime, days: int) -> datetime | None:
    return now - timedelta(days=days) if days > 0 else None


def _unconfirmed(s: Session, cutoff: datetime) -> tuple[int, int]:
    """Delete stale pending memberships, then the subscribers left with nothing."""
    confirmed = (
        select(col(Membership.id))
        .where(
            col(Membership.subscriber_id) == col(Subscriber.id),
            col(Membership.status) == MemberStatus.confirmed.value,
        )
        .correlate(Subscriber)
    )
    stale = s.execute(
        select(col(Membership.id), col(Membership.subscriber_id))
        .join(Subscriber, col(Subscriber.id) == col(Membership.subscriber_id))
        .where(
            col(Membership.status) == MemberStatus.pending.value,
            col(Membership.updated_at) < cutoff,
            ~exists(confirmed),
        )
    ).all()
    if not stale:
        return 0, 0
    ids = [mid for mid, _ in stale]
    memberships = rows_changed(s, delete(Membership).where(col(Membership.id).in_(ids)))
    people = sorted({sid for _, sid in stale})
    gone = [sid for sid in people if _nothing_left(s, sid, cutoff)]
    if gone:
        s.execute(delete(ConsentEvent).where(col(ConsentEvent.subscriber_id).in_(gone)))
        s.execute(delete(Outbox).where(col(Outbox.subscriber_id).in_(gone)))
        s.execute(delete(Subscriber).where(col(Subscriber.id).in_(gone)))
    return memberships, len(gone)


def _nothing_left(s: Session, sid: int, cutoff: datetime) -> bool:
    """Whether a subscriber holds nothing but stale sign-up attempts (see the module's text)."""
    sub = s.get(Subscriber, sid)
    if sub is None or sub.created_at >= cutoff:
        return False
    holders: list[Any] = [
        select(col(Membership.id)).where(col(Membership.subscriber_id) == sid),
        select(col(Delivery.id)).where(col(Delivery.subscriber_id) == sid),
        select(col(Engagement.id)).where(col(Engagement.subscriber_id) == sid),
        select(col(ActivityEvent.id)).where(col(ActivityEvent.subscriber_id) == sid),
        select(col(InboundMessage.id)).where(col(InboundMessage.subscriber_id) == sid),
        select(col(Repermission.id)).where(col(Repermission.subscriber_id) == sid),
        select(col(Outbox.id)).where(
            col(Outbox.subscriber_id) == sid, col(Outbox.status).in_(("pending", "sending"))
        ),
        select(col(ConsentEvent.id)).where(
            col(ConsentEvent.subscriber_id) == sid, col(ConsentEvent.kind).not_in(SIGN_UP_KINDS)
        ),
    ]
    return not any(s.scalar(select(exists(q))) for q in holders)


def _older(s: Session, column: Any, cutoff: datetime) -> int:
    return rows_changed(s, delete(column.class_).where(column < cutoff))


def sweep(
    rt: Runtime,
    now: datetime | None = None,
    settings: Settings | None = None,
    *,
    ledger_seconds: float | None = None,
) -> dict[str, int]:
    """Delete what is older than its period before now (naive UTC; default: this moment) under
    the settings in force; the count of rows deleted per kind. Ledger rows are deleted for at
    most ledger_seconds (None: all); "ledger_rows_left" is 1 when some are left."""
    now = now or utcnow()
    settings = settings or settings_store.effective(rt)
    counts = dict.fromkeys(KINDS, 0)
    cutoff = _cutoff(now, settings.retention_unconfirmed_days)
    if cutoff is not None:
        with rt.db.session() as s:
            counts["unconfirmed"], counts["subscribers"] = _unconfirmed(s, cutoff)
    for kind, column, days in (
        ("activity", col(ActivityEvent.at), settings.retention_activity_days),
        ("engagement", col(Engagement.at), settings.retention_engagement_days),
        ("inbound", col(InboundMessage.received_at), settings.retention_inbound_days),
        ("audit", col(AuditLog.at), settings.retention_audit_days),
        # NULL (still open) is never older than anything: open requests stay
        ("repermission", col(Repermission.ended_at), settings.retention_repermission_days),
    ):
        cutoff = _cutoff(now, days)
        if cutoff is not None:
            with rt.db.session() as s:
                counts[kind] = _older(s, column, cutoff)
    cutoff = _cutoff(now, settings.retention_delivery_days)
    if cutoff is not None:
        done = ledger_archive.archive(rt, cutoff, seconds=ledger_seconds)
        counts["ledgers"], counts["ledger_rows"] = done.campaigns, done.rows
        if done.more:
            counts["ledger_rows_left"] = 1
    return counts


def sweep_due(rt: Runtime, now: datetime) -> dict[str, int]:
    """The sweep, if the next one in this process is due (EVERY_SECONDS after the last, or
    AGAIN_SECONDS while ledger rows are left)."""
    due = rt.state.get("retention_due_at")
    if due is not None and now < due:
        return {}
    rt.state["retention_due_at"] = now + timedelta(seconds=EVERY_SECONDS)  # also after a failure
    counts = sweep(rt, now, ledger_seconds=LEDGER_SECONDS)
    if counts.get("ledger_rows_left"):
        rt.state["retention_due_at"] = now + timedelta(seconds=AGAIN_SECONDS)
    return counts
