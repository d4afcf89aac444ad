"""A/B tests of a campaign: the campaign's own subject (or subject and body) is variant A, and
1 to 3 alternatives (B, C, D) are tried against it. At the start a test share of the audience
(test_percent in total, split evenly) gets the variants, each person one; the rest is held in
the ledger. When the wait is over the variant with the most people who clicked (or opened)
wins and the held rows are released to it, once, however many workers look at the same time.

The periodic sweep wakes the sending job of a campaign with held rows; the job decides once the
wait is over (so the winner goes out within sweep_seconds of its time).

The settings live as JSON on the campaign (Campaign.ab_test): they are small, always read and
written with the campaign as a whole, and copying or deleting a campaign carries them along.
The decision (ab_decide_at, ab_decided_at, ab_winner) has columns of its own, so that one
conditional UPDATE decides it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session
from sqlmodel import col

from listmgr.db import rows_changed
from listmgr.errors import ListmgrError, ValidationError
from listmgr.mail import content
from listmgr.models import (
    Campaign,
    CampaignStatus,
    Delivery,
    Engagement,
    Subscriber,
    id_of,
    utcnow,
)
from listmgr.runtime import Runtime
from listmgr.services import audit, ledger

LETTERS = "ABCD"
MAX_VARIANTS = len(LETTERS)
KINDS = ("subject", "content")  # what differs: the subject, or the subject and the body
# The metric and the engagement kinds it counts: a click counts as an open (images may be
# blocked), as on the campaign's own stats.
METRICS = {"clicks": ("click",), "opens": ("open", "click")}
MAX_WAIT_MINUTES = 30 * 24 * 60
DEFAULTS = {"kind": "subject", "metric": "clicks", "test_percent": 20, "wait_minutes": 240}
FIELD = "ab_test"


# -- settings --------------------------------------------------------------------------------
def _whole(value: Any, name: str, low: int, high: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(
            f"{name} must be a whole number from {low} to {high} ({what})", field=f"{FIELD}.{name}"
        )
    return value


def _variant(raw: Any, i: int, kind: str) -> dict[str, str]:
    field = f"{FIELD}.alternatives[{i}]"
    letter = LETTERS[i + 1]
    if not isinstance(raw, dict):
        raise ValidationError(f"variant {letter} must be an object with a subject", field=field)
    wanted = ("subject", "body") if kind == "content" else ("subject",)
    raw = {k: v for k, v in raw.items() if v is not None}
    unknown = sorted(set(raw) - set(wanted))
    if unknown:
        raise ValidationError(
            f"variant {letter}: unknown property {unknown[0]!r}"
            + (" (a subject test varies the subject only)" if unknown[0] == "body" else ""),
            field=f"{field}.{unknown[0]}",
        )
    out = {}
    for key in wanted:
        value = raw.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ValidationError(f"variant {letter} needs a {key}", field=f"{field}.{key}")
        out[key] = value.strip() if key == "subject" else value
    return out


def clean(value: Any, *, subject: str, body: str) -> dict[str, Any] | None:
    """The A/B test settings checked (None: no test); raises naming the first bad field.
    `subject` and `body` are the campaign's own: variant A."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationError("ab_test must be an object or null", field=FIELD)
    unknown = sorted(set(value) - {*DEFAULTS, "alternatives"})
    if unknown:
        raise ValidationError(f"ab_test: unknown property {unknown[0]!r}", field=FIELD)
    given = {**DEFAULTS, **{k: v for k, v in value.items() if v is not None}}
    kind, metric = given["kind"], given["metric"]
    if kind not in KINDS:
        raise ValidationError("kind must be 'subject' or 'content'", field=f"{FIELD}.kind")
    if metric not in METRICS:
        raise ValidationError("metric must be 'clicks' or 'opens'", field=f"{FIELD}.metric")
    percent = _whole(given["test_percent"], "test_percent", 1, 99, "the share of the audience")
    wait = _whole(given["wait_minutes"], "wait_minutes", 0, MAX_WAIT_MINUTES, "at most 30 days")
    raw = value.get("alternatives")
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_VARIANTS - 1:
        n = len(raw) + 1 if isinstance(raw, list) else 1
        raise ValidationError(
            f"an A/B test has 2 to {MAX_VARIANTS} variants: the campaign's own (A) and 1 to "
            f"{MAX_VARIANTS - 1} alternatives; this one has {n}",
            field=f"{FIELD}.alternatives",
        )
    alternatives = [_variant(v, i, kind) for i, v in enumerate(raw)]
    seen = [(subject.strip(), body if kind == "content" else "")]
    for i, v in enumerate(alternatives):
        key = (v["subject"], v.get("body", ""))
        if key in seen:
            raise ValidationError(
                f"variant {LETTERS[i + 1]} is the same as variant {LETTERS[seen.index(key)]}",
                field=f"{FIELD}.alternatives[{i}]",
            )
        seen.append(key)
    return {
        "kind": kind,
        "metric": metric,
        "test_percent": percent,
        "wait_minutes": wait,
        "alternatives": alternatives,
    }


def sources(base: content.Content, ab_test: Mapping[str, Any] | None) -> list[content.Content]:
    """What each variant sends, A first (one entry without a test). An alternative body has
    its plain-text part made from its HTML."""
    out = [base]
    for v in (ab_test or {}).get("alternatives", []):
        if "body" in v:
            out.append(replace(base, subject=v["subject"], body=v["body"], text=""))
        else:
            out.append(replace(base, subject=v["subject"]))
    return out


def check_variants(
    base: content.Content,
    ab_test: Mapping[str, Any] | None,
    check: Callable[[content.Content], object],
) -> None:
    """Check every alternative with `check(source)`; an error names the variant."""
    for i, source in enumerate(sources(base, ab_test)[1:]):
        try:
            check(source)
        except ListmgrError as exc:
            part = "subject" if exc.field == "subject" else "body"
            raise ValidationError(
                f"variant {LETTERS[i + 1]}: {exc.message}",
                field=f"{FIELD}.alternatives[{i}].{part}",
            ) from None


# -- the start: the test share gets the variants, the rest waits -----------------------------
def share_size(audience: int, percent: int, variants: int) -> int:
    """How many get the test: `percent` of the audience, at least one per variant."""
    return min(audience, max(variants, audience * percent // 100))


def assign(s: Session, row: Campaign, audience: int, now: datetime) -> datetime:
    """Release the test share from the held ledger (materialized as held), in a random order
    dealt round-robin over the variants; returns when the winner is due."""
    config = row.ab_test or {}
    variants = len(config["alternatives"]) + 1
    picked = (
        select(col(Delivery.id).label("id"))
        .where(col(Delivery.campaign_id) == row.id)
        .order_by(func.random())
        .limit(share_size(audience, int(config["test_percent"]), variants))
        .subquery()
    )
    dealt = select(
        picked.c.id, (func.row_number().over(order_by=func.random()) - 1).label("n")
    ).subquery()
    s.execute(
        update(Delivery)
        .where(col(Delivery.id) == dealt.c.id)
        .values(status=ledger.QUEUED, variant=dealt.c.n % variants)
    )
    return now + timedelta(minutes=int(config["wait_minutes"]))


# -- the winner ------------------------------------------------------------------------------
def engaged(s: Session, campaign_id: int, metric: str) -> dict[int, int]:
    """People who clicked (or opened) per variant: distinct subscribers, machine opens and
    link scanners left out."""
    query = (
        select(col(Delivery.variant), func.count(func.distinct(col(Engagement.subscriber_id))))
        .join(
            Delivery,
            and_(
                col(Delivery.campaign_id) == Engagement.campaign_id,
                col(Delivery.subscriber_id) == Engagement.subscriber_id,
            ),
        )
        .where(
            col(Engagement.campaign_id) == campaign_id,
            col(Engagement.kind).in_(METRICS[metric]),
            col(Delivery.variant).is_not(None),
            col(Engagement.machine).is_(False),  # machine opens and link scanners
        )
        .group_by(col(Delivery.variant))
    )
    return {int(v or 0): int(n) for v, n in s.execute(query)}


def choose(counts: Mapping[int, int], variants: int) -> int:
    """The variant with the most people; a tie goes to the earliest variant, no data to A."""
    return max(range(variants), key=lambda i: (counts.get(i, 0), -i))


def winner(s: Session, row: Campaign) -> int:
    """The winning variant of this campaign's test now."""
    config = row.ab_test or {}
    assert row.id is not None  # a stored campaign
    counts = engaged(s, row.id, config.get("metric", "clicks"))
    return choose(counts, len(config.get("alternatives", [])) + 1)


def due(row: Campaign, now: datetime) -> bool:
    """Whether the winner is to be chosen now: the wait is over and the campaign sends (a
    paused one waits for its resume; a cancelled one, or one whose whole audience was in the
    test, has no one left to send the winner to)."""
    return (
        row.ab_decide_at is not None
        and row.ab_decided_at is None
        and row.ab_decide_at <= now
        and row.status == CampaignStatus.sending.value
    )


def decide(rt: Runtime, campaign_id: int) -> int | None:
    """Choose the winner once it is due and release the held audience to it. Of several
    workers calling this at once, one conditional UPDATE matches: that call returns the
    winner; the others (and calls before the time or after the decision) return None."""
    now = utcnow()
    with rt.db.session() as s:
        row = s.get(Campaign, campaign_id)
        if row is None or not due(row, now):
            return None
        chosen = winner(s, row)
        won = rows_changed(
            s,
            update(Campaign)
            .where(
                col(Campaign.id) == campaign_id,
                col(Campaign.ab_decided_at).is_(None),
                col(Campaign.ab_decide_at) <= now,
                col(Campaign.status) == CampaignStatus.sending.value,
            )
            .values(ab_winner=chosen, ab_decided_at=now),
        )
        if not won:
            return None
        released = rows_changed(
            s,
            update(Delivery)
            .where(col(Delivery.campaign_id) == campaign_id, col(Delivery.status) == ledger.HELD)
            .values(status=ledger.QUEUED, variant=chosen),
        )
        s.add(
            audit.entry(
                actor="system",
                action="campaign.ab_winner",
                target_type="campaign",
                target_id=campaign_id,
                detail={"winner": LETTERS[chosen], "released": released},
            )
        )
    if released:
        rt.enqueue("send_batch", campaign_id)
    return chosen


# -- the comparison --------------------------------------------------------------------------
@dataclass(frozen=True)
class VariantStats:
    letter: str
    subject: str
    sent: int
    tracked: int  # of those sent, how many allow tracking: the rates' denominator
    opened: int
    clicked: int
    open_rate: float  # % of tracked, as the campaign's own rates
    click_rate: float
    won: bool


@dataclass(frozen=True)
class Comparison:
    kind: str
    metric: str
    test_percent: int
    wait_minutes: int
    decide_at: str | None
    decided_at: str | None
    winner: str | None
    variants: tuple[VariantStats, ...]


def _rate(n: int, sent: int) -> float:
    return round(100.0 * n / sent, 1) if sent else 0.0


def variant_figures(s: Session, campaign_id: int) -> dict[str, dict[int, int]]:
    """Per variant, from the ledger: messages sent, sent to people who allow tracking, people
    who opened (a click counts) and who clicked."""
    sent_to = (
        select(col(Delivery.variant), func.count())
        .where(
            col(Delivery.campaign_id) == campaign_id,
            col(Delivery.status) == ledger.SENT,
            col(Delivery.variant).is_not(None),
        )
        .group_by(col(Delivery.variant))
    )
    tracked = sent_to.join(Subscriber, col(Subscriber.id) == col(Delivery.subscriber_id)).where(
        col(Subscriber.consent_tracking).is_(True)
    )
    return {
        "sent": {int(v or 0): int(n) for v, n in s.execute(sent_to)},
        "tracked": {int(v or 0): int(n) for v, n in s.execute(tracked)},
        "opened": engaged(s, campaign_id, "opens"),
        "clicked": engaged(s, campaign_id, "clicks"),
    }


def compare(s: Session, row: Campaign) -> Comparison | None:
    """Sent, people who opened (a click counts) and who clicked, and their rates per variant
    over the recipients who allow tracking, as the campaign's own rates (None: no test). Once
    the ledger's rows are deleted, the figures kept of it."""
    config = row.ab_test
    if not config:
        return None
    if row.ledger_summary:
        kept = row.ledger_summary["variants"]
        figures = {k: {int(v): n for v, n in kept[k].items()} for k in kept}
    else:
        figures = variant_figures(s, id_of(row))
    sent, tracked = figures["sent"], figures["tracked"]
    opened, clicked = figures["opened"], figures["clicked"]
    subjects = [row.subject] + [v["subject"] for v in config.get("alternatives", [])]
    return Comparison(
        kind=config.get("kind", "subject"),
        metric=config.get("metric", "clicks"),
        test_percent=int(config.get("test_percent", 0)),
        wait_minutes=int(config.get("wait_minutes", 0)),
        decide_at=row.ab_decide_at.isoformat() if row.ab_decide_at else None,
        decided_at=row.ab_decided_at.isoformat() if row.ab_decided_at else None,
        winner=LETTERS[row.ab_winner] if row.ab_winner is not None else None,
        variants=tuple(
            VariantStats(
                letter=LETTERS[i],
                subject=subject,
                sent=sent.get(i, 0),
                tracked=tracked.get(i, 0),
                opened=opened.get(i, 0),
                clicked=clicked.get(i, 0),
                open_rate=_rate(opened.get(i, 0), tracked.get(i, 0)),
                click_rate=_rate(clicked.get(i, 0), tracked.get(i, 0)),
                won=row.ab_winner == i,
            )
            for i, subject in enumerate(subjects)
        ),
    )
