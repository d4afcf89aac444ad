"""A throttled campaign sent by a real `listmgr worker` on PostgreSQL while its Redis (broker
and shared rate limit) goes away for a while and comes back empty: everyone gets the campaign,
nobody twice unless the ledger marked it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from listmgr import boot, runtime
from listmgr.services import campaigns
from tests.campaign_support import campaign, deliveries, make_list, person, recipients
from tests.conftest import PG_URL, SECRET, settings_for

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _redis(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [*("redis-server", "--port", str(port), "--bind", "127.0.0.1"), "--save", ""],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait(lambda: _answers(port), 20, "redis-server to start")
    return proc


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_broker_going_away_mid_campaign_costs_no_unmarked_duplicate(
    database_url, sink, tmp_path: Path
):
    port = _free_port()
    broker_url = f"redis://127.0.0.1:{port}/0"
    redis_proc = _redis(port)
    namespace = f"outage{uuid.uuid4().hex[:8]}"
    rt = runtime.build(
        settings_for(database_url, sink, broker_url=broker_url, broker_namespace=namespace)
    )
    boot.attach_queue(rt)  # enqueue only: the worker below does all the sending
    make_list(rt, "news")
    for i in range(PEOPLE):
        person(rt, f"p{i:04d}@example.org", ["news"])
    env = dict(
        os.environ,
        LISTMGR_DATABASE_URL=database_url,
        LISTMGR_BROKER_URL=broker_url,
        LISTMGR_BROKER_NAMESPACE=namespace,
        LISTMGR_SMTP_URL=sink.url,
        LISTMGR_SECRET_KEY=SECRET,
        LISTMGR_BASE_URL="http://listmgr.test",
        LISTMGR_MAIL_DOMAIN="lists.example.test",
        LISTMGR_LEASE_SECONDS="3",
        LISTMGR_SWEEP_SECONDS="1",
        LISTMGR_SEND_RATE="30",
        LISTMGR_SEND_BATCH_SIZE="20",
        LISTMGR_SEND_CONNECTIONS=str(CONNECTIONS),
        LISTMGR_VAR_DIR=str(tmp_path / "var"),
    )
    log = tmp_path / "worker.log"
    out = log.open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "listmgr", "worker", "--threads", "4"],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait(lambda: b"worker running" in log.read_bytes(), 60, "the worker to start")
        cid = campaign(rt)
        assert campaigns.start(rt, cid) == PEOPLE
        _wait(lambda: sum(recipients(sink, cid).values()) >= PEOPLE // 4, 60, "first mails")
        redis_proc.send_signal(signal.SIGKILL)  # everything it held is gone
        redis_proc.wait(10)
        time.sleep(4)
        assert sum(recipients(sink, cid).values()) < PEOPLE, "finished before the outage"
        redis_proc = _redis(port)
        _wait(lambda: campaigns.get(rt, cid).status == "sent", 180, "the campaign to finish")
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
        out.close()
        rt.queue.close()
        runtime.set_current(None)
        redis_proc.kill()
        redis_proc.wait(10)

    got = recipients(sink, cid)
    rows = deliveries(rt, cid)
    assert set(got) == set(rows) and len(rows) == PEOPLE  # everyone, nobody lost
    twice = {email for email, n in got.items() if n > 1}
    marked = {email for email, row in rows.items() if row.possibly_duplicate}
    assert twice <= marked, (twice, marked, log.read_text()[-3000:])
    assert len(marked) <= CONNECTIONS and all(n <= 2 for n in got.values())
