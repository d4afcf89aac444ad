"""A process killed between commit and send loses nothing: on restart the mail goes out once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import SECRET, free_port


def _start(database_url: str, sink, port: int, threads: int, tmp: Path) -> subprocess.Popen:
    env = dict(
        os.environ,
        LISTMGR_DATABASE_URL=database_url,
        LISTMGR_SMTP_URL=sink.url,
        LISTMGR_SECRET_KEY=SECRET,
        LISTMGR_BROKER_URL="",
        LISTMGR_BASE_URL=f"http://127.0.0.1:{port}",
        LISTMGR_MAIL_DOMAIN="example.test",
        LISTMGR_SWEEP_SECONDS="1",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "listmgr", "serve", "--port", str(port), "--threads", str(threads)],
        env=env,
        cwd=tmp,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(proc.stdout.read().decode() if proc.stdout else "no output")


@pytest.mark.slow
def test_killed_between_commit_and_send(database_url, sink, tmp_path):
    from listmgr import runtime
    from listmgr.services import lists

    rt = runtime.build({"database_url": database_url, "secret_key": SECRET})
    lists.create(rt, slug="news", name="News")
    port = free_port()
    proc = _start(database_url, sink, port, threads=0, tmp=tmp_path)
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/subscribe/news", data=b"email=crash%40example.org", method="POST"
    )
    assert urllib.request.urlopen(req, timeout=10).status == 200
    proc.send_signal(signal.SIGKILL)  # committed, enqueued in memory, never sent
    proc.wait(10)
    time.sleep(0.5)
    assert sink.messages == []

    proc = _start(database_url, sink, port, threads=2, tmp=tmp_path)
    try:
        sink.wait_for(1, timeout=20)
        time.sleep(2.5)  # sweeps run every second: they must not send it again
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    proc = _start(database_url, sink, port, threads=2, tmp=tmp_path)
    try:
        time.sleep(2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    assert [m.rcpt_tos for m in sink.messages] == [["crash@example.org"]]
