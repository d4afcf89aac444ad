"""Benchmark: the campaign send pipeline against a fast SMTP sink, beside the transport ceiling.

    python bench/send.py [--recipients 100000] [--big 1000000] [--workers 2] [--connections 4]
                         [--dkim rsa|ed25519|none] [--database-url URL] [--redis-url URL]
                         [--domain-limits] [--skip-bare] [--summary FILE]

Needs PostgreSQL and Redis (a scratch database and a Redis database of its own are taken for
the run and given back, see bench/benchkit.py) and Postfix's smtp-sink: $SMTP_SINK,
`smtp-sink` on PATH, or it is fetched with `apt-get download postfix` into
~/.cache/listmgr-bench. In one run it measures:
- ceiling: listmgr's own transport (the pipelined SmtpConnection and send_all the workers use)
  handing one pre-built message of the campaign, as the pipeline builds it, to the sink from
  --workers processes x --connections connections: the most the pipeline could reach;
- pipeline: --workers real `listmgr worker` processes sending a campaign to --recipients people
  (claim, consent re-check, render, tokens, headers, send, record), messages/s from the start
  of sending to the last recorded outcome, vs the ceiling (goal >= 0.6) and >= 3,000/s;
- no database (unless --skip-bare): the same processes and connections rendering
  every recipient's message with the campaign's renderer and sending it, with no ledger, no
  claim and no consent check: where the time between the ceiling and the pipeline goes;
- the promise's floor: the ceiling plus the least the ledger's promise costs. A worker that
  dies may leave at most one message per connection sent but not recorded, so a round's
  outcomes are committed before the next round is handed over: here one UPDATE of the round's
  rows in a copy of the delivery table (its columns and indexes) per round, committed as the
  ledger commits (send_synchronous_commit), nothing else. No pipeline that keeps the promise
  can beat it on this machine: the pipeline is printed as a ratio of it too; and (unless
  --skip-bare) rendering and sending with that recording: render + send + commit a round;
- DKIM: what all the machine's cores can sign per second (RSA-2048 and Ed25519, listmgr's
  DkimSigner on this message, one process per core), and the pipeline with DKIM on (RSA by
  default) vs that capacity (goal >= 0.5) and >= 1,000/s;
- with --domain-limits: recipients spread over several receiving domains, and the pipeline
  again with per-domain rate and concurrency limits that never bind (and the domain back-off
  on), vs the pipeline without them (goal: >= 0.9 of its throughput);
- worker RSS (peak, sampled) and, with --big N, the audience materialization time for N
  recipients (goal <= 5 s for 1,000,000) and the RSS after sending all N (goal: flat, <= 150 MB).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchkit
from sqlalchemy import func, select, text

from listmgr import boot, runtime
from listmgr.models import Campaign, Delivery
from listmgr.services import campaigns, lists

GOAL_RATIO, GOAL_RATE, GOAL_DKIM, GOAL_RSS_MB, GOAL_START_S = 0.6, 3000, 1000, 150, 5.0
GOAL_DKIM_SHARE = 0.5  # pipeline with DKIM vs what all cores can sign
GOAL_DOMAIN_LIMITS = 0.9  # throughput with limits that do not bind, vs none
# Receiving domains of the --domain-limits run, and limits far above what the sink takes.
DOMAINS = ("gmail.test", "outlook.test", "hotmail.test", "yahoo.test", "bench.test")
LOOSE_LIMITS = (
    '{"gmail.test": {"rate": 100000, "concurrency": 64}, '
    '"microsoft": {"rate": 100000, "concurrency": 64, '
    '"domains": ["outlook.test", "hotmail.test"]}, '
    '"yahoo.test": {"rate": 100000, "concurrency": 64}}'
)
SECRET = "bench-secret-key-0123456789abcdef"
PARAGRAPH = (
    "<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod "
    "tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis "
    "nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat.</p>\n"
)
BODY = (
    "<h1>Hello {{ subscriber.name|default('friend', true) }}</h1>\n"
    "<p>This month in {{ subscriber.fields.city|default('your town') }}:</p>\n"
    + PARAGRAPH * 8
    + '<p><a href="https://example.org/read">Read more</a></p>\n'
)


# -- the sink ----------------------------------------------------------------------------------
def smtp_sink_binary() -> tuple[str, dict[str, str]]:
    """Path to smtp-sink and the environment it needs (fetched once if missing)."""
    if os.environ.get("SMTP_SINK"):
        return os.environ["SMTP_SINK"], {}
    if shutil.which("smtp-sink"):
        return str(shutil.which("smtp-sink")), {}
    cache = Path.home() / ".cache" / "listmgr-bench"
    root = cache / "root"
    binary = root / "usr" / "sbin" / "smtp-sink"
    if not binary.exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["apt-get", "download", "postfix"], cwd=cache, check=True, stdout=subprocess.DEVNULL
        )
        deb = next(cache.glob("postfix_*.deb"))
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
    return str(binary), {"LD_LIBRARY_PATH": str(root / "usr" / "lib" / "postfix")}


def start_sink() -> tuple[subprocess.Popen[bytes], int]:
    binary, extra = smtp_sink_binary()
    port = benchkit.free_port()
    args = (
        [binary] + (["-u", "nobody"] if os.geteuid() == 0 else []) + [f"127.0.0.1:{port}", "1000"]
    )
    proc = subprocess.Popen(args, env=dict(os.environ, **extra))
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    raise SystemExit("smtp-sink did not start")


# -- the ceiling, the path without a database, DKIM capacity ----------------------------------
ENVELOPE = ("bounces@bench.test", "someone@bench.test")


def _timed_children(target: Any, args_of: list[tuple[Any, ...]]) -> tuple[float, int]:
    """Run target(*args, go, results) in one process each; every child gets ready (connects,
    renders its first message), waits for `go`, works and reports (items, end time). Returns
    (seconds from go to the last end, items)."""
    ctx = multiprocessing.get_context("fork")
    go, ready, results = ctx.Event(), ctx.Semaphore(0), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*a, ready, go, results)) for a in args_of]
    for p in procs:
        p.start()
    for _ in procs:
        if not ready.acquire(timeout=120):
            raise SystemExit("a measuring process did not get ready")
    started = time.time()
    go.set()
    done = [results.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    failed = [d for d in done if isinstance(d, str)]
    if failed:
        raise SystemExit("measuring process failed: " + failed[0])
    return max(end for _, end in done) - started, sum(n for n, _ in done)


def _child_runtime(settings: dict[str, Any]) -> runtime.Runtime:
    """The runtime of a measuring process (forked: the parent's connections are not ours)."""
    from listmgr import db as dbmod

    dbmod.dispose_engines()
    return runtime.build(settings, migrate=False)


def _ledger(rt: runtime.Runtime) -> Any:
    """A connection to FLOOR_LEDGER made as a sending job's ledger makes its own: each
    statement commits, without waiting for the disk unless send_synchronous_commit."""
    ledger = rt.db.engine.raw_connection()
    ledger.driver_connection.autocommit = True
    if not rt.settings.send_synchronous_commit:
        ledger.cursor().execute("SET synchronous_commit = off")
    return ledger


def _own_transport(
    port: int,
    connections: int,
    rounds: int,
    message: bytes,
    record: tuple[dict[str, Any], int, int] | None,
    ready: Any,
    go: Any,
    out: Any,
) -> None:
    """One worker process's share of the ceiling: listmgr's SmtpConnection over send_all,
    exactly as a sending job uses them, with a message built once. With `record` (settings,
    first row, rows), each round's rows of FLOOR_LEDGER are then marked sent, committed before
    the next round."""
    from listmgr.mail.transport import Transport, send_all

    try:
        transport = Transport(f"smtp://127.0.0.1:{port}")
        conns = [transport.connection() for _ in range(connections)]
        for c in conns:
            c.ensure_open()
        ledger = _ledger(_child_runtime(record[0])) if record else None
        first, rows = (record[1], record[2]) if record else (0, 1)
        ready.release()
        go.wait()
        sent = 0
        for n in range(rounds):
            results = send_all([(c, *ENVELOPE, message) for c in conns])
            sent += sum(r is None for r in results)
            if ledger is not None:
                ids = [first + (n * len(conns) + k) % rows + 1 for k in range(len(conns))]
                ledger.cursor().execute(RECORD_ROUND, (ids,))
        end = time.time()
        for c in conns:
            c.close()
        if ledger is not None:
            ledger.close()
        out.put((sent, end))
    except BaseException as exc:  # reported to the parent, which stops the run
        ready.release()
        out.put(f"{exc.__class__.__name__}: {exc}")


def ceiling(
    port: int,
    workers: int,
    connections: int,
    count: int,
    message: bytes,
    record: tuple[dict[str, Any], int] | None = None,
) -> float:
    """Messages/s of listmgr's own transport alone (same client, connections, processes); with
    `record` (settings, rows of FLOOR_LEDGER), plus one commit a round (the promise's floor)."""
    rounds = max(1, count // workers // connections)
    per = record[1] // workers if record else 0
    seconds, sent = _timed_children(
        _own_transport,
        [
            (port, connections, rounds, message, (record[0], w * per, per) if record else None)
            for w in range(workers)
        ],
    )
    return sent / seconds


def _render_and_send(
    settings: dict[str, Any],
    port: int,
    connections: int,
    first: int,
    count: int,
    total: int,
    record: bool,
    ready: Any,
    go: Any,
    out: Any,
) -> None:
    """One process: every recipient's message rendered by the campaign's renderer (tokens,
    headers, DKIM when configured) and sent as the workers do, without the database: `total`
    messages to the `count` people from `first` (in turn). With `record`, each round's rows of
    FLOOR_LEDGER are then marked sent and committed before the next round (the ledger's
    floor)."""
    from listmgr.mail.campaign import Recipient
    from listmgr.mail.transport import Transport, send_all
    from listmgr.models import Subscriber
    from listmgr.services import settings_store
    from listmgr.services.campaign_setup import renderer

    try:
        rt = _child_runtime(settings)
        with rt.db.session() as s:
            cid = s.scalar(select(Campaign.id).where(Campaign.name == "size"))
            r, list_ids = renderer(rt, s, s.get(Campaign, cid), settings_store.effective(rt))
            rows = s.execute(
                select(Subscriber.id, Subscriber.email, Subscriber.name, Subscriber.fields)
                .order_by(Subscriber.id)
                .offset(first)
                .limit(count)
            ).all()
        people = [
            Recipient(i, sid, email, name, list_ids[0], dict(fields or {}))
            for i, (sid, email, name, fields) in enumerate(rows, start=first + 1)
        ]
        transport = Transport(f"smtp://127.0.0.1:{port}")
        conns = [transport.connection() for _ in range(connections)]
        for c in conns:
            c.ensure_open()
        ledger = _ledger(rt) if record else None
        ready.release()
        go.wait()
        sent = 0
        for i in range(0, total - len(conns) + 1, len(conns)):
            round_ = [people[(i + k) % len(people)] for k in range(len(conns))]
            outs = [r.message(p) for p in round_]
            results = send_all(
                [(c, o.envelope_from, o.rcpt, o.data) for c, o in zip(conns, outs, strict=True)]
            )
            sent += sum(x is None for x in results)
            if ledger is not None:
                ledger.cursor().execute(RECORD_ROUND, ([p.delivery_id for p in round_],))
        end = time.time()
        for c in conns:
            c.close()
        if ledger is not None:
            ledger.close()
        out.put((sent, end))
    except BaseException as exc:
        ready.release()
        out.put(f"{exc.__class__.__name__}: {exc}")


def no_database(
    settings: dict[str, Any],
    port: int,
    workers: int,
    connections: int,
    people: int,
    count: int,
    record: bool = False,
) -> float:
    """Messages/s of rendering and sending alone (the pipeline minus the database): `count`
    messages to the `people` subscribers; with `record`, plus one commit a round (the
    ledger's floor: make_floor_ledger first)."""
    per = people // workers
    seconds, sent = _timed_children(
        _render_and_send,
        [
            (settings, port, connections, w * per, per, count // workers, record)
            for w in range(workers)
        ],
    )
    return sent / seconds


# The least a round's outcomes cost in the ledger: one statement and its commit.
FLOOR_LEDGER = "bench_floor_ledger"
RECORD_ROUND = (
    f"UPDATE {FLOOR_LEDGER} SET status = 'sent', attempts = attempts + 1, sent_at = now(), "
    "attempted_at = now(), smtp_server = 'sink', claimed_by = '', lease_until = NULL "
    "WHERE id = ANY(%s)"
)


def make_floor_ledger(rt: runtime.Runtime, rows: int) -> None:
    """A copy of the delivery table (columns, defaults, indexes) with `rows` claimed rows whose
    ids are the recipients' numbers in the runs without the database."""
    with rt.db.engine.begin() as c:
        c.execute(text(f"DROP TABLE IF EXISTS {FLOOR_LEDGER}"))
        c.execute(text(f"CREATE TABLE {FLOOR_LEDGER} (LIKE delivery INCLUDING ALL)"))
        c.execute(
            text(
                f"INSERT INTO {FLOOR_LEDGER} (id, campaign_id, subscriber_id, list_id, status, "
                "attempts, claimed_by, in_flight, possibly_duplicate, smtp_server, error, "
                "bounced, complained, unsubscribed) SELECT g, 1, g, 1, 'claimed', 0, 'w:1', "
                "false, false, '', '', false, false, false FROM generate_series(1, :n) g"
            ),
            {"n": rows},
        )
        c.execute(text(f"ANALYZE {FLOOR_LEDGER}"))


def _sign(
    pem: bytes,
    headers: list[tuple[str, str]],
    body: bytes,
    seconds: float,
    ready: Any,
    go: Any,
    out: Any,
) -> None:
    from listmgr.mail.dkim import DkimSigner, load_key

    try:
        signer = DkimSigner(load_key("bench.test", "b1", pem))
        signer.header(headers, body)
        ready.release()
        go.wait()
        n, stop = 0, time.perf_counter() + seconds
        while time.perf_counter() < stop:
            signer.header(headers, body)
            n += 1
        out.put((n, time.time()))
    except BaseException as exc:
        ready.release()
        out.put(f"{exc.__class__.__name__}: {exc}")


def split_message(data: bytes) -> tuple[list[tuple[str, str]], bytes]:
    """The (name, value) headers and the body of an assembled message."""
    head, _, body = data.partition(b"\r\n\r\n")
    headers: list[tuple[str, str]] = []
    for line in head.decode("ascii").split("\r\n"):
        if line[:1] in (" ", "\t") and headers:
            headers[-1] = (headers[-1][0], headers[-1][1] + "\r\n" + line)
        else:
            name, _, value = line.partition(": ")
            headers.append((name, value))
    return headers, body


def dkim_capacity(kind: str, folder: Path, message: bytes, seconds: float = 2.0) -> float:
    """DKIM signatures per second of this message over all cores (one process per core)."""
    headers, body = split_message(message)
    pem = dkim_key(kind, folder).read_bytes()
    cores = os.cpu_count() or 1
    took, n = _timed_children(_sign, [(pem, headers, body, seconds)] * cores)
    return n / took


# -- database ----------------------------------------------------------------------------------
def populate(
    rt: runtime.Runtime, list_id: int, start: int, count: int, domains: tuple[str, ...]
) -> None:
    """count confirmed subscribers (COPY), numbered from start, at these domains in turn."""
    raw = rt.db.engine.raw_connection()
    try:
        cur = raw.driver_connection.cursor()
        with cur.copy(
            "COPY subscriber (email, email_hash, name, fields, source, "
            "consent_profiling, consent_tracking, soft_bounces, created_at, "
            "updated_at) FROM STDIN"
        ) as copy:
            for i in range(start, start + count):
                email = f"r{i:07d}@{domains[i % len(domains)]}"
                copy.write_row(
                    (
                        email,
                        rt.email_hash(email),
                        f"Reader {i}",
                        '{"city": "Berlin"}' if i % 3 else "{}",
                        "bench",
                        False,
                        False,
                        0,
                        "2025-01-01",
                        "2025-01-01",
                    )
                )
        cur.execute(
            "INSERT INTO membership (subscriber_id, list_id, status, opt_in_level, "
            "source, created_at, confirmed_at, updated_at) SELECT id, %s, "
            "'confirmed', '', 'bench', now(), now(), now() FROM subscriber "
            "WHERE email >= %s AND email < %s",
            (list_id, f"r{start:07d}@", f"r{start + count:07d}@"),
        )
        raw.driver_connection.commit()
        cur.execute("ANALYZE subscriber")
        cur.execute("ANALYZE membership")
        raw.driver_connection.commit()
    finally:
        raw.close()


# -- workers -----------------------------------------------------------------------------------
def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


class Workers:
    def __init__(self, env: dict[str, str], count: int, log_dir: Path) -> None:
        self.procs = []
        self.peak = 0.0
        self._stop = threading.Event()
        for i in range(count):
            log = (log_dir / f"worker{i}.log").open("wb")
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "listmgr", "worker", "--threads", "8"],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        for i, _ in enumerate(self.procs):
            path = log_dir / f"worker{i}.log"
            deadline = time.monotonic() + 300  # a loaded machine starts them slowly
            while b"worker running" not in path.read_bytes():
                if time.monotonic() > deadline or self.procs[i].poll() is not None:
                    self.stop()
                    raise SystemExit(f"worker {i} did not start: {path.read_text()[-2000:]}")
                time.sleep(0.05)
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.25):
            self.peak = max([self.peak] + [rss_mb(p.pid) for p in self.procs])

    def rss(self) -> list[float]:
        return [rss_mb(p.pid) for p in self.procs]

    def cpu(self) -> float:
        """CPU seconds the worker processes have used so far."""
        return sum(cpu_seconds(p.pid) for p in self.procs)

    def stop(self) -> None:
        self._stop.set()
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


@dataclass(frozen=True)
class Run:
    audience: int
    start_s: float
    seconds: float
    rate: float
    cpu_us: float  # worker CPU per message
    peak_mb: float  # worker RSS peak


def measured_send(
    rt: runtime.Runtime, env: dict[str, str], count: int, log_dir: Path, name: str
) -> Run:
    """One campaign sent by `count` worker processes started for it (and stopped after)."""
    workers = Workers(env, count, log_dir)
    try:
        cpu = workers.cpu()
        audience, start_s, seconds, rate = send_campaign(rt, name)
        cpu = (workers.cpu() - cpu) / max(1, audience)
        return Run(audience, start_s, seconds, rate, cpu * 1e6, workers.peak)
    finally:
        workers.stop()


def send_campaign(rt: runtime.Runtime, name: str) -> tuple[int, float, float, float]:
    """(audience, materialization s, sending s, messages/s)."""
    cid = campaigns.create(
        rt,
        name=name,
        subject="News for {{ subscriber.name }}",
        lists=["bench"],
        body=BODY,
        actor="bench",
    )
    t0 = time.perf_counter()
    audience = campaigns.start(rt, cid, actor="bench")
    t1 = time.perf_counter()
    print(f"  {name}: audience of {audience:,} materialized in {t1 - t0:.2f} s", flush=True)
    while True:
        with rt.db.session() as s:
            status = s.scalar(select(Campaign.status).where(Campaign.id == cid))
        if status != "sending":
            break
        time.sleep(0.2)
    with rt.db.session() as s:
        first, last, sent = s.execute(
            select(
                func.min(Delivery.attempted_at), func.max(Delivery.attempted_at), func.count()
            ).where(Delivery.campaign_id == cid, Delivery.status == "sent")
        ).one()
    seconds = max((last - first).total_seconds(), 1e-3) if sent > 1 else time.perf_counter() - t1
    if sent != audience:
        print(f"  warning: {sent} of {audience} sent (status {status})")
    return audience, t1 - t0, seconds, sent / seconds


def sample_message(rt: runtime.Runtime) -> bytes:
    """One message exactly as the pipeline builds it (for the ceiling's pre-built message)."""
    from listmgr.mail.campaign import Recipient
    from listmgr.models import Subscriber
    from listmgr.services import settings_store
    from listmgr.services.campaign_setup import renderer

    cid = campaigns.create(
        rt, name="size", subject="News for {{ subscriber.name }}", lists=["bench"], body=BODY
    )
    with rt.db.session() as s:
        r, list_ids = renderer(rt, s, s.get(Campaign, cid), settings_store.effective(rt))
        sub = s.scalar(select(Subscriber).limit(1))
        return r.message(
            Recipient(1, sub.id, sub.email, sub.name, list_ids[0], dict(sub.fields or {}), ())
        ).data


def beside_ceiling(
    summary: benchkit.Summary, key: str, text: str, rate: float, ceil: float
) -> None:
    """Print and keep a rate with its share of the ceiling."""
    print(f"{text}: {rate:,.0f} messages/s = {rate / ceil:.2f} of the ceiling", flush=True)
    summary.add(key, rate, "msg/s")
    summary.add(f"{key} / ceiling", rate / ceil, "x")


def dkim_key(kind: str, folder: Path) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    key = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if kind == "rsa"
        else ed25519.Ed25519PrivateKey.generate()
    )
    path = folder / f"dkim-{kind}.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--big", type=int, default=0, help="also start and send to N (1000000)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--dkim", default="rsa", choices=["rsa", "ed25519", "none"])
    parser.add_argument("--database-url", default=benchkit.PG_URL, help="the server to use")
    parser.add_argument(
        "--domain-limits",
        action="store_true",
        help="spread recipients over domains; measure per-domain limits that do not bind",
    )
    parser.add_argument(
        "--skip-bare",
        action="store_true",
        help="leave out rendering and sending without the database",
    )
    benchkit.add_arguments(parser, redis=True)
    args = parser.parse_args()
    benchkit.exit_on_sigterm()
    summary = benchkit.Summary("send")
    domains = DOMAINS if args.domain_limits else ("bench.test",)
    folder = Path(tempfile.mkdtemp(prefix="lmbench-send-"))
    sink, port = start_sink()
    scratch = benchkit.ScratchDatabase("send", args.database_url)
    space = benchkit.RedisSpace.claim("send", args.redis_url)
    settings = {
        "database_url": scratch.url,
        "broker_url": space.url,
        "broker_namespace": space.namespace,
        "secret_key": SECRET,
        "smtp_url": f"smtp://127.0.0.1:{port}",
        "mail_domain": "bench.test",
        "base_url": "https://lists.bench.test",
        "send_connections": args.connections,
        "var_dir": str(folder),
    }
    env = dict(os.environ, **{f"LISTMGR_{k.upper()}": str(v) for k, v in settings.items()})
    rt = runtime.build(settings, migrate=True)
    boot.attach_queue(rt)
    try:
        print(f"database {scratch.name}, Redis {space.url} namespace {space.namespace}")
        list_id = lists.create(rt, slug="bench", name="Bench", postal_address="1 Bench Street")
        t = time.perf_counter()
        populate(rt, list_id, 0, args.recipients, domains)
        print(
            f"populated {args.recipients:,} subscribers in {time.perf_counter() - t:.1f} s",
            flush=True,
        )
        prebuilt = sample_message(rt)
        shape = f"{args.workers} processes x {args.connections} connections"
        # At least 30,000 messages for the figures without the database: long enough to hold.
        count = min(max(args.recipients, 30_000), 60_000)
        ceil = ceiling(port, args.workers, args.connections, count, prebuilt)
        print(
            f"ceiling: listmgr's own transport (pipelined SmtpConnection, send_all), {shape}, "
            f"one pre-built {len(prebuilt):,}-byte message: {ceil:,.0f} messages/s",
            flush=True,
        )
        summary.add("ceiling: own transport, pre-built message", ceil, "msg/s")
        make_floor_ledger(rt, args.recipients)
        promise = ceiling(
            port, args.workers, args.connections, count, prebuilt, (settings, args.recipients)
        )
        beside_ceiling(
            summary,
            "promise floor: transport + commit a round",
            "the promise's floor: the same, plus one UPDATE of the round's rows in a copy of the "
            "ledger, committed before the next round (a dead worker leaves at most one message a "
            "connection unrecorded; the most any pipeline keeping that promise could reach here)",
            promise,
            ceil,
        )

        if not args.skip_bare:
            bare = no_database(
                settings, port, args.workers, args.connections, args.recipients, count
            )
            beside_ceiling(
                summary,
                "no database: render + send",
                f"no database: render + send every recipient's message, {shape}, no ledger",
                bare,
                ceil,
            )
            floor = no_database(
                settings, port, args.workers, args.connections, args.recipients, count, True
            )
            beside_ceiling(
                summary,
                "render + send + commit a round",
                f"render + send + commit a round: the same, recording each round as the "
                f"promise's floor does, {shape}",
                floor,
                ceil,
            )

        plain = measured_send(rt, env, args.workers, folder, "plain")
        rate = plain.rate
        print(
            f"pipeline: {plain.audience:,} recipients in {plain.seconds:.1f} s = {rate:,.0f} "
            f"messages/s; {rate / ceil:.2f} of the ceiling (goal >= {GOAL_RATIO}); "
            f"{rate / GOAL_RATE:.2f} of {GOAL_RATE:,}/s; start {plain.start_s:.2f} s; "
            f"worker CPU {plain.cpu_us:.0f} us/message; worker RSS peak {plain.peak_mb:.0f} MB",
            flush=True,
        )
        summary.add("pipeline", rate, "msg/s", at_least=GOAL_RATE)
        summary.add("pipeline / ceiling", rate / ceil, "x", at_least=GOAL_RATIO)
        print(
            f"pipeline / the promise's floor: {rate / promise:.2f}"
            + (
                f"; pipeline / render + send + commit a round: {rate / floor:.2f}"
                if not args.skip_bare
                else ""
            ),
            flush=True,
        )
        summary.add("pipeline / promise floor", rate / promise, "x")
        if not args.skip_bare:
            summary.add("pipeline / render + send + commit a round", rate / floor, "x")
        summary.add("worker RSS peak", plain.peak_mb, "MB", at_most=GOAL_RSS_MB)

        if args.domain_limits:
            limited_env = dict(
                env,
                LISTMGR_DOMAIN_LIMITS=os.environ.get("LISTMGR_BENCH_DOMAIN_LIMITS", LOOSE_LIMITS),
                LISTMGR_DOMAIN_BACKOFF_SECONDS="60",
            )
            limited = measured_send(rt, limited_env, args.workers, folder, "domain-limits")
            print(
                f"pipeline with per-domain limits that do not bind ({len(domains)} domains): "
                f"{limited.rate:,.0f} messages/s vs {rate:,.0f} without; ratio "
                f"{limited.rate / rate:.2f} (goal >= {GOAL_DOMAIN_LIMITS}); worker CPU "
                f"{limited.cpu_us:.0f} us/message"
            )
            summary.add(
                "domain limits (not binding) / none",
                limited.rate / rate,
                "x",
                at_least=GOAL_DOMAIN_LIMITS,
            )

        if args.dkim != "none":
            cores = os.cpu_count() or 1
            capacity = {}
            for kind, label in (("rsa", "RSA-2048"), ("ed25519", "Ed25519")):
                capacity[kind] = dkim_capacity(kind, folder, prebuilt)
                print(
                    f"DKIM capacity {label}: {capacity[kind]:,.0f} signatures/s on all {cores} "
                    f"cores (DkimSigner on this message, one process per core)",
                    flush=True,
                )
                summary.add(f"DKIM {label} capacity, {cores} cores", capacity[kind], "sig/s")
            key = dkim_key(args.dkim, folder)
            dkim_env = dict(
                env,
                LISTMGR_DKIM_DOMAIN="bench.test",
                LISTMGR_DKIM_SELECTOR="b1",
                LISTMGR_DKIM_PRIVATE_KEY_PATH=str(key),
            )
            signed = measured_send(rt, dkim_env, args.workers, folder, f"dkim-{args.dkim}")
            label = "RSA-2048" if args.dkim == "rsa" else "Ed25519"
            share = signed.rate / capacity[args.dkim]
            print(
                f"pipeline with DKIM {label}: {signed.rate:,.0f} messages/s = {share:.2f} of "
                f"what the cores can sign (goal >= {GOAL_DKIM_SHARE}); "
                f"{signed.rate / GOAL_DKIM:.2f} of {GOAL_DKIM:,}/s; worker CPU "
                f"{signed.cpu_us:.0f} us/message; worker RSS peak {signed.peak_mb:.0f} MB"
            )
            summary.add(f"pipeline with DKIM {label}", signed.rate, "msg/s", at_least=GOAL_DKIM)
            summary.add(
                f"pipeline DKIM {label} / signing capacity",
                share,
                "x",
                at_least=GOAL_DKIM_SHARE,
            )

        if args.big > args.recipients:
            t = time.perf_counter()
            populate(rt, list_id, args.recipients, args.big - args.recipients, domains)
            print(f"populated up to {args.big:,} subscribers in {time.perf_counter() - t:.1f} s")
            big = measured_send(rt, env, args.workers, folder, "big")
            print(
                f"start (audience materialization) of {big.audience:,}: {big.start_s:.2f} s; "
                f"{GOAL_START_S / big.start_s:.2f}x the goal of <= {GOAL_START_S:.0f} s"
            )
            print(
                f"pipeline: {big.audience:,} recipients at {big.rate:,.0f} messages/s; worker RSS "
                f"peak {big.peak_mb:.0f} MB at {args.big:,} vs {plain.peak_mb:.0f} MB at "
                f"{args.recipients:,} (goal: flat, <= {GOAL_RSS_MB} MB)"
            )
            summary.add(f"start of {big.audience:,}", big.start_s, "s", at_most=GOAL_START_S)
            summary.add(f"worker RSS peak at {args.big:,}", big.peak_mb, "MB", at_most=GOAL_RSS_MB)
        summary.write(args.summary)
    finally:
        benchkit.stop(sink, 10)
        try:
            rt.queue.close()
        finally:
            from listmgr import db as dbmod

            dbmod.dispose_engines()
            scratch.drop()
            space.release()
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
