"""A sender's standing with the receiving servers: of the campaign mail handed over in a
period, how much hard-bounced, was reported as spam or led to an unsubscribe, per list or per
receiving domain. Every page, check and API answer that states these rates reads them here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select, text
from sqlalchemy.orm import Session
from sqlmodel import col

from listmgr.models import HANDED_OVER, Delivery, DeliveryStatus, Subscriber, utcnow
from listmgr.runtime import Runtime

# The bulk-sender rules of the large mailbox providers: complaints kept under 0.1 % (never
# reaching 0.3 %), and the bounce level at which the large sending services stop a sender.
COMPLAINT_GOOD = 0.001
COMPLAINT_LIMIT = 0.003
BOUNCE_LIMIT = 0.05


@dataclass(frozen=True)
class Rates:
    """Counts over the messages handed over (accepted or refused) in a period."""

    handed_over: int
    hard_bounces: int
    complaints: int
    unsubscribes: int

    def _of(self, count: int) -> float | None:
        return count / self.handed_over if self.handed_over else None

    @property
    def bounce_rate(self) -> float | None:
        return self._of(self.hard_bounces)

    @property
    def complaint_rate(self) -> float | None:
        return self._of(self.complaints)

    @property
    def unsubscribe_rate(self) -> float | None:
        return self._of(self.unsubscribes)


def domain_of(email: str) -> str:
    """The receiving domain of an address (lower case)."""
    return email.rpartition("@")[2].lower()


def rates(
    rt: Runtime,
    *,
    days: int,
    list_id: int | None = None,
    domain: str | None = None,
    now: datetime | None = None,
) -> Rates:
    """Campaign mail handed over in the last `days` days (by when it was handed over), of one
    list or to one receiving domain if given, and what came of it. A hard bounce is a refusal
    at the time of sending or a permanent bounce notice; soft bounces are not counted."""
    since = (now or utcnow()) - timedelta(days=days)
    handed = func.coalesce(col(Delivery.sent_at), col(Delivery.attempted_at))

    def flag(column: Any) -> Any:
        return func.count(case((column.is_(True), 1)))

    query = select(
        func.count(),
        flag(col(Delivery.bounced)),
        flag(col(Delivery.complained)),
        flag(col(Delivery.unsubscribed)),
    ).where(
        col(Delivery.status).in_((DeliveryStatus.sent.value, DeliveryStatus.failed.value)),
        handed >= since,
    )
    if list_id is not None:
        query = query.where(col(Delivery.list_id) == list_id)
    if domain:
        query = query.join(Subscriber, col(Subscriber.id) == col(Delivery.subscriber_id)).where(
            func.lower(col(Subscriber.email)).like("%@" + domain.lower().replace("%", ""))
        )
    with rt.db.session() as s:
        total, bounces, complaints, unsubscribes = s.execute(query).one()
    return Rates(int(total), int(bounces or 0), int(complaints or 0), int(unsubscribes or 0))


def campaign_window(s: Session, campaign_id: int, *, since: datetime | None, size: int) -> Rates:
    """The last `size` messages one campaign handed over (since `since`, if given), and what
    came of them: the circuit breaker's window. One read of at most `size` entries of the
    ledger's index of handed-over messages, however large the campaign."""
    query = select(
        col(Delivery.bounced), col(Delivery.complained), col(Delivery.unsubscribed)
    ).where(col(Delivery.campaign_id) == campaign_id, text(HANDED_OVER))
    if since is not None:
        query = query.where(col(Delivery.attempted_at) >= since)
    last = query.order_by(col(Delivery.attempted_at).desc()).limit(max(0, size)).subquery()

    def flag(column: Any) -> Any:
        return func.count(case((column.is_(True), 1)))

    total, bounces, complaints, unsubscribes = s.execute(
        select(
            func.count(), flag(last.c.bounced), flag(last.c.complained), flag(last.c.unsubscribed)
        )
    ).one()
    return Rates(int(total), int(bounces or 0), int(complaints or 0), int(unsubscribes or 0))
