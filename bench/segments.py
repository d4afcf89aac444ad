"""Benchmark: live segment counts for a matrix of rule shapes over 1,000,000 subscribers and
500,000 activity events, on PostgreSQL and SQLite.

    python bench/segments.py [--db pg|sqlite|both] [--subscribers N] [--events N]
                             [--shapes REGEX] [--runs N] [--summary FILE] [--explain]
                             [--keep] [--reuse NAME_OR_PATH] [--pg-url URL]

Each run fills its own scratch databases (PostgreSQL `lmbench_segments_<pid>` beside --pg-url,
SQLite /tmp/lmbench-segments-<pid>.db) with COPY / executemany, migrates them to head (with the
indexes the migrations create), runs ANALYZE, and drops them at the end (--keep leaves them;
--reuse NAME_OR_PATH counts over a kept one again after migrating it to head).

Every shape (each condition kind alone, combinations with all/any/not, events with
where-clauses, counts and time windows) is counted through listmgr.services.segments.count with
no list (rules only) and with the audience of the list `news`: the median of --runs counts after
a warm-up, against the goal (150 ms on PostgreSQL, 300 ms on SQLite), with the worst shape per
database and the floors: a bare count(*) of every subscriber and of the list's confirmed
members (before and after the shapes, the lower of the two; each shape is also printed as a
multiple of the floor of its set, "x floor", which the machine's load changes less than the
time), and the least work of the shapes that read many field values: LIKE over every value of
one field ("contains"), and the list's members joined with a third of everyone by a range. --summary FILE writes the figures as JSON for bench/all.py.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from listmgr import db as dbmod
from listmgr import runtime, schema
from listmgr.models import Subscriber
from listmgr.services import segments

GOALS_MS = {"pg": 150.0, "sqlite": 300.0}
NOW = datetime.utcnow().replace(microsecond=0)
PLANS = ["free"] * 6 + ["pro"] * 3 + ["team"]
COUNTRIES = ["de", "fr", "nl", "es", "it", "pl", "se", "at", "be", "pt"]
INTERESTS = [f"i{i}" for i in range(10)]
TAGS = ["a", "b", "c", "d"]
EVENTS = ["viewed"] * 6 + ["downloaded"] * 3 + ["purchased"]
PLAN = {"field": "plan", "op": "eq", "value": "pro"}
INTEREST = {"interests": "has_any", "value": ["i3"]}
VIEWED_TWICE = {"event": "viewed", "at_least": 2, "within_days": 30}
# (name, rules): every condition kind alone, then combinations
SHAPES: list[tuple[str, dict[str, Any]]] = [
    ("everyone", {}),
    ("choice eq (plan = pro)", PLAN),
    ("choice in (plan in pro, team)", {"field": "plan", "op": "in", "value": ["pro", "team"]}),
    ("choice ne (plan != free)", {"field": "plan", "op": "ne", "value": "free"}),
    ("number gt (age > 60)", {"field": "age", "op": "gt", "value": 60}),
    ("number between (age 30-40)", {"field": "age", "op": "between", "value": [30, 40]}),
    ("number eq (age = 33)", {"field": "age", "op": "eq", "value": 33}),
    ("text eq (country = de)", {"field": "country", "op": "eq", "value": "de"}),
    ("text contains (country ~ e)", {"field": "country", "op": "contains", "value": "e"}),
    ("date within 30 days (since)", {"field": "since", "op": "within_last_days", "value": 30}),
    ("date before (since < 1 year)", {"field": "since", "op": "before", "value": "2026-01-01"}),
    ("boolean eq (vip = true)", {"field": "vip", "op": "eq", "value": True}),
    ("multi_choice in (tags a)", {"field": "tags", "op": "in", "value": ["a"]}),
    ("multi_choice contains (tags a+b)", {"field": "tags", "op": "contains", "value": ["a", "b"]}),
    ("exists (tags)", {"field": "tags", "op": "exists"}),
    ("created_at within 30 days", {"field": "created_at", "op": "within_last_days", "value": 30}),
    ("source eq form", {"field": "source", "op": "eq", "value": "form"}),
    ("email contains example1", {"field": "email", "op": "contains", "value": "@example1."}),
    ("interests has_any i3", INTEREST),
    ("interests has_all i3+i4", {"interests": "has_all", "value": ["i3", "i4"]}),
    ("interests has_none i3", {"interests": "has_none", "value": ["i3"]}),
    ("list offers confirmed", {"list": "offers"}),
    ("list news any status", {"list": "news", "status": "any"}),
    ("event viewed ever", {"event": "viewed"}),
    ("event viewed 2x in 30 days", VIEWED_TWICE),
    ("event downloaded where sku", {"event": "downloaded", "where": {"properties.sku": "S7"}}),
    (
        "event purchased where sku 60 days",
        {"event": "purchased", "where": {"properties.sku": "S7"}, "within_days": 60},
    ),
    ("engagement opened 30 days", {"engagement": "opened", "within_days": 30}),
    ("all(plan, interest, viewed 2x)", {"all": [PLAN, INTEREST, VIEWED_TWICE]}),
    ("any(plan, interest, viewed 2x)", {"any": [PLAN, INTEREST, VIEWED_TWICE]}),
    ("not plan", {"not": PLAN}),
    ("all(plan, not interest)", {"all": [PLAN, {"not": INTEREST}]}),
    ("not any(plan, viewed 2x)", {"not": {"any": [PLAN, VIEWED_TWICE]}}),
    (
        "any(all(plan, age > 60), not viewed)",
        {
            "any": [
                {"all": [PLAN, {"field": "age", "op": "gt", "value": 60}]},
                {"not": {"event": "viewed", "within_days": 30}},
            ]
        },
    ),
    (
        "all(list offers, any(vip, purchased))",
        {
            "all": [
                {"list": "offers"},
                {"any": [{"field": "vip", "op": "eq", "value": True}, {"event": "purchased"}]},
            ]
        },
    ),
]


def subscribers(n: int, rnd: random.Random) -> Iterator[tuple[Any, ...]]:
    for i in range(1, n + 1):
        created = NOW - timedelta(seconds=rnd.randrange(0, 3 * 365 * 86400))
        fields = json.dumps(
            {
                "plan": rnd.choice(PLANS),
                "age": rnd.randrange(18, 80),
                "country": rnd.choice(COUNTRIES),
                "since": (NOW.date() - timedelta(days=rnd.randrange(0, 730))).isoformat(),
                "vip": rnd.random() < 0.05,
                "tags": rnd.sample(TAGS, rnd.randrange(0, 3)),
            }
        )
        yield (
            i,
            f"person{i}@example{i % 97}.org",
            f"{i:064x}",
            f"Person {i}",
            fields,
            rnd.choice(("form", "import", "api")),
            False,
            False,
            0,
            created,
            created,
        )


def interests(n: int, rnd: random.Random) -> Iterator[tuple[Any, ...]]:
    for i in range(1, n + 1):
        for key in rnd.sample(INTERESTS, rnd.randrange(0, 4)):
            yield (i, key)


def memberships(n: int, rnd: random.Random) -> Iterator[tuple[Any, ...]]:
    for i in range(1, n + 1):
        status = "confirmed" if rnd.random() < 0.9 else "unsubscribed"
        yield (i, i, 1, status, "", "import", NOW, NOW, NOW)
        if rnd.random() < 0.3:
            yield (n + i, i, 2, "confirmed", "", "form", NOW, NOW, NOW)


def events(n: int, subs: int, rnd: random.Random) -> Iterator[tuple[Any, ...]]:
    for i in range(1, n + 1):
        yield (
            i,
            rnd.randrange(1, subs + 1),
            rnd.choice(EVENTS),
            json.dumps({"sku": f"S{rnd.randrange(500)}"}),
            NOW - timedelta(seconds=rnd.randrange(0, 90 * 86400)),
        )


TABLES = [
    (
        "subscriber",
        "id, email, email_hash, name, fields, source, consent_profiling, "
        "consent_tracking, soft_bounces, created_at, updated_at",
        subscribers,
    ),
    ("subscriber_interest", "subscriber_id, interest", interests),
    (
        "membership",
        "id, subscriber_id, list_id, status, opt_in_level, source, created_at, "
        "confirmed_at, updated_at",
        memberships,
    ),
]


def definitions(conn: Any) -> None:
    conn.execute(
        text(
            "INSERT INTO mailing_list (id, slug, name, description, opt_in, from_name, "
            "from_email, reply_to, postal_address, consent_wording, form_fields, "
            "form_interests, opt_in_levels, created_at) VALUES "
            "(1, 'news', 'News', '', 'double', '', '', '', '', '', '[]', '[]', '[]', "
            ":now), (2, 'offers', 'Offers', '', 'double', '', '', '', '', '', '[]', "
            "'[]', '[]', :now)"
        ),
        {"now": NOW},
    )
    conn.execute(
        text(
            "INSERT INTO field_def (key, label, type, choices, editable, created_at) "
            "VALUES ('plan', 'Plan', 'choice', '[\"free\", \"pro\", \"team\"]', true, "
            ":now), ('age', 'Age', 'number', '[]', true, :now), ('country', 'Country',"
            " 'text', '[]', true, :now), ('since', 'Since', 'date', '[]', true, :now), "
            "('vip', 'VIP', 'boolean', '[]', true, :now), ('tags', 'Tags', 'multi_choice', "
            '\'["a", "b", "c", "d"]\', true, :now)'
        ),
        {"now": NOW},
    )
    for key in INTERESTS:
        conn.execute(text("INSERT INTO interest (key, label) VALUES (:k, :k)"), {"k": key})


def load_pg(url: str, n: int, n_events: int) -> float:
    raw = create_engine(url).raw_connection()
    rnd = random.Random(7)
    start = time.perf_counter()
    with raw.cursor() as cur:
        for table, cols, gen in TABLES:
            with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                for row in gen(n, rnd):
                    copy.write_row(row)
        with cur.copy(
            "COPY activity_event (id, subscriber_id, type, properties, at) FROM STDIN"
        ) as copy:
            for row in events(n_events, n, rnd):
                copy.write_row(row)
        for table in ("subscriber", "membership", "activity_event"):
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        cur.execute(
            "INSERT INTO suppression (email_hash, email, reason, detail, created_at) "
            "SELECT email_hash, email, 'manual', '', now() FROM subscriber "
            "WHERE id % 100 = 0"
        )
    raw.commit()
    took = time.perf_counter() - start
    raw.close()
    return took


def load_sqlite(url: str, n: int, n_events: int) -> float:
    raw = create_engine(url).raw_connection()
    rnd = random.Random(7)
    start = time.perf_counter()
    cur = raw.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=OFF")
    for table, cols, gen in TABLES:
        marks = ", ".join("?" * len(cols.split(",")))
        cur.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", gen(n, rnd))
    cur.executemany(
        "INSERT INTO activity_event (id, subscriber_id, type, properties, at) "
        "VALUES (?, ?, ?, ?, ?)",
        events(n_events, n, rnd),
    )
    cur.execute(
        "INSERT INTO suppression (email_hash, email, reason, detail, created_at) "
        "SELECT email_hash, email, 'manual', '', datetime('now') FROM subscriber "
        "WHERE id % 100 = 0"
    )
    raw.commit()
    took = time.perf_counter() - start
    raw.close()
    return took


def prepare(
    kind: str, args: argparse.Namespace, *, name: str | None = None
) -> tuple[str, Callable[[], None]]:
    """Create (or --reuse), migrate and fill a scratch database: its URL and how to drop it
    (PostgreSQL: named `name`, or after this process)."""
    pid = os.getpid()
    if kind == "pg":
        base = make_url(args.pg_url)
        name = args.reuse or name or f"lmbench_segments_{pid}"
        target = base.set(database=name).render_as_string(hide_password=False)
        admin = create_engine(base, isolation_level="AUTOCOMMIT")
        if not args.reuse:
            with admin.connect() as c:
                c.execute(text(f'CREATE DATABASE "{name}"'))

        def drop() -> None:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()

    else:
        path = Path(args.reuse or Path(tempfile.gettempdir()) / f"lmbench-segments-{pid}.db")
        target = f"sqlite:///{path}"

        def drop() -> None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)

    from alembic import command

    start = time.perf_counter()
    command.upgrade(schema.alembic_config(target), "head")
    if not args.reuse:
        engine = create_engine(target)
        with engine.begin() as conn:
            definitions(conn)
        engine.dispose()
        took = (load_pg if kind == "pg" else load_sqlite)(target, args.subscribers, args.events)
        print(
            f"{kind}: loaded {args.subscribers:,} subscribers and {args.events:,} events "
            f"in {took:.1f} s"
        )
    engine = create_engine(target, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("VACUUM ANALYZE" if kind == "pg" else "ANALYZE"))
    engine.dispose()
    print(f"{kind}: ready in {time.perf_counter() - start:.1f} s ({target})")
    return target, drop


def timed(runs: int, fn: Callable[[], int]) -> tuple[int, float]:
    """The result and the median time (ms) of `runs` calls after a warm-up."""
    result = fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1000)
    return result, statistics.median(times)


def floors(kind: str, url: str, runs: int) -> list[tuple[str, int, float]]:
    """Bare counts over the same sets: every subscriber, and the list's confirmed members."""
    engine = create_engine(url)
    out = []
    queries = {
        "floor: count(*) subscriber": "SELECT count(*) FROM subscriber",
        "floor: count(*) confirmed members of news": (
            "SELECT count(*) FROM membership WHERE list_id = 1 AND status = 'confirmed'"
        ),
        # What "contains" cannot do with less: test each stored value of the key once.
        "floor: LIKE over every value of one field (country)": (
            "SELECT count(*) FROM subscriber_field_value WHERE key = 'country' "
            "AND kind = 'string' AND position = 0 AND value_text LIKE '%e%'"
        ),
        # A wide field condition on a list, without the suppression and pause checks: the
        # members joined with a third of everyone's ids, as unordered as a range gives them.
        "floor: members of news with age > 60": (
            "SELECT count(*) FROM membership WHERE list_id = 1 AND status = 'confirmed' "
            "AND subscriber_id IN (SELECT subscriber_id FROM subscriber_field_value "
            "WHERE key = 'age' AND position = 0 AND value_number > 60)"
        ),
    }
    with engine.connect() as conn:
        for label, sql in queries.items():
            result, ms = timed(runs, lambda sql=sql: int(conn.scalar(text(sql)) or 0))
            out.append((label, result, ms))
    engine.dispose()
    return out


def explain(kind: str, rt: Any, lists: list[str], rules: Any) -> None:
    with rt.db.session() as s:
        where = segments.expression(s, lists=lists, rules=rules)
        segments.prepare_count(s)  # the plan the count runs, under its own settings
        query = select(func.count()).select_from(Subscriber).where(where)
        sql = str(query.compile(s.get_bind(), compile_kwargs={"literal_binds": True}))
        prefix = "EXPLAIN (ANALYZE, COSTS OFF) " if kind == "pg" else "EXPLAIN QUERY PLAN "
        for row in s.execute(text(prefix + sql)):
            print("      ", " | ".join(str(x) for x in row))


def measure(kind: str, url: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    goal = GOALS_MS[kind]
    rt = runtime.build({"database_url": url, "secret_key": "bench-secret-0123456789"})
    rows: list[dict[str, Any]] = []
    pattern = re.compile(args.shapes) if args.shapes else None
    # The floors before and after the shapes (the machine's load changes): the lower of each.
    first = floors(kind, url, args.runs)
    print(
        f"{kind}: {'shape':<42} {'audience':<9} {'count':>9} {'ms':>8} ratio (goal {goal:.0f} ms)"
        " x floor"
    )
    for name, rules in SHAPES:
        if pattern and not pattern.search(name):
            continue
        for lists in ([], ["news"]):
            label = "news" if lists else "-"
            result, ms = timed(
                args.runs,
                lambda lists=lists, rules=rules: segments.count(rt, lists=lists, rules=rules),
            )
            figure = f"{kind}: {name} [{label}]"
            rows.append(
                {
                    "figure": figure,
                    "value": round(ms, 1),
                    "unit": "ms",
                    "goal": f"<= {goal:.0f} ms",
                    "ratio": round(ms / goal, 2),
                    "count": result,
                    "x_floor": round(ms / first[1 if lists else 0][2], 2),
                }
            )
            flag = "" if ms <= goal else "  OVER"
            print(
                f"{kind}: {name:<42} {label:<9} {result:>9,} {ms:>8.1f} {ms / goal:5.2f} "
                f"{rows[-1]['x_floor']:7.1f}{flag}"
            )
            if args.explain:
                explain(kind, rt, lists, rules)
    dbmod.dispose_engines()
    last = floors(kind, url, args.runs)
    for (label, result, ms), (_, _, again) in zip(first, last, strict=True):
        ms = min(ms, again)
        print(f"{kind}: {label:<52} {result:>9,} {ms:>8.1f} {ms / goal:5.2f}")
        rows.append(
            {
                "figure": f"{kind}: {label}",
                "value": round(ms, 1),
                "unit": "ms",
                "goal": "floor (no goal)",
                "ratio": round(ms / goal, 2),
                "count": result,
            }
        )
    shaped = [r for r in rows if not r["figure"].startswith(f"{kind}: floor")]
    if shaped:
        worst = max(shaped, key=lambda r: r["value"])
        print(
            f"{kind}: worst shape: {worst['figure'][len(kind) + 2 :]} {worst['value']:.1f} ms, "
            f"ratio {worst['ratio']:.2f} of the goal ({goal:.0f} ms); "
            f"{sum(r['value'] > goal for r in shaped)} of {len(shaped)} over the goal"
        )
        rows.append(
            {
                "figure": f"{kind}: worst shape ({worst['figure'][len(kind) + 2 :]})",
                "value": worst["value"],
                "unit": "ms",
                "goal": f"<= {goal:.0f} ms",
                "ratio": worst["ratio"],
                "count": worst["count"],
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--db", choices=("pg", "sqlite", "both"), default="both")
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "LISTMGR_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--shapes", help="only the shapes whose name matches this regex")
    parser.add_argument("--runs", type=int, default=3, help="counts per shape (median)")
    parser.add_argument("--summary", help="write the figures as JSON to this file")
    parser.add_argument("--keep", action="store_true", help="keep the scratch databases")
    parser.add_argument(
        "--reuse", help="count over a kept database (PostgreSQL name or SQLite path)"
    )
    parser.add_argument("--explain", action="store_true", help="print the query plans")
    args = parser.parse_args()
    kinds = ("pg", "sqlite") if args.db == "both" else (args.db,)
    if args.reuse and len(kinds) > 1:
        parser.error("--reuse names one database: choose --db pg or --db sqlite")
    rows: list[dict[str, Any]] = []
    for kind in kinds:
        url, drop = prepare(kind, args)
        try:
            rows += measure(kind, url, args)
        finally:
            dbmod.dispose_engines()
            if args.keep or args.reuse:
                print(f"{kind}: kept {url}")
            else:
                drop()
    if args.summary:
        Path(args.summary).write_text(
            json.dumps({"bench": "segments", "rows": rows}, indent=1) + "\n"
        )


if __name__ == "__main__":
    main()
