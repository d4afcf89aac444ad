"""Inbound benchmark: classify the whole shared corpus in one process.

    python bench/inbound.py [--corpus DIR] [--rounds N] [--skip-hook]

Prints classify messages per second and the slowest file with its time, then stores and
processes 10,000 messages through the HTTP hook on PostgreSQL + Redis. Each stage is one
function taking the loaded corpus and returning a result line, listed in STAGES.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from listmgr.mail.inbound import classify  # noqa: E402

DEFAULT_CORPUS = Path(os.environ.get("LISTMGR_CORPUS")
                      or Path(__file__).resolve().parents[2] / "shared" / "corpus")


@dataclass(frozen=True)
class Message:
    path: str
    raw: bytes


def load_corpus(corpus: Path) -> list[Message]:
    """Every file the manifest lists, read into memory (reading is not measured)."""
    entries = json.loads((corpus / "manifest.json").read_text(encoding="utf-8"))
    return [Message(e["path"], (corpus / e["path"]).read_bytes()) for e in entries]


def bench_classify(messages: list[Message], rounds: int = 1) -> str:
    """Classify every message `rounds` times; messages/s and the slowest single file."""
    slowest, slowest_path = 0.0, ""
    start = time.perf_counter()
    for _ in range(rounds):
        for m in messages:
            t0 = time.perf_counter()
            classify(m.raw)
            took = time.perf_counter() - t0
            if took > slowest:
                slowest, slowest_path = took, m.path
    total = time.perf_counter() - start
    count = len(messages) * rounds
    return (f"classify: {count} messages in {total:.2f} s = {count / total:.0f} messages/s; "
            f"slowest {slowest_path} {slowest * 1000:.1f} ms")


def _wait_http(url: str, timeout: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def bench_hook(messages: list[Message], rounds: int = 1, count: int = 10_000,
               database: str = "postgresql+psycopg://postgres@127.0.0.1:5432/lmbench_inbound",
               broker: str = "redis://127.0.0.1:6379/0", clients: int = 8) -> str:
    """Store and process `count` messages through POST /hooks/inbound (gunicorn, 2 web
    workers; one `listmgr worker`; PostgreSQL + Redis): messages/s stored and processed."""
    import subprocess
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import create_engine, func, select, text
    from sqlalchemy.engine import make_url

    url = make_url(database)
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{url.database}"'))
    env = {**os.environ, "LISTMGR_DATABASE_URL": database, "LISTMGR_BROKER_URL": broker,
           "LISTMGR_BROKER_NAMESPACE": f"bench{os.getpid()}", "LISTMGR_SECRET_KEY":
           "bench-secret-0123456789abcdef", "LISTMGR_INBOUND_SECRET": "bench-inbound",
           "LISTMGR_UNSUBSCRIBE_CONFIRMATION_MAIL": "0"}
    cli = [sys.executable, "-m", "listmgr"]
    subprocess.run(cli + ["db", "upgrade"], env=env, check=True, capture_output=True)
    port = 18765
    web = subprocess.Popen(cli + ["web", "--port", str(port), "--workers", "2"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = subprocess.Popen(cli + ["worker", "--threads", "8"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_http(f"http://127.0.0.1:{port}/healthz")
        bodies = [f"X-Bench-Seq: {i}\r\n".encode() + messages[i % len(messages)].raw
                  for i in range(count)]

        def post(body: bytes) -> int:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/hooks/inbound", data=body,
                                         headers={"Authorization": "Bearer bench-inbound",
                                                  "Content-Type": "message/rfc822"})
            return urllib.request.urlopen(req, timeout=60).status

        start = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            statuses = list(pool.map(post, bodies))
        stored_s = time.perf_counter() - start
        engine = create_engine(database)
        from listmgr.models import InboundMessage

        while True:
            with engine.connect() as c:
                left = c.scalar(select(func.count()).select_from(InboundMessage).where(
                    InboundMessage.status != "processed"))
            if not left:
                break
            time.sleep(0.2)
        done_s = time.perf_counter() - start
        engine.dispose()
    finally:
        web.terminate()
        worker.terminate()
        web.wait(30)
        worker.wait(30)
    bad = sum(1 for s in statuses if s != 202)
    return (f"hook: {count} messages stored in {stored_s:.1f} s = {count / stored_s:.0f}/s "
            f"({clients} clients, {bad} not 202); all processed after {done_s:.1f} s = "
            f"{count / done_s:.0f} messages/s end to end (PostgreSQL + Redis, gunicorn 2 "
            f"workers, 1 worker process x 8 threads)")


STAGES: list[Callable[..., str]] = [bench_classify, bench_hook]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-hook", action="store_true", help="only classify")
    args = parser.parse_args(argv)
    if not (args.corpus / "manifest.json").is_file():
        print(f"no corpus at {args.corpus} (use --corpus or LISTMGR_CORPUS)", file=sys.stderr)
        return 2
    messages = load_corpus(args.corpus)
    size = sum(len(m.raw) for m in messages)
    print(f"corpus: {len(messages)} files, {size / 1e6:.1f} MB")
    classify(messages[0].raw)  # warm up imports and regex compilation
    for stage in STAGES:
        if stage is bench_hook and args.skip_hook:
            continue
        print(stage(messages, rounds=args.rounds), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
