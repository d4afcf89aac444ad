"""Web benchmark: gunicorn (2 workers) on PostgreSQL, driven by wrk on loopback.

    python bench/web.py [--subscribers 1000000] [--seconds 15] [--connections 16]
                        [--no-limiter] [--redis-url URL] [--summary FILE]

Seeds a scratch PostgreSQL database (COPY) with N confirmed subscribers on one list, starts
`listmgr web --workers 2` on a free port, configured as in production: the rate limiter on,
its counters in Redis (a database claimed for the run, see bench/benchkit.py) and one trusted
reverse proxy (LISTMGR_TRUSTED_PROXIES=1; wrk plays the proxy and says who the client is in
X-Forwarded-For). It signs in an owner, then measures with wrk:
  - one-click unsubscribe  POST /u/TOKEN (List-Unsubscribe=One-Click), every request a token
                           of its own (a different subscriber; a repeat is counted and printed),
                           posted from a pool of --one-click-sources mail provider addresses
                           (the limit is per address: 6,000/minute by default)
  - subscribe              POST /subscribe/SLUG with new addresses, each from its own address
                           (confirmation mail queued)
  - subscribers page       GET /admin/subscribers (first page) and ?q=PREFIX (email prefix)
  - tracked click          GET /t/REF/TOKEN of a sent campaign (recorded, then a redirect)
  - open pixel             GET /o/TOKEN.gif
  - the floor              GET /static/favicon.svg (the framework alone) and GET /healthz
                           (the framework and one database round trip): the same server,
                           connections and wrk; and the least one-click (bench/web_floor.py:
                           a Flask app under the same gunicorn that checks the token, counts
                           the address in Redis, and marks the membership and appends the
                           consent event in one transaction, with tokens of its own): one-click
                           is printed as a ratio of each; and the least subscribe (the same app:
                           the address checked, both limits counted in Redis, the person, the
                           pending membership, the consent event and the confirmation mail
                           stored in one transaction): subscribe is printed as a ratio of it
Half the subscribers allow tracking; clicks and opens come from them (each one recorded).
Prints requests/s, p50/p95/p99 latency and the ratios to the goals: one-click >= 1,000 req/s
with p99 <= 50 ms, subscribe p99 <= 100 ms, the subscribers page p95 <= 200 ms.
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
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import benchkit  # noqa: E402

SECRET = "bench-secret-key-0123456789abcdef"
PASSWORD = "bench password 123"
GOAL_P95_MS = 200.0
GOAL_ONE_CLICK_RPS, GOAL_ONE_CLICK_P99_MS, GOAL_SUBSCRIBE_P99_MS = 1000.0, 50.0, 100.0
FLOOR_STATIC, FLOOR_HEALTH = "floor: static file GET", "floor: health check GET"
FLOOR_ONE_CLICK = "floor: the least one-click POST"  # bench/web_floor.py
FLOOR_SUBSCRIBE = "floor: the least subscribe POST"  # bench/web_floor.py

# wrk scripts: each request picks its input at random; done() prints the percentiles we report.
DONE = """
threads = {}
setup = function(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end
init = function(args) statuses = {} repeats = 0 end
response = function(status, headers, body)
  if status >= STATUS_FLOOR then statuses[status] = (statuses[status] or 0) + 1 end
end
done = function(summary, latency, requests)
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses") or {}) do
      io.write(string.format("STATUS %d %d\\n", code, n))
    end
    io.write(string.format("REPEATS %d\\n", t:get("repeats") or 0))
  end
  io.write(string.format("RESULT rps=%.1f p50=%.2f p95=%.2f p99=%.2f errors=%d non2xx=%d\\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout, summary.errors.status))
end
"""
# Each thread walks its own share of the tokens in order: every request another subscriber
# (a token used again once all are used is counted as a repeat).
UNSUBSCRIBE = """
tokens = {TOKENS}
threads_n = THREADS
sources = SOURCES
counter = 0
request = function()
  local i = counter * threads_n + tid - 1
  counter = counter + 1
  if i >= #tokens then repeats = repeats + 1 end
  local t = tokens[i % #tokens + 1]
  return wrk.format("POST", "/u/" .. t,
    {["Content-Type"] = "application/x-www-form-urlencoded",
     ["X-Forwarded-For"] = "198.51." .. math.floor((counter % sources) / 250) .. "." ..
       (counter % sources) % 250 + 1},
    "List-Unsubscribe=One-Click")
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
    {["Content-Type"] = "application/x-www-form-urlencoded",
     ["X-Forwarded-For"] = "10." .. tid .. "." .. math.floor(counter / 250) % 250 .. "." ..
       counter % 250 + 1},
    body)
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


def seed(db_url: str, n: int, wanted: int) -> tuple[list[str], str, list[str], list[str]]:
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
    # distinct people: the first `wanted` for listmgr's one-click, the rest for its floor
    sample = random.Random(7).sample(range(1, n + 1), min(2 * wanted, n))
    tokens = [rt.tokens.unsubscribe(i, 1) for i in sample]
    ref = rt.tokens.campaign_ref(cid)
    clicks = [f"/t/{ref}/{rt.tokens.click(cid, i, link)}" for i in trackers]
    opens = [f"/o/{rt.tokens.open(cid, i)}.gif" for i in trackers]
    runtime.set_current(None)
    return tokens, "news", clicks, opens


def start_gunicorn(
    db_url: str,
    port: int,
    workers: int,
    config_dir: Path,
    errors: Path,
    space: benchkit.RedisSpace,
    limiter: bool,
) -> subprocess.Popen:
    env = dict(
        os.environ,
        LISTMGR_DATABASE_URL=db_url,
        LISTMGR_SECRET_KEY=SECRET,
        LISTMGR_BROKER_URL=space.url,
        LISTMGR_BROKER_NAMESPACE=space.namespace,
        LISTMGR_BASE_URL=f"http://127.0.0.1:{port}",
        LISTMGR_CONFIG_DIR=str(config_dir),
        LISTMGR_SMTP_URL="smtp://127.0.0.1:9",
        # As in production: the limiter on, its counters in Redis, behind one reverse proxy.
        LISTMGR_RATELIMIT_ENABLED="true" if limiter else "false",
        LISTMGR_RATELIMIT_STORAGE_URL=space.url,
        LISTMGR_TRUSTED_PROXIES="1",
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
    return until_up(proc, f"http://127.0.0.1:{port}/healthz", errors, "gunicorn")


def until_up(proc: subprocess.Popen, url: str, errors: Path, what: str) -> subprocess.Popen:
    """`proc` once `url` answers (any HTTP status); a loaded machine starts gunicorn slowly."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return proc
        except urllib.error.HTTPError:
            return proc
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"{what} died: " + errors.read_text()[-2000:]) from None
            time.sleep(0.3)
    proc.terminate()
    raise SystemExit(f"{what} did not come up")


def start_floor(
    db_url: str, port: int, workers: int, errors: Path, space: benchkit.RedisSpace
) -> subprocess.Popen:
    """bench/web_floor.py under the same gunicorn (workers, loopback), database and Redis."""
    env = dict(
        os.environ,
        LISTMGR_DATABASE_URL=db_url,
        LISTMGR_SECRET_KEY=SECRET,
        LISTMGR_RATELIMIT_STORAGE_URL=space.url,
    )
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--chdir",
        str(ROOT / "bench"),
        "web_floor:app",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=errors.open("wb"))
    return until_up(proc, f"http://127.0.0.1:{port}/", errors, "the floor's gunicorn")


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
    result["repeats"] = sum(int(n) for n in re.findall(r"REPEATS (\d+)", out))
    return result


def line(name: str, r: dict) -> str:
    return (
        f"{name:<34} {r['rps']:>8.0f} req/s   p50 {r['p50']:7.1f} ms   p95 {r['p95']:7.1f} ms"
        f"   p99 {r['p99']:7.1f} ms   errors {int(r['errors'])} non-2xx {int(r['non2xx'])}"
        + (f" {r['codes']}" if r["codes"] else "")
        + (f"; {r['repeats']} repeated tokens" if r.get("repeats") else "")
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--subscribers", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--page-connections", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    ap.add_argument(
        "--tokens",
        type=int,
        default=0,
        help="one-click tokens (distinct subscribers); default 3,000 a second of the run",
    )
    ap.add_argument(
        "--one-click-sources",
        type=int,
        default=64,
        help="addresses the one-click POSTs come from (a mail provider's pool)",
    )
    ap.add_argument(
        "--limiter",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the rate limiter on, as in production (default)",
    )
    ap.add_argument("--database-url", default=benchkit.PG_URL, help="the server to use")
    ap.add_argument("--keep", action="store_true", help="keep the database afterwards")
    benchkit.add_arguments(ap, redis=True)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install -y wrk")
    benchkit.exit_on_sigterm()
    summary = benchkit.Summary("web")
    scratch = benchkit.ScratchDatabase("web", args.database_url)
    space = benchkit.RedisSpace.claim("web", args.redis_url)
    db_url = scratch.url
    config_dir = Path(tempfile.mkdtemp(prefix="lmbench-web-"))
    proc = None
    try:
        log(f"database {scratch.name}, Redis {space.url} namespace {space.namespace}")
        wanted = args.tokens or 3000 * args.seconds
        every, slug, clicks, opens = seed(db_url, args.subscribers, wanted)
        tokens, floor_tokens = every[:wanted], every[wanted:]
        port = benchkit.free_port()
        errors = config_dir / "gunicorn.err"
        proc = start_gunicorn(db_url, port, args.workers, config_dir, errors, space, args.limiter)
        base = f"http://127.0.0.1:{port}"
        cookie = sign_in(base)
        log(
            f"gunicorn with {args.workers} workers on {base}; rate limiter "
            f"{'on (Redis)' if args.limiter else 'OFF'}; wrk {args.seconds} s per run; "
            f"{len(tokens):,} distinct one-click tokens"
        )
        prefixes = [
            f"/admin/subscribers?q=user{random.randrange(max(1, args.subscribers // 100)):05d}"
            for _ in range(200)
        ]

        def one_click_script(pool: list[str]) -> str:
            return (
                UNSUBSCRIBE.replace("TOKENS", ",".join(f'"{t}"' for t in pool))
                .replace("THREADS", str(args.threads))
                .replace("SOURCES", str(max(1, args.one_click_sources)))
            )

        one_click = one_click_script(tokens)
        runs = [
            # The floor: the same server, connections and wrk answering the lightest requests
            # it has, a static file (the framework alone) and the health check (the framework
            # and one database round trip): what no route of this server can beat here.
            (FLOOR_STATIC, CLICK.replace("PATHS", '"/static/favicon.svg"'), args.connections),
            (FLOOR_HEALTH, CLICK.replace("PATHS", '"/healthz"'), args.connections),
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
            ("one-click unsubscribe POST", one_click, args.connections),
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
            results[name] = wrk(base, script, args.seconds, connections, args.threads)
            log(line(name, results[name]))
            if "500" in results[name]["codes"]:
                tracebacks = re.findall(
                    r"\n(\w+(?:\.\w+)*(?:Error|Exception)[^\n]*)",
                    errors.read_text(errors="replace"),
                )
                log(f"  server errors seen: {sorted(set(tracebacks))[:5]}")
        if floor_tokens:
            # The one-click floor: the least a one-click can do (bench/web_floor.py) under the
            # same gunicorn, database, Redis, connections and wrk, with tokens of its own.
            proc.terminate()
            proc.wait(60)
            floor_port = benchkit.free_port()
            proc = start_floor(db_url, floor_port, args.workers, errors, space)
            checkpoint(db_url)
            results[FLOOR_ONE_CLICK] = wrk(
                f"http://127.0.0.1:{floor_port}",
                one_click_script(floor_tokens),
                args.seconds,
                args.connections,
                args.threads,
            )
            log(line(FLOOR_ONE_CLICK, results[FLOOR_ONE_CLICK]))
            checkpoint(db_url)
            results[FLOOR_SUBSCRIBE] = wrk(
                f"http://127.0.0.1:{floor_port}",
                SUBSCRIBE.replace("SLUG", slug),
                args.seconds,
                args.connections,
                args.threads,
            )
            log(line(FLOOR_SUBSCRIBE, results[FLOOR_SUBSCRIBE]))
        log("")
        log(
            f"PostgreSQL, {args.subscribers:,} subscribers, gunicorn {args.workers} workers, "
            f"wrk {args.connections} connections ({args.page_connections} for the page), "
            f"rate limiter {'on' if args.limiter else 'OFF'}"
        )
        for name, r in results.items():
            log(line(name, r))
        recorded = engagement_rows(db_url)
        for kind, name in (("click", "tracked click GET (302)"), ("open", "open pixel GET")):
            made = results[name]["rps"] * args.seconds
            log(f"{name}: {recorded.get(kind, 0):,} recorded of about {made:,.0f} requests")
        one, sub = results["one-click unsubscribe POST"], results["subscribe POST"]
        goals = (
            ("one-click unsubscribe req/s", one["rps"], "req/s", GOAL_ONE_CLICK_RPS, None),
            ("one-click unsubscribe p99", one["p99"], "ms", None, GOAL_ONE_CLICK_P99_MS),
            ("subscribe p99", sub["p99"], "ms", None, GOAL_SUBSCRIBE_P99_MS),
        )
        for figure, value, unit, least, most in goals:
            ratio = summary.add(figure, value, unit, at_least=least, at_most=most)
            goal = f">= {least:,.0f} {unit}" if least else f"<= {most:,.0f} {unit}"
            log(
                f"{figure}: {value:,.1f} {unit}; goal {goal}, ratio {ratio:.2f} "
                f"({'met' if ratio is not None and ratio >= 1 else 'MISSED'})"
            )
        for floor_name in (FLOOR_STATIC, FLOOR_HEALTH, FLOOR_ONE_CLICK):
            if floor_name not in results:
                continue
            floor_rps = results[floor_name]["rps"]
            ratio = one["rps"] / floor_rps if floor_rps else 0.0
            log(
                f"one-click / {floor_name}: {one['rps']:,.0f} / {floor_rps:,.0f} req/s = "
                f"{ratio:.2f}; the goal's 1,000 req/s is {GOAL_ONE_CLICK_RPS / floor_rps:.2f} "
                "x this floor"
            )
            summary.add(f"{floor_name} req/s", floor_rps, "req/s")
            summary.add(f"one-click / {floor_name}", ratio, "ratio")
        if FLOOR_SUBSCRIBE in results:
            least = results[FLOOR_SUBSCRIBE]
            log(
                f"subscribe / {FLOOR_SUBSCRIBE}: {sub['rps']:,.0f} / {least['rps']:,.0f} req/s ="
                f" {sub['rps'] / least['rps'] if least['rps'] else 0:.2f}; p99 {sub['p99']:.1f}"
                f" / {least['p99']:.1f} ms; the goal's p99 100 ms is"
                f" {GOAL_SUBSCRIBE_P99_MS / least['p99'] if least['p99'] else 0:.2f} x the floor's"
            )
            summary.add(f"{FLOOR_SUBSCRIBE} req/s", least["rps"], "req/s")
            summary.add(f"{FLOOR_SUBSCRIBE} p99", least["p99"], "ms")
            summary.add(
                f"subscribe / {FLOOR_SUBSCRIBE}",
                sub["rps"] / least["rps"] if least["rps"] else 0.0,
                "ratio",
            )
        refused = one["non2xx"] + one["errors"]
        log(
            f"one-click: {int(refused)} requests refused or failed, "
            f"{int(one['repeats'])} repeated a token"
        )
        summary.add("one-click refused or failed", refused, "req")
        summary.add("one-click repeated tokens", one["repeats"], "req")
        summary.add("subscribe req/s", sub["rps"], "req/s")
        for name in ("subscribers page, first page", "subscribers page, email prefix"):
            p95 = results[name]["p95"]
            log(
                f"{name}: p95 {p95:.1f} ms = {p95 / GOAL_P95_MS:.2f} x the 200 ms goal "
                f"({'met' if p95 < GOAL_P95_MS else 'MISSED'})"
            )
            summary.add(f"{name} p95", p95, "ms", at_most=GOAL_P95_MS)
        summary.add("tracked click req/s", results["tracked click GET (302)"]["rps"], "req/s")
        summary.add("open pixel req/s", results["open pixel GET"]["rps"], "req/s")
        summary.write(args.summary)
    finally:
        try:
            benchkit.stop(proc, 15, signal.SIGQUIT)  # gunicorn's quick shutdown
        finally:
            if not args.keep:
                scratch.drop()
            space.release()
            shutil.rmtree(config_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
