"""`listmgr worker --processes N`: one service runs N worker processes (one core each) on
PostgreSQL + Redis. They send one campaign together, once to everyone; one scrape of the
parent's /metrics adds their counters up; a stop signal stops them all, and a process that
dies alone takes the others down with a failing exit code, so the service manager restarts
the whole worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from listmgr.models import WorkerProcess
from listmgr.services import campaigns
from tests.campaign_support import campaign, recipients
from tests.conftest import BROKER_URL, free_port, wait_until
from tests.test_metrics import samples
from tests.worker_support import (
    NEEDS_WORKER_PROCESSES,
    enqueuing_runtime,
    start_worker,
    worker_env,
)

pytestmark = [
    pytest.mark.slow,
    NEEDS_WORKER_PROCESSES,
]
PEOPLE = 150


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def start(env: dict[str, str], log: Path, *options: str) -> subprocess.Popen[bytes]:
    """`listmgr worker --processes 2`, once its two processes say they run."""
    proc = start_worker(env, log, *options, threads=2, processes=2, timeout=120)
    assert "running 2 processes of 2 threads" in log.read_text()
    return proc


def test_one_worker_service_runs_several_processes(database_url, sink, tmp_path):
    namespace = f"procs{uuid.uuid4().hex[:8]}"
    rt = enqueuing_runtime(database_url, sink, namespace, PEOPLE)
    env = worker_env(database_url, sink, namespace, tmp_path, SEND_CONNECTIONS="2")
    port = free_port()
    log = tmp_path / "worker.log"
    proc = start(env, log, "--metrics", f"127.0.0.1:{port}")
    try:
        kids = children(proc.pid)
        assert len(kids) == 2, log.read_text()

        def beating() -> set[int]:
            with rt.db.session() as s:
                return set(s.scalars(select(WorkerProcess.pid)))

        # each process beats on its own (its first beat may follow its "running" line)
        wait_until(lambda: set(kids) <= beating(), 30, f"heartbeats of {kids}")

        cid = campaign(rt)
        assert campaigns.start(rt, cid) == PEOPLE
        wait_until(lambda: sum(recipients(sink, cid).values()) >= PEOPLE, 90, "every mail")
        got = recipients(sink, cid)
        assert len(got) == PEOPLE and set(got.values()) == {1}  # everyone, once

        def sent() -> float:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                scrape = samples(r.read())
            return sum(
                v
                for (name, labels), v in scrape.items()
                if name == "listmgr_messages_total"
                and ("campaign", str(cid)) in labels
                and ("outcome", "sent") in labels
            )

        # counted by whichever process sent it, added up by the parent's scrape
        wait_until(lambda: sent() == PEOPLE, 30, "the counters of both processes")

        # a stop signal stops them all, cleanly
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(90) == 0, log.read_text()
        wait_until(lambda: not any(alive(k) for k in kids), 30, "the processes to end")
    finally:
        if proc.poll() is None:
            proc.kill()
        for k in children(proc.pid):
            os.kill(k, signal.SIGKILL)


def test_a_process_that_dies_takes_the_others_down(database_url, sink, tmp_path):
    namespace = f"procs{uuid.uuid4().hex[:8]}"
    enqueuing_runtime(database_url, sink, namespace, 0)
    env = worker_env(database_url, sink, namespace, tmp_path)
    log = tmp_path / "worker.log"
    proc = start(env, log)
    kids = children(proc.pid)
    try:
        assert len(kids) == 2, log.read_text()
        os.kill(kids[0], signal.SIGKILL)
        assert proc.wait(90) != 0, log.read_text()  # the service manager restarts the worker
        assert f"worker process {kids[0]} ended" in log.read_text()
        wait_until(lambda: not alive(kids[1]), 30, "the other process to end")
    finally:
        if proc.poll() is None:
            proc.kill()
        for k in kids:
            if alive(k):
                os.kill(k, signal.SIGKILL)


def test_a_bad_process_count_is_refused(database_url, tmp_path):
    env = dict(os.environ, LISTMGR_DATABASE_URL=database_url, LISTMGR_BROKER_URL=BROKER_URL)
    done = subprocess.run(
        [sys.executable, "-m", "listmgr", "worker", "--processes", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2  # a usage error, before anything starts
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("Error:") and "'--processes': 0 is not in the range" in error
