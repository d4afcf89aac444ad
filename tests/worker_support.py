"""Real `listmgr worker` processes for the tests that kill, stop or race them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import BROKER_URL, SECRET, wait_until


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


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A worker process, once it says it runs; its output goes to `log`."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "listmgr", "worker", "--threads", "4"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_until(lambda: b"worker running" in log.read_bytes() or proc.poll() is not None, 60)
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
