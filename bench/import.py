"""Benchmark: import 1,000,000 CSV rows (email, name, 3 fields, 2 interests), validated and
normalized, into PostgreSQL and SQLite.

    python bench/import.py [--db pg|sqlite|both] [--rows N] [--workers 0|1] [--pg-url URL]
                           [--summary FILE]
    python bench/import.py --db pg --floor [--rows N]

The CSV is generated once under /tmp (mixed-case addresses over 2,000 domains, 0.1% invalid).
Each database is created afresh for the run (PostgreSQL `lmbench_import_PID_…` beside
--pg-url; SQLite /tmp/lmbench-import-PID.db) and removed afterwards, migrated, given a list, three fields and interests; then the import
runs through listmgr.services.imports exactly as `listmgr import` does. Prints rows/s and the
ratio to the goal (PostgreSQL 75,000 rows/s, SQLite 50,000 rows/s), the peak resident memory of
this process and of its worker processes (goal 200 MB), and, for reference, how fast the rows
are validated without a database.

--floor measures what no import can beat on this machine's PostgreSQL: ready-made rows
(nothing to validate, no lookup, no staging) sent with COPY, the fastest way in, first into
copies of subscriber, membership, consent_event and subscriber_interest that keep only the keys
an import must respect (primary keys, the unique address, one membership per list), then into
the tables themselves with their foreign keys and indexes. With the validation rate of this
file it prints the most rows per second that all cores together could reach in each case.
Then it imports the file and, after each of the import's transactions, COPYs as many people
into the tables of a database of its own: the import's rows/s against the floor's people/s on
one core, measured in the same minutes of a shared machine, is the ratio (goal 0.9).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchkit
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from listmgr import csvfiles, importrows, runtime
from listmgr import db as dbmod
from listmgr.services import imports, lists

GOALS = {"pg": 75_000, "sqlite": 50_000}
RSS_GOAL_MB = 200
PG_NAME = benchkit.run_tag("import")  # this run's own database
SQLITE_PATH = Path(f"/tmp/lmbench-import-{os.getpid()}.db")
CSV_PATH = Path("/tmp/lmbench-import.csv")
SECRET = "bench-secret-0123456789abcdef"


def generate(rows: int) -> Path:
    path = CSV_PATH.with_name(f"lmbench-import-{rows}.csv")
    if path.exists():
        return path
    rnd = random.Random(3)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # runs side by side each write their own
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Email", "Name", "Plan", "Age", "Joined", "Interests"])
        for i in range(rows):
            email = f"User.{i}@Domain{rnd.randrange(2000)}.example.com"
            if rnd.random() < 0.001:
                email = f"broken {i}@example.com"
            w.writerow(
                [
                    email,
                    f"Person {i} Müller",
                    rnd.choice(("free", "pro", "team")),
                    rnd.randrange(18, 90),
                    f"20{rnd.randrange(10, 25)}-0{rnd.randrange(1, 9)}-1{rnd.randrange(0, 9)}",
                    "|".join(rnd.sample(["jazz", "rock", "pop", "folk"], 2)),
                ]
            )
    tmp.rename(path)
    return path


def database(kind: str, pg_url: str, name: str = PG_NAME) -> str:
    if kind == "sqlite":
        path = SQLITE_PATH
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{path}"
    base = make_url(pg_url)
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def setup(url: str) -> runtime.Runtime:
    rt = runtime.build(
        {"database_url": url, "secret_key": SECRET, "var_dir": "/tmp/lmbench"}, migrate=True
    )
    lists.create(rt, slug="customers", name="Customers")
    from listmgr.services import fielddefs

    fielddefs.create_field(
        rt, key="plan", label="Plan", type="choice", choices=["free", "pro", "team"]
    )
    fielddefs.create_field(rt, key="age", label="Age", type="number")
    fielddefs.create_field(rt, key="joined", label="Joined", type="date")
    for key in ("jazz", "rock", "pop", "folk"):
        fielddefs.create_interest(rt, key=key, label=key.title())
    return rt


def validate_only(path: Path, rt: runtime.Runtime) -> float:
    """Rows per second for reading and validating alone (one process, no database), with the
    garbage collector set as during an import."""
    with rt.db.session() as s:
        fields, interests = imports._definitions(s)
    fmt = csvfiles.detect(path)
    with csvfiles.CsvReader(path, fmt) as reader, importrows.fewer_collections():
        mapping, _ = importrows.resolve(reader.header, {}, fields)
        ctx = importrows.Context(
            mapping,
            fields,
            interests,
            imports._hash_key(rt),
            len(reader.header),
            copy_text=rt.db.dialect == "postgresql",
        )
        start = time.perf_counter()
        n = 0
        for chunk in importrows.checked(ctx, reader, imports.PIECE_ROWS):
            n += chunk.people_count + len(chunk.repeats) + len(chunk.bad)
    return n / (time.perf_counter() - start)


# The tables an import writes for each person (interests: two a person here), as bare copies
# with only the keys every import must respect.
FLOOR_TABLES = (
    (
        "subscriber",
        "PRIMARY KEY (id), UNIQUE (email)",
        "id, email, email_hash, name, fields, "
        "source, consent_profiling, consent_tracking, soft_bounces, created_at, updated_at",
    ),
    (
        "membership",
        "PRIMARY KEY (id), UNIQUE (subscriber_id, list_id)",
        "subscriber_id, "
        "list_id, status, opt_in_level, source, created_at, confirmed_at, updated_at",
    ),
    (
        "consent_event",
        "PRIMARY KEY (id)",
        "subscriber_id, detail, list_id, kind, at, source, actor, ip, user_agent, wording",
    ),
    ("subscriber_interest", "PRIMARY KEY (subscriber_id, interest)", "subscriber_id, interest"),
)


def floor_lines(table: str, first: int, count: int) -> str:
    """COPY text for `count` people from id `first`, as an import would write them."""
    at = "2026-01-01 00:00:00"
    ids = range(first, first + count)
    if table == "subscriber":
        return "".join(
            f"{i}\tuser.{i}@domain{i % 2000}.example.com\t"
            f"{hashlib.sha256(str(i).encode()).hexdigest()}\tPerson {i} M\u00fcller\t"
            f'{{"plan": "pro", "age": {18 + i % 70}, "joined": "2019-03-14"}}\t'
            f"import\tf\tf\t0\t{at}\t{at}\n"
            for i in ids
        )
    if table == "membership":
        return "".join(f"{i}\t1\tconfirmed\t\timport\t{at}\t{at}\t{at}\n" for i in ids)
    if table == "consent_event":
        return "".join(
            f'{i}\t{{"job": 1, "row": {i}}}\t1\timport\t{at}\timport\tbench\t\t'
            "\timported: existing customers (benchmark)\n"
            for i in ids
        )
    return "".join(f"{i}\tjazz\n{i}\trock\n" for i in ids)


def floor(rt: runtime.Runtime, rows: int, validated_per_s: float) -> float:
    """Time COPY of ready-made rows into bare copies of the tables an import writes (keys
    only), then into the tables themselves (their foreign keys and indexes too); returns the
    people a second one core writes into the tables themselves."""
    with rt.db.engine.begin() as conn:
        for table, keys, _ in FLOOR_TABLES:
            conn.exec_driver_sql(
                f"CREATE TABLE floor_{table} (LIKE {table} INCLUDING DEFAULTS, {keys})"
            )
    for label, prefix in (("keys only", "floor_"), ("the schema", "")):
        took = _copy_people(rt, rows, prefix)
        for table, secs in took.items():
            print(
                f"floor, {label}: {table:<19} {secs:6.2f} s  {secs / rows * 1e6:5.1f} us a person"
            )
        server = sum(took.values()) / rows * 1e6
        check = 1e6 / validated_per_s
        cores = os.cpu_count() or 1
        best = cores * 1e6 / (server + check)
        print(
            f"floor, {label}: {server:.1f} us of server time a person = {1e6 / server:,.0f} "
            f"people/s on one core; with reading and validating ({check:.1f} us a row, "
            f"{validated_per_s:,.0f} rows/s) spread over the {cores} cores and nothing else "
            f"(no staging or lookup): at most {best:,.0f} rows/s; goal {GOALS['pg']:,}, "
            f"ratio {best / GOALS['pg']:.2f}"
        )
    return 1e6 / server


def _copy_people(rt: runtime.Runtime, rows: int, prefix: str) -> dict[str, float]:
    """Seconds spent in COPY a table, for rows people in transactions of an import's size."""
    took = dict.fromkeys((t for t, _, _ in FLOOR_TABLES), 0.0)
    with rt.db.engine.connect() as conn:
        for start in range(1, rows + 1, imports.CHUNK_ROWS):
            _copy_chunk(conn, start, min(imports.CHUNK_ROWS, rows + 1 - start), prefix, took)
    return took


def _copy_chunk(conn: Any, start: int, rows: int, prefix: str, took: dict[str, float]) -> None:
    """COPY rows people from id start in one transaction, adding the seconds to took."""
    raw = conn.connection.driver_connection
    with conn.begin():
        conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
        for first in range(start, start + rows, imports.PIECE_ROWS):
            count = min(imports.PIECE_ROWS, start + rows - first)
            for table, _, columns in FLOOR_TABLES:
                data = floor_lines(table, first, count)
                t0 = time.perf_counter()
                with (
                    raw.cursor() as cur,
                    cur.copy(f"COPY {prefix}{table} ({columns}) FROM STDIN") as copy,
                ):
                    copy.write(data)
                took[table] += time.perf_counter() - t0


def against_floor(args: argparse.Namespace, path: Path, summary: benchkit.Summary) -> None:
    """The import and the floor with the schema in the same minutes: after each transaction
    of the import (its progress call) the floor COPYs as many people into a database of its
    own, so both see the same load of a shared machine; the import's time leaves those pauses
    out (its reader may validate ahead meanwhile, as it does while the database works)."""
    floor_rt = setup(database("pg", args.pg_url, f"{PG_NAME}_floor"))
    rt = setup(database("pg", args.pg_url))
    job_id = imports.create_job(
        rt,
        path=path,
        list_slug="customers",
        actor="bench",
        consent="imported: existing customers (benchmark)",
    )
    took = dict.fromkeys((t for t, _, _ in FLOOR_TABLES), 0.0)
    done = [0, 0.0]  # rows the floor copied, seconds of the pauses
    with floor_rt.db.engine.connect() as floor_conn:

        def progress(info: imports.ImportInfo) -> None:
            t0 = time.perf_counter()
            if info.rows > done[0]:
                _copy_chunk(floor_conn, done[0] + 1, info.rows - done[0], "", took)
                done[0] = info.rows
            done[1] += time.perf_counter() - t0

        start = time.perf_counter()
        info = imports.run_job(rt, job_id, progress=progress, workers=args.workers)
        spent = time.perf_counter() - start - done[1]
    assert info is not None and info.status == "done", info
    server = sum(took.values())
    rate, one_core = info.rows / spent, done[0] / server
    print(
        f"pg, interleaved: the import {info.rows:,} rows in {spent:.1f} s = {rate:,.0f} rows/s; "
        f"the floor with the schema {done[0]:,} people in {server:.1f} s = {one_core:,.0f} "
        f"people/s on one core; ratio {rate / one_core:.2f} (goal 0.9)"
    )
    summary.add("pg: import / one-core floor", rate / one_core, "x", at_least=0.9)
    dbmod.dispose_engines()
    with create_engine(args.pg_url, isolation_level="AUTOCOMMIT").connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{PG_NAME}_floor" WITH (FORCE)'))


SQL_TIMES: dict[str, list[float]] = {}


def sql_times(rt: runtime.Runtime) -> None:
    """Add up the time of each statement (by its first 90 characters)."""
    from sqlalchemy import event

    @event.listens_for(rt.db.engine, "before_cursor_execute")
    def before(conn, cursor, statement, params, context, many):
        conn.info["t0"] = time.perf_counter()

    @event.listens_for(rt.db.engine, "after_cursor_execute")
    def after(conn, cursor, statement, params, context, many):
        entry = SQL_TIMES.setdefault(" ".join(statement.split())[:90], [0, 0.0])
        entry[0] += 1
        entry[1] += time.perf_counter() - conn.info["t0"]


def current_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:")) / 1024


def peak_mb() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=("pg", "sqlite", "both"), default="both")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--workers",
        type=int,
        choices=(0, 1),
        default=0,
        help="0: validated ahead by a thread; 1: by a process",
    )
    parser.add_argument("--validate-only", action="store_true")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="PostgreSQL: the least time any import into this schema needs (see above)",
    )
    parser.add_argument("--sql-times", action="store_true", help="time each SQL statement")
    parser.add_argument(
        "--drop-index",
        action="append",
        default=[],
        help="drop this index first (to measure what it costs)",
    )
    parser.add_argument(
        "--drop-constraint",
        action="append",
        default=[],
        metavar="TABLE.NAME",
        help="drop this constraint (a foreign key, say) "
        "first, PostgreSQL only (to measure what it costs)",
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "LISTMGR_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
    )
    benchkit.add_arguments(parser)
    args = parser.parse_args()
    if args.floor and args.db != "pg":
        parser.error("--floor measures PostgreSQL: use it with --db pg")
    benchkit.exit_on_sigterm()
    path = generate(args.rows)
    if args.db == "both":  # each in a process of its own, so that each peak RSS is its own
        summary = benchkit.Summary("import")
        for kind in ("pg", "sqlite"):
            extra = ["--summary", f"{args.summary}.{kind}"] if args.summary else []
            subprocess.run(
                [sys.executable, __file__, *sys.argv[1:], "--db", kind, *extra], check=True
            )
            if args.summary:
                part = Path(f"{args.summary}.{kind}")
                summary.rows += [benchkit.Row(**r) for r in json.loads(part.read_text())["rows"]]
                part.unlink()
        summary.write(args.summary)
        return
    print(f"file: {path} ({path.stat().st_size / 1e6:.0f} MB, {args.rows:,} rows)")
    summary = benchkit.Summary("import")
    try:
        run(args, path, summary)
    finally:
        dbmod.dispose_engines()
        drop_database(args.db, args.pg_url)
    summary.write(args.summary)


def drop_database(kind: str, pg_url: str) -> None:
    """Remove this run's database."""
    if kind == "sqlite":
        for suffix in ("", "-wal", "-shm", ".migrate-lock"):
            Path(f"{SQLITE_PATH}{suffix}").unlink(missing_ok=True)
        return
    admin = create_engine(make_url(pg_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{PG_NAME}" WITH (FORCE)'))
    admin.dispose()


def run(args: argparse.Namespace, path: Path, summary: benchkit.Summary) -> None:
    kind = args.db
    rt = setup(database(kind, args.pg_url))
    if args.validate_only:
        print(f"validate only: {validate_only(path, rt):,.0f} rows/s in one process")
        return
    if args.floor:
        floor(rt, args.rows, validate_only(path, rt))
        dbmod.dispose_engines()
        against_floor(args, path, summary)
        return
    for name in args.drop_index:
        with rt.db.engine.begin() as conn:
            conn.execute(text(f"DROP INDEX IF EXISTS {name}"))
    for spec in args.drop_constraint:
        table, _, name = spec.partition(".")
        with rt.db.engine.begin() as conn:
            conn.execute(text(f"ALTER TABLE {table} DROP CONSTRAINT {name}"))
    if args.sql_times:
        sql_times(rt)
    import_once(rt, args, path, summary)


def import_once(
    rt: runtime.Runtime, args: argparse.Namespace, path: Path, summary: benchkit.Summary
) -> float:
    """Import the file as `listmgr import` does; prints and returns its rows/s."""
    kind = args.db
    stored_at = time.perf_counter()
    job_id = imports.create_job(
        rt,
        path=path,
        list_slug="customers",
        actor="bench",
        consent="imported: existing customers (benchmark)",
    )
    print(
        f"{kind}: file checked and stored in the database in {time.perf_counter() - stored_at:.1f} s"
    )
    before = current_mb()
    start = time.perf_counter()
    info = imports.run_job(rt, job_id, workers=args.workers)
    took = time.perf_counter() - start
    assert info is not None and info.status == "done", info
    rate = info.rows / took
    summary.add(f"{kind}: import", rate, "rows/s", at_least=GOALS[kind])
    print(
        f"{kind}: {info.rows:,} rows in {took:.1f} s = {rate:,.0f} rows/s "
        f"({info.inserted:,} new, {info.errors:,} errors); goal {GOALS[kind]:,} rows/s, "
        f"ratio {rate / GOALS[kind]:.2f}"
    )
    own, children = peak_mb()
    ratio = max(own, children) / RSS_GOAL_MB
    summary.add(f"{kind}: peak RSS", max(own, children), "MB", at_most=RSS_GOAL_MB)
    print(
        f"{kind}: RSS {before:.0f} MB before the import; peak RSS {own:.0f} MB in this "
        f"process, {children:.0f} MB in the largest worker process; goal {RSS_GOAL_MB} MB, "
        f"ratio {ratio:.2f}"
    )
    if args.sql_times:
        for sql, (n, secs) in sorted(SQL_TIMES.items(), key=lambda x: -x[1][1])[:15]:
            print(f"   {secs:7.2f} s {n:6d}x  {sql}")
    dbmod.dispose_engines()
    return rate


if __name__ == "__main__":
    main()
