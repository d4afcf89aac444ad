"""A sender's standing with the receiving servers: of the campaign mail handed over in a
period, how much hard-bounced, was reported as spam or led to an unsubscribe, per list or per
receiving domain, and how long an unsubscribe took to take effect. Every page, check and API
answer that states these figures reads them here; the thresholds are judged here too."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select, text
from sqlalchemy.orm import Session
from sqlmodel import col

from listmgr.models import (
    HANDED_OVER,
    ConsentEvent,
    Delivery,
    DeliveryStatus,
    MailingList,
    Subscriber,
    utcnow,
)
from listmgr.runtime import Runtime

# The bulk-sender rules of the large mailbox providers: complaints kept under 0.1 % (never
# reaching 0.3 %), and the bounce level at which the large sending services stop a sender.
COMPLAINT_GOOD = 0.001
COMPLAINT_LIMIT = 0.003
BOUNCE_LIMIT = 0.05
# An unsubscribe must take effect within two days of the request (the same providers' rule).
UNSUBSCRIBE_LIMIT_SECONDS = 2 * 86400
WINDOWS = (7, 30)  # the periods the reputation page and API report, in days
TOP_DOMAINS = 10  # receiving domains shown, the largest by messages handed over in 30 days
# How a person asked to leave (ConsentEvent.source) -> the path the page names. Only these
# record when the request was made; "reply-confirmed" includes the time the person took to
# press the button in our confirmation mail, so it is shown but not judged.
PATHS = {
    "one-click": "one-click",
    "page": "unsubscribe page",
    "preferences": "preference center",
    "inbound-unsubscribe": "mail (unsubscribe address or reply)",
    "reply-confirmed": "reply confirmed by link",
}
JUDGED_PATHS = ("one-click", "page", "preferences", "inbound-unsubscribe")


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


def level(kind: str, rate: float | None) -> str:
    """How a rate stands against the bulk-sender thresholds: "none" (no mail), "ok",
    "above_0.1%" (complaints over the recommended level), "above_0.3%" (complaints over the
    limit), "above_5%" (hard bounces); unsubscribe rates have no threshold and read "ok"."""
    if rate is None:
        return "none"
    if kind == "complaint":
        if rate > COMPLAINT_LIMIT:
            return "above_0.3%"
        return "above_0.1%" if rate > COMPLAINT_GOOD else "ok"
    if kind == "bounce":
        return "above_5%" if rate > BOUNCE_LIMIT else "ok"
    return "ok"


def domain_of(email: str) -> str:
    """The receiving domain of an address (lower case)."""
    return email.rpartition("@")[2].lower()


def _handed() -> Any:
    return func.coalesce(col(Delivery.sent_at), col(Delivery.attempted_at))


def _counted(since: datetime, *columns: Any) -> Any:
    """Ledger rows handed over (accepted or refused) since then: count, hard bounces,
    complaints, unsubscribes, after the given leading columns."""

    def flag(column: Any) -> Any:
        return func.count(case((column.is_(True), 1)))

    return select(
        *columns,
        func.count(),
        flag(col(Delivery.bounced)),
        flag(col(Delivery.complained)),
        flag(col(Delivery.unsubscribed)),
    ).where(
        col(Delivery.status).in_((DeliveryStatus.sent.value, DeliveryStatus.failed.value)),
        _handed() >= since,
    )


def _rates(row: Sequence[Any]) -> Rates:
    total, bounces, complaints, unsubscribes = row[-4:]
    return Rates(int(total), int(bounces or 0), int(complaints or 0), int(unsubscribes or 0))


def _domain_column(s: Session) -> Any:
    """The receiving domain of Subscriber.email in SQL (addresses are stored in lower case)."""
    email = col(Subscriber.email)
    if s.get_bind().dialect.name == "postgresql":
        return func.split_part(email, "@", 2)
    return func.substr(email, func.instr(email, "@") + 1)


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
    query = _counted((now or utcnow()) - timedelta(days=days))
    if list_id is not None:
        query = query.where(col(Delivery.list_id) == list_id)
    if domain:
        query = query.join(Subscriber, col(Subscriber.id) == col(Delivery.subscriber_id)).where(
            func.lower(col(Subscriber.email)).like("%@" + domain.lower().replace("%", ""))
        )
    with rt.db.session() as s:
        return _rates(s.execute(query).one())


@dataclass(frozen=True)
class Timing:
    """How long unsubscribes took from the request to the effect, in seconds."""

    count: int
    median_seconds: float | None
    max_seconds: float | None

    @property
    def within_limit(self) -> bool | None:
        """True when every one took effect within two days (None: there were none)."""
        if self.max_seconds is None:
            return None
        return self.max_seconds <= UNSUBSCRIBE_LIMIT_SECONDS


def _timing(delays: Sequence[float]) -> Timing:
    if not delays:
        return Timing(0, None, None)
    return Timing(len(delays), float(statistics.median(delays)), float(max(delays)))


def unsubscribe_times(
    rt: Runtime,
    *,
    days: int,
    list_id: int | None = None,
    domain: str | None = None,
    now: datetime | None = None,
) -> dict[str, Timing]:
    """Time from request to effect of the unsubscribes carried out in the last `days` days,
    per path (keys of PATHS) and over the judged paths ("all"). An unsubscribe from several
    lists at once counts once (unless one list is asked for)."""
    since = (now or utcnow()) - timedelta(days=days)
    query = select(
        col(ConsentEvent.subscriber_id),
        col(ConsentEvent.source),
        col(ConsentEvent.requested_at),
        col(ConsentEvent.at),
    ).where(
        col(ConsentEvent.kind).in_(("unsubscribe", "unsubscribe_all")),
        col(ConsentEvent.requested_at).is_not(None),
        col(ConsentEvent.source).in_(tuple(PATHS)),
        col(ConsentEvent.at) >= since,
    )
    if list_id is not None:
        query = query.where(col(ConsentEvent.list_id) == list_id)
    if domain:
        query = query.join(Subscriber, col(Subscriber.id) == col(ConsentEvent.subscriber_id)).where(
            col(Subscriber.email).like("%@" + domain.lower().replace("%", ""))
        )
    with rt.db.session() as s:
        rows = s.execute(query).all()
    seen: set[tuple[Any, ...]] = set()
    delays: dict[str, list[float]] = {path: [] for path in PATHS}
    for sid, source, asked, at in rows:
        key = (sid, source, asked)
        if asked is None or key in seen:
            continue
        seen.add(key)
        delays[source].append(max(0.0, (at - asked).total_seconds()))
    out = {path: _timing(values) for path, values in delays.items()}
    out["all"] = _timing([d for path in JUDGED_PATHS for d in delays[path]])
    return out


@dataclass(frozen=True)
class Row:
    """One list's or receiving domain's figures over each window."""

    key: str  # the list's slug or the domain
    name: str
    rates: dict[int, Rates]  # days -> rates
    times: dict[int, Timing]  # days -> time to effect over the judged paths


@dataclass(frozen=True)
class Day:
    day: str
    handed_over: int
    hard_bounces: int
    complaints: int


@dataclass(frozen=True)
class Report:
    """Everything the reputation page and GET /api/reputation show."""

    now: datetime
    overall: dict[int, Rates]
    times: dict[int, dict[str, Timing]]  # days -> path -> timing
    lists: list[Row]
    domains: list[Row]
    daily: list[Day]


def _grouped(
    s: Session, since: datetime, key: Any, domains: list[str] | None = None
) -> dict[str, Rates]:
    """Rates per value of `key` (a list id, or the receiving domain when `domains` is given:
    those domains only)."""
    query = _counted(since, key).group_by(key)
    if domains is not None:
        query = query.join(Subscriber, col(Subscriber.id) == col(Delivery.subscriber_id)).where(
            key.in_(domains)
        )
    return {str(row[0]): _rates(row) for row in s.execute(query) if row[0] is not None}


def daily(rt: Runtime, *, days: int = 30, now: datetime | None = None) -> list[Day]:
    """Mail handed over per day (UTC) and its hard bounces and complaints, oldest first."""
    now = now or utcnow()
    start = now.date() - timedelta(days=days - 1)
    since = datetime.combine(start, datetime.min.time())
    with rt.db.session() as s:
        found = {
            (v.isoformat() if isinstance(v, date) else str(v)[:10]): _rates(row)
            for row in s.execute(
                _counted(since, func.date(_handed())).group_by(func.date(_handed()))
            )
            if (v := row[0]) is not None
        }
    out = []
    for i in range(days):
        label = (start + timedelta(days=i)).isoformat()
        r = found.get(label, Rates(0, 0, 0, 0))
        out.append(Day(label, r.handed_over, r.hard_bounces, r.complaints))
    return out


def report(rt: Runtime, *, now: datetime | None = None, top: int = TOP_DOMAINS) -> Report:
    """The figures of every window: overall, per list, per receiving domain (the `top`
    largest), time to effect of unsubscribes, and the daily series of the last 30 days."""
    now = now or utcnow()
    windows = {days: now - timedelta(days=days) for days in WINDOWS}
    longest = windows[max(WINDOWS)]
    with rt.db.session() as s:
        names = {
            str(lid): (slug, name)
            for lid, slug, name in s.execute(
                select(col(MailingList.id), col(MailingList.slug), col(MailingList.name))
            )
        }
        per_list = {
            days: _grouped(s, since, col(Delivery.list_id)) for days, since in windows.items()
        }
        domain = _domain_column(s)
        biggest = s.execute(
            _counted(longest, domain)
            .join(Subscriber, col(Subscriber.id) == col(Delivery.subscriber_id))
            .group_by(domain)
            .order_by(func.count().desc(), domain)
            .limit(top)
        ).all()
        chosen = [str(row[0]) for row in biggest if row[0]]
        per_domain = {days: _grouped(s, since, domain, chosen) for days, since in windows.items()}
    empty = Rates(0, 0, 0, 0)
    overall = {days: rates(rt, days=days, now=now) for days in WINDOWS}
    times = {days: unsubscribe_times(rt, days=days, now=now) for days in WINDOWS}
    list_rows = [
        Row(
            names.get(lid, (lid, lid))[0],
            names.get(lid, (lid, lid))[1],
            {days: per_list[days].get(lid, empty) for days in WINDOWS},
            {
                days: unsubscribe_times(rt, days=days, list_id=int(lid), now=now)["all"]
                for days in WINDOWS
            },
        )
        for lid in sorted(per_list[max(WINDOWS)], key=lambda k: names.get(k, (k, k))[1])
    ]
    domain_rows = [
        Row(
            d,
            d,
            {days: per_domain[days].get(d, empty) for days in WINDOWS},
            {days: unsubscribe_times(rt, days=days, domain=d, now=now)["all"] for days in WINDOWS},
        )
        for d in chosen
    ]
    return Report(now, overall, times, list_rows, domain_rows, daily(rt, now=now))


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
