"""A process killed between commit and send loses nothing: on restart the mail goes out once."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import select

from listmgr.models import utcnow
from tests.conftest import SECRET, free_port, wait_until


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
        LISTMGR_VAR_DIR=str(tmp / "var"),
    )
    log = tmp / "serve.log"
    with open(log, "ab") as out:  # a file, not a pipe nobody reads: the process never blocks
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "listmgr",
                "serve",
                "--port",
                str(port),
                "--threads",
                str(threads),
            ],
            env=env,
            cwd=tmp,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 120  # a loaded machine starts it slowly
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(log.read_text(errors="replace"))


def _sweeps(rt, count: int) -> None:
    """Wait until the process has run `count` more sweeps: each sweep deletes the abandoned
    upload (older than uploads are kept) planted for it, so each deletion is one more."""
    from listmgr.models import Upload
    from listmgr.services import uploads

    for n in range(count):
        planted = uploads.store(rt, io.BytesIO(b"email\n"), filename=f"abandoned-{n}.csv")
        with rt.db.session() as s:
            row = s.scalar(select(Upload).where(Upload.token == planted.token))
            row.created_at = utcnow() - 3 * uploads.KEEP

        def gone(token: str = planted.token) -> bool:
            with rt.db.session() as s:
                return s.scalar(select(Upload.id).where(Upload.token == token)) is None

        wait_until(gone, 60, f"sweep {n + 1} of {count}")


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
    assert sink.messages == []

    proc = _start(database_url, sink, port, threads=2, tmp=tmp_path)
    try:
        sink.wait_for(1, timeout=20)
        _sweeps(rt, 3)  # sweeps run every second: they must not send it again
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    proc = _start(database_url, sink, port, threads=2, tmp=tmp_path)
    try:
        _sweeps(rt, 3)  # nor a restarted process
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    assert [m.rcpt_tos for m in sink.messages] == [["crash@example.org"]]
