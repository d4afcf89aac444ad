"""Inbound mail: store the raw message first, then classify and act, idempotently."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from sqlmodel import col

from listmgr import metrics
from listmgr.db import insert_or_skip
from listmgr.errors import NotFound, TooLarge, ValidationError
from listmgr.mail.inbound import KINDS, Classification, Envelope, classify, message, outcomes
from listmgr.models import (
    Delivery,
    InboundMessage,
    Outbox,
    Subscriber,
    utcnow,
)
from listmgr.runtime import Runtime
from listmgr.services import breaker, inbound_proof, settings_store, unsubscribe_requests
from listmgr.services.bounces import hard_bounce, soft_bounce
from listmgr.services.inbound_proof import NO_PROOF
from listmgr.services.subscriptions import Origin, unsubscribe_subscriber
from listmgr.settings import Settings

MAX_ATTEMPTS = 5
INBOUND_TABLE = InboundMessage.metadata.tables[str(InboundMessage.__tablename__)]
# Outcomes that flag the campaign's delivery as counted by its rates (services/reputation).
RATED = frozenset({"hard_bounce", "complaint"})


@dataclass(frozen=True)
class Stored:
    id: int
    duplicate: bool


def _message_id(raw: bytes) -> str:
    try:
        value = str(message.head(raw).get("Message-ID", "") or "")
    except Exception:  # malformed headers are stored all the same
        return ""
    return " ".join(value.split())[:998]


def store(rt: Runtime, raw: bytes, *, envelope_from: str = "", envelope_to: str = "") -> Stored:
    """Keep the raw message (duplicates collapse by content hash) and queue its processing."""
    if not raw or not raw.strip():
        raise ValidationError("the message is empty", field="message")
    if len(raw) > rt.settings.max_inbound_bytes:
        raise TooLarge(f"the message is larger than {rt.settings.max_inbound_bytes} bytes")
    digest = hashlib.sha256(raw).hexdigest()
    envelope_from = " ".join(envelope_from.split())[:500]
    envelope_to = " ".join(envelope_to.split())[:500]
    message_id = _message_id(raw)
    with rt.db.session() as s:
        # One statement: a message stored before, or arriving twice at the same moment (the
        # second waits for the first and inserts nothing), is found by its hash. Into the
        # table itself: nothing here needs the ORM's bookkeeping of an entity insert.
        new_id = s.scalar(
            insert_or_skip(s, INBOUND_TABLE, ["sha256"])
            .values(
                sha256=digest,
                message_id=message_id,
                raw=raw,
                size=len(raw),
                envelope_from=envelope_from,
                envelope_to=envelope_to,
                evidence={},
            )
            .returning(col(InboundMessage.id))
        )
        if new_id is None:
            first = s.scalar(
                select(col(InboundMessage.id)).where(col(InboundMessage.sha256) == digest)
            )
            assert first is not None
            metrics.metrics().inbound_stored.labels("yes").inc()
            return Stored(first, True)
    metrics.metrics().inbound_stored.labels("no").inc()
    rt.enqueue("process_inbound", new_id)
    return Stored(new_id, False)


def _classify(rt: Runtime, settings: Settings, row: InboundMessage) -> Classification:
    recipients = tuple(x for x in row.envelope_to.replace(",", " ").split() if x)
    return classify(
        row.raw,
        Envelope(sender=row.envelope_from, recipients=recipients),
        tokens=rt.tokens,
        mail_domain=settings.mail_domain,
        authserv_id=rt.settings.inbound_authserv_id,
    )


@dataclass(frozen=True)
class Outcome:
    """What processing did: the action text, the proof, whom it concerns, mail to send."""

    action: str
    code: str  # what it came to, in listmgr.mail.inbound.outcomes.WORDS
    proof: str = ""
    subscriber_id: int | None = None
    list_id: int | None = None
    campaign_id: int | None = None
    outbox: tuple[int, ...] = ()


def needs_human() -> Any:
    """Inbox condition: not understood, or a request that changed nobody for lack of proof."""
    return (col(InboundMessage.handled).is_(False)) & (
        (col(InboundMessage.kind) == "other") | (col(InboundMessage.proof) == NO_PROOF)
    )


def _act(
    s: Session, rt: Runtime, row: InboundMessage, cls: Classification, *, admin: bool
) -> Outcome:
    """Apply the classification to the person its proof names (a human's verdict is proof)."""
    if cls.kind == "autoreply":
        return Outcome("ignored (auto-reply)", "autoreply")
    if cls.kind == "other":
        return Outcome("kept for a human", "kept")
    if admin:
        subs = inbound_proof.by_admin(s, cls)
        proof = "admin"
    else:
        verdict = inbound_proof.judge(s, cls)
        if verdict.subscriber_id is None and verdict.requester_id is not None:
            sub = s.get(Subscriber, verdict.requester_id)
            assert sub is not None  # the verdict names a stored subscriber
            action, code, oid = unsubscribe_requests.ask(
                s,
                rt,
                row,
                sub,
                auto_submitted=_auto_submitted(cls),
            )
            return Outcome(
                action, code, NO_PROOF, verdict.requester_id, outbox=(oid,) if oid else ()
            )
        if verdict.subscriber_id is None:
            return Outcome(f"{verdict.reason}; nothing changed", "unproven", NO_PROOF)
        cls = replace(
            cls,
            subscriber_id=verdict.subscriber_id,
            list_id=verdict.list_id,
            campaign_id=verdict.campaign_id,
        )
        sub = s.get(Subscriber, verdict.subscriber_id)
        subs = [sub] if sub is not None else []
        proof = verdict.proof
    if not subs:
        return Outcome(f"no matching subscriber for {cls.kind}", "nobody", proof)
    done, outbox = _apply(s, rt, row, cls, subs, proof)
    return Outcome(
        "; ".join(text for _, text in done),
        done[0][0],
        proof,
        subs[0].id,
        cls.list_id,
        cls.campaign_id,
        tuple(outbox),
    )


def _apply(
    s: Session,
    rt: Runtime,
    row: InboundMessage,
    cls: Classification,
    subs: list[Subscriber],
    proof: str,
) -> tuple[list[tuple[str, str]], list[int]]:
    """Change the proven people; returns (what was done to each, as an outcome code and a
    line, and outbox ids to send after commit)."""
    origin = Origin(source=f"inbound-{cls.kind}", actor="inbound")
    outbox: list[int] = []
    detail = {
        "inbound_id": row.id,
        "message_id": row.message_id,
        "proof": proof,
        "authentication_results": cls.evidence.get("authentication_results"),
    }
    done = []
    for sub in subs:
        if cls.kind == "bounce":
            done.append(_bounce(s, rt, sub, row, cls, origin))
        elif cls.kind == "complaint":
            unsubscribe_subscriber(
                s,
                sub,
                list_id=None,
                origin=origin,
                everything=True,
                campaign_id=cls.campaign_id,
                inbound_id=row.id,
                detail=detail,
                reason="complaint",
            )
            _flag_delivery(s, cls.campaign_id, sub.id, complained=True)
            done.append(
                ("complaint", f"{sub.email}: unsubscribed from all and suppressed (complaint)")
            )
        elif cls.kind == "unsubscribe":
            by_token = (
                cls.evidence.get("rule") == "unsubscribe-address"
                and cls.subscriber_id is not None
                and cls.list_id is not None
            )
            changed = unsubscribe_subscriber(
                s,
                sub,
                list_id=cls.list_id,
                origin=origin,
                campaign_id=cls.campaign_id,
                inbound_id=row.id,
                everything=not by_token,
                detail={**detail, "matched": "token" if by_token else "from-address"},
                requested_at=row.received_at,
            )
            code = "unsubscribed_list" if by_token else "unsubscribed_all"
            done.append(
                (
                    code if changed else "already_unsubscribed",
                    f"{sub.email}: unsubscribed from "
                    f"{'the list of the token' if by_token else 'all lists'}"
                    f"{'' if changed else ' (already)'}",
                )
            )
            if changed and rt.settings.unsubscribe_confirmation_mail and not _auto_submitted(cls):
                oid = _confirmation(s, sub, changed[0])
                if oid:
                    outbox.append(oid)
    return done, outbox


def _auto_submitted(cls: Classification) -> bool:
    """RFC 3834: never answer a message a machine sent."""
    headers = cls.evidence.get("headers") or {}
    value = str(headers.get("Auto-Submitted", "")).strip().lower()
    return bool(value) and value != "no"


def _flag_delivery(
    s: Session, campaign_id: int | None, subscriber_id: int | None, **flags: bool
) -> None:
    if campaign_id and subscriber_id:
        s.execute(
            update(Delivery)
            .where(
                col(Delivery.campaign_id) == campaign_id,
                col(Delivery.subscriber_id) == subscriber_id,
            )
            .values(**flags)
        )


def _bounce(
    s: Session,
    rt: Runtime,
    sub: Subscriber,
    row: InboundMessage,
    cls: Classification,
    origin: Origin,
) -> tuple[str, str]:
    hard = cls.permanent is not False
    if hard:  # the ledger's bounce flag counts hard bounces only (services/reputation)
        _flag_delivery(s, cls.campaign_id, sub.id, bounced=True)
    status = cls.evidence.get("status")
    count = sub.soft_bounces
    if not hard:
        count = soft_bounce(
            s,
            sub,
            origin=origin,
            list_id=cls.list_id,
            campaign_id=cls.campaign_id,
            inbound_id=row.id,
            detail={"status": status},
        )
        if count < rt.settings.soft_bounce_threshold:
            return (
                "soft_bounce",
                f"{sub.email}: soft bounce {count}/{rt.settings.soft_bounce_threshold}",
            )
    hard_bounce(
        s,
        sub,
        origin=origin,
        reason=f"inbound #{row.id}",
        list_id=cls.list_id,
        campaign_id=cls.campaign_id,
        inbound_id=row.id,
        detail={"status": status, "soft_bounces": count},
    )
    reason = "hard bounce" if hard else "soft bounce threshold reached"
    return ("hard_bounce" if hard else "soft_bounce_limit"), f"{sub.email}: {reason}, suppressed"


def _confirmation(s: Session, sub: Subscriber, list_id: int) -> int | None:
    """The optional 'you are unsubscribed' mail (auto-replied, null sender: no loops)."""
    row = Outbox(kind="unsubscribed", to_email=sub.email, subscriber_id=sub.id, list_id=list_id)
    s.add(row)
    s.flush()
    return row.id


def process(rt: Runtime, message_id: int, *, force_kind: str | None = None) -> None:
    """Classify a stored message and act; a second run of a processed message does nothing."""
    with rt.db.session() as s:
        # Count the attempt and lock the row first, so two workers cannot act on it at once
        # (SQLite serializes writers); a message already processed is left as it is. The same
        # statement returns the row.
        attempt = (
            update(InboundMessage)
            .where(col(InboundMessage.id) == message_id)
            .values(attempts=InboundMessage.attempts + 1)
            .returning(InboundMessage)
        )
        if force_kind is None:
            attempt = attempt.where(col(InboundMessage.status) != "processed")
        row = s.scalars(attempt).one_or_none()
        if row is None:
            return
        settings = settings_store.effective(rt, s)
        cls = _classify(rt, settings, row)
        if force_kind is not None:
            cls = Classification(
                force_kind,
                cls.permanent,
                cls.recipients
                or tuple([cls.evidence.get("from", "")] if cls.evidence.get("from") else []),
                cls.subscriber_id,
                cls.list_id,
                cls.campaign_id,
                {**cls.evidence, "reclassified_from": cls.kind},
                1.0,
            )
        outcome = _act(s, rt, row, cls, admin=force_kind is not None)
        paused = None
        if outcome.campaign_id and outcome.code in RATED:
            # The delivery just flagged may tip a sending campaign over a limit: judged in this
            # unit of work, so the message is never processed without its verdict.
            paused = breaker.judge(s, rt, settings, outcome.campaign_id)
        row.kind = cls.kind
        row.action = outcome.action[:200]
        row.proof = outcome.proof
        row.evidence = {
            **cls.evidence,
            "confidence": cls.confidence,
            "recipients": list(cls.recipients),
            "action": outcome.action,
            "outcome": outcome.code,
            "proof": {"verdict": outcome.proof or None, **cls.proof.as_dict()},
        }
        row.subscriber_id = outcome.subscriber_id
        row.list_id = outcome.list_id
        row.campaign_id = outcome.campaign_id
        row.status = "processed"
        row.processed_at = utcnow()
        row.error = ""
    metrics.metrics().inbound_processed.labels(cls.kind).inc()
    for oid in outcome.outbox:
        rt.enqueue("send_outbox", oid)
    breaker.notify(rt, paused)


def reclassify(rt: Runtime, message_id: int, *, kind: str, actor: str) -> None:
    """A human's verdict: set the kind and re-run its action."""
    if kind not in KINDS:
        raise ValidationError(f"kind must be one of {', '.join(KINDS)}", field="kind")
    with rt.db.session() as s:
        if s.get(InboundMessage, message_id) is None:
            raise NotFound("no such inbound message")
    process(rt, message_id, force_kind=kind)
    with rt.db.session() as s:
        row = s.get(InboundMessage, message_id)
        if row is None:
            raise NotFound("no such inbound message")
        row.evidence = {**row.evidence, "reclassified_by": actor}
        row.handled = True


def mark_handled(rt: Runtime, message_id: int, handled: bool = True) -> None:
    with rt.db.session() as s:
        row = s.get(InboundMessage, message_id)
        if row is None:
            raise NotFound("no such inbound message")
        row.handled = handled


def requeue(rt: Runtime) -> int:
    """Re-enqueue messages stored but not yet processed (after a crash or a lost wake-up)."""
    with rt.db.session() as s:
        ids = list(
            s.scalars(
                select(col(InboundMessage.id))
                .where(
                    col(InboundMessage.status) == "stored",
                    col(InboundMessage.attempts) < MAX_ATTEMPTS,
                )
                .order_by(col(InboundMessage.id))
                .limit(10000)
            )
        )
    for mid in ids:
        rt.enqueue("process_inbound", mid)
    return len(ids)


@dataclass(frozen=True)
class InboundInfo:
    id: int
    received_at: str
    message_id: str
    envelope_from: str
    envelope_to: str
    size: int
    status: str
    kind: str
    action: str
    handled: bool
    subscriber_id: int | None
    campaign_id: int | None
    evidence: dict[str, Any]
    subject: str
    proof: str  # what tied it to us; "none": it changed nobody (see action for why)

    @property
    def outcome(self) -> str:
        """What happened to it, in plain words."""
        return outcomes.plain(
            str(self.evidence.get("outcome") or ""),
            kind=self.kind,
            status=self.status,
            proof=self.proof,
        )


def _info(row: InboundMessage) -> InboundInfo:
    try:
        subject = " ".join(str(message.head(row.raw).get("Subject", "") or "").split())[:300]
    except Exception:
        subject = ""
    assert row.id is not None
    return InboundInfo(
        row.id,
        row.received_at.isoformat(),
        row.message_id,
        row.envelope_from,
        row.envelope_to,
        row.size,
        row.status,
        row.kind,
        row.action,
        row.handled,
        row.subscriber_id,
        row.campaign_id,
        dict(row.evidence or {}),
        subject,
        row.proof,
    )


def list_messages(
    rt: Runtime,
    *,
    kind: str | None = None,
    handled: bool | None = None,
    offset: int = 0,
    limit: int = 50,
    inbox: bool = False,
    proof: str | None = None,
) -> tuple[list[InboundInfo], int]:
    """Newest first; `inbox` keeps what waits for a human (see needs_human)."""
    query = select(InboundMessage)
    if inbox:
        query = query.where(needs_human())
    if proof is not None:
        query = query.where(col(InboundMessage.proof) == proof)
    if kind:
        query = query.where(col(InboundMessage.kind) == kind)
    if handled is not None:
        query = query.where(col(InboundMessage.handled) == handled)
    with rt.db.session() as s:
        total = s.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = s.scalars(query.order_by(col(InboundMessage.id).desc()).offset(offset).limit(limit))
        return [_info(r) for r in rows], total


def get(rt: Runtime, message_id: int) -> InboundInfo:
    with rt.db.session() as s:
        row = s.get(InboundMessage, message_id)
        if row is None:
            raise NotFound("no such inbound message")
        return _info(row)


def get_with_raw(rt: Runtime, message_id: int) -> tuple[InboundInfo, bytes]:
    """One message and its raw source, read once (a message may be megabytes)."""
    with rt.db.session() as s:
        row = s.get(InboundMessage, message_id)
        if row is None:
            raise NotFound("no such inbound message")
        return _info(row), bytes(row.raw)


def raw(rt: Runtime, message_id: int) -> bytes:
    with rt.db.session() as s:
        row = s.get(InboundMessage, message_id)
        if row is None:
            raise NotFound("no such inbound message")
        return bytes(row.raw)


def inbox_count(rt: Runtime) -> int:
    """Messages waiting for a human."""
    with rt.db.session() as s:
        return s.scalar(select(func.count(col(InboundMessage.id))).where(needs_human())) or 0
