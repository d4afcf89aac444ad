"""Opens and clicks: a campaign's registered links, recording a hit (only for people who allow
tracking, flagged when a machine made it) and the honest numbers of a campaign.

A click token names campaign, recipient and link id; the target is the stored link, never the
URL. A hit is recorded with one INSERT after two indexed reads; consent is read at the moment
of the hit, so withdrawing it stops tracking also in messages already sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, case, exists, func, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from listmgr.db import insert_or_skip
from listmgr.errors import TokenInvalid
from listmgr.mail import tracking as rules
from listmgr.models import Campaign, CampaignLink, Delivery, Engagement, Subscriber, utcnow
from listmgr.runtime import Runtime
from listmgr.settings import Settings

OPEN, CLICK = "open", "click"
TRAP_BURST = timedelta(seconds=60)  # clicks this close to a trap hit are the scanner's too
# A transparent 1x1 GIF.
PIXEL = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)


def register_links(s: Session, campaign_id: int, urls: Sequence[str]) -> dict[str, int]:
    """The id of each URL among the campaign's links, adding the missing ones (several
    workers may do this at once: a row another one added first is taken as it is)."""
    if not urls:
        return {}

    def known() -> dict[str, int]:
        rows = s.execute(
            select(col(CampaignLink.id), col(CampaignLink.url)).where(
                col(CampaignLink.campaign_id) == campaign_id
            )
        ).all()
        return {url: int(lid or 0) for lid, url in rows}

    found = known()
    missing = [u for u in urls if u not in found]
    if missing:
        s.execute(
            insert_or_skip(s, CampaignLink, ["campaign_id", "url"]).values(
                [{"campaign_id": campaign_id, "url": u} for u in missing]
            )
        )
        s.flush()
        found = known()
    return {u: found[u] for u in urls}


@dataclass(frozen=True)
class Hit:
    campaign_id: int
    subscriber_id: int
    link_id: int | None  # None for an open


def _record(
    s: Session, settings: Settings, hit: Hit, user_agent: str, *, probe: bool = False
) -> str | None:
    """Record a hit when tracking is on and the person allows it now, in one read and one
    INSERT; returns the link's stored URL ("" for an open or the trap, None for no such
    link of the campaign). A probe (a HEAD request: no person's browser sends one for a
    link or an image) is a machine's."""
    mine = col(Delivery.campaign_id) == hit.campaign_id
    of_person = col(Delivery.subscriber_id) == hit.subscriber_id
    link = (
        select(col(CampaignLink.url))
        .where(
            col(CampaignLink.id) == hit.link_id, col(CampaignLink.campaign_id) == hit.campaign_id
        )
        .scalar_subquery()
    )
    allows = (
        select(col(Subscriber.consent_tracking))
        .where(col(Subscriber.id) == hit.subscriber_id)
        .scalar_subquery()
    )
    sent = select(col(Delivery.sent_at)).where(mine, of_person).limit(1).scalar_subquery()
    url, consented, sent_at = s.execute(select(link, allows, sent)).one()
    if hit.link_id not in (None, rules.TRAP) and not url:
        return None
    url = url or ""
    if not settings.tracking or not consented or sent_at is None:
        return url
    now = utcnow()
    age = (now - sent_at).total_seconds()
    if hit.link_id is None:
        machine = probe or rules.machine_open(user_agent, age, settings.machine_open_seconds)
    else:
        machine = probe or rules.scanner_click(
            user_agent, age, settings.scanner_click_seconds, trap=hit.link_id == rules.TRAP
        )
    s.execute(
        insert(Engagement).values(
            campaign_id=hit.campaign_id,
            subscriber_id=hit.subscriber_id,
            kind=OPEN if hit.link_id is None else CLICK,
            url=url,
            link_id=hit.link_id,
            machine=machine,
            at=now,
        )
    )
    if hit.link_id == rules.TRAP:  # the scanner followed the other links around it too
        s.execute(
            update(Engagement)
            .where(
                col(Engagement.campaign_id) == hit.campaign_id,
                col(Engagement.subscriber_id) == hit.subscriber_id,
                col(Engagement.kind) == CLICK,
                col(Engagement.at) >= now - TRAP_BURST,
            )
            .values(machine=True)
        )
    return url


def click(
    rt: Runtime,
    settings: Settings,
    campaign_ref: str,
    token: str,
    user_agent: str,
    *,
    probe: bool = False,
) -> str | None:
    """Where a tracked link leads (recorded if allowed); None when the token is not ours or
    names no link of the campaign (the caller shows the campaign's web version)."""
    try:
        ref_campaign = rt.tokens.read_campaign_ref(campaign_ref)
        cid, sid, lid = rt.tokens.read_click(token)
    except TokenInvalid:
        return None
    if cid != ref_campaign:
        return None
    with rt.db.session() as s:
        return _record(s, settings, Hit(cid, sid, lid), user_agent, probe=probe) or None


def web_version_ref(rt: Runtime, campaign_ref: str, token: str) -> str:
    """The campaign reference whose web version a click that cannot be followed shows: the
    link's own when it can be read, else that of the campaign the click token names (a
    mangled first part still leads to the right campaign)."""
    try:
        rt.tokens.read_campaign_ref(campaign_ref)
        return campaign_ref
    except TokenInvalid:
        pass
    try:
        cid, _, _ = rt.tokens.read_click(token)
    except TokenInvalid:
        return campaign_ref
    return rt.tokens.campaign_ref(cid)


def opened(
    rt: Runtime, settings: Settings, token: str, user_agent: str, *, probe: bool = False
) -> None:
    """Record an open by the pixel (if allowed); a bad token records nothing."""
    try:
        cid, sid = rt.tokens.read_open(token)
    except TokenInvalid:
        return
    with rt.db.session() as s:
        _record(s, settings, Hit(cid, sid, None), user_agent, probe=probe)


# -- the numbers ------------------------------------------------------------------------------
@dataclass(frozen=True)
class LinkClicks:
    url: str
    unique: int
    total: int


@dataclass(frozen=True)
class Engagements:
    """A campaign's opens and clicks by people; machines' counted apart."""

    tracked: int  # messages sent to people who allow tracking: the rates' denominator
    unique_opens: int  # people who opened (a click counts: images may be blocked)
    total_opens: int
    unique_clicks: int
    total_clicks: int
    machine_opens: int  # left out of every number above
    scanner_clicks: int
    links: tuple[LinkClicks, ...]
    over_time: tuple[dict[str, Any], ...]  # per hour: opens, clicks (people only)

    @staticmethod
    def _rate(n: int, of: int) -> float:
        return round(100.0 * n / of, 1) if of else 0.0

    @property
    def open_rate(self) -> float:
        return self._rate(self.unique_opens, self.tracked)

    @property
    def click_rate(self) -> float:
        return self._rate(self.unique_clicks, self.tracked)

    @property
    def click_to_open(self) -> float:
        return self._rate(self.unique_clicks, self.unique_opens)

    def as_dict(self) -> dict[str, Any]:
        return {
            "tracked_recipients": self.tracked,
            "unique_opens": self.unique_opens,
            "total_opens": self.total_opens,
            "unique_clicks": self.unique_clicks,
            "total_clicks": self.total_clicks,
            "open_rate": self.open_rate,
            "click_rate": self.click_rate,
            "click_to_open_rate": self.click_to_open,
            "machine_opens_left_out": self.machine_opens,
            "scanner_clicks_left_out": self.scanner_clicks,
            "links": [{"url": x.url, "unique": x.unique, "total": x.total} for x in self.links],
            "over_time": list(self.over_time),
        }


def _hour(s: Session, column: Any) -> Any:
    if s.get_bind().dialect.name == "postgresql":
        return func.to_char(func.date_trunc("hour", column), 'YYYY-MM-DD"T"HH24:00')
    return func.strftime("%Y-%m-%dT%H:00", column)


@dataclass(frozen=True)
class Reach:
    tracked: int  # messages sent to people who allow tracking: the rates' denominator
    opened: int  # people who opened (a click counts: images may be blocked)
    clicked: int  # people who clicked

    def rate(self, part: int) -> float:
        return round(100.0 * part / self.tracked, 1) if self.tracked else 0.0


def reach(s: Session, campaign_ids: Sequence[int]) -> dict[int, Reach]:
    """The people each campaign reached, machines left out (every page counts it so)."""
    ids = list(campaign_ids)
    tracked = dict(
        s.execute(
            select(col(Delivery.campaign_id), func.count())
            .join(Subscriber, col(Subscriber.id) == col(Delivery.subscriber_id))
            .where(
                col(Delivery.campaign_id).in_(ids),
                col(Delivery.status) == "sent",
                col(Subscriber.consent_tracking).is_(True),
            )
            .group_by(col(Delivery.campaign_id))
        ).all()
    )
    for cid, kept in s.execute(  # campaigns whose ledger rows were deleted: what was kept
        select(col(Campaign.id), col(Campaign.ledger_summary)).where(
            col(Campaign.id).in_(ids), col(Campaign.ledger_summary).is_not(None)
        )
    ):
        tracked[cid] = kept["tracked"]
    clicker = case((col(Engagement.kind) == CLICK, col(Engagement.subscriber_id)))
    people = {
        cid: (int(opened), int(clicked))
        for cid, opened, clicked in s.execute(
            select(
                col(Engagement.campaign_id),
                func.count(func.distinct(col(Engagement.subscriber_id))),
                func.count(func.distinct(clicker)),
            )
            .where(col(Engagement.campaign_id).in_(ids), col(Engagement.machine).is_(False))
            .group_by(col(Engagement.campaign_id))
        )
    }
    return {cid: Reach(int(tracked.get(cid, 0)), *people.get(cid, (0, 0))) for cid in ids}


def engagements_of(s: Session, campaign_id: int) -> Engagements:
    people = reach(s, [campaign_id])[campaign_id]
    mine = col(Engagement.campaign_id) == campaign_id
    human = col(Engagement.machine).is_(False)
    totals = {
        (kind, bool(machine)): int(n)
        for kind, machine, n in s.execute(
            select(col(Engagement.kind), col(Engagement.machine), func.count())
            .where(mine)
            .group_by(col(Engagement.kind), col(Engagement.machine))
        )
    }
    links = tuple(
        LinkClicks(url, int(unique), int(total))
        for url, unique, total in s.execute(
            select(
                col(CampaignLink.url),
                func.count(func.distinct(col(Engagement.subscriber_id))),
                func.count(),
            )
            .select_from(Engagement)
            .join(CampaignLink, col(CampaignLink.id) == col(Engagement.link_id))
            .where(mine, human, col(Engagement.kind) == CLICK)
            .group_by(col(CampaignLink.url))
            .order_by(func.count().desc(), col(CampaignLink.url))
        )
    )
    hour = _hour(s, Engagement.at)
    buckets: dict[str, dict[str, Any]] = {}
    for h, kind, n in s.execute(
        select(hour.label("h"), col(Engagement.kind), func.count())
        .where(mine, human)
        .group_by("h", col(Engagement.kind))
        .order_by("h")
    ):
        bucket = buckets.setdefault(h, {"hour": h, "opens": 0, "clicks": 0})
        bucket["opens" if kind == OPEN else "clicks"] = int(n)
    return Engagements(
        tracked=people.tracked,
        unique_opens=people.opened,
        total_opens=totals.get((OPEN, False), 0),
        unique_clicks=people.clicked,
        total_clicks=totals.get((CLICK, False), 0),
        machine_opens=totals.get((OPEN, True), 0),
        scanner_clicks=totals.get((CLICK, True), 0),
        links=links,
        over_time=tuple(buckets.values()),
    )


def never_engaged(s: Session, who: ColumnElement[bool], *, min_sent: int) -> tuple[int, int]:
    """Of the subscribers `who` selects, how many allow tracking, and how many of those were
    sent at least `min_sent` campaigns and never opened nor clicked one (machines left out)."""
    sent = (
        select(func.count())
        .where(
            col(Delivery.subscriber_id) == col(Subscriber.id),
            col(Delivery.status) == "sent",
        )
        .scalar_subquery()
    )
    engaged = exists().where(
        col(Engagement.subscriber_id) == col(Subscriber.id), col(Engagement.machine).is_(False)
    )
    tracked, never = s.execute(
        select(func.count(), func.count(case((and_(sent >= min_sent, ~engaged), 1))))
        .select_from(Subscriber)
        .where(who, col(Subscriber.consent_tracking).is_(True))
    ).one()
    return int(tracked), int(never or 0)
