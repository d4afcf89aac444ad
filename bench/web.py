"""Web benchmark: gunicorn (2 workers) on PostgreSQL, driven by wrk on loopback.

    python bench/web.py [--subscribers 1000000] [--seconds 15] [--connections 16]

Seeds a fresh PostgreSQL database (COPY) with N confirmed subscribers on one list, starts
`listmgr web --workers 2`, signs in an owner, then measures with wrk:
  - one-click unsubscribe  POST /u/TOKEN (List-Unsubscribe=One-Click), random subscribers
  - subscribe              POST /subscribe/SLUG with new addresses (confirmation mail queued)
  - subscribers page       GET /admin/subscribers (first page) and ?q=PREFIX (email prefix)
  - tracked click          GET /t/REF/TOKEN of a sent campaign (recorded, then a redirect)
  - open pixel             GET /o/TOKEN.gif
Half the subscribers allow tracking; clicks and opens come from them (each one recorded).
Prints requests/s, p50/p95/p99 latency and the ratio of the page's p95 to the 200 ms goal.
Needs: wrk (apt-get install wrk), PostgreSQL and Redis on 127.0.0.1 (see RECIPES).
"""

from __future__ import annotations

import argparse
import http.cookiejar
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PG = os.environ.get(
    "LISTMGR_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS = os.environ.get("LISTMGR_BENCH_BROKER_URL", "redis://127.0.0.1:6379/0")
SECRET = "bench-secret-key-0123456789abcdef"
PASSWORD = "bench password 123"
GOAL_P95_MS = 200.0

# wrk scripts: each request picks its input at random; done() prints the percentiles we report.
DONE = """
threads = {}
setup = function(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end
init = function(args) statuses = {} end
response = function(status, headers, body)
  if status >= STATUS_FLOOR then statuses[status] = (statuses[status] or 0) + 1 end
end
done = function(summary, latency, requests)
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses") or {}) do
      io.write(string.format("STATUS %d %d\\n", code, n))
    end
  end
  io.write(string.format("RESULT rps=%.1f p50=%.2f p95=%.2f p99=%.2f errors=%d non2xx=%d\\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout, summary.errors.status))
end
"""
UNSUBSCRIBE = """
tokens = {TOKENS}
request = function()
  local t = tokens[math.random(#tokens)]
  return wrk.format("POST", "/u/" .. t,
    {["Content-Type"] = "application/x-www-form-urlencoded"}, "List-Unsubscribe=One-Click")
end
""" + DONE.replace("STATUS_FLOOR", "300")
SUBSCRIBE = """
counter = 0
local run = os.time()
request = function()
  counter = counter + 1
  local body = "email=new" .. run .. "t" .. tid .. "n" .. counter ..
    "%40example.org&name=Bench+Person"
  return wrk.format("POST", "/subscribe/SLUG",
    {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
end
""" + DONE.replace("STATUS_FLOOR", "300")
CLICK = """
paths = {PATHS}
request = function()
  return wrk.format("GET", paths[math.random(#paths)],
    {["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0"})
end
""" + DONE.replace("STATUS_FLOOR", "400")  # a click answers 302
PAGE = """
paths = {PATHS}
request = function()
  return wrk.format("GET", paths[math.random(#paths)], {["Cookie"] = "COOKIE"})
end
""" + DONE.replace("STATUS_FLOOR", "300")


def log(msg: str) -> None:
    print(msg, flush=True)


def create_database() -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    url = make_url(PG)
    name = f"lmbench_web_{uuid.uuid4().hex[:6]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def drop_database(db_url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    url = make_url(db_url)
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
    admin.dispose()


def seed(db_url: str, n: int) -> tuple[list[str], str, list[str], list[str]]:
    """N confirmed subscribers on list 'news' (COPY), the even ones allowing tracking, and a
    sent campaign with one link; returns unsubscribe tokens, the slug, click and open paths."""
    import psycopg

    from listmgr import runtime
    from listmgr.services import accounts, lists

    rt = runtime.build({"database_url": db_url, "secret_key": SECRET}, migrate=True)
    lists.create(rt, slug="news", name="News", opt_in="double", postal_address="1 Bench Street")
    accounts.create_user(rt, email="owner@bench.example.org", password=PASSWORD, role="owner")
    dsn = db_url.replace("postgresql+psycopg://", "postgresql://")
    t0 = time.perf_counter()
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY subscriber (id, email, email_hash, name, fields, source, "
            "consent_profiling, consent_tracking, soft_bounces, created_at, "
            "updated_at) FROM STDIN"
        ) as copy:
            for i in range(1, n + 1):
                email = f"user{i:07d}@example{i % 97}.org"
                copy.write_row(
                    (
                        i,
                        email,
                        f"{i:064x}",
                        f"Person {i:07d}",
                        "{}",
                        "bench",
                        False,
                        i % 2 == 0,
                        0,
                        "2024-01-01",
                        "2024-01-01",
                    )
                )
        with cur.copy(
            "COPY membership (subscriber_id, list_id, status, opt_in_level, source, "
            "created_at, confirmed_at, updated_at) FROM STDIN"
        ) as copy:
            for i in range(1, n + 1):
                copy.write_row(
                    (i, 1, "confirmed", "", "bench", "2024-01-01", "2024-01-01", "2024-01-01")
                )
        cur.execute("SELECT setval('subscriber_id_seq', %s)", (n,))
        cur.execute(
            "INSERT INTO campaign (name, subject, preheader, from_name, from_email, reply_to, "
            "content_format, body, layout, text, lists, status, status_reason, audience, "
            "started_at, finished_at, created_at, updated_at, created_by) VALUES ('Bench', "
            "'Bench', '', '', '', '', 'html', '', '', '', '[\"news\"]', 'sent', '', %s, "
            "'2024-01-02', '2024-01-02', '2024-01-01', '2024-01-01', 'bench') RETURNING id",
            (n,),
        )
        cid = cur.fetchone()[0]
        cur.execute(
            "INSERT INTO campaign_link (campaign_id, url) VALUES (%s, %s) RETURNING id",
            (cid, "https://example.org/offer?from=newsletter"),
        )
        link = cur.fetchone()[0]
        trackers = random.Random(8).sample(range(2, n + 1, 2), min(5000, n // 2))
        with cur.copy(
            "COPY delivery (campaign_id, subscriber_id, list_id, status, attempts, claimed_by, "
            "in_flight, possibly_duplicate, sent_at, smtp_server, error, bounced, complained, "
            "unsubscribed) FROM STDIN"
        ) as copy:
            for i in trackers:
                copy.write_row(
                    (
                        cid,
                        i,
                        1,
                        "sent",
                        1,
                        "",
                        False,
                        False,
                        "2024-01-02",
                        "",
                        "",
                        False,
                        False,
                        False,
                    )
                )
        conn.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")  # what a database that has lived a while looks like
        conn.execute("CHECKPOINT")  # the seed's writes reach the disk before we measure
    log(f"seeded {n:,} subscribers in {time.perf_counter() - t0:.1f} s")
    sample = random.Random(7).sample(range(1, n + 1), min(5000, n))
    tokens = [rt.tokens.unsubscribe(i, 1) for i in sample]
    ref = rt.tokens.campaign_ref(cid)
    clicks = [f"/t/{ref}/{rt.tokens.click(cid, i, link)}" for i in trackers]
    opens = [f"/o/{rt.tokens.open(cid, i)}.gif" for i in trackers]
    runtime.set_current(None)
    return tokens, "news", clicks, opens


def start_gunicorn(
    db_url: str, port: int, workers: int, config_dir: Path, errors: Path
) -> subprocess.Popen:
    env = dict(
        os.environ,
        LISTMGR_DATABASE_URL=db_url,
        LISTMGR_SECRET_KEY=SECRET,
        LISTMGR_BROKER_URL=REDIS,
        LISTMGR_BROKER_NAMESPACE=f"bench{uuid.uuid4().hex[:6]}",
        LISTMGR_BASE_URL=f"http://127.0.0.1:{port}",
        LISTMGR_CONFIG_DIR=str(config_dir),
        LISTMGR_SMTP_URL="smtp://127.0.0.1:9",
        LISTMGR_RATELIMIT_ENABLED="false",  # measure the application, not the limiter
    )
    cmd = [
        sys.executable,
        "-c",
        "from listmgr.cli import main; main()",
        "web",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=errors.open("wb"), cwd=str(ROOT)
    )
    deadline = time.monotonic() + 180  # a loaded machine starts it slowly
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return proc
        except OSError:
            if proc.poll() is not None:
                raise SystemExit("gunicorn died: " + errors.read_text()[-2000:]) from None
            time.sleep(0.3)
    proc.terminate()
    raise SystemExit("gunicorn did not come up")


def sign_in(base: str) -> str:
    """A session cookie for the owner, through the real sign-in form."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{base}/admin/login").read().decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    data = urllib.parse.urlencode(
        {"email": "owner@bench.example.org", "password": PASSWORD, "csrf_token": token}
    ).encode()
    opener.open(f"{base}/admin/login", data=data).read()
    cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
    check = urllib.request.Request(f"{base}/admin/subscribers", headers={"Cookie": cookie})
    assert b"subscriber-table" in urllib.request.urlopen(check).read(), "sign-in failed"
    return cookie


def engagement_rows(db_url: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        return dict(conn.execute("SELECT kind, count(*) FROM engagement GROUP BY kind").fetchall())


def checkpoint(db_url: str) -> None:
    """Start each run without the previous run's dirty pages still to write."""
    import psycopg

    with psycopg.connect(
        db_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
    ) as conn:
        conn.execute("CHECKPOINT")


def wrk(base: str, script: str, seconds: int, connections: int, threads: int = 2) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script)
        path = fh.name
    try:
        out = subprocess.run(
            [
                "wrk",
                f"-t{threads}",
                f"-c{connections}",
                f"-d{seconds}s",
                "--timeout",
                "10s",
                "-s",
                path,
                base,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(path)
    found = re.search(
        r"RESULT rps=([\d.]+) p50=([\d.]+) p95=([\d.]+) p99=([\d.]+) "
        r"errors=(\d+) non2xx=(\d+)",
        out,
    )
    if not found:
        raise SystemExit("wrk gave no result:\n" + out)
    keys = ("rps", "p50", "p95", "p99", "errors", "non2xx")
    result: dict = {k: float(v) for k, v in zip(keys, found.groups(), strict=False)}
    codes: dict[str, int] = {}
    for code, n in re.findall(r"STATUS (\d+) (\d+)", out):
        codes[code] = codes.get(code, 0) + int(n)
    result["codes"] = codes
    return result


def line(name: str, r: dict) -> str:
    return (
        f"{name:<34} {r['rps']:>8.0f} req/s   p50 {r['p50']:7.1f} ms   p95 {r['p95']:7.1f} ms"
        f"   p99 {r['p99']:7.1f} ms   errors {int(r['errors'])} non-2xx {int(r['non2xx'])}"
        + (f" {r['codes']}" if r["codes"] else "")
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--subscribers", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--page-connections", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install -y wrk")
    db_url = create_database()
    config_dir = Path(tempfile.mkdtemp())
    proc = None
    try:
        tokens, slug, clicks, opens = seed(db_url, args.subscribers)
        port = 18000 + random.randrange(1000)
        errors = config_dir / "gunicorn.err"
        proc = start_gunicorn(db_url, port, args.workers, config_dir, errors)
        base = f"http://127.0.0.1:{port}"
        cookie = sign_in(base)
        log(f"gunicorn with {args.workers} workers on {base}; wrk {args.seconds} s per run")
        prefixes = [
            f"/admin/subscribers?q=user{random.randrange(args.subscribers // 100):05d}"
            for _ in range(200)
        ]
        quoted = ",".join(f'"{t}"' for t in tokens)
        runs = [
            (
                "subscribers page, first page",
                PAGE.replace("PATHS", '"/admin/subscribers"').replace("COOKIE", cookie),
                args.page_connections,
            ),
            (
                "subscribers page, email prefix",
                PAGE.replace("PATHS", ",".join(f'"{p}"' for p in prefixes)).replace(
                    "COOKIE", cookie
                ),
                args.page_connections,
            ),
            ("one-click unsubscribe POST", UNSUBSCRIBE.replace("TOKENS", quoted), args.connections),
            ("subscribe POST", SUBSCRIBE.replace("SLUG", slug), args.connections),
            (
                "tracked click GET (302)",
                CLICK.replace("PATHS", ",".join(f'"{c}"' for c in clicks)),
                args.connections,
            ),
            (
                "open pixel GET",
                CLICK.replace("PATHS", ",".join(f'"{o}"' for o in opens)),
                args.connections,
            ),
        ]
        results = {}
        for name, script, connections in runs:
            checkpoint(db_url)
            results[name] = wrk(base, script, args.seconds, connections)
            log(line(name, results[name]))
            if "500" in results[name]["codes"]:
                tracebacks = re.findall(
                    r"\n(\w+(?:\.\w+)*(?:Error|Exception)[^\n]*)",
                    errors.read_text(errors="replace"),
                )
                log(f"  server errors seen: {sorted(set(tracebacks))[:5]}")
        log("")
        log(
            f"PostgreSQL, {args.subscribers:,} subscribers, gunicorn {args.workers} workers, "
            f"wrk {args.connections} connections ({args.page_connections} for the page)"
        )
        for name, r in results.items():
            log(line(name, r))
        recorded = engagement_rows(db_url)
        for kind, name in (("click", "tracked click GET (302)"), ("open", "open pixel GET")):
            made = results[name]["rps"] * args.seconds
            log(f"{name}: {recorded.get(kind, 0):,} recorded of about {made:,.0f} requests")
        for name in ("subscribers page, first page", "subscribers page, email prefix"):
            p95 = results[name]["p95"]
            log(
                f"{name}: p95 {p95:.1f} ms = {p95 / GOAL_P95_MS:.2f} x the 200 ms goal "
                f"({'met' if p95 < GOAL_P95_MS else 'MISSED'})"
            )
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGQUIT)  # gunicorn's quick shutdown
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if not args.keep:
            drop_database(db_url)
        shutil.rmtree(config_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
