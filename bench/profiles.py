"""Benchmark: activity event batches and erasure on a populated database.

    python bench/profiles.py [--database-url URL] [--subscribers N] [--rounds R] [--summary FILE]

Without --database-url a temporary SQLite file is used (removed afterwards); with a PostgreSQL
URL a scratch database of this run is created beside it and dropped afterwards. Prints:
- events: one POST /api/events call of 10,000 events (JSON parsing, validation, consent lookup,
  multi-row insert), events/s, and the ratio to the goal of 10,000 events per second;
- erase: erasing one subscriber while the tables hold other people's rows (deliveries,
  activity, consent events and inbound mail, whose free text and raw bytes are searched for
  the address), and the ratio to the goal of 2 s per erasure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchkit
from sqlalchemy import insert

from listmgr import runtime
from listmgr.models import (
    ActivityEvent,
    Campaign,
    ConsentEvent,
    Delivery,
    InboundMessage,
    Subscriber,
    utcnow,
)
from listmgr.services import accounts, privacy
from listmgr.services.subscriptions import Origin

EVENTS_GOAL_PER_S = 10_000
ERASE_GOAL_S = 2.0


def _scratch(url: str | None) -> tuple[str, benchkit.ScratchDatabase | Path]:
    """This run's database: a SQLite file in a folder of its own, or a PostgreSQL database."""
    if not url:
        folder = Path(tempfile.mkdtemp(prefix="lmbench-profiles-"))
        return f"sqlite:///{folder / 'bench.db'}", folder
    scratch = benchkit.ScratchDatabase("profiles", url)
    return scratch.url, scratch


def populate(rt: runtime.Runtime, subscribers: int) -> None:
    now = utcnow()
    with rt.db.session() as s:
        s.execute(
            insert(Subscriber),
            [
                {
                    "email": f"p{i}@example.org",
                    "email_hash": rt.email_hash(f"p{i}@example.org"),
                    "name": f"Person {i}",
                    "fields": {"n": i},
                    "consent_profiling": i % 2 == 0,
                    "consent_tracking": False,
                    "soft_bounces": 0,
                    "source": "bench",
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(subscribers)
            ],
        )
        campaign = Campaign(name="Bench", subject="Bench")
        s.add(campaign)
        s.flush()
        s.execute(
            insert(Delivery),
            [
                {
                    "campaign_id": campaign.id,
                    "subscriber_id": i + 1,
                    "status": "sent",
                    "attempts": 1,
                    "claimed_by": "",
                    "in_flight": False,
                    "possibly_duplicate": False,
                    "smtp_server": "",
                    "error": "",
                    "bounced": False,
                    "complained": False,
                    "unsubscribed": False,
                }
                for i in range(subscribers)
            ],
        )
        s.execute(
            insert(ActivityEvent),
            [
                {
                    "subscriber_id": (i % subscribers) + 1,
                    "type": "page_viewed",
                    "properties": {"i": i},
                    "at": now,
                }
                for i in range(subscribers * 2)
            ],
        )
        s.execute(
            insert(ConsentEvent),
            [
                {
                    "subscriber_id": (i % subscribers) + 1,
                    "kind": ("subscribe", "confirm")[i % 2],
                    "at": now,
                    "source": "form",
                    "actor": "subscriber",
                    "ip": "192.0.2.1",
                    "user_agent": "Mozilla/5.0",
                    "wording": "Send me the news.",
                    "detail": {"opt_in": "double"},
                }
                for i in range(subscribers * 2)
            ],
        )
        body = b"Received: from mx.example.net\r\n" * 40
        s.execute(
            insert(InboundMessage),
            [
                {
                    "sha256": f"{i:064x}",
                    "message_id": f"<m{i}@example.net>",
                    "envelope_from": f"p{i}@example.org",
                    "envelope_to": "",
                    "raw": body + f"From: p{i}@example.org\r\n\r\nThanks".encode(),
                    "size": 2000,
                    "received_at": now,
                    "status": "processed",
                    "kind": "other",
                    "action": "",
                    "evidence": {},
                    "attempts": 1,
                    "error": "",
                    "handled": False,
                }
                for i in range(subscribers // 5)
            ],
        )


def bench_events(app, token: str, subscribers: int, rounds: int, summary: benchkit.Summary) -> str:
    client = app.test_client()
    batch = {
        "events": [
            {
                "email": f"p{i % subscribers}@example.org",
                "type": "product_viewed",
                "properties": {"sku": f"S-{i}", "price": 9.5},
            }
            for i in range(10_000)
        ]
    }
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        resp = client.post("/api/events", json=batch, headers={"Authorization": f"Bearer {token}"})
        best = min(best, time.perf_counter() - start)
        assert resp.status_code == 200, resp.json
    rate = 10_000 / best
    summary.add("events, one call of 10,000", rate, "events/s", at_least=EVENTS_GOAL_PER_S)
    return (
        f"events: 10,000 per call in {best:.3f} s = {rate:,.0f} events/s "
        f"(kept {resp.json['kept']}, dropped {resp.json['dropped']}); "
        f"goal {EVENTS_GOAL_PER_S:,}/s, ratio {rate / EVENTS_GOAL_PER_S:.2f}"
    )


def bench_erase(rt: runtime.Runtime, rounds: int, summary: benchkit.Summary) -> str:
    times = []
    for sid in range(1, rounds + 1):
        start = time.perf_counter()
        privacy.erase_subscriber(rt, sid, origin=Origin(source="bench", actor="bench"))
        times.append(time.perf_counter() - start)
    best = min(times)
    summary.add("erase one subscriber", best, "s", at_most=ERASE_GOAL_S)
    return (
        f"erase: one subscriber in {best:.3f} s (worst {max(times):.3f} s over {rounds}); "
        f"goal {ERASE_GOAL_S} s, ratio {ERASE_GOAL_S / best:.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("LISTMGR_BENCH_DATABASE_URL"))
    parser.add_argument("--subscribers", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    benchkit.add_arguments(parser)
    args = parser.parse_args(argv)
    benchkit.exit_on_sigterm()
    summary = benchkit.Summary("profiles")
    url, cleanup = _scratch(args.database_url)
    try:
        rt = runtime.build(
            {
                "database_url": url,
                "secret_key": "bench-secret-0123456789abcdef",
                "broker_url": "",
                "ratelimit_enabled": False,
            },
            migrate=True,
        )
        from listmgr.app import create_app

        app = create_app(rt=rt, migrate=False)
        token = accounts.create_token(rt, role="owner", name="bench")
        start = time.perf_counter()
        populate(rt, args.subscribers)
        print(
            f"database: {rt.db.dialect}; {args.subscribers:,} subscribers, deliveries, "
            f"{2 * args.subscribers:,} activity and consent events each, "
            f"{args.subscribers // 5:,} inbound "
            f"messages (populated in {time.perf_counter() - start:.1f} s)"
        )
        print(bench_events(app, token, args.subscribers, args.rounds, summary))
        print(bench_erase(rt, args.rounds, summary))
        summary.write(args.summary)
    finally:
        from listmgr import db

        db.dispose_engines()
        if isinstance(cleanup, Path):
            shutil.rmtree(cleanup, ignore_errors=True)
        else:
            cleanup.drop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
