"""The state of the whole installation, read from the database (the truth for all pending
work): campaigns sending and their ledger, backlogs, workers seen. The same figures on every
host, for `GET /metrics` and `listmgr status`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, or_, select
from sqlmodel import col

from listmgr import queue
from listmgr.models import (
    Campaign,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    ImportJob,
    InboundMessage,
    Outbox,
    utcnow,
)
from listmgr.runtime import Runtime
from listmgr.services import heartbeats

ACTIVE = (CampaignStatus.sending.value, CampaignStatus.paused.value)
DELIVERY_STATES = tuple(s.value for s in DeliveryStatus)
OUTBOX_WAITING = ("pending", "sending", "failed")  # sent rows pile up: not counted each time
INBOUND_STATES = ("stored", "processed", "failed")
IMPORT_WAITING = ("queued", "running")


@dataclass(frozen=True)
class CampaignProgress:
    id: int
    name: str
    status: str
    audience: int
    states: dict[str, int]  # ledger rows by state
    due: int  # queued rows whose time has come (not waiting for a retry)

    @property
    def done(self) -> int:
        return sum(self.states.get(s, 0) for s in ("sent", "failed", "skipped"))


@dataclass(frozen=True)
class Snapshot:
    at: datetime
    campaigns: tuple[CampaignProgress, ...]  # sending or paused
    campaign_statuses: dict[str, int]
    outbox: dict[str, int]
    outbox_oldest_pending: datetime | None
    inbound: dict[str, int]
    inbound_oldest_waiting: datetime | None
    imports: dict[str, int]
    workers: tuple[heartbeats.Seen, ...] = field(default=())

    @property
    def backlog(self) -> int:
        """Campaign messages due now and not yet sent, over every sending campaign."""
        return sum(c.due for c in self.campaigns if c.status == CampaignStatus.sending.value)


def _counts(rows: Iterable[Any]) -> dict[str, int]:
    return {str(k): int(n) for k, n in rows}


def snapshot(rt: Runtime) -> Snapshot:
    """Everything pending, counted in one short read."""
    now = utcnow()
    with rt.db.session() as s:
        active_rows = s.execute(
            select(
                col(Campaign.id), col(Campaign.name), col(Campaign.status), col(Campaign.audience)
            )
            .where(col(Campaign.status).in_(ACTIVE))
            .order_by(col(Campaign.id))
        ).all()
        active = [
            (int(cid or 0), name, status, int(n or 0)) for cid, name, status, n in active_rows
        ]
        ids = [cid for cid, *_ in active]
        states: dict[int, dict[str, int]] = {cid: {} for cid in ids}
        due: dict[int, int] = dict.fromkeys(ids, 0)
        if ids:
            for cid, state, n in s.execute(
                select(col(Delivery.campaign_id), col(Delivery.status), func.count())
                .where(col(Delivery.campaign_id).in_(ids))
                .group_by(col(Delivery.campaign_id), col(Delivery.status))
            ):
                states[int(cid)][str(state)] = int(n)
            for cid, n in s.execute(
                select(col(Delivery.campaign_id), func.count())
                .where(
                    col(Delivery.campaign_id).in_(ids),
                    col(Delivery.status) == DeliveryStatus.queued.value,
                    or_(
                        col(Delivery.next_attempt_at).is_(None),
                        col(Delivery.next_attempt_at) <= now,
                    ),
                )
                .group_by(col(Delivery.campaign_id))
            ):
                due[int(cid)] = int(n)
        statuses = _counts(
            s.execute(select(col(Campaign.status), func.count()).group_by(col(Campaign.status)))
        )
        outbox = _counts(
            s.execute(
                select(col(Outbox.status), func.count())
                .where(col(Outbox.status).in_(OUTBOX_WAITING))
                .group_by(col(Outbox.status))
            )
        )
        outbox_oldest = s.scalar(
            select(func.min(col(Outbox.created_at))).where(col(Outbox.status) == "pending")
        )
        inbound = _counts(
            s.execute(
                select(col(InboundMessage.status), func.count()).group_by(
                    col(InboundMessage.status)
                )
            )
        )
        inbound_oldest = s.scalar(
            select(func.min(col(InboundMessage.received_at))).where(
                col(InboundMessage.status) == "stored"
            )
        )
        imports = _counts(
            s.execute(
                select(col(ImportJob.status), func.count())
                .where(col(ImportJob.status).in_(IMPORT_WAITING))
                .group_by(col(ImportJob.status))
            )
        )
    return Snapshot(
        at=now,
        campaigns=tuple(
            CampaignProgress(cid, name, status, audience, states[cid], due[cid])
            for cid, name, status, audience in active
        ),
        campaign_statuses=statuses,
        outbox=outbox,
        outbox_oldest_pending=outbox_oldest,
        inbound=inbound,
        inbound_oldest_waiting=inbound_oldest,
        imports=imports,
        workers=tuple(heartbeats.seen(rt)),
    )


@dataclass(frozen=True)
class Schema:
    current: tuple[str, ...]  # the revisions the database is at
    head: tuple[str, ...]  # the revisions this code expects
    behind: bool  # the database lacks migrations of this code (a newer one is fine)

    @property
    def up_to_date(self) -> bool:
        return not self.behind


def schema(rt: Runtime) -> Schema:
    """The database's migration revision against the code's (connects: raises when it cannot)."""
    from listmgr import schema as migrations

    found = migrations.current(rt.db.engine)
    return Schema(
        tuple(found.split(",")) if found else (),
        tuple(migrations.head().split(",")),
        migrations.older(found),
    )


def _age(since: datetime | None, now: datetime) -> float:
    return max(0.0, (now - since).total_seconds()) if since is not None else 0.0


class DatabaseCollector(Collector):
    """Gauges read from the database at each scrape; `listmgr_database_up` 0 when it cannot."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("listmgr_database_up", "1 when the database answered this scrape.")
        try:
            snap = snapshot(self.rt)
        except Exception:  # a scrape still shows the processes' own figures, and this
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families(snap)


def families(snap: Snapshot) -> Iterator[GaugeMetricFamily]:
    """The snapshot as Prometheus gauges."""
    rows = GaugeMetricFamily(
        "listmgr_deliveries",
        "Ledger rows of campaigns sending or paused, by campaign and state.",
        labels=["campaign", "state"],
    )
    for c in snap.campaigns:
        for state in DELIVERY_STATES:
            rows.add_metric([str(c.id), state], c.states.get(state, 0))
    yield rows
    backlog = GaugeMetricFamily(
        "listmgr_delivery_backlog",
        "Campaign messages due now and not yet sent (campaigns sending), by campaign.",
        labels=["campaign"],
    )
    for c in snap.campaigns:
        if c.status == CampaignStatus.sending.value:
            backlog.add_metric([str(c.id)], c.due)
    yield backlog
    yield _by(
        "listmgr_campaigns",
        "Campaigns by status.",
        "status",
        [s.value for s in CampaignStatus],
        snap.campaign_statuses,
    )
    yield _by(
        "listmgr_outbox",
        "Transactional mail not sent (yet), by state.",
        "state",
        OUTBOX_WAITING,
        snap.outbox,
    )
    yield _one(
        "listmgr_outbox_oldest_pending_seconds",
        "Age of the oldest transactional mail waiting to be sent (0: none).",
        _age(snap.outbox_oldest_pending, snap.at),
    )
    yield _by(
        "listmgr_inbound_messages",
        "Inbound messages by state (stored: waiting to be processed).",
        "state",
        INBOUND_STATES,
        snap.inbound,
    )
    yield _one(
        "listmgr_inbound_oldest_waiting_seconds",
        "Age of the oldest inbound message waiting to be processed (0: none).",
        _age(snap.inbound_oldest_waiting, snap.at),
    )
    yield _by(
        "listmgr_imports", "Imports queued or running.", "state", IMPORT_WAITING, snap.imports
    )
    yield _one(
        "listmgr_workers_seen",
        f"Worker processes with a heartbeat in the last {heartbeats.SEEN_SECONDS} s.",
        len(snap.workers),
    )


def _by(
    name: str, doc: str, label: str, keys: Iterable[str], counts: dict[str, int]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=[label])
    for key in keys:
        family.add_metric([key], counts.get(key, 0))
    return family


def _one(name: str, doc: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc)
    family.add_metric([], value)
    return family


def _error(exc: BaseException) -> str:
    """The first line of what went wrong (the driver's own message, not SQLAlchemy's wrapping)."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {text[0]}" if text else type(inner).__name__


def status(rt: Runtime) -> dict[str, Any]:
    """Every check of `listmgr status`, as plain data (what its --json prints): database and
    schema, broker, workers seen, campaigns sending, backlog; "ok" false when the database or
    the broker is away or the schema is behind."""
    out: dict[str, Any] = {"ok": True}
    try:
        found = schema(rt)
        out["database"] = {
            "ok": found.up_to_date,
            "dialect": rt.db.dialect,
            "revision": ",".join(found.current) or None,
            "expected": ",".join(found.head),
        }
        if not found.up_to_date:
            out["database"]["error"] = "the schema is not current: run `listmgr db upgrade`"
    except Exception as exc:  # whatever the driver raises: the database is away
        out["database"] = {"ok": False, "dialect": rt.db.dialect, "error": _error(exc)}
    try:
        out["broker"] = {"ok": True, "kind": queue.ping(rt.settings.broker_url)}
    except Exception as exc:  # whatever the client raises: the broker is away
        out["broker"] = {"ok": False, "error": _error(exc)}
    out["ok"] = out["database"]["ok"] and out["broker"]["ok"]
    if not out["database"]["ok"]:
        return out
    snap = snapshot(rt)
    out["workers"] = [
        {
            "name": w.name,
            "threads": w.threads,
            "started_at": w.started_at.isoformat() + "Z",
            "seen_seconds_ago": round((snap.at - w.seen_at).total_seconds(), 1),
        }
        for w in snap.workers
    ]
    out["campaigns"] = [
        {
            "id": c.id,
            "name": c.name,
            "status": c.status,
            "audience": c.audience,
            "done": c.done,
            "due": c.due,
            "states": c.states,
        }
        for c in snap.campaigns
    ]
    out["backlog"] = {
        "deliveries_due": snap.backlog,
        "outbox": {k: snap.outbox.get(k, 0) for k in OUTBOX_WAITING},
        "inbound_waiting": snap.inbound.get("stored", 0),
        "inbound_failed": snap.inbound.get("failed", 0),
        "imports": {k: snap.imports.get(k, 0) for k in IMPORT_WAITING},
    }
    return out
