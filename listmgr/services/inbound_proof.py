"""Whom an inbound message may change: its proof (classification.Proof) checked against our
delivery and outbox records, and tied to the one person the action targets. Nothing else
(an address named in a bounce, the From of a reply) ever picks a person."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session
from sqlmodel import col

from listmgr.addresses import normalize_email
from listmgr.errors import ValidationError
from listmgr.mail.inbound import Classification
from listmgr.models import Delivery, Outbox, Subscriber, by_id, id_of

NO_PROOF = "none"


@dataclass(frozen=True)
class Verdict:
    """The person a message proves to be about (or nobody), and by what."""

    subscriber_id: int | None  # whom the action may change
    proof: str  # token, message-id, dmarc, dkim, admin; "none": nobody
    reason: str = ""  # why nobody, for the inbox
    campaign_id: int | None = None
    list_id: int | None = None
    requester_id: int | None = None  # unproven unsubscribe: the subscriber with the From address


def _deliveries(s: Session, cls: Classification) -> list[Delivery]:
    """Delivery rows behind the tagged Message-IDs (the tag binds campaign and row)."""
    rows = []
    for cid, did in cls.proof.deliveries[:20]:
        row = by_id(s, Delivery, did)
        if row is not None and row.campaign_id == cid and row.subscriber_id:
            rows.append(row)
    return rows


def _outbox(s: Session, cls: Classification) -> list[Outbox]:
    """Transactional mail we sent with one of the message's Message-IDs."""
    ids = list(cls.proof.outbox_ids[:20])
    if not ids:
        return []
    return list(
        s.scalars(
            select(Outbox).where(col(Outbox.message_id).in_(ids), col(Outbox.status) == "sent")
        )
    )


def judge(s: Session, cls: Classification) -> Verdict:
    """The verdict for a bounce, complaint or unsubscribe request."""
    if cls.kind == "unsubscribe" and cls.evidence.get("rule") == "unsubscribe-address":
        return _by_tokens(s, cls, mailto=True)
    if cls.kind == "unsubscribe":
        return _reply(s, cls)
    return _by_tokens(s, cls, mailto=False)


def _by_tokens(s: Session, cls: Classification, *, mailto: bool) -> Verdict:
    """Reports and mail to unsubscribe+TOKEN@: our tokens and Message-IDs name the person;
    when they name more than one, the message is not trusted at all."""
    named: dict[int, str] = {sid: "token" for sid in cls.proof.token_subscribers}
    if cls.subscriber_id:
        named.setdefault(cls.subscriber_id, "token")
    rows = [] if mailto else _deliveries(s, cls)
    for row in rows:
        if row.subscriber_id:  # (always: _deliveries keeps only those)
            named.setdefault(row.subscriber_id, "message-id")
    for out in [] if mailto else _outbox(s, cls):
        if out.subscriber_id:
            named.setdefault(int(out.subscriber_id), "message-id")
    if not named:
        return Verdict(None, NO_PROOF, "no proof: no token or Message-ID of ours names anyone")
    if len(named) > 1:
        return Verdict(None, NO_PROOF, "no proof: its tokens and Message-IDs name different people")
    ((sid, how),) = named.items()
    campaign_id, list_id = cls.campaign_id, cls.list_id
    if campaign_id is None and rows:
        campaign_id, list_id = rows[0].campaign_id, list_id or rows[0].list_id
    return Verdict(sid, how, campaign_id=campaign_id, list_id=list_id)


def _reply(s: Session, cls: Classification) -> Verdict:
    """A person's unsubscribe request: proof must name the subscriber with the From address."""
    sender = cls.proof.sender
    if not sender:
        return Verdict(None, NO_PROOF, "no proof: the message has no single From address")
    # the form addresses are stored in (Unicode domains, lower case); else looked up as written
    with contextlib.suppress(ValidationError):
        sender = normalize_email(sender)
    sub = s.scalar(select(Subscriber).where(col(Subscriber.email) == sender))
    if sub is None:
        return Verdict(None, NO_PROOF, f"no subscriber with the address {sender}")
    sid = id_of(sub)
    if sid in cls.proof.quoted_subscribers:
        return Verdict(sid, "token")
    for row in _deliveries(s, cls):
        if row.subscriber_id == sid:
            return Verdict(sid, "message-id", campaign_id=row.campaign_id)
    if (
        cls.proof.outbox_ids
        and s.scalar(
            select(col(Outbox.id))
            .where(
                col(Outbox.message_id).in_(list(cls.proof.outbox_ids[:20])),
                col(Outbox.status) == "sent",
                or_(col(Outbox.subscriber_id) == sid, col(Outbox.to_email) == sender),
            )
            .limit(1)
        )
        is not None
    ):
        return Verdict(sid, "message-id")
    if cls.proof.authenticated:
        return Verdict(sid, cls.proof.authenticated)
    return Verdict(
        None,
        NO_PROOF,
        "no proof: no Message-ID or token of ours for this sender and no authenticated From",
        requester_id=sid,
    )


def by_admin(s: Session, cls: Classification) -> list[Subscriber]:
    """A human's verdict: the token's subscriber, else the addresses the message names."""
    if cls.subscriber_id:
        sub = s.get(Subscriber, cls.subscriber_id)
        return [sub] if sub is not None else []
    addresses = [a.strip().lower() for a in cls.recipients if "@" in a][:20]
    if not addresses:
        return []
    return list(s.scalars(select(Subscriber).where(col(Subscriber.email).in_(addresses))))
