"""What a bounce does to the subscriber, whether a receiving server refused the address while
a campaign was sent or a bounce notice came back later: a soft bounce counts, a hard bounce
(or the soft-bounce threshold) ends every membership and suppresses the address. Which kind
a bounce is, is listmgr.mail.bounces's verdict."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlmodel import col

from listmgr.models import Membership, MemberStatus, Subscriber, utcnow
from listmgr.services.subscriptions import Origin, record, suppress


def soft_bounce(
    s: Session,
    sub: Subscriber,
    *,
    origin: Origin,
    list_id: int | None,
    campaign_id: int | None = None,
    inbound_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> int:
    """Count a soft bounce and record it; returns the subscriber's soft bounces so far."""
    # Atomic increment: bounces of one person may be processed by several workers at once.
    count: int = s.execute(
        update(Subscriber)
        .where(col(Subscriber.id) == sub.id)
        .values(soft_bounces=Subscriber.soft_bounces + 1)
        .returning(col(Subscriber.soft_bounces))
    ).scalar_one()
    record(
        s,
        kind="bounce_soft",
        subscriber_id=sub.id,
        list_id=list_id,
        origin=origin,
        inbound_id=inbound_id,
        campaign_id=campaign_id,
        detail={"count": count, **(detail or {})},
    )
    return count


def hard_bounce(
    s: Session,
    sub: Subscriber,
    *,
    origin: Origin,
    reason: str,
    list_id: int | None,
    campaign_id: int | None = None,
    inbound_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """The address is undeliverable: every confirmed or pending membership becomes bounced,
    the address goes on the suppression list (`reason` says why) and the event is recorded."""
    now = utcnow()
    for m in s.scalars(
        select(Membership).where(
            col(Membership.subscriber_id) == sub.id,
            col(Membership.status).in_((MemberStatus.confirmed.value, MemberStatus.pending.value)),
        )
    ):
        m.status, m.updated_at = MemberStatus.bounced.value, now
    suppress(s, sub, "hard_bounce", reason[:500])
    record(
        s,
        kind="bounce_hard",
        subscriber_id=sub.id,
        list_id=list_id,
        origin=origin,
        inbound_id=inbound_id,
        campaign_id=campaign_id,
        detail=detail,
    )
