"""Crash: real `listmgr worker` processes on PostgreSQL + Redis; one is SIGKILLed mid-campaign
and another started. Everyone eligible gets the campaign; nobody twice except rows recorded as
possibly duplicated: at most one per connection of the killed worker (its last round)."""

from __future__ import annotations

import os
import signal
import time
import uuid

import pytest
from sqlalchemy import select

from listmgr import runtime
from listmgr.models import Delivery
from listmgr.services import campaigns
from tests.campaign_support import campaign, deliveries, recipients
from tests.conftest import wait_until
from tests.worker_support import (
    NEEDS_WORKER_PROCESSES,
    enqueuing_runtime,
    start_worker,
    stop_workers,
    worker_env,
)

pytestmark = [
    pytest.mark.slow,
    NEEDS_WORKER_PROCESSES,
]
# Throttled, every connection takes its turn alone; unthrottled, a job hands a round of
# messages to all its connections at once (the sink is slowed so that the kill comes mid-way).
CASES = {
    "throttled": dict(people=400, connections=2, rate="80", delay=0.0),
    "rounds": dict(people=1200, connections=3, rate="0", delay=0.003),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_sigkill_a_worker_mid_campaign(database_url, sink, tmp_path, case):
    people, connections = CASES[case]["people"], CASES[case]["connections"]
    delay = CASES[case]["delay"]
    if delay:
        sink.rcpt_hook = lambda address: time.sleep(delay)
    namespace = f"crash{uuid.uuid4().hex[:8]}"
    rt = enqueuing_runtime(database_url, sink, namespace, people)
    env = worker_env(
        database_url,
        sink,
        namespace,
        tmp_path,
        LEASE_SECONDS="3",
        SWEEP_SECONDS="1",
        SEND_RATE=CASES[case]["rate"],
        SEND_BATCH_SIZE="20",
        SEND_CONNECTIONS=str(connections),
    )
    procs = [start_worker(env, tmp_path / "a.log"), start_worker(env, tmp_path / "b.log")]
    try:
        cid = campaign(rt)
        assert campaigns.start(rt, cid) == people
        wait_until(lambda: sum(recipients(sink, cid).values()) >= people // 4, 60, "first mails")

        def busy_pid() -> int | None:
            with rt.db.session() as s:
                owners = list(
                    s.scalars(
                        select(Delivery.claimed_by).where(
                            Delivery.campaign_id == cid, Delivery.status == "claimed"
                        )
                    )
                )
            pids = {int(o.split(":")[1]) for o in owners if o}
            return next((p.pid for p in procs if p.pid in pids), None)

        victim = wait_until(busy_pid, 30, "a worker holding claims")
        os.kill(victim, signal.SIGKILL)
        killed = next(p for p in procs if p.pid == victim)
        killed.wait(10)
        received_at_kill = sum(recipients(sink, cid).values())
        assert received_at_kill < people, "the campaign finished before the kill"
        procs.append(start_worker(env, tmp_path / "c.log"))
        wait_until(lambda: campaigns.get(rt, cid).status == "sent", 180, "the campaign to finish")
    finally:
        stop_workers(procs)
        rt.queue.close()
        runtime.set_current(None)

    got = recipients(sink, cid)
    rows = deliveries(rt, cid)
    assert set(got) == set(rows) and len(rows) == people  # everyone, nobody lost
    twice = {email for email, n in got.items() if n > 1}
    marked = {email for email, row in rows.items() if row.possibly_duplicate}
    assert twice <= marked, (twice, marked)
    assert len(marked) <= connections and all(n <= 2 for n in got.values())
    assert all(row.status == "sent" for row in rows.values())
    stats = campaigns.stats(rt, cid)
    assert (stats.sent, stats.remaining, stats.possibly_duplicate) == (people, 0, len(marked))
