"""Campaign progress and outcomes: counts by status, bounces, complaints, unsubscribes
(attributed by the token's campaign) and outcomes per minute."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session
from sqlmodel import col

from listmgr.models import Campaign, CampaignStatus, Delivery, id_of
from listmgr.runtime import Runtime
from listmgr.services import ledger, tracking
from listmgr.services.campaign_setup import get_row

S = CampaignStatus


@dataclass(frozen=True)
class Stats:
    audience: int
    sent: int
    failed: int
    skipped: int
    remaining: int
    in_progress: int
    retrying: int
    bounced: int
    complained: int
    unsubscribed: int
    possibly_duplicate: int
    waiting_warmup: int = 0  # queued rows put off to tomorrow by the warm-up plan
    timeline: tuple[dict[str, Any], ...] = ()
    # opens and clicks (with the timeline): see tracking.Engagements.as_dict
    engagement: dict[str, Any] | None = None


# -- stats -----------------------------------------------------------------------------------
def ledger_counts(s: Session, campaign_id: int) -> dict[str, int]:
    """The Stats counts (all but the audience) as the campaign's ledger rows give them."""

    def flag(column: Any) -> Any:
        return func.sum(case((column, 1), else_=0))

    counts: dict[str, int] = {}
    retrying = bounced = complained = unsubscribed = dup = warmup = 0
    for status, n, retry, b, c, u, d, w in s.execute(
        select(
            col(Delivery.status),
            func.count(),
            func.sum(
                case(
                    ((col(Delivery.status) == ledger.QUEUED) & (col(Delivery.attempts) > 0), 1),
                    else_=0,
                )
            ),
            flag(Delivery.bounced),
            flag(Delivery.complained),
            flag(Delivery.unsubscribed),
            flag(Delivery.possibly_duplicate),
            flag(
                (col(Delivery.status) == ledger.QUEUED)
                & (col(Delivery.error) == ledger.WARMUP_WAIT)
            ),
        )
        .where(col(Delivery.campaign_id) == campaign_id)
        .group_by(Delivery.status)
    ):
        counts[status] = int(n)
        retrying += int(retry or 0)
        bounced, complained = bounced + int(b or 0), complained + int(c or 0)
        unsubscribed, dup = unsubscribed + int(u or 0), dup + int(d or 0)
        warmup += int(w or 0)
    return {
        "sent": counts.get(ledger.SENT, 0),
        "failed": counts.get(ledger.FAILED, 0),
        "skipped": counts.get(ledger.SKIPPED, 0),
        "remaining": sum(counts.get(k, 0) for k in (ledger.QUEUED, ledger.CLAIMED, ledger.HELD)),
        "in_progress": counts.get(ledger.CLAIMED, 0),
        "retrying": retrying,
        "bounced": bounced,
        "complained": complained,
        "unsubscribed": unsubscribed,
        "possibly_duplicate": dup,
        "waiting_warmup": warmup,
    }


def stats_of(s: Session, row: Campaign, *, timeline: bool) -> Stats:
    """The campaign's figures: from its ledger, or from what was kept of it once its rows
    were deleted (services/ledger_archive)."""
    cid, kept = id_of(row), row.ledger_summary
    counts = kept["counts"] if kept else ledger_counts(s, cid)
    buckets: tuple[dict[str, Any], ...] = ()
    engagement = None
    if timeline:
        buckets = tuple(kept["timeline"]) if kept else per_minute(s, cid)
        engagement = tracking.engagements_of(s, cid).as_dict()
    audience = row.audience if row.status not in (S.draft.value, S.scheduled.value) else 0
    return Stats(audience=audience, **counts, timeline=buckets, engagement=engagement)


def per_minute(s: Session, campaign_id: int) -> tuple[dict[str, Any], ...]:
    """Outcomes per minute (by the time each row's outcome was recorded)."""
    if s.get_bind().dialect.name == "postgresql":
        minute: Any = func.to_char(
            func.date_trunc("minute", Delivery.attempted_at), 'YYYY-MM-DD"T"HH24:MI'
        )
    else:
        minute = func.strftime("%Y-%m-%dT%H:%M", Delivery.attempted_at)
    rows = s.execute(
        select(minute.label("m"), col(Delivery.status), func.count())
        .where(
            col(Delivery.campaign_id) == campaign_id,
            col(Delivery.attempted_at).is_not(None),
            col(Delivery.status).in_((ledger.SENT, ledger.FAILED, ledger.SKIPPED)),
        )
        .group_by("m", Delivery.status)
        .order_by("m")
    )
    out: dict[str, dict[str, Any]] = {}
    for m, status, n in rows:
        bucket = out.setdefault(m, {"minute": m, "sent": 0, "failed": 0, "skipped": 0})
        bucket[status] = int(n)
    return tuple(out.values())


def stats(rt: Runtime, campaign_id: int) -> Stats:
    with rt.db.session() as s:
        return stats_of(s, get_row(s, campaign_id), timeline=True)
