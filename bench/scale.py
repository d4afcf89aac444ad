"""Benchmark: the 10-million rehearsal. How segment counts, campaign starts, claiming and the
delivery ledger grow from 1,000,000 to 10,000,000 subscribers on PostgreSQL.

    python bench/scale.py [--sizes 1000000,10000000] [--pg-url URL] [--keep] [--reuse NAME]

For each size N, a scratch database `scale_<pid>_<N>` beside --pg-url is created, migrated and
filled with COPY exactly as bench/segments.py fills its own (N subscribers, 90% confirmed on the
list "news", 30% on a second list, interests, N/2 activity events, 1% suppressed), then:

- segment count: the rule of bench/segments.py (a field, an interest and an activity
  condition) with the audience of "news", through listmgr.services.segments.count (median of
  3 after a warm-up, of 1 when the warm-up took over 5 s);
- campaign start: listmgr.services.campaigns.start of a campaign to the whole of "news" (the
  INSERT ... SELECT that materializes the ledger, checklist and all), timed;
- claim rate: the ledger rows claimed per second by listmgr.services.ledger.Ledger.claim (the
  statement a sending job runs, batches of send_batch_size), every claimed row then recorded as
  sent by Ledger.step (one step per batch, where a job steps once per round of connections:
  the same two row versions per recipient, fewer round trips); no SMTP. The first and the last
  --sample rows (default 200,000) go through these statements; the rows between, if any, get
  the same two row versions from two set-wise UPDATEs (a 10M campaign claimed row by row
  takes an hour on a loaded 2-core machine). The claim rate at the start and at the end
  shows whether claiming slows as the campaign goes;
- the delivery table and each of its indexes (pg_relation_size) after the start, after the
  campaign, and after VACUUM; dead tuples after the campaign and the time of VACUUM (autovacuum
  is switched off for the table during the run, so every size is measured the same way);
- the end of the retention period: listmgr.services.ledger_archive.archive keeps the
  campaign's figures and deletes its ledger rows in batches (as the worker's sweep does,
  without its time budget), then VACUUM.

Then, for each figure, its growth from the smallest to the largest size and the ratio of the
per-row costs (about 1: linear), and the projection of a year of weekly campaigns to the
largest audience (52 campaigns in one delivery table) from the measured bytes per row and
VACUUM's time per byte of index, and what the ledger holds under the default
retention_delivery_days instead.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import segments as seeding  # bench/segments.py: the COPY seeding of subscribers and events
from send import BODY  # bench/send.py: the campaign body every send benchmark uses
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from listmgr import db as dbmod
from listmgr import runtime
from listmgr.errors import ListmgrError, ValidationError
from listmgr.models import utcnow
from listmgr.services import campaigns, ledger, ledger_archive, segments
from listmgr.services.campaign_setup import resolve_lists
from listmgr.settings import shipped_defaults

# The segment counted at each size: a field, an interest and an activity condition, all three.
RULES = dict(seeding.SHAPES)["all(plan, interest, viewed 2x)"]

SECRET = "bench-secret-key-0123456789abcdef"
WEEKS = 52  # a year of weekly campaigns
DEFAULT_RETENTION_DAYS = int(shipped_defaults()["retention_delivery_days"])
LINEAR = (0.8, 1.25)  # per-row cost ratios inside this band count as linear


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def ram_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def relation_sizes(conn: Any) -> dict[str, int]:
    """Bytes of the delivery table (heap, with its TOAST) and of each of its indexes."""
    out = {"table": int(conn.scalar(text("SELECT pg_table_size('delivery')")))}
    for name, size in conn.execute(
        text(
            "SELECT c.relname, pg_relation_size(c.oid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = 'delivery'::regclass ORDER BY c.relname"
        )
    ):
        out[f"index {name}"] = int(size)
    out["indexes"] = int(conn.scalar(text("SELECT pg_indexes_size('delivery')")))
    return out


def dead_tuples(conn: Any) -> tuple[int, int]:
    """(dead, live) tuples of the delivery table as the statistics collector counts them."""
    conn.execute(text("SELECT pg_stat_clear_snapshot()"))
    row = conn.execute(
        text("SELECT n_dead_tup, n_live_tup FROM pg_stat_user_tables WHERE relname = 'delivery'")
    ).one()
    return int(row[0]), int(row[1])


def segment_count(rt: runtime.Runtime) -> tuple[int | None, float]:
    """(count, median ms) of the realistic rule with the list audience; (None, s) on timeout."""
    try:
        t = time.perf_counter()
        segments.count(rt, lists=["news"], rules=RULES)  # warm-up
        slow = time.perf_counter() - t > 5
        times, found = [], 0
        for _ in range(1 if slow else 3):
            t = time.perf_counter()
            found = segments.count(rt, lists=["news"], rules=RULES)
            times.append((time.perf_counter() - t) * 1000)
        return found, statistics.median(times)
    except ValidationError:  # longer than segments.COUNT_SECONDS
        return None, segments.COUNT_SECONDS * 1000.0


class Claimer:
    """Claims and records rows the way a sending job does (Ledger.claim, then Ledger.step with
    every claimed row sent), without SMTP."""

    def __init__(self, rt: runtime.Runtime, cid: int) -> None:
        settings = rt.settings
        with rt.db.session() as s:
            self.list_ids = list(resolve_lists(s, ["news"]))
        self.book = ledger.Ledger(rt.db, synchronous=settings.send_synchronous_commit)
        self.token = ledger.claim_token(f"scale:{os.getpid()}", settings.send_connections)
        self.lease = timedelta(seconds=settings.lease_seconds)
        self.batch = settings.send_batch_size
        self.cid = cid
        self.claim_s = self.record_s = 0.0
        self.rows = self.skipped = 0

    def run(self, most: int) -> tuple[int, float]:
        """Claim and record up to about `most` rows; (rows, claim seconds)."""
        rows = 0
        claim_s = 0.0
        while rows < most:
            now = utcnow()
            t = time.perf_counter()
            got, skip = self.book.claim(
                self.cid,
                self.list_ids,
                self.token,
                limit=self.batch,
                now=now,
                lease_until=now + self.lease,
                interests=False,
            )
            claim_s += time.perf_counter() - t
            if not got and not skip:
                break
            rows += len(got) + skip
            self.skipped += skip
            done = [ledger.Outcome(r.delivery_id, ledger.SENT, server="sink") for r in got]
            t = time.perf_counter()
            gate = self.book.step(self.cid, self.token, done, [], now)
            self.record_s += time.perf_counter() - t
            if not gate.recorded:
                raise SystemExit("a claimed row was not recorded: the lease was taken")
        self.rows += rows
        self.claim_s += claim_s
        return rows, claim_s

    def fast_forward(self, count: int) -> float:
        """The same two row versions for `count` rows in two statements (the middle of a big
        campaign, between the measured first and last rows); seconds taken."""
        now = utcnow()
        cur = self.book.cur
        t = time.perf_counter()
        cur.execute(
            "UPDATE delivery d SET status = 'claimed', claimed_by = %s, lease_until = %s "
            "FROM (SELECT id FROM delivery WHERE campaign_id = %s AND status = 'queued' "
            "ORDER BY id LIMIT %s) f WHERE d.id = f.id",
            (self.token, now + self.lease, self.cid, count),
        )
        cur.execute(
            "UPDATE delivery SET status = 'sent', attempts = attempts + 1, sent_at = %s, "
            "attempted_at = %s, smtp_server = 'sink', claimed_by = '', lease_until = NULL "
            "WHERE campaign_id = %s AND status = 'claimed' AND claimed_by = %s",
            (now, now, self.cid, self.token),
        )
        return time.perf_counter() - t

    def close(self) -> None:
        self.book.finish(self.cid, utcnow())
        self.book.close()


def claim_all(rt: runtime.Runtime, cid: int, audience: int, sample: int) -> dict[str, float]:
    """The whole audience claimed and recorded: the first and the last `sample` rows through
    the real statements, the rows between (if any) fast-forwarded."""
    claimer = Claimer(rt, cid)
    forward_s = 0.0
    try:
        first, first_s = claimer.run(sample)
        middle = audience - first - sample
        if middle > 0:
            forward_s = claimer.fast_forward(middle)
        last, last_s = claimer.run(audience)
    finally:
        claimer.close()
    return {
        "claimed": claimer.rows,
        "skipped": claimer.skipped,
        "forwarded": max(middle, 0),
        "forward_s": forward_s,
        "claim_rate": claimer.rows / claimer.claim_s,
        "record_rate": claimer.rows / max(claimer.record_s, 1e-9),
        "first_rate": first / max(first_s, 1e-9),
        "last_rate": last / max(last_s, 1e-9),
    }


def one_size(
    pg_url: str, n: int, sample: int, keep: bool, reuse: str | None = None
) -> dict[str, float]:
    """Every step at n subscribers, in a new scratch database or in a kept one (`reuse`: its
    name; seeded with n subscribers, kept afterwards)."""
    name = reuse or f"scale_{os.getpid()}_{n}"
    keep = keep or reuse is not None
    base = make_url(pg_url)
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    out: dict[str, float] = {"subscribers": n}
    try:
        t = time.perf_counter()
        seed = argparse.Namespace(pg_url=pg_url, reuse=reuse, subscribers=n, events=n // 2)
        url, _ = seeding.prepare("pg", seed, name=name)  # dropped below with the size
        out["seed_s"] = time.perf_counter() - t
        print(f"  [{uptime()}]", flush=True)
        rt = runtime.build(
            {
                "database_url": url,
                "secret_key": SECRET,
                "mail_domain": "bench.test",
                "base_url": "https://lists.bench.test",
                "default_postal_address": "1 Bench Street, Berlin",
                "var_dir": f"/tmp/{name}",
            }
        )  # no broker: start() wakes no worker, this process claims
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as c:
            c.execute(text("ALTER TABLE delivery SET (autovacuum_enabled = false)"))

        found, ms = segment_count(rt)
        out["count_ms"] = ms
        print(
            f"  segment count (rule + list audience): "
            f"{'timed out' if found is None else f'{found:,}'} in {ms:.0f} ms",
            flush=True,
        )

        cid = campaigns.create(
            rt, name="scale", subject="News for {{ subscriber.name }}", lists=["news"], body=BODY
        )
        t = time.perf_counter()
        try:
            audience = campaigns.start(rt, cid, actor="bench")
        except ListmgrError as exc:  # e.g. the checklist's audience count timed out
            print(f"  campaign start REFUSED after {time.perf_counter() - t:.1f} s: {exc.message}")
            return out
        out["start_s"] = time.perf_counter() - t
        out["audience"] = audience
        print(f"  campaign start: {audience:,} ledger rows in {out['start_s']:.1f} s", flush=True)
        with engine.connect() as c:
            for k, v in relation_sizes(c).items():
                out[f"started {k}"] = v

        claim = claim_all(rt, cid, audience, sample)
        out.update(claim)
        print(
            f"  claim: {claim['claim_rate']:,.0f} rows/s over {int(claim['claimed']):,} rows"
            f" (first {sample:,}: {claim['first_rate']:,.0f}/s, last: "
            f"{claim['last_rate']:,.0f}/s); record: {claim['record_rate']:,.0f} rows/s;"
            f" {int(claim['skipped']):,} skipped; {int(claim['forwarded']):,} rows between"
            f" fast-forwarded in {claim['forward_s']:.1f} s",
            flush=True,
        )
        dbmod.dispose_engines()  # the sessions' statistics reach the collector as they end
        time.sleep(1.5)
        with engine.connect() as c:
            for k, v in relation_sizes(c).items():
                out[f"sent {k}"] = v
            out["dead_tuples"], out["live_tuples"] = dead_tuples(c)
            t = time.perf_counter()
            c.execute(text("VACUUM delivery"))
            out["vacuum_s"] = time.perf_counter() - t
            time.sleep(1.0)
            for k, v in relation_sizes(c).items():
                out[f"vacuumed {k}"] = v
            out["dead_after_vacuum"], _ = dead_tuples(c)
            t = time.perf_counter()
            c.execute(text("VACUUM delivery"))  # nothing dead: what every later VACUUM costs
            out["vacuum_idle_s"] = time.perf_counter() - t
        print(
            f"  vacuum: {int(out['dead_tuples']):,} dead tuples, VACUUM {out['vacuum_s']:.1f} s,"
            f" table {out['sent table'] / 2**20:,.0f} MB -> {out['vacuumed table'] / 2**20:,.0f}"
            f" MB, indexes {out['sent indexes'] / 2**20:,.0f} MB",
            flush=True,
        )
        # The end of the retention period: the figures kept, every row deleted in batches
        # (as the worker's sweep does it, without its time budget), then VACUUM.
        cutoff = utcnow() + timedelta(seconds=1)
        t = time.perf_counter()
        ledger_archive.archive(rt, cutoff, seconds=0)  # no time to delete: the figures alone
        out["archive_keep_s"] = time.perf_counter() - t
        done = ledger_archive.archive(rt, cutoff)
        out["archive_s"] = time.perf_counter() - t
        out["archive_delete_s"] = out["archive_s"] - out["archive_keep_s"]
        out["archived_rows"] = done.rows
        with engine.connect() as c:
            t = time.perf_counter()
            c.execute(text("VACUUM delivery"))
            out["archive_vacuum_s"] = time.perf_counter() - t
            out["archived_left"] = c.scalar(text("SELECT count(*) FROM delivery"))
        print(
            f"  retention: figures kept in {out['archive_keep_s']:.1f} s and {done.rows:,} rows"
            f" deleted in {out['archive_delete_s']:.1f} s"
            f" ({done.rows / out['archive_delete_s']:,.0f} rows/s), VACUUM"
            f" {out['archive_vacuum_s']:.1f}"
            f" s, {int(out['archived_left']):,} rows left",
            flush=True,
        )
        engine.dispose()
    finally:
        dbmod.dispose_engines()
        if not keep:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return out


# -- the table ---------------------------------------------------------------------------------
def mb(v: float) -> str:
    return f"{v / 2**20:,.1f} MB"


def secs(v: float) -> str:
    return f"{v:,.2f} s"


def msecs(v: float) -> str:
    return f"{v:,.0f} ms"


def rate(v: float) -> str:
    return f"{v:,.0f}/s"


def count(v: float) -> str:
    return f"{v:,.0f}"


def figures(results: list[dict[str, float]]) -> list[tuple[str, str, Any, bool]]:
    """(label, key, format, per-row cost is 1/value) of every figure in the table."""
    keys = sorted({k for r in results for k in r if k.startswith("started index ")})
    rows: list[tuple[str, str, Any, bool]] = [
        ("seeding (COPY, indexes, VACUUM ANALYZE)", "seed_s", secs, False),
        ("segment count, rule + list audience", "count_ms", msecs, False),
        ("campaign start (materialization)", "start_s", secs, False),
        ("claim rate (Ledger.claim)", "claim_rate", rate, True),
        ("  the first rows of the campaign", "first_rate", rate, True),
        ("  the last rows of the campaign", "last_rate", rate, True),
        ("record rate (Ledger.step)", "record_rate", rate, True),
        ("ledger table at start", "started table", mb, False),
    ]
    rows += [(f"  {k[8:]}", k, mb, False) for k in keys]
    rows += [
        ("  all indexes at start", "started indexes", mb, False),
        ("ledger table after the campaign", "sent table", mb, False),
        ("  all indexes after the campaign", "sent indexes", mb, False),
        ("dead tuples after the campaign", "dead_tuples", count, False),
        ("VACUUM after the campaign", "vacuum_s", secs, False),
        ("VACUUM again (nothing dead)", "vacuum_idle_s", secs, False),
        ("ledger table after VACUUM", "vacuumed table", mb, False),
    ]
    rows += [(f"  {k[8:]}", "vacuumed " + k[8:], mb, False) for k in keys]
    rows += [
        ("  all indexes after VACUUM", "vacuumed indexes", mb, False),
        ("retention: keep figures, delete the rows", "archive_s", secs, False),
        ("  keep the figures", "archive_keep_s", secs, False),
        ("  delete the rows", "archive_delete_s", secs, False),
        ("  VACUUM after the deletion", "archive_vacuum_s", secs, False),
    ]
    return rows


def verdict(per_row: float) -> str:
    if per_row < LINEAR[0]:
        return "better than linear"
    if per_row > LINEAR[1]:
        return "WORSE than linear"
    return "linear"


def report(results: list[dict[str, float]]) -> None:
    small, large = results[0], results[-1]
    per = "audience" if "audience" in large else "subscribers"  # a size whose start was refused
    n_small, n_large = small[per], large[per]
    heads = [f"{int(r['subscribers']):,} subs" for r in results]
    width = 40
    print()
    print(
        f"{'figure':<{width}}"
        + "".join(f"{h:>16}" for h in heads)
        + f"{'growth':>9}{'per row':>9}  verdict"
    )
    print(
        f"{'ledger rows (audience)':<{width}}"
        + "".join(f"{r.get('audience', 0):>16,.0f}" for r in results)
    )
    for label, key, fmt, inverse in figures(results):
        values = [r.get(key, 0.0) for r in results]
        line = f"{label:<{width}}" + "".join(
            f"{fmt(v) if key in r else '-':>16}" for v, r in zip(values, results, strict=True)
        )
        if values[0] and values[-1]:
            growth = values[-1] / values[0]
            # a rate is already per row; a time or a size is per row once divided by the rows
            per_row = 1 / growth if inverse else growth / (n_large / n_small)
            line += f"{growth:>8.2f}x{per_row:>9.2f}  {verdict(per_row)}"
        print(line)
    print(
        f"(growth: largest / smallest; per row: the ratio of the cost per ledger row, about 1 when"
        f" linear; linear means {LINEAR[0]}..{LINEAR[1]}; audience grew {n_large / n_small:.2f}x)"
    )
    project(max((r for r in results if "vacuum_s" in r), key=lambda r: r["audience"]))


def project(r: dict[str, float]) -> None:
    """A year of weekly campaigns to the largest audience, in one delivery table."""
    rows = r["audience"]
    year = rows * WEEKS
    table_b = r["vacuumed table"] / rows
    index_b = r["vacuumed indexes"] / rows
    ram = ram_bytes()
    # VACUUM scans every index whole whenever it has dead tuples to remove: after each weekly
    # campaign it reads the indexes of the whole year, not of that campaign.
    vacuum_per_index_byte = r["vacuum_s"] / r["sent indexes"]
    print()
    print(f"projection: {WEEKS} weekly campaigns x {rows:,.0f} = {year:,.0f} ledger rows")
    print(
        f"  measured per row after VACUUM: table {table_b:.0f} B + indexes {index_b:.0f} B ="
        f" {table_b + index_b:.0f} B"
    )
    print(
        f"  one delivery table after a year: table {year * table_b / 2**30:,.0f} GB + indexes"
        f" {year * index_b / 2**30:,.0f} GB = {year * (table_b + index_b) / 2**30:,.0f} GB"
        f" (RAM {ram / 2**30:.0f} GB: indexes {year * index_b / max(ram, 1):.1f}x RAM)"
    )
    last = year * index_b * vacuum_per_index_byte + r["vacuum_s"]
    print(
        f"  VACUUM after the 52nd campaign: ~{last / 60:,.0f} min (the indexes of all {WEEKS}"
        f" campaigns read whole at the measured {r['sent indexes'] / r['vacuum_s'] / 2**20:,.0f}"
        f" MB/s, vs {r['vacuum_s']:.0f} s after the first); the year's VACUUMs together"
        f" ~{WEEKS * (WEEKS + 1) / 2 * r['vacuum_s'] / 3600:,.1f} h"
    )
    if "archive_s" in r:
        kept = -(-DEFAULT_RETENTION_DAYS // 7) + 1  # campaigns within the period, and one ending
        weekly = r["archive_s"] + r["archive_vacuum_s"]
        print(
            f"  with retention_delivery_days = {DEFAULT_RETENTION_DAYS} (the default): at most"
            f" {kept} campaigns' ledgers = {kept * rows * (table_b + index_b) / 2**30:,.0f} GB"
            f" (the deleted rows' space reused), whatever the history; each week the oldest"
            f" goes: {r['archive_s']:.0f} s of batched DELETE (the worker's sweep, 20 s a"
            f" minute: ~{r['archive_s'] / 20:.0f} min) + VACUUM of {kept} campaigns' indexes"
            f" ~{kept * rows * index_b * vacuum_per_index_byte + r['archive_vacuum_s']:.0f} s;"
            f" {weekly:.0f} s measured for one campaign alone"
        )
    print(
        f"  per campaign (a table of its own, dropped after retention): table"
        f" {rows * table_b / 2**30:,.1f} GB + indexes {rows * index_b / 2**30:,.1f} GB, VACUUM"
        f" {r['vacuum_s']:.0f} s whatever the history; dropping it is instant, where a DELETE of"
        f" {rows:,.0f} rows writes them all once more and leaves them dead for VACUUM"
    )


# -- a year in small: one table vs a partition per campaign ----------------------------------
LEDGER_COLUMNS = (
    "campaign_id, subscriber_id, list_id, status, attempts, claimed_by, in_flight, "
    "possibly_duplicate, smtp_server, error, bounced, complained, unsubscribed"
)


def _campaign(c: Any, table: str, cid: int, rows: int) -> None:
    """A campaign's life in the ledger: materialized, every row claimed, every row sent."""
    c.execute(
        text(
            f"INSERT INTO {table} ({LEDGER_COLUMNS}) SELECT {cid}, g, 1, 'queued', 0, '', "
            f"false, false, '', '', false, false, false FROM generate_series(1, {rows}) g"
        )
    )
    c.execute(
        text(
            f"UPDATE {table} SET status = 'claimed', claimed_by = 'w:4', "
            f"lease_until = now() WHERE campaign_id = {cid}"
        )
    )
    c.execute(
        text(
            f"UPDATE {table} SET status = 'sent', attempts = 1, sent_at = now(), "
            f"attempted_at = now(), smtp_server = 'sink', claimed_by = '', lease_until = NULL "
            f"WHERE campaign_id = {cid}"
        )
    )


def _timed(c: Any, sql: str) -> float:
    t = time.perf_counter()
    c.execute(text(sql))
    return time.perf_counter() - t


def history(pg_url: str, rows: int, campaigns_: int) -> None:
    """VACUUM after each of `campaigns_` campaigns of `rows` rows, and removing the oldest
    campaign: in the delivery table as the migrations make it, and in a copy partitioned by
    campaign (a partition created and attached per campaign, VACUUM of that partition, as
    autovacuum does per partition; the oldest removed by DETACH and DROP)."""
    name = f"scale_{os.getpid()}_history"
    base = make_url(pg_url)
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    try:
        runtime.build({"database_url": url, "secret_key": SECRET}, migrate=True)
        dbmod.dispose_engines()
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as c:
            c.execute(text("ALTER TABLE delivery SET (autovacuum_enabled = false)"))
            c.execute(
                text(
                    "CREATE TABLE delivery_parted (LIKE delivery INCLUDING DEFAULTS) "
                    "PARTITION BY LIST (campaign_id)"
                )
            )
            for ddl in (
                "ALTER TABLE delivery_parted ADD PRIMARY KEY (id, campaign_id)",
                "CREATE UNIQUE INDEX ON delivery_parted (subscriber_id, campaign_id)",
                "CREATE INDEX ON delivery_parted (campaign_id, status, next_attempt_at)",
                "CREATE INDEX ON delivery_parted (sent_at, subscriber_id) WHERE status = 'sent'",
                "CREATE INDEX ON delivery_parted (campaign_id, attempted_at) "
                "WHERE status IN ('sent', 'failed')",
            ):
                c.execute(text(ddl))
            one, parted = [], []
            for cid in range(1, campaigns_ + 1):
                _campaign(c, "delivery", cid, rows)
                one.append(_timed(c, "VACUUM delivery"))
                part = f"delivery_c{cid}"
                attach = _timed(
                    c,
                    f"CREATE TABLE {part} (LIKE delivery_parted INCLUDING DEFAULTS "
                    f"INCLUDING CONSTRAINTS); ALTER TABLE {part} SET "
                    f"(autovacuum_enabled = false); ALTER TABLE delivery_parted ATTACH "
                    f"PARTITION {part} FOR VALUES IN ({cid})",
                )
                _campaign(c, "delivery_parted", cid, rows)
                parted.append(_timed(c, f"VACUUM {part}"))
                print(
                    f"  campaign {cid}: VACUUM one table {one[-1]:.2f} s, its partition "
                    f"{parted[-1]:.2f} s (partition created and attached in {attach:.2f} s)",
                    flush=True,
                )
            size_one = (
                c.scalar(text("SELECT pg_table_size('delivery')")),
                c.scalar(text("SELECT pg_indexes_size('delivery')")),
            )
            tree = "FROM pg_partition_tree('delivery_parted') WHERE isleaf"
            size_parted = (
                c.scalar(text(f"SELECT sum(pg_table_size(relid)) {tree}")),
                c.scalar(text(f"SELECT sum(pg_indexes_size(relid)) {tree}")),
            )
            last = f"delivery_c{campaigns_}"
            full_s = _timed(c, f"VACUUM FULL {last}")
            compact = c.scalar(text(f"SELECT pg_total_relation_size('{last}')"))
            delete_s = _timed(c, "DELETE FROM delivery WHERE campaign_id = 1")
            delete_vacuum_s = _timed(c, "VACUUM delivery")
            drop_s = _timed(
                c,
                "ALTER TABLE delivery_parted DETACH PARTITION delivery_c1; DROP TABLE delivery_c1",
            )
        engine.dispose()
        total = campaigns_ * rows
        print(f"history of {campaigns_} campaigns x {rows:,} rows, bytes per ledger row:")
        for label, (heap, index) in (("one table", size_one), ("partitioned", size_parted)):
            print(
                f"  {label}: table {heap / total:.0f} B + indexes {index / total:.0f} B = "
                f"{(heap + index) / total:.0f} B ({(heap + index) / 2**20:,.0f} MB)"
            )
        print(
            f"  the last campaign's partition after VACUUM FULL ({full_s:.2f} s, once it is "
            f"sent): {compact / rows:.0f} B per row"
        )
        print(
            f"  VACUUM after the last campaign: one table {one[-1]:.2f} s "
            f"({one[-1] / one[0]:.1f}x the first), its partition {parted[-1]:.2f} s "
            f"({parted[-1] / parted[0]:.1f}x the first)"
        )
        print(
            f"  VACUUMs of all {campaigns_} campaigns: one table {sum(one):.1f} s, "
            f"partitions {sum(parted):.1f} s"
        )
        print(
            f"  removing the oldest campaign: DELETE {delete_s:.2f} s + VACUUM "
            f"{delete_vacuum_s:.2f} s, vs DETACH + DROP of its partition {drop_s:.2f} s"
        )
    finally:
        dbmod.dispose_engines()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000000,10000000", help="subscriber counts, comma")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "LISTMGR_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument(
        "--sample",
        type=int,
        default=200_000,
        help="rows claimed through the real statements at the start and at the end",
    )
    parser.add_argument(
        "--history",
        metavar="CAMPAIGNSxROWS",
        help="only the history experiment, e.g. 6x300000: VACUUM after each campaign and "
        "removing the oldest, one delivery table vs a partition per campaign",
    )
    parser.add_argument("--save", help="write the figures measured so far to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the scratch databases")
    parser.add_argument(
        "--reuse",
        metavar="NAME",
        help="run the steps again in a database kept by --keep (one size: the one it holds)",
    )
    args = parser.parse_args()
    if args.history:
        many, rows = (int(x.replace("_", "")) for x in args.history.lower().split("x"))
        print(f"start: {uptime()}", flush=True)
        history(args.pg_url, rows, many)
        print(f"end: {uptime()}")
        return
    sizes = sorted(int(x.replace("_", "")) for x in args.sizes.split(",") if x.strip())
    if args.reuse and len(sizes) != 1:
        parser.error("--reuse names one database: give the one size it holds in --sizes")
    print(f"start: {uptime()}", flush=True)
    results = []
    for n in sizes:
        print(f"{n:,} subscribers:", flush=True)
        results.append(one_size(args.pg_url, n, args.sample, args.keep, args.reuse))
        if args.save:
            Path(args.save).write_text(json.dumps(results))
        print(f"  [{uptime()}]", flush=True)
    report(results)
    print(f"end: {uptime()}")


if __name__ == "__main__":
    main()
