"""A throttled campaign sent by a real `listmgr worker` on PostgreSQL while its Redis (broker
and shared rate limit) goes away for a while and comes back empty: everyone gets the campaign,
nobody twice unless the ledger marked it."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from listmgr import runtime
from listmgr.services import campaigns
from tests.campaign_support import campaign, deliveries, recipients
from tests.conftest import PG_URL, free_port, wait_until
from tests.worker_support import enqueuing_runtime, start_worker, stop_workers, worker_env

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not PG_URL or shutil.which("redis-server") is None,
        reason="runs a real `listmgr worker` and its own redis-server: needs PostgreSQL "
        "(LISTMGR_TEST_DATABASE_URL) and redis-server",
    ),
]
PEOPLE = 240
CONNECTIONS = 2


def _redis(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [*("redis-server", "--port", str(port), "--bind", "127.0.0.1"), "--save", ""],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until(lambda: _answers(port), 20, "redis-server to start")
    return proc


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def test_the_broker_going_away_mid_campaign_costs_no_unmarked_duplicate(
    database_url, sink, tmp_path: Path
):
    port = free_port()
    broker_url = f"redis://127.0.0.1:{port}/0"
    redis_proc = _redis(port)
    namespace = f"outage{uuid.uuid4().hex[:8]}"
    rt = enqueuing_runtime(database_url, sink, namespace, PEOPLE, broker_url=broker_url)
    env = worker_env(
        database_url,
        sink,
        namespace,
        tmp_path,
        broker_url=broker_url,
        LEASE_SECONDS="3",
        SWEEP_SECONDS="1",
        SEND_RATE="30",
        SEND_BATCH_SIZE="20",
        SEND_CONNECTIONS=str(CONNECTIONS),
    )
    worker = start_worker(env, tmp_path / "worker.log")
    try:
        cid = campaign(rt)
        assert campaigns.start(rt, cid) == PEOPLE
        wait_until(lambda: sum(recipients(sink, cid).values()) >= PEOPLE // 4, 60, "first mails")
        redis_proc.send_signal(signal.SIGKILL)  # everything it held is gone
        redis_proc.wait(10)
        time.sleep(4)
        assert sum(recipients(sink, cid).values()) < PEOPLE, "finished before the outage"
        redis_proc = _redis(port)
        wait_until(lambda: campaigns.get(rt, cid).status == "sent", 180, "the campaign to finish")
    finally:
        stop_workers([worker])
        rt.queue.close()
        runtime.set_current(None)
        redis_proc.kill()
        redis_proc.wait(10)

    got = recipients(sink, cid)
    rows = deliveries(rt, cid)
    assert set(got) == set(rows) and len(rows) == PEOPLE  # everyone, nobody lost
    twice = {email for email, n in got.items() if n > 1}
    marked = {email for email, row in rows.items() if row.possibly_duplicate}
    assert twice <= marked, (twice, marked, (tmp_path / "worker.log").read_text()[-3000:])
    assert len(marked) <= CONNECTIONS and all(n <= 2 for n in got.values())
