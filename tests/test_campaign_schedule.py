"""Scheduling: a due campaign is started exactly once however many schedulers run at once."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import timedelta

from sqlalchemy import func, select, update

from listmgr.models import AuditLog, Campaign, Delivery, utcnow
from listmgr.services import campaigns
from tests.campaign_support import campaign, make_list, person, recipients, wait_status
from tests.conftest import SECRET, drain


def _due(rt, n: int) -> list[int]:
    """n campaigns scheduled earlier and now due."""
    ids = []
    for i in range(n):
        cid = campaign(rt, name=f"c{i}")
        campaigns.schedule(rt, cid, at=utcnow() + timedelta(hours=1))
        ids.append(cid)
    with rt.db.session() as s:  # time passes
        s.execute(update(Campaign).values(scheduled_at=utcnow() - timedelta(seconds=1)))
    return ids


def _starts(rt, cid: int) -> int:
    with rt.db.session() as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(AuditLog)
                .where(AuditLog.action == "campaign.send", AuditLog.target_id == str(cid))
            )
            or 0
        )


def test_not_due_yet_is_left_alone(rt, sink):
    make_list(rt, "news")
    person(rt, "a@example.org", ["news"])
    cid = campaign(rt)
    campaigns.schedule(rt, cid, at=utcnow() + timedelta(minutes=5))
    assert campaigns.start_due(rt) == 0
    assert campaigns.get(rt, cid).status == "scheduled"


def test_concurrent_schedulers_start_each_due_campaign_once(rt, sink):
    make_list(rt, "news")
    for i in range(10):
        person(rt, f"p{i}@example.org", ["news"])
    ids = _due(rt, 3)
    barrier = threading.Barrier(6)
    started: list[int] = []
    errors: list[BaseException] = []

    def scheduler() -> None:
        try:
            barrier.wait()
            started.append(campaigns.start_due(rt))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=scheduler) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and sum(started) == 3
    drain(rt)
    for cid in ids:
        assert wait_status(rt, cid) == "sent"
        assert _starts(rt, cid) == 1
        assert recipients(sink, cid) == {f"p{i}@example.org": 1 for i in range(10)}
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Delivery)) == 30


def test_two_scheduler_processes(rt, sink, database_url, tmp_path):
    make_list(rt, "news")
    for i in range(5):
        person(rt, f"q{i}@example.org", ["news"])
    [cid] = _due(rt, 1)
    env = dict(
        os.environ,
        LISTMGR_DATABASE_URL=database_url,
        LISTMGR_SECRET_KEY=SECRET,
        LISTMGR_BROKER_URL="",
        LISTMGR_VAR_DIR=str(tmp_path / "var"),
        LISTMGR_DEFAULT_POSTAL_ADDRESS="Example Org, 1 Test Street",
    )
    code = (
        "import sys; from listmgr import runtime; from listmgr.services import campaigns;"
        "rt = runtime.build(); sys.stdin.readline(); print(campaigns.start_due(rt))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for p in procs:  # both are up; let them go at the same moment
        p.stdin.write("go\n")
    for p in procs:
        p.stdin.flush()
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert sorted(outputs) == ["0", "1"], outputs
    assert campaigns.requeue(rt) == 1  # the winner had no broker to wake ours: the sweep does
    drain(rt)
    wait_status(rt, cid)
    assert _starts(rt, cid) == 1
    assert recipients(sink, cid) == {f"q{i}@example.org": 1 for i in range(5)}
