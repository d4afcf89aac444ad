"""Aggregates for the dashboard: audience growth, recent campaigns' rates, work waiting."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import and_, case, func, or_, select
from sqlmodel import col

from listmgr.models import (
    Campaign,
    Delivery,
    InboundMessage,
    MailingList,
    Membership,
    MemberStatus,
    id_of,
    utcnow,
)
from listmgr.runtime import Runtime
from listmgr.services import inbound, tracking

MAX_LISTS = 8


@dataclass(frozen=True)
class Growth:
    """Confirmed members per list at the end of each day."""

    days: list[str]
    series: dict[str, list[int]]  # list name -> one value per day


@dataclass(frozen=True)
class CampaignRates:
    id: int
    name: str
    status: str
    started_at: str
    audience: int
    sent: int
    failed: int
    bounced: int
    complained: int
    unsubscribed: int
    reach: tracking.Reach  # opens and clicks: over the recipients who allow tracking

    @property
    def opened(self) -> int:
        return self.reach.opened

    @property
    def clicked(self) -> int:
        return self.reach.clicked

    def share(self, outcome: str) -> float:
        """An outcome in percent: opened and clicked of the recipients who allow tracking
        (nobody else can be counted), the others of the messages sent."""
        if outcome in ("opened", "clicked"):
            return self.reach.rate(getattr(self.reach, outcome))
        part = getattr(self, outcome)
        return round(100.0 * part / self.sent, 1) if self.sent else 0.0


@dataclass(frozen=True)
class Totals:
    lists: int
    confirmed: int
    pending: int
    campaigns_sent: int
    inbox: int
    inbound_failed: int


def _day(value: object) -> str:
    return value.isoformat() if isinstance(value, (date, datetime)) else str(value)[:10]


def growth(rt: Runtime, *, days: int = 30) -> Growth:
    """Members per list per day: a baseline before the window plus daily joins and leaves."""
    days = max(2, min(days, 366))
    today = utcnow().date()
    start = today - timedelta(days=days - 1)
    start_dt = datetime.combine(start, datetime.min.time())
    labels = [(start + timedelta(days=i)).isoformat() for i in range(days)]
    with rt.db.session() as s:
        top = list(
            s.execute(
                select(
                    col(MailingList.id),
                    col(MailingList.name),
                    func.count(col(Membership.id)).label("n"),
                )
                .join(
                    Membership,
                    and_(
                        col(Membership.list_id) == MailingList.id,
                        col(Membership.status) == MemberStatus.confirmed.value,
                    ),
                    isouter=True,
                )
                .group_by(col(MailingList.id), MailingList.name)
                .order_by(func.count(col(Membership.id)).desc(), MailingList.name)
                .limit(MAX_LISTS)
            )
        )
        ids = [row.id for row in top]
        joined = col(Membership.confirmed_at)
        # A confirmed member is still there (even one who left once and came back); any other
        # member who was confirmed left when they unsubscribed, or else at their last change
        # (a hard bounce or a complaint ends a membership without unsubscribing it).
        left = case(
            (col(Membership.status) == MemberStatus.confirmed.value, None),
            else_=func.coalesce(col(Membership.unsubscribed_at), col(Membership.updated_at)),
        )
        base = {
            lid: n
            for lid, n in s.execute(
                select(col(Membership.list_id), func.count())
                .where(
                    col(Membership.list_id).in_(ids),
                    joined.is_not(None),
                    joined < start_dt,
                    or_(left.is_(None), left >= start_dt),
                )
                .group_by(col(Membership.list_id))
            )
        }
        plus: dict[tuple[int, str], int] = {}
        for lid, day, n in s.execute(
            select(col(Membership.list_id), func.date(joined), func.count())
            .where(col(Membership.list_id).in_(ids), joined >= start_dt)
            .group_by(col(Membership.list_id), func.date(joined))
        ):
            plus[(lid, _day(day))] = n
        minus: dict[tuple[int, str], int] = {}
        for lid, day, n in s.execute(
            select(col(Membership.list_id), func.date(left), func.count())
            .where(col(Membership.list_id).in_(ids), left >= start_dt, joined.is_not(None))
            .group_by(col(Membership.list_id), func.date(left))
        ):
            minus[(lid, _day(day))] = n
    series: dict[str, list[int]] = {}
    for row in top:
        value, points = base.get(row.id, 0), []
        for label in labels:
            value += plus.get((row.id, label), 0) - minus.get((row.id, label), 0)
            points.append(max(value, 0))
        series[row.name] = points
    return Growth(labels, series)


def campaign_rates(
    rt: Runtime, *, campaign_ids: list[int] | None = None, limit: int = 6
) -> list[CampaignRates]:
    """Sent, failures, bounces, complaints, unsubscribes and engagement of recent campaigns."""
    with rt.db.session() as s:
        query = select(Campaign).order_by(col(Campaign.id).desc())
        if campaign_ids is not None:
            query = query.where(col(Campaign.id).in_(campaign_ids))
        else:
            query = query.where(col(Campaign.status).in_(("sending", "paused", "sent"))).limit(
                limit
            )
        camps = list(s.scalars(query))
        ids = [c.id for c in camps]
        counts = {
            row.campaign_id: row._asdict()
            for row in s.execute(
                select(
                    col(Delivery.campaign_id),
                    func.count(case((col(Delivery.status) == "sent", 1))).label("sent"),
                    func.count(case((col(Delivery.status) == "failed", 1))).label("failed"),
                    func.count(case((col(Delivery.bounced).is_(True), 1))).label("bounced"),
                    func.count(case((col(Delivery.complained).is_(True), 1))).label("complained"),
                    func.count(case((col(Delivery.unsubscribed).is_(True), 1))).label(
                        "unsubscribed"
                    ),
                )
                .where(col(Delivery.campaign_id).in_(ids))
                .group_by(col(Delivery.campaign_id))
            )
        }
        reached = tracking.reach(s, [id_of(c) for c in camps])
    out = []
    for c in camps:
        # once the ledger's rows are deleted, the figures kept of it
        row = c.ledger_summary["counts"] if c.ledger_summary else counts.get(c.id, {})
        out.append(
            CampaignRates(
                id=id_of(c),
                name=c.name,
                status=c.status,
                started_at=c.started_at.isoformat(timespec="minutes") if c.started_at else "",
                audience=c.audience,
                sent=row.get("sent", 0),
                failed=row.get("failed", 0),
                bounced=row.get("bounced", 0),
                complained=row.get("complained", 0),
                unsubscribed=row.get("unsubscribed", 0),
                reach=reached[id_of(c)],
            )
        )
    return out


def totals(rt: Runtime) -> Totals:
    """The headline numbers."""
    with rt.db.session() as s:
        members = dict(
            s.execute(
                select(
                    col(Membership.status), func.count(func.distinct(col(Membership.subscriber_id)))
                ).group_by(Membership.status)
            ).all()
        )
        return Totals(
            lists=s.scalar(select(func.count(col(MailingList.id)))) or 0,
            confirmed=members.get(MemberStatus.confirmed.value, 0),
            pending=members.get(MemberStatus.pending.value, 0),
            campaigns_sent=s.scalar(
                select(func.count(col(Campaign.id))).where(col(Campaign.status) == "sent")
            )
            or 0,
            inbox=s.scalar(select(func.count(col(InboundMessage.id))).where(inbound.needs_human()))
            or 0,
            inbound_failed=s.scalar(
                select(func.count(col(InboundMessage.id))).where(
                    col(InboundMessage.status) == "failed"
                )
            )
            or 0,
        )
