"""Real `listmgr worker` processes for the tests that kill, stop or race them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from listmgr import boot, runtime
from tests.campaign_support import make_list, person
from tests.conftest import BROKER_URL, PG_URL, SECRET, settings_for, wait_until

# A test module running real `listmgr worker` processes marks itself with this.
NEEDS_WORKER_PROCESSES = pytest.mark.skipif(
    not (PG_URL and BROKER_URL.startswith("redis")),
    reason="runs real `listmgr worker` processes: needs PostgreSQL and Redis "
    "(LISTMGR_TEST_DATABASE_URL and LISTMGR_TEST_BROKER_URL)",
)


def worker_env(
    database_url: str,
    sink: Any,
    namespace: str,
    tmp: Path,
    *,
    broker_url: str = BROKER_URL,
    **settings: str,
) -> dict[str, str]:
    """The environment of a worker process sending to the test's sink; `settings` are
    LISTMGR_* variables without the prefix (SEND_RATE="30")."""
    return dict(
        os.environ,
        LISTMGR_DATABASE_URL=database_url,
        LISTMGR_BROKER_URL=broker_url,
        LISTMGR_BROKER_NAMESPACE=namespace,
        LISTMGR_SMTP_URL=sink.url,
        LISTMGR_SECRET_KEY=SECRET,
        LISTMGR_BASE_URL="http://listmgr.test",
        LISTMGR_MAIL_DOMAIN="lists.example.test",
        LISTMGR_VAR_DIR=str(tmp / "var"),
        **{f"LISTMGR_{key}": value for key, value in settings.items()},
    )


def start_worker(
    env: dict[str, str],
    log: Path,
    *options: str,
    cwd: Path | None = None,
    timeout: float = 60,
    threads: int = 4,
    processes: int = 1,
) -> subprocess.Popen[bytes]:
    """`listmgr worker` (with more `options`), once each of its processes says it runs; its
    output goes to `log`. `cwd` is where it runs (`python -m` imports listmgr from there
    first: another release's tree)."""
    command = [sys.executable, "-m", "listmgr", "worker", "--threads", str(threads)]
    if processes > 1:
        command += ["--processes", str(processes)]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [*command, *options], env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT
        )
    running = f"listmgr worker running with {threads} threads".encode()
    wait_until(
        lambda: log.read_bytes().count(running) >= processes or proc.poll() is not None,
        timeout,
        "the worker's processes",
    )
    assert proc.poll() is None, log.read_text()
    return proc


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM, then SIGKILL for any that is still there after 20 s."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()


def enqueuing_runtime(
    database_url: str, sink: Any, namespace: str, people: int, **settings: Any
) -> runtime.Runtime:
    """The test's runtime: it only enqueues (worker processes do the sending), with a list
    `news` of `people` confirmed people p0000@example.org..."""
    rt = runtime.build(settings_for(database_url, sink, broker_namespace=namespace, **settings))
    boot.attach_queue(rt)
    make_list(rt, "news")
    for i in range(people):
        person(rt, f"p{i:04d}@example.org", ["news"])
    return rt
