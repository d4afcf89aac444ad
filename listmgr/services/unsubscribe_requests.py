"""Unsubscribe requests by e-mail without proof: the address gets one short mail with a link,
and the request waits in the inbox until the person confirms (POST, scanner-proof)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session
from sqlmodel import col

from listmgr.models import InboundMessage, Membership, MemberStatus, Outbox, Subscriber, utcnow
from listmgr.runtime import Runtime
from listmgr.services.subscriptions import Origin, unsubscribe_subscriber

KIND = "unsubscribe_request"  # the outbox kind (templates/email/unsubscribe_request)
WAITING = "waiting for confirmation"


def ask(
    s: Session, rt: Runtime, row: InboundMessage, sub: Subscriber, *, auto_submitted: bool
) -> tuple[str, str, int | None]:
    """Mail the person a confirmation link unless that would be pointless or a flood;
    returns (what was done, its outcome code, the outbox id to send after commit)."""
    active = s.scalar(
        select(col(Membership.id))
        .where(
            col(Membership.subscriber_id) == sub.id,
            col(Membership.status).in_((MemberStatus.confirmed.value, MemberStatus.pending.value)),
        )
        .limit(1)
    )
    if active is None:
        return f"no proof; {sub.email} is on no list any more: nothing to do", "on_no_list", None
    if auto_submitted:  # RFC 3834: never answer a machine
        return f"no proof; {WAITING} (an automatic message gets no answer)", "confirm_waiting", None
    # Requests for one address processed at the same moment by several workers: one at a time
    # (PostgreSQL row lock; SQLite's processing transaction already holds the write lock).
    s.execute(select(col(Subscriber.id)).where(col(Subscriber.id) == sub.id).with_for_update())
    window = utcnow() - timedelta(hours=rt.settings.unsubscribe_request_window_hours)
    recent = s.scalar(
        select(col(Outbox.id))
        .where(
            col(Outbox.to_email) == sub.email,
            col(Outbox.kind) == KIND,
            col(Outbox.created_at) > window,
        )
        .limit(1)
    )
    if recent is not None:  # forged From addresses must not turn us into a mail bomb
        return (
            (
                f"no proof; {WAITING} (a confirmation link went to {sub.email} in the last "
                f"{rt.settings.unsubscribe_request_window_hours} h)"
            ),
            "confirm_waiting",
            None,
        )
    out = Outbox(
        kind=KIND,
        to_email=sub.email,
        subscriber_id=sub.id,
        list_id=None,
        payload={"inbound_id": row.id},
    )
    s.add(out)
    s.flush()
    return (
        f"no proof; {WAITING}: a confirmation link was mailed to {sub.email}",
        "confirm_mailed",
        out.id,
    )


@dataclass(frozen=True)
class RequestView:
    email: str
    done: bool  # the person is unsubscribed from everything


def view(rt: Runtime, token: str) -> RequestView:
    """What the confirmation page shows (GET changes nothing: link scanners fetch links)."""
    sid, _ = rt.tokens.read_unsubscribe_request(token)
    with rt.db.session() as s:
        sub = s.get(Subscriber, sid)
        if sub is None:
            return RequestView("", True)
        active = s.scalar(
            select(col(Membership.id))
            .where(
                col(Membership.subscriber_id) == sid,
                col(Membership.status).in_(
                    (MemberStatus.confirmed.value, MemberStatus.pending.value)
                ),
            )
            .limit(1)
        )
        return RequestView(sub.email, active is None)


def confirm(rt: Runtime, token: str, *, origin: Origin) -> RequestView:
    """The person confirmed: unsubscribe from all lists, and close the waiting requests."""
    sid, inbound_id = rt.tokens.read_unsubscribe_request(token)
    with rt.db.session() as s:
        sub = s.get(Subscriber, sid)
        if sub is None:  # erased meanwhile: nothing left to unsubscribe
            return RequestView("", True)
        # The request is the mail that asked (if retention has not deleted it yet).
        asked = s.scalar(
            select(col(InboundMessage.received_at)).where(col(InboundMessage.id) == inbound_id)
        )
        unsubscribe_subscriber(
            s,
            sub,
            list_id=None,
            origin=origin,
            everything=True,
            inbound_id=inbound_id,
            detail={"matched": "confirmation link", "inbound_id": inbound_id},
            requested_at=asked,
        )
        s.execute(
            update(InboundMessage)
            .where(
                or_(col(InboundMessage.id) == inbound_id, col(InboundMessage.subscriber_id) == sid),
                col(InboundMessage.kind) == "unsubscribe",
                col(InboundMessage.proof) == "none",
            )
            .values(
                proof="link",
                handled=True,
                action=f"{sub.email}: unsubscribed from all lists (confirmed by link)",
            )
        )
        return RequestView(sub.email, True)
