"""Benchmark: the campaign send pipeline against a fast SMTP sink, beside the transport ceiling.

    python bench/send.py [--recipients 100000] [--big 1000000] [--workers 2] [--connections 4]
                         [--dkim rsa|ed25519|none] [--database-url URL] [--broker-url URL]
                         [--domain-limits]

Needs PostgreSQL and Redis (defaults: postgresql+psycopg://postgres@127.0.0.1:5432/test and
redis://127.0.0.1:6379/0; a scratch database is created and dropped) and Postfix's smtp-sink:
$SMTP_SINK, `smtp-sink` on PATH, or it is fetched with `apt-get download postfix` into
~/.cache/listmgr-bench. In one run it measures:
- ceiling: a bare smtplib loop sending one pre-built message of the campaign's size from
  --workers processes x --connections connections (the transport alone);
- pipeline: --workers real `listmgr worker` processes sending a campaign to --recipients people
  (claim, consent re-check, render, tokens, headers, send, record), messages/s from the start
  of sending to the last recorded outcome, vs the ceiling (goal >= 50%) and >= 3,000/s;
- the same with DKIM (RSA-2048 via OpenSSL by default; goal >= 1,000/s);
- with --domain-limits: recipients spread over several receiving domains, and the pipeline
  again with per-domain rate and concurrency limits that never bind (and the domain back-off
  on), vs the pipeline without them (goal: >= 0.9 of its throughput);
- worker RSS (peak, sampled) and, with --big N, the audience materialization time for N
  recipients (goal <= 10 s for 1,000,000) and the RSS after sending all N (goal: flat, <= 150 MB).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from listmgr import boot, runtime
from listmgr.models import Campaign, Delivery
from listmgr.services import campaigns, lists

GOAL_RATIO, GOAL_RATE, GOAL_DKIM, GOAL_RSS_MB, GOAL_START_S = 0.5, 3000, 1000, 150, 10.0
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_sink() -> tuple[subprocess.Popen[bytes], int]:
    binary, extra = smtp_sink_binary()
    port = free_port()
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


# -- the ceiling -------------------------------------------------------------------------------
def _bare(port: int, connections: int, count: int, message: bytes, out: object) -> None:
    def one(n: int) -> None:
        smtp = smtplib.SMTP("127.0.0.1", port)
        for _ in range(n):
            smtp.sendmail("bounces@bench.test", ["someone@bench.test"], message)
        smtp.quit()

    per = count // connections
    threads = [threading.Thread(target=one, args=(per,)) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def ceiling(
    port: int, workers: int, connections: int, count: int, message: bytes
) -> tuple[float, float]:
    """(messages/s, client CPU s per message) of a bare smtplib loop."""
    procs = [
        multiprocessing.Process(
            target=_bare, args=(port, connections, count // workers, message, None)
        )
        for _ in range(workers)
    ]
    started = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    sent = count // workers // connections * connections * workers
    cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / sent
    return sent / (time.perf_counter() - started), cpu


# -- database ----------------------------------------------------------------------------------
def scratch_database(url: str) -> tuple[str, object]:
    base = make_url(url)
    name = f"lmbench_send_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    return base.set(database=name).render_as_string(hide_password=False), admin


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
            deadline = time.monotonic() + 60
            while b"worker running" not in path.read_bytes():
                if time.monotonic() > deadline:
                    raise SystemExit(path.read_text())
                time.sleep(0.05)
        self.peak = 0.0
        self._stop = threading.Event()
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
    parser.add_argument(
        "--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--domain-limits",
        action="store_true",
        help="spread recipients over domains; measure per-domain limits that do not bind",
    )
    args = parser.parse_args()
    domains = DOMAINS if args.domain_limits else ("bench.test",)
    folder = Path(tempfile.mkdtemp(prefix="lmbench-send-"))
    sink, port = start_sink()
    url, admin = scratch_database(args.database_url)
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    settings = {
        "database_url": url,
        "broker_url": args.broker_url,
        "broker_namespace": namespace,
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
        list_id = lists.create(rt, slug="bench", name="Bench", postal_address="1 Bench Street")
        t = time.perf_counter()
        populate(rt, list_id, 0, args.recipients, domains)
        print(
            f"populated {args.recipients:,} subscribers in {time.perf_counter() - t:.1f} s",
            flush=True,
        )
        prebuilt = sample_message(rt)
        count = min(args.recipients, 60_000)
        ceil, ceil_cpu = ceiling(port, args.workers, args.connections, count, prebuilt)
        print(
            f"ceiling: bare smtplib, {args.workers} processes x {args.connections} "
            f"connections, {len(prebuilt):,}-byte message: {ceil:,.0f} messages/s "
            f"(client CPU {ceil_cpu * 1e6:.0f} us/message)"
        )

        plain = measured_send(rt, env, args.workers, folder, "plain")
        rate = plain.rate
        print(
            f"pipeline: {plain.audience:,} recipients in {plain.seconds:.1f} s = {rate:,.0f} "
            f"messages/s; {rate / ceil:.2f} of the ceiling (goal >= {GOAL_RATIO}); "
            f"{rate / GOAL_RATE:.2f} of {GOAL_RATE:,}/s; start {plain.start_s:.2f} s; "
            f"worker CPU {plain.cpu_us:.0f} us/message; worker RSS peak {plain.peak_mb:.0f} MB"
        )

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

        if args.dkim != "none":
            key = dkim_key(args.dkim, folder)
            dkim_env = dict(
                env,
                LISTMGR_DKIM_DOMAIN="bench.test",
                LISTMGR_DKIM_SELECTOR="b1",
                LISTMGR_DKIM_PRIVATE_KEY_PATH=str(key),
            )
            signed = measured_send(rt, dkim_env, args.workers, folder, f"dkim-{args.dkim}")
            label = "RSA-2048" if args.dkim == "rsa" else "Ed25519"
            print(
                f"pipeline with DKIM {label}: {signed.rate:,.0f} messages/s; "
                f"{signed.rate / GOAL_DKIM:.2f} of {GOAL_DKIM:,}/s; worker CPU "
                f"{signed.cpu_us:.0f} us/message; worker RSS peak {signed.peak_mb:.0f} MB"
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
    finally:
        sink.terminate()
        rt.queue.close()
        from listmgr import db as dbmod

        dbmod.dispose_engines()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
