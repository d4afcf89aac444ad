"""Data rights: export everything held about a person, and erase it (a keyed hash stays)."""

from __future__ import annotations

import logging
import sqlite3
import typing
from datetime import datetime
from typing import Any

from sqlalchemy import LargeBinary, Text, and_, cast, delete, func, or_, select, update
from sqlalchemy.orm import Session
from sqlmodel import col

from listmgr.errors import NotFound, TokenInvalid
from listmgr.models import (
    ActivityEvent,
    AuditLog,
    Campaign,
    ConsentEvent,
    Delivery,
    DeliveryStatus,
    DevMail,
    Engagement,
    InboundMessage,
    Interest,
    MailingList,
    Membership,
    Outbox,
    PrivacyNotice,
    Repermission,
    Subscriber,
    SubscriberInterest,
    Suppression,
    id_of,
    utcnow,
)
from listmgr.runtime import Runtime
from listmgr.services import audit, erasure, inbound
from listmgr.services.subscriptions import Origin, record
from listmgr.traces import Traces

log = logging.getLogger(__name__)

FORMAT = "listmgr-export/1"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _rows(s: Session, query: Any) -> list[Any]:
    return list(s.execute(query))


def _latest(query: Any, order: Any, recent: int | None) -> Any:
    """All rows in time order, or only the most recent ones (still in time order)."""
    if recent is None:
        return query.order_by(*order)
    inner = query.order_by(*(c.desc() for c in order)).limit(recent).subquery()
    return query.where(order[-1].in_(select(inner.c.id))).order_by(*order)


def _export(s: Session, rt: Runtime, sub: Subscriber, recent: int | None = None) -> dict[str, Any]:
    sid = sub.id
    lists = {lst.id: lst for lst in s.scalars(select(MailingList))}
    labels = {k: v for k, v in s.execute(select(col(Interest.key), col(Interest.label)))}
    mine = s.scalars(
        select(col(SubscriberInterest.interest))
        .where(col(SubscriberInterest.subscriber_id) == sid)
        .order_by(SubscriberInterest.interest)
    )

    def slug(list_id: int | None) -> str | None:
        return lists[list_id].slug if list_id in lists else None

    memberships = [
        {
            "list": slug(m.list_id),
            "list_name": lists[m.list_id].name if m.list_id in lists else None,
            "status": m.status,
            "opt_in_level": m.opt_in_level,
            "source": m.source,
            "created_at": _iso(m.created_at),
            "confirmed_at": _iso(m.confirmed_at),
            "unsubscribed_at": _iso(m.unsubscribed_at),
            "updated_at": _iso(m.updated_at),
        }
        for m in s.scalars(
            select(Membership)
            .where(col(Membership.subscriber_id) == sid)
            .order_by(col(Membership.id))
        )
    ]
    versions = dict(
        s.execute(
            select(col(PrivacyNotice.id), col(PrivacyNotice.version)).where(
                col(PrivacyNotice.id).in_(
                    select(col(ConsentEvent.privacy_notice_id)).where(
                        col(ConsentEvent.subscriber_id) == sid
                    )
                )
            )
        ).all()
    )
    consent = [
        {
            "kind": e.kind,
            "at": _iso(e.at),
            "list": slug(e.list_id),
            "source": e.source,
            "actor": e.actor,
            "ip": e.ip,
            "user_agent": e.user_agent,
            "wording": e.wording,
            "detail": e.detail,
            "campaign_id": e.campaign_id,
            "inbound_id": e.inbound_id,
            # the version of the list's privacy notice in force when it was given
            "privacy_notice_version": versions.get(e.privacy_notice_id),
        }
        for e in s.scalars(
            select(ConsentEvent)
            .where(col(ConsentEvent.subscriber_id) == sid)
            .order_by(col(ConsentEvent.id))
        )
    ]
    repermission = [
        {
            "list": slug(r.list_id),
            "reason": r.flag,
            "asked_at": _iso(r.asked_at),
            "deadline": _iso(r.deadline),
            "confirmed_at": _iso(r.confirmed_at),
            "ended_at": _iso(r.ended_at),
            "asked_by": r.created_by,
        }
        for r in s.scalars(
            select(Repermission)
            .where(col(Repermission.subscriber_id) == sid)
            .order_by(col(Repermission.id))
        )
    ]
    activity = [
        {"type": a.type, "properties": a.properties, "at": _iso(a.at)}
        for a in s.scalars(
            _latest(
                select(ActivityEvent).where(col(ActivityEvent.subscriber_id) == sid),
                (ActivityEvent.at, ActivityEvent.id),
                recent,
            )
        )
    ]
    deliveries = [
        {
            "campaign_id": d.campaign_id,
            "campaign": name,
            "subject": subject,
            "list": slug(d.list_id),
            "status": d.status,
            "attempts": d.attempts,
            "sent_at": _iso(d.sent_at),
            "error": d.error,
            "bounced": d.bounced,
            "complained": d.complained,
            "unsubscribed": d.unsubscribed,
        }
        for d, name, subject in _rows(
            s,
            select(Delivery, col(Campaign.name), col(Campaign.subject))
            .join(Campaign, col(Campaign.id) == Delivery.campaign_id)
            .where(col(Delivery.subscriber_id) == sid)
            .order_by(col(Delivery.id)),
        )
    ]
    engagement = [
        {"campaign_id": e.campaign_id, "kind": e.kind, "url": e.url, "at": _iso(e.at)}
        for e in s.scalars(
            _latest(
                select(Engagement).where(col(Engagement.subscriber_id) == sid),
                (Engagement.id,),
                recent,
            )
        )
    ]
    inbound = [
        {
            "id": m.id,
            "received_at": _iso(m.received_at),
            "message_id": m.message_id,
            "envelope_from": m.envelope_from,
            "envelope_to": m.envelope_to,
            "size": m.size,
            "kind": m.kind,
            "action": m.action,
            "status": m.status,
        }
        for m in s.scalars(
            select(InboundMessage).where(_inbound_of(s, sub)).order_by(col(InboundMessage.id))
        )
    ]
    outbox = [
        {
            "kind": o.kind,
            "to": o.to_email,
            "status": o.status,
            "created_at": _iso(o.created_at),
            "sent_at": _iso(o.sent_at),
        }
        for o in s.scalars(select(Outbox).where(_outbox_of(sub)).order_by(col(Outbox.id)))
    ]
    captured = [
        {"subject": m.subject, "created_at": _iso(m.created_at)}
        for m in s.scalars(select(DevMail).where(_dev_mail_of(s, sub)).order_by(col(DevMail.id)))
    ]
    supp = s.scalar(
        select(Suppression).where(col(Suppression.email_hash) == rt.email_hash(sub.email))
    )
    access = [
        {"at": _iso(a.at), "action": a.action, "actor": a.actor}
        for a in s.scalars(
            select(AuditLog)
            .where(col(AuditLog.target_type) == "subscriber", col(AuditLog.target_id) == str(sid))
            .order_by(col(AuditLog.id))
        )
    ]
    return {
        "format": FORMAT,
        "exported_at": _iso(utcnow()),
        "subscriber": {
            "id": sid,
            "email": sub.email,
            "name": sub.name,
            "source": sub.source,
            "created_at": _iso(sub.created_at),
            "updated_at": _iso(sub.updated_at),
            "consent_profiling": sub.consent_profiling,
            "consent_tracking": sub.consent_tracking,
            "paused_until": _iso(sub.paused_until),
            "soft_bounces": sub.soft_bounces,
        },
        "fields": dict(sub.fields or {}),
        "interests": [{"key": k, "label": labels.get(k, k)} for k in mine],
        "memberships": memberships,
        "consent_history": consent,
        "repermission_requests": repermission,
        "activity": activity,
        "deliveries": deliveries,
        "engagement": engagement,
        "inbound_messages": inbound,
        "transactional_mail": outbox,
        "captured_mail": captured,
        "suppression": {
            "reason": supp.reason,
            "detail": supp.detail,
            "created_at": _iso(supp.created_at),
        }
        if supp
        else None,
        "access_log": access,
    }


# -- where a person's rows are -----------------------------------------------------------------
def _contains(s: Session, column: Any, needle: str) -> Any:
    """Case-insensitive "column contains needle" for text, JSON and binary columns."""
    target: Any = cast(column, Text)
    if s.get_bind().dialect.name == "postgresql" and isinstance(column.type, LargeBinary):
        # Every byte is a LATIN1 character, so this never fails on odd mail; the needle is
        # spelled the same way (its UTF-8 bytes read as LATIN1).
        target = func.convert_from(column, "LATIN1")
        needle = needle.encode("utf-8").decode("latin-1")
    pattern = (
        "%" + needle.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    )
    return func.lower(target).like(pattern, escape="\\")


def _outbox_of(sub: Subscriber) -> Any:
    return or_(col(Outbox.subscriber_id) == sub.id, col(Outbox.to_email) == sub.email)


def _dev_mail_of(s: Session, sub: Subscriber) -> Any:
    return or_(_contains(s, DevMail.rcpt_to, sub.email), _contains(s, DevMail.raw, sub.email))


def _inbound_of(s: Session, sub: Subscriber) -> Any:
    # Raw bytes are searched only where no subscriber is linked (unattributed bounces, ...).
    return or_(
        col(InboundMessage.subscriber_id) == sub.id,
        _contains(s, InboundMessage.envelope_from, sub.email),
        and_(
            col(InboundMessage.subscriber_id).is_(None), _contains(s, InboundMessage.raw, sub.email)
        ),
    )


def _erase(s: Session, rt: Runtime, sub: Subscriber, origin: Origin) -> str:
    """Delete every row about this person and blot them out of every other row (free text,
    rules, reports, stored mail); keep a keyed hash on the suppression list."""
    sid, email = id_of(sub), sub.email
    traces = Traces(email, sub.name)
    digest = rt.email_hash(email)
    if rt.db.dialect == "sqlite":
        # What this erasure deletes or rewrites is zeroed in the file, not only unlinked.
        s.connection().exec_driver_sql("PRAGMA secure_delete = ON")
    s.execute(delete(ActivityEvent).where(col(ActivityEvent.subscriber_id) == sid))
    s.execute(delete(Engagement).where(col(Engagement.subscriber_id) == sid))
    s.execute(delete(SubscriberInterest).where(col(SubscriberInterest.subscriber_id) == sid))
    s.execute(delete(Membership).where(col(Membership.subscriber_id) == sid))
    s.execute(delete(ConsentEvent).where(col(ConsentEvent.subscriber_id) == sid))
    s.execute(delete(Repermission).where(col(Repermission.subscriber_id) == sid))
    s.execute(delete(Outbox).where(_outbox_of(sub)))
    erasure.stored_mail(s, traces, sid)
    # The campaign ledger keeps its counts; a queued row has nobody left to go to.
    s.execute(
        update(Delivery)
        .where(
            col(Delivery.subscriber_id) == sid, col(Delivery.status) == DeliveryStatus.queued.value
        )
        .values(status=DeliveryStatus.skipped.value)
    )
    s.execute(
        update(Delivery)
        .where(col(Delivery.subscriber_id) == sid)
        .values(subscriber_id=None, error="", claimed_by="", smtp_server="")
    )
    s.delete(sub)
    s.flush()
    erasure.sweep(s, traces)
    kept = s.scalar(select(Suppression).where(col(Suppression.email_hash) == digest))
    if kept is None:
        s.add(Suppression(email_hash=digest, email=None, reason="erased"))
    else:
        kept.email, kept.reason, kept.detail = None, "erased", ""
    # The audit trail of the erasure itself: no address, no IP, only the keyed hash.
    record(
        s,
        kind="erase",
        subscriber_id=None,
        list_id=None,
        origin=Origin(source=origin.source, actor=origin.actor),
        detail={"email_hash": digest},
    )
    s.add(
        audit.entry(
            actor=origin.actor,
            action="subscriber.erase",
            target_type="subscriber",
            target_id=sid,
            detail={"email_hash": digest, "source": origin.source},
        )
    )
    s.flush()
    if rt.db.dialect == "sqlite":
        s.connection().exec_driver_sql("PRAGMA secure_delete = OFF")  # a pooled connection
    return digest


def _flush_file(rt: Runtime) -> None:
    """SQLite: copy the erasure into the database file and empty the write-ahead log, which
    still holds the pages as they were before (best effort: a busy reader leaves it for the
    next checkpoint)."""
    if rt.db.dialect != "sqlite":
        return
    with rt.db.engine.connect() as conn:
        # On the driver's connection: a checkpoint cannot run inside a transaction.
        raw = typing.cast(sqlite3.Connection, conn.connection.driver_connection)
        try:
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.OperationalError:
            log.warning("the write-ahead log could not be emptied after an erasure")


def _settle(rt: Runtime, subscriber_id: int | None) -> Traces | None:
    """Before an erasure: process others' mail that names the person and is still waiting, so
    redacting it loses nothing it asked for. Returns the person's traces (None: nobody)."""
    if subscriber_id is None:
        return None
    with rt.db.session() as s:
        sub = s.get(Subscriber, subscriber_id)
        if sub is None:
            return None
        traces = Traces(sub.email, sub.name)
    for mid in erasure.unprocessed_naming(rt, traces, subscriber_id):
        try:
            inbound.process(rt, mid)
        except Exception:  # it is kept, marked for a human, and redacted all the same
            log.exception("inbound message %s could not be processed before an erasure", mid)
    return traces


def _subscriber_for_token(
    s: Session, rt: Runtime, data_token: str, lock: bool = False
) -> Subscriber | None:
    # Only a fresh single-use link mailed to the address reaches the data, never the
    # preference link every mail carries; using it spends it.
    from listmgr.services import access_links

    return access_links.use_data_link(s, rt, data_token, lock=lock)


def export_by_token(rt: Runtime, data_token: str, *, origin: Origin) -> dict[str, Any]:
    """The person's own download of everything held about them (a mailed data link)."""
    with rt.db.session() as s:
        sub = _subscriber_for_token(s, rt, data_token)
        if sub is None:
            raise TokenInvalid("This link no longer works: there is no data held for it.")
        data = _export(s, rt, sub)
        s.add(
            audit.entry(
                actor="subscriber",
                action="people.export",
                target_type="subscriber",
                target_id=sub.id,
                detail={"source": origin.source},
            )
        )
        return data


def erase_by_token(rt: Runtime, data_token: str, *, origin: Origin) -> None:
    """The person's own erasure (a mailed data link); once erased, repeating it is harmless."""
    traces = _settle(rt, rt.tokens.read_data_link(data_token).subscriber_id)
    with rt.db.session() as s:
        sub = _subscriber_for_token(s, rt, data_token, lock=True)
        if sub is not None:
            traces = Traces(sub.email, sub.name)
            _erase(s, rt, sub, origin)
    if traces is not None:
        erasure.uploads(rt, traces)
        _flush_file(rt)


def export_subscriber(
    rt: Runtime, subscriber_id: int, *, actor: str = "", ip: str = ""
) -> dict[str, Any]:
    """An admin's export of one subscriber (written to the audit log)."""
    with rt.db.session() as s:
        sub = s.get(Subscriber, subscriber_id)
        if sub is None:
            raise NotFound("no such subscriber")
        data = _export(s, rt, sub)
        s.add(
            audit.entry(
                actor=actor,
                action="people.export",
                target_type="subscriber",
                target_id=subscriber_id,
                ip=ip,
            )
        )
        return data


def history(rt: Runtime, subscriber_id: int, *, recent: int = 500) -> dict[str, Any]:
    """The export's picture of one subscriber for the admin's detail page, with only the most
    recent activity and engagement (the caller audits the view)."""
    with rt.db.session() as s:
        sub = s.get(Subscriber, subscriber_id)
        if sub is None:
            raise NotFound("no such subscriber")
        return _export(s, rt, sub, recent=recent)


def erase_subscriber(rt: Runtime, subscriber_id: int, *, origin: Origin) -> str:
    """An admin's erasure of one subscriber; returns the keyed hash that stays suppressed."""
    _settle(rt, subscriber_id)
    with rt.db.session() as s:
        sub = s.get(Subscriber, subscriber_id, with_for_update=True)
        if sub is None:
            raise NotFound("no such subscriber")
        traces = Traces(sub.email, sub.name)
        digest = _erase(s, rt, sub, origin)
    erasure.uploads(rt, traces)
    _flush_file(rt)
    return digest
