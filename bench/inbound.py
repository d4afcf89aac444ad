"""Inbound benchmark: classify the whole shared corpus in one process.

    python bench/inbound.py [--corpus DIR] [--rounds N] [--skip-hook] [--hook-count 10000]
                            [--worker-processes 1] [--floor]
                            [--parts 100000] [--redis-url URL] [--summary FILE]

Prints classify messages per second in one process (goal >= 1,500) and the slowest file with
its time, the time to open a 100,000-part message in the admin and the API (goal <= 200 ms),
then stores and processes 10,000 messages through the HTTP hook on PostgreSQL + Redis: hook to
processed messages/s end to end (goal >= 300). Each stage is one function taking the loaded
corpus and the run's summary and returning a result line, listed in STAGES. The corpus is
LISTMGR_CORPUS or ../shared/corpus beside the checkout; the scratch database, Redis database,
broker namespace and port are the run's own (bench/benchkit.py).

--floor measures what no classifier and no hook can beat on this machine, in the same minutes:
the corpus parsed, and nothing else, by the standard library's parser with the policy classify
uses (compat32), each round right after classify's; and the
least hook that stores a row (bench/inbound_floor.py under the same gunicorn, database and
clients, before listmgr's own server starts). Classify, storing and hook to processed are
printed as ratios of them.
"""

from __future__ import annotations

import argparse
import email
import json
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.policy import compat32
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchkit

from listmgr.mail.inbound import classify

DEFAULT_CORPUS = benchkit.corpus_dir()
GOAL_CLASSIFY, GOAL_HOOK, GOAL_VIEW_MS = 1500.0, 300.0, 200.0


@dataclass(frozen=True)
class Message:
    path: str
    raw: bytes


def load_corpus(corpus: Path) -> list[Message]:
    """Every file the manifest lists, read into memory (reading is not measured)."""
    entries = json.loads((corpus / "manifest.json").read_text(encoding="utf-8"))
    return [Message(e["path"], (corpus / e["path"]).read_bytes()) for e in entries]


def bench_classify(
    messages: list[Message],
    summary: benchkit.Summary,
    rounds: int = 1,
    floor: bool = False,
    **_: object,
) -> str:
    """Classify every message `rounds` times; messages/s and the slowest single file (with
    `floor`, each round is followed by one that only parses). Beside the wall clock, the
    process's CPU time: what other work on a shared machine takes away does not count in it."""
    slowest, slowest_path = 0.0, ""
    total = cpu = parsing = parsing_cpu = 0.0
    for _ in range(rounds):
        start, cpu_start = time.perf_counter(), time.process_time()
        for m in messages:
            t0 = time.perf_counter()
            classify(m.raw)
            took = time.perf_counter() - t0
            if took > slowest:
                slowest, slowest_path = took, m.path
        total += time.perf_counter() - start
        cpu += time.process_time() - cpu_start
        if floor:
            start, cpu_start = time.perf_counter(), time.process_time()
            for m in messages:
                email.message_from_bytes(m.raw, policy=compat32)
            parsing += time.perf_counter() - start
            parsing_cpu += time.process_time() - cpu_start
    count = len(messages) * rounds
    ratio = summary.add("classify, one process", count / total, "msg/s", at_least=GOAL_CLASSIFY)
    summary.add("classify, one process, CPU time", count / cpu, "msg/s")
    summary.add("classify, slowest file", slowest * 1000, "ms")
    line = (
        f"classify: {count} messages in {total:.2f} s = {count / total:.0f} messages/s "
        f"(goal >= {GOAL_CLASSIFY:,.0f}, ratio {ratio:.2f}; {count / cpu:.0f}/s of CPU time); "
        f"slowest {slowest_path} {slowest * 1000:.1f} ms"
    )
    if floor:
        summary.add("classify floor: parse only", count / parsing, "msg/s")
        summary.add("classify / parse-only floor", parsing / total, "ratio")
        summary.add("classify / parse-only floor, CPU time", parsing_cpu / cpu, "ratio")
        line += (
            f"\nclassify floor: the same messages parsed only (the standard library's parser, "
            f"compat32) in {parsing:.2f} s = {count / parsing:.0f}/s "
            f"({count / parsing_cpu:.0f}/s of CPU time); classify is {parsing / total:.2f} of "
            f"it ({parsing_cpu / cpu:.2f} in CPU time), the goal's {GOAL_CLASSIFY:,.0f}/s "
            f"{GOAL_CLASSIFY * parsing / count:.2f} x this floor"
        )
    return line


def _wait_http(url: str, proc: object, timeout: float = 300) -> None:
    """Until `url` answers (a loaded machine starts gunicorn slowly) or `proc` ends."""
    import subprocess
    import urllib.request

    assert isinstance(proc, subprocess.Popen)
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=5)
            return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"the web server did not answer at {url}") from None
            time.sleep(0.2)


def _post(port: int, body: bytes, path: str = "/hooks/inbound") -> int:
    """POST one message with the bench's inbound secret; the HTTP status."""
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body,
        headers={"Authorization": "Bearer bench-inbound", "Content-Type": "message/rfc822"},
    )
    try:
        return urllib.request.urlopen(req, timeout=60).status
    except urllib.error.HTTPError as exc:  # counted by the caller, with the server's errors
        return exc.code


def _post_all(port: int, bodies: list[bytes], clients: int, path: str) -> tuple[float, list[int]]:
    """Every body POSTed by `clients` threads: the seconds it took and the statuses."""
    from concurrent.futures import ThreadPoolExecutor

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        statuses = list(pool.map(lambda body: _post(port, body, path), bodies))
    return time.perf_counter() - start, statuses


def _store_floor(env: dict[str, str], bodies: list[bytes], clients: int, errors: Any) -> float:
    """Seconds the least hook (bench/inbound_floor.py, under gunicorn with 2 workers like
    listmgr's) takes to store `bodies`; its rows are left for the caller to remove."""
    import subprocess

    port = benchkit.free_port()
    bench = str(Path(__file__).resolve().parent)
    gunicorn = [sys.executable, "-m", "gunicorn", "--workers", "2", "--chdir", bench]
    proc = subprocess.Popen(
        [*gunicorn, "--bind", f"127.0.0.1:{port}", "inbound_floor:app"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=errors,
    )
    try:
        _wait_http(f"http://127.0.0.1:{port}/", proc)
        seconds, statuses = _post_all(port, bodies, clients, "/hooks/inbound")
    finally:
        proc.terminate()
        benchkit.stop(proc)
    refused = sum(1 for s in statuses if s != 202)
    if refused:
        raise SystemExit(f"the hook floor answered {refused} requests with another status than 202")
    return seconds


def bench_hook(
    messages: list[Message],
    summary: benchkit.Summary,
    rounds: int = 1,
    count: int = 10_000,
    redis_url: str | None = None,
    clients: int = 8,
    worker_processes: int = 1,
    floor: bool = False,
    **_: object,
) -> str:
    """Store and process `count` messages through POST /hooks/inbound (gunicorn, 2 web
    workers; one `listmgr worker`; PostgreSQL + Redis): messages/s stored and processed (with
    `floor`, first the least hook that stores them, bench/inbound_floor.py)."""
    import subprocess
    import tempfile

    from sqlalchemy import create_engine, func, select, text

    scratch = benchkit.ScratchDatabase("inbound")
    space = benchkit.RedisSpace.claim("inbound", redis_url)
    database = scratch.url
    env = {
        **os.environ,
        "LISTMGR_DATABASE_URL": database,
        "LISTMGR_BROKER_URL": space.url,
        "LISTMGR_BROKER_NAMESPACE": space.namespace,
        "LISTMGR_RATELIMIT_STORAGE_URL": space.url,
        "LISTMGR_SECRET_KEY": "bench-secret-0123456789abcdef",
        "LISTMGR_INBOUND_SECRET": "bench-inbound",
        "LISTMGR_UNSUBSCRIBE_CONFIRMATION_MAIL": "0",
    }
    cli = [sys.executable, "-m", "listmgr"]
    errors = tempfile.TemporaryFile()  # noqa: SIM115 (closed below) the server's log
    web = worker = None
    store_floor_s = 0.0
    try:
        subprocess.run([*cli, "db", "upgrade"], env=env, check=True, capture_output=True)
        bodies = [
            f"X-Bench-Seq: {i}\r\n".encode() + messages[i % len(messages)].raw for i in range(count)
        ]
        if floor:
            store_floor_s = _store_floor(env, bodies, clients, errors)
            engine = create_engine(database)
            with engine.begin() as c:  # listmgr stores the same bodies next
                c.execute(text("TRUNCATE inbound_message RESTART IDENTITY"))
            engine.dispose()
        port = benchkit.free_port()
        web = subprocess.Popen(
            [*cli, "web", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
        worker = subprocess.Popen(
            [*cli, "worker", "--threads", "8", "--processes", str(worker_processes)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_http(f"http://127.0.0.1:{port}/healthz", web)
        # The floor: the same client, bodies and server, answered without any work (the
        # health check refuses a POST with 405), while the worker waits idle.
        floor_s, _ = _post_all(port, bodies, clients, "/healthz")
        start = time.perf_counter()
        stored_s, statuses = _post_all(port, bodies, clients, "/hooks/inbound")
        engine = create_engine(database)
        from listmgr.models import InboundMessage

        while True:
            with engine.connect() as c:
                left = c.scalar(
                    select(func.count())
                    .select_from(InboundMessage)
                    .where(InboundMessage.status != "processed")
                )
            if not left:
                break
            time.sleep(0.2)
        done_s = time.perf_counter() - start
        engine.dispose()
    finally:
        for proc in (web, worker):
            if proc is not None and proc.poll() is None:
                proc.terminate()
        try:
            for proc in (web, worker):
                benchkit.stop(proc)
        finally:
            from listmgr import db as dbmod

            dbmod.dispose_engines()
            scratch.drop()
            space.release()
    bad = sum(1 for s in statuses if s != 202)
    if bad:
        errors.seek(0)
        seen = re.findall(rb"\n(\w+(?:\.\w+)*(?:Error|Exception)[^\n]*)", errors.read())
        print(f"  server errors seen: {sorted({e.decode(errors='replace') for e in seen})[:5]}")
    errors.close()
    summary.add("hook: stored", count / stored_s, "msg/s")
    ratio = summary.add("hook to processed", count / done_s, "msg/s", at_least=GOAL_HOOK)
    summary.add("hook: not 202", bad, "req")
    summary.add(
        "hook floor: the client and server answering without work", count / floor_s, "msg/s"
    )
    summary.add("hook to processed / floor", floor_s / done_s, "ratio")
    least = ""
    if floor:
        summary.add("hook floor: the least hook that stores a row", count / store_floor_s, "msg/s")
        summary.add("hook: stored / least-hook floor", store_floor_s / stored_s, "ratio")
        summary.add("hook to processed / least-hook floor", store_floor_s / done_s, "ratio")
        least = (
            f"hook floor: the least hook that stores a row (bench/inbound_floor.py, the same "
            f"gunicorn, database, client and bodies) stored them in {store_floor_s:.1f} s = "
            f"{count / store_floor_s:.0f}/s; the goal's {GOAL_HOOK:.0f}/s is "
            f"{GOAL_HOOK * store_floor_s / count:.2f} x this floor, listmgr stored "
            f"{store_floor_s / stored_s:.2f} of it and processed {store_floor_s / done_s:.2f}\n"
        )
    return least + (
        f"hook floor: the same {count} bodies POSTed by the same client to the same server, "
        f"answered without work (405), in {floor_s:.1f} s = {count / floor_s:.0f}/s; the goal's "
        f"{GOAL_HOOK:.0f}/s is {GOAL_HOOK * floor_s / count:.2f} x this floor, hook to "
        f"processed {floor_s / done_s:.2f} of it\n"
        f"hook: {count} messages stored in {stored_s:.1f} s = {count / stored_s:.0f}/s "
        f"({clients} clients, {bad} not 202); all processed after {done_s:.1f} s = "
        f"{count / done_s:.0f} messages/s end to end (goal >= {GOAL_HOOK:.0f}, ratio "
        f"{ratio:.2f}; PostgreSQL + Redis, gunicorn 2 workers, {worker_processes} worker "
        f"process(es) x 8 threads)"
    )


def bench_view(
    messages: list[Message],
    summary: benchkit.Summary,
    rounds: int = 1,
    parts: int = 100_000,
    database: str = os.environ.get("LISTMGR_BENCH_VIEW_DATABASE_URL", ""),
    **_: object,
) -> str:
    """Open one message of `parts` MIME parts in the admin page and the API (in process; a
    SQLite file, or an empty database named by LISTMGR_BENCH_VIEW_DATABASE_URL): the slowest
    of `rounds` requests each, against the 200 ms goal."""
    import tempfile

    from listmgr import runtime
    from listmgr.app import create_app
    from listmgr.models import User
    from listmgr.services import accounts, inbound

    head = (
        b"From: Someone <someone@example.com>\r\nTo: news@localhost\r\nSubject: parts\r\n"
        b"Message-ID: <parts@example.com>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    )
    raw = (
        head
        + b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i for i in range(parts))
        + b"--b--\r\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        url = database or f"sqlite:///{tmp}/view.db"
        rt = runtime.build(
            {
                "database_url": url,
                "var_dir": tmp,
                "secret_key": "bench-secret-0123456789abcdef0123",
            },
            migrate=True,
        )
        app = create_app(rt=rt)
        uid = accounts.create_user(
            rt, email="owner@bench.example.org", password="bench password 123", role="owner"
        )
        token = accounts.create_token(rt, role="owner", name="bench")
        mid = inbound.store(rt, raw).id
        client = app.test_client()
        with rt.db.session() as s:
            version = s.get(User, uid).session_version
        with client.session_transaction() as sess:
            sess.update(
                {"_user_id": f"{uid}:{version}", "_fresh": True, "signed_in_at": int(time.time())}
            )
        times: dict[str, float] = {}
        for name, get in (
            ("page", lambda: client.get(f"/admin/inbound/{mid}")),
            (
                "api",
                lambda: client.get(
                    f"/api/inbound/{mid}", headers={"Authorization": f"Bearer {token}"}
                ),
            ),
        ):
            worst = 0.0
            for _ in range(max(rounds, 1)):
                t0 = time.perf_counter()
                status = get().status_code
                worst = max(worst, time.perf_counter() - t0)
                assert status == 200, status
            times[name] = worst * 1000
        runtime.set_current(None)
    kind = "PostgreSQL" if database.startswith("postgresql") else "SQLite"
    summary.add(
        f"view {parts:,}-part message, admin page", times["page"], "ms", at_most=GOAL_VIEW_MS
    )
    summary.add(f"view {parts:,}-part message, API", times["api"], "ms", at_most=GOAL_VIEW_MS)
    return (
        f"view ({kind}): a {parts:,}-part message ({len(raw) / 1e6:.1f} MB): admin page "
        f"{times['page']:.0f} ms, API {times['api']:.0f} ms (slowest of {rounds}; goal "
        f"<= 200 ms: ratio {GOAL_VIEW_MS / max(times.values()):.2f}, 1 or more meets it)"
    )


STAGES: list[Callable[..., str]] = [bench_classify, bench_view, bench_hook]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-hook", action="store_true", help="no hook stage")
    parser.add_argument("--hook-count", type=int, default=10_000, help="messages for the hook")
    parser.add_argument("--parts", type=int, default=100_000, help="MIME parts of the view stage")
    parser.add_argument(
        "--worker-processes", type=int, default=1, help="`listmgr worker --processes` of the hook"
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also measure the parse-only and least-hook floors (see the docstring)",
    )
    benchkit.add_arguments(parser, redis=True)
    args = parser.parse_args(argv)
    benchkit.exit_on_sigterm()
    summary = benchkit.Summary("inbound")
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
        print(
            stage(
                messages,
                summary,
                rounds=args.rounds,
                count=args.hook_count,
                parts=args.parts,
                redis_url=args.redis_url,
                worker_processes=args.worker_processes,
                floor=args.floor,
            ),
            flush=True,
        )
    summary.write(args.summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
