"""Benchmark: a live segment count over 1,000,000 subscribers and 500,000 activity events.

    python bench/segments.py [--db pg|sqlite|both] [--subscribers N] [--events N] [--reuse]
                             [--pg-url URL] [--sqlite-path PATH] [--explain]

PostgreSQL: the database `lmbench_segments` beside --pg-url (default the local server) is
created afresh and filled with COPY; SQLite: a file (default /tmp/lmbench-segments.db) filled
with executemany. Both get the schema from the migrations (with the indexes they create), then
ANALYZE. Prints load times and, for a rule with a field, an interest and an activity condition,
the count time (median of 7 after a warm-up) through listmgr.services.segments.count, with and
without the list audience, and the ratio to the goal (150 ms on PostgreSQL).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Iterator
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

GOAL_MS = 150.0
PG_NAME = "lmbench_segments"
NOW = datetime.utcnow().replace(microsecond=0)
PLANS = ["free"] * 6 + ["pro"] * 3 + ["team"]
COUNTRIES = ["de", "fr", "nl", "es", "it", "pl", "se", "at", "be", "pt"]
INTERESTS = [f"i{i}" for i in range(10)]
EVENTS = ["viewed"] * 6 + ["downloaded"] * 3 + ["purchased"]
RULES = {
    "all": [
        {"field": "plan", "op": "eq", "value": "pro"},
        {"interests": "has_any", "value": ["i3"]},
        {"event": "viewed", "at_least": 2, "within_days": 30},
    ]
}


def subscribers(n: int, rnd: random.Random) -> Iterator[tuple[Any, ...]]:
    for i in range(1, n + 1):
        created = NOW - timedelta(seconds=rnd.randrange(0, 3 * 365 * 86400))
        fields = json.dumps(
            {
                "plan": rnd.choice(PLANS),
                "age": rnd.randrange(18, 80),
                "country": rnd.choice(COUNTRIES),
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
            " 'text', '[]', true, :now)"
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


def prepare(kind: str, url: str, n: int, n_events: int, reuse: bool, *, name: str = PG_NAME) -> str:
    """Create, migrate and fill the database unless --reuse finds it filled (PostgreSQL: the
    database `name` beside `url`)."""
    if kind == "pg":
        base = make_url(url)
        target = base.set(database=name).render_as_string(hide_password=False)
        admin = create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            exists = c.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
            if exists and reuse:
                return target
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            c.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
    else:
        path = Path(url)
        target = f"sqlite:///{path}"
        if path.exists() and reuse:
            return target
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    from alembic import command

    command.upgrade(schema.alembic_config(target), "head")
    engine = create_engine(target)
    with engine.begin() as conn:
        definitions(conn)
    engine.dispose()
    took = (load_pg if kind == "pg" else load_sqlite)(target, n, n_events)
    print(f"{kind}: loaded {n:,} subscribers and {n_events:,} events in {took:.1f} s")
    engine = create_engine(target, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        if kind == "pg":
            conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()
    return target


def measure(kind: str, url: str, explain: bool) -> None:
    rt = runtime.build({"database_url": url, "secret_key": "bench-secret-0123456789"})
    for lists in ([], ["news"]):
        segments.count(rt, lists=lists, rules=RULES)  # warm-up (caches, plan)
        times = []
        for _ in range(7):
            start = time.perf_counter()
            result = segments.count(rt, lists=lists, rules=RULES)
            times.append((time.perf_counter() - start) * 1000)
        median = statistics.median(times)
        label = "audience of list news" if lists else "rules only"
        line = f"{kind}: count {label}: {result:,} in {median:.1f} ms (min {min(times):.1f})"
        if kind == "pg":
            line += f"; goal {GOAL_MS:.0f} ms, ratio {median / GOAL_MS:.2f} of the goal"
        print(line)
        if explain:
            with rt.db.session() as s:
                where = segments.expression(s, lists=lists, rules=RULES)
                query = select(func.count()).select_from(Subscriber).where(where)
                sql = str(query.compile(s.get_bind(), compile_kwargs={"literal_binds": True}))
                prefix = "EXPLAIN ANALYZE " if kind == "pg" else "EXPLAIN QUERY PLAN "
                for row in s.execute(text(prefix + sql)):
                    print("   ", " | ".join(str(x) for x in row))
    dbmod.dispose_engines()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=("pg", "sqlite", "both"), default="both")
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "LISTMGR_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--sqlite-path", default="/tmp/lmbench-segments.db")
    parser.add_argument("--reuse", action="store_true", help="keep an already filled database")
    parser.add_argument("--explain", action="store_true", help="print the query plans")
    args = parser.parse_args()
    for kind in ("pg", "sqlite") if args.db == "both" else (args.db,):
        url = prepare(
            kind,
            args.pg_url if kind == "pg" else args.sqlite_path,
            args.subscribers,
            args.events,
            args.reuse,
        )
        measure(kind, url, args.explain)


if __name__ == "__main__":
    main()
