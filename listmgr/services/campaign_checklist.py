"""The campaign checklist's facts, gathered: the campaign rendered as it would be sent (for a
sample person), its audience and how engaged it is, its lists' recent bounce and complaint rates
(listmgr.services.reputation); the rules themselves are listmgr.mail.checklist's. Blockers refuse
sending and scheduling."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from listmgr.errors import Blocked, TemplateError
from listmgr.mail import campaign as fast
from listmgr.mail import checklist, content, message_scan
from listmgr.models import Campaign, CampaignStatus
from listmgr.runtime import Runtime
from listmgr.services import reputation, segments, settings_store, tracking
from listmgr.services.campaign_preview import unsaved_row
from listmgr.services.campaign_setup import get_row, limits, renderer, resolve_lists
from listmgr.settings import Settings

RATE_DAYS = 30  # the period the mailbox providers' dashboards judge a sender by
UNSENT = (CampaignStatus.draft.value, CampaignStatus.scheduled.value)
SAMPLE = ("someone@example.org", "Sample Person")
# The composer asks on every keystroke: for it, a list's rates and an audience's engagement of
# the last minute will do (a month's delivery rows are read once a minute, not per key).
LIVE_SECONDS = 60
LIVE_ENTRIES = 256
T = TypeVar("T")


def _recent(rt: Runtime, key: tuple[Any, ...], compute: Callable[[], T], *, live: bool) -> T:
    """compute(), or for the live composer its value of the last LIVE_SECONDS (per runtime)."""
    if not live:
        return compute()
    cache: dict[tuple[Any, ...], tuple[float, Any]] = rt.state.setdefault("checklist_live", {})
    now = time.monotonic()
    hit = cache.get(key)
    if hit is not None and now - hit[0] < LIVE_SECONDS:
        value: T = hit[1]
        return value
    value = compute()
    if len(cache) >= LIVE_ENTRIES:
        cache.clear()
    cache[key] = (now, value)
    return value


@dataclass(frozen=True)
class _Gathered:
    """Everything but the rates (read in sessions of their own, after this one)."""

    message: bytes
    subject: str
    preheader: str
    dkim_domain: str
    audience: int | None  # None: not counted
    tracked: int
    never_engaged: int
    lists: tuple[tuple[int, str], ...]  # (id, name)


def _preheader(
    r: fast.CampaignRenderer, ctx: dict[str, Any], source: str, settings: Settings
) -> str:
    """The preheader as rendered for the sample person."""
    if not source.strip():
        return ""
    try:
        return content.render(
            content.compile_part(source, "preheader", html=False), ctx, limits(settings)
        )
    except Exception as exc:  # checked when saved; the message would fail the same way
        raise TemplateError(f"the preheader cannot be built: {exc}", field="preheader") from None


def _gather(
    rt: Runtime,
    s: Session,
    row: Campaign,
    settings: Settings,
    *,
    subject_written: bool,
    rules: Any,
    live: bool = False,
    audience: int | None = None,
    count: bool = True,
) -> _Gathered:
    """`count`: whether to count the audience and its engagement (warnings only, never a
    blocker; a count of ten million people may take longer than a live count is allowed)."""
    r, list_ids = renderer(rt, s, row, settings)
    who = fast.Recipient(0, 0, SAMPLE[0], SAMPLE[1], list_ids[0])
    try:
        out = r.message(who)
    except fast.RenderError as exc:
        raise TemplateError(
            f"the message cannot be built: {exc}", detail={"message": str(exc)}
        ) from None
    unsub, manage, _ = r.tokens_for(who, test=False)
    ctx = r.context(who, unsubscribe_token=unsub, manage_token=manage)
    lists = resolve_lists(s, list(row.lists or []))
    tracked = never = 0
    if not lists:
        audience = 0
    elif count:
        where = segments.expression(s, lists=list(row.lists), rules=rules)
        if audience is None:  # else counted by the caller already
            unsent = row.id is None or row.status in UNSENT
            audience = segments.counted(s, where) if unsent else row.audience
        if settings.tracking:
            tracked, never = _recent(
                rt,
                ("engagement", tuple(row.lists), repr(rules)),
                lambda: tracking.never_engaged(s, where, min_sent=checklist.NEVER_ENGAGED_SENT),
                live=live,
            )
    return _Gathered(
        message=out.data,
        subject=message_scan.read_message(out.data).subject if subject_written else "",
        preheader=_preheader(r, ctx, row.preheader, settings),
        dkim_domain=r.signer.key.domain if r.signer is not None else "",
        audience=audience,
        tracked=tracked,
        never_engaged=never,
        lists=tuple((lid, lst.name) for lid, lst in lists.items()),
    )


def _evaluate(
    rt: Runtime, settings: Settings, g: _Gathered, *, live: bool = False
) -> checklist.Checklist:
    rates = []
    for lid, name in g.lists:
        got = _recent(
            rt,
            ("rates", lid),
            partial(reputation.rates, rt, days=RATE_DAYS, list_id=lid),
            live=live,
        )
        rates.append(
            checklist.ListRates(name, got.handed_over, got.bounce_rate, got.complaint_rate)
        )
    return checklist.evaluate(
        checklist.Facts(
            message=g.message,
            subject=g.subject,
            preheader=g.preheader,
            dkim_domain=g.dkim_domain,
            production=settings.production,
            audience=g.audience,
            tracked=g.tracked,
            never_engaged=g.never_engaged,
            rate_limits=checklist.RateLimits(
                complaint_good=reputation.COMPLAINT_GOOD,
                complaint_limit=reputation.COMPLAINT_LIMIT,
                bounce_limit=reputation.BOUNCE_LIMIT,
            ),
            lists=tuple(rates),
            rate_days=RATE_DAYS,
        )
    )


def for_campaign(
    rt: Runtime,
    campaign_id: int,
    *,
    settings: Settings | None = None,
    blockers_only: bool = False,
) -> checklist.Checklist:
    """The checklist of the campaign as saved (`blockers_only`: without the audience's
    checks, which only warn, so that nothing counts the audience)."""
    settings = settings or settings_store.effective(rt)
    with rt.db.session() as s:
        row = get_row(s, campaign_id)
        rules = segments.rules_in_force(s, row.segment_id, row.segment_rules)
        gathered = _gather(
            rt, s, row, settings, subject_written=True, rules=rules, count=not blockers_only
        )
    return _evaluate(rt, settings, gathered)


def for_values(
    rt: Runtime,
    values: dict[str, Any],
    *,
    campaign_id: int | None = None,
    audience: int | None = None,
) -> checklist.Checklist:
    """The checklist of what the composer holds now (nothing is stored; rates and engagement
    may be up to LIVE_SECONDS old); `audience`: the count when the caller has it already."""
    row = unsaved_row(values, campaign_id=campaign_id)
    settings = settings_store.effective(rt)
    subject = values.get("subject")
    with rt.db.session() as s:
        segment_id = values.get("segment_id")
        rules = segments.rules_in_force(
            s, segment_id if isinstance(segment_id, int) else None, values.get("segment")
        )
        gathered = _gather(
            rt,
            s,
            row,
            settings,
            subject_written=isinstance(subject, str) and bool(subject.strip()),
            rules=rules,
            live=True,
            audience=audience,
        )
    return _evaluate(rt, settings, gathered, live=True)


def refuse_blocked(rt: Runtime, campaign_id: int, *, settings: Settings) -> None:
    """Raise Blocked, with the checklist, when a draft or scheduled campaign has blockers."""
    with rt.db.session() as s:
        if get_row(s, campaign_id).status not in UNSENT:
            return  # not sendable anyway: the caller says why
    # The start counts the audience as it materializes it: counting it before (bounded like a
    # live count) would refuse a list of millions on a busy database for a mere warning.
    found = for_campaign(rt, campaign_id, settings=settings, blockers_only=True)
    if found.blockers:
        raise Blocked(
            "the campaign checklist has blockers: " + "; ".join(c.message for c in found.blockers),
            field="checklist",
            detail={"checklist": found.as_json()},
        )
