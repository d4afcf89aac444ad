"""Writing one chunk of validated import rows: one lookup query classifies every address
(seen earlier in the file, suppressed, existing, member of the list), then the rows go straight
into the tables with COPY (PostgreSQL) or executemany / INSERT ... SELECT over JSON (SQLite)."""
from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Iterator, NamedTuple, Sequence

from sqlalchemy import text
from sqlalchemy.engine import Connection

from listmgr.importrows import Person

SUBSCRIBER = ("id, email, email_hash, name, fields, source, consent_profiling, consent_tracking, "
              "soft_bounces, created_at, updated_at")
MEMBERSHIP = ("subscriber_id, list_id, status, opt_in_level, source, created_at, confirmed_at, "
              "updated_at")
CONSENT = "subscriber_id, detail, list_id, kind, at, source, actor, ip, user_agent, wording"
SUPPRESSION = "email_hash, email, reason, detail, created_at"


@dataclass
class Outcome:
    """What one chunk did: counts and the report lines (row, email, result, reason)."""

    inserted: int = 0
    updated: int = 0
    skipped: int = 0
    lines: list[tuple[int, str, str, str]] = field(default_factory=list)

    def skip(self, row: int, email: str, reason: str) -> None:
        self.lines.append((row, email, "skipped", reason))
        self.skipped += 1


class Known(NamedTuple):
    """What the database knows of one address."""

    seen_row: int | None       # an earlier row of this file had it
    suppressed: str | None     # the suppression reason
    subscriber_id: int | None
    member: str | None         # membership status on the import's list


UNKNOWN = Known(None, None, None, None)


def stamp(now: datetime) -> str:
    """A timestamp as SQLAlchemy stores it on SQLite (and PostgreSQL reads): formatted once
    per chunk instead of once per value."""
    return now.strftime("%Y-%m-%d %H:%M:%S.%f")


@contextmanager
def bulk_settings(conn: Connection) -> Iterator[None]:
    """SQLite: no foreign key check by row while this connection imports (restored after)."""
    if conn.dialect.name != "sqlite":
        yield
        return
    # Safe: each chunk holds the write lock from its lookup to its commit (BEGIN IMMEDIATE), so
    # every subscriber it refers to was read or inserted under that lock, and nobody deletes it
    # in between. The pragma only works outside a transaction, hence the driver connection.
    raw = conn.connection.driver_connection
    before = raw.execute("PRAGMA foreign_keys").fetchone()[0]  # type: ignore[union-attr]
    raw.execute("PRAGMA foreign_keys = OFF")  # type: ignore[union-attr]
    try:
        yield
    finally:
        raw.execute(f"PRAGMA foreign_keys = {int(before)}")  # type: ignore[union-attr]


class Writer:
    """Writes chunks of one import run on one connection (it keeps a temporary table of the
    addresses already handled, so duplicates across chunks are found without keeping them in
    memory)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.pg = conn.dialect.name == "postgresql"
        for name in ("imp_seen", "imp_batch"):
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {'' if self.pg else 'temp.'}{name}")
        conn.exec_driver_sql("CREATE TEMPORARY TABLE imp_seen (email TEXT PRIMARY KEY, "
                             "row_no INTEGER NOT NULL)")
        if not self.pg:
            conn.exec_driver_sql("CREATE TEMPORARY TABLE imp_batch (email TEXT, email_hash TEXT)")
            # A larger page cache for this connection: index inserts at random keys (address,
            # hash) otherwise re-read the same pages for every chunk.
            conn.exec_driver_sql("PRAGMA cache_size = -32000")

    def begin_chunk(self) -> None:
        """Per chunk transaction: its commit need not wait for the disk (a crash loses the
        chunk and its progress mark together, and the resumed run redoes it)."""
        if self.pg:
            self.conn.exec_driver_sql("SET LOCAL synchronous_commit = off")

    def drop(self) -> None:
        for name in ("imp_seen", "imp_batch"):
            self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
        if not self.pg:
            self.conn.exec_driver_sql("PRAGMA cache_size = -2000")  # the default again

    # -- plumbing: one way to bulk-insert and to run SQL on either engine ----------------------
    def _run(self, sql: str, **params: Any) -> Any:
        return self.conn.execute(text(sql), params)

    def _insert(self, table: str, columns: str, rows: Iterable[Sequence[Any]],
                same: tuple[Any, ...] = ()) -> None:
        """Rows of the first columns; the last len(same) columns get the values of same."""
        rows = list(rows)
        if not rows:
            return
        if self.pg:
            cursor = self.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row((*row, *same))
            cursor.close()
            return
        width = len(rows[0])
        if len(same) <= width:
            marks = ", ".join("?" * (width + len(same)))
            self.conn.exec_driver_sql(f"INSERT INTO {table} ({columns}) VALUES ({marks})",
                                      [(*row, *same) for row in rows] if same else rows)
            return
        # Mostly the same values: one INSERT ... SELECT over a JSON array of what differs binds
        # them once instead of once a row (measured: membership rows 2-3x faster).
        values = ", ".join([f"json_extract(value, '$[{i}]')" for i in range(width)]
                           + ["?"] * len(same))
        self.conn.exec_driver_sql(f"INSERT INTO {table} ({columns}) SELECT {values} "
                                  f"FROM json_each(?)", (*same, json.dumps(rows)))

    def _new_ids(self, table: str, count: int) -> list[int]:
        if not count:
            return []
        if self.pg:
            return list(self.conn.execute(text(
                f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) "
                f"FROM generate_series(1, :n)"), {"n": count}).scalars())
        # SQLite: this transaction holds the write lock (BEGIN IMMEDIATE), so max(id) is ours.
        top = self.conn.exec_driver_sql(f"SELECT coalesce(max(id), 0) FROM {table}").scalar()
        return list(range(top + 1, top + 1 + count))

    # -- the chunk ---------------------------------------------------------------------------------
    def lookup(self, people: Sequence[Person], list_id: int | None) -> dict[str, Known]:
        """Classify every address of the chunk in one query (addresses it lacks are UNKNOWN)."""
        if not people:
            return {}
        if self.pg:
            source = ("unnest(CAST(:emails AS TEXT[]), CAST(:hashes AS TEXT[])) "
                      "AS b(email, email_hash)")
            params: dict[str, Any] = {"emails": [p.email for p in people],
                                      "hashes": [p.email_hash for p in people]}
        else:
            self.conn.exec_driver_sql("DELETE FROM imp_batch")
            self._insert("imp_batch", "email, email_hash",
                         [(p.email, p.email_hash) for p in people])
            source, params = "imp_batch b", {}
        rows = self._run(
            f"SELECT b.email, sn.row_no, sp.reason, s.id, m.status FROM {source} "
            f"LEFT JOIN imp_seen sn ON sn.email = b.email "
            f"LEFT JOIN suppression sp ON sp.email_hash = b.email_hash "
            f"LEFT JOIN subscriber s ON s.email = b.email "
            f"LEFT JOIN membership m ON m.subscriber_id = s.id AND m.list_id = :lid "
            # Only what is known comes back: a new address costs no result row.
            f"WHERE sn.row_no IS NOT NULL OR sp.reason IS NOT NULL OR s.id IS NOT NULL",
            lid=list_id, **params)
        return {r[0]: Known(r[1], r[2], r[3], r[4]) for r in rows}

    def remember(self, people: Sequence[Person]) -> None:
        """Record addresses as handled (rows a resumed run skips are remembered this way)."""
        self._insert("imp_seen", "email, row_no", [(p.email, p.row) for p in people])

    def _screen(self, out: Outcome, people: Sequence[Person], known: dict[str, Known],
                suppress: bool) -> list[Person]:
        kept = []
        for p in people:
            k = known.get(p.email, UNKNOWN)
            if k.seen_row is not None:
                out.skip(p.row, p.email, f"the same address as row {k.seen_row}")
            elif k.suppressed is not None:
                out.skip(p.row, p.email, f"already on the suppression list ({k.suppressed})"
                         if suppress else f"on the suppression list ({k.suppressed}): only a "
                         "new sign-up by the person can add this address again")
            else:
                kept.append(p)
        return kept

    def _consent(self, pairs: Iterable[tuple[int, Person]], *, kind: str, list_id: int | None,
                 now: datetime, actor: str, wording: str, job_id: int) -> None:
        at, actor = stamp(now), actor[:100]
        self._insert("consent_event", CONSENT, [
            (sid, '{"job": %d, "row": %d}' % (job_id, p.row)) for sid, p in pairs],
            (list_id, kind, at, "import", actor, "", "", wording))

    def apply(self, out: Outcome, people: Sequence[Person], *, list_id: int, mode: str,
              now: datetime, actor: str, wording: str, job_id: int) -> None:
        """Create or update the subscribers, their membership, interests and consent events."""
        known = self.lookup(people, list_id)
        kept = self._screen(out, people, known, suppress=False)
        at = stamp(now)
        self.remember(kept)
        new: list[Person] = []
        old: list[tuple[int, Person, str | None]] = []
        for p in kept:
            k = known.get(p.email, UNKNOWN)
            if k.member in ("unsubscribed", "bounced"):
                out.skip(p.row, p.email, f"{k.member} on this list: an import never "
                                         "subscribes someone again")
            elif k.subscriber_id is not None and mode == "add":
                out.skip(p.row, p.email, "already a subscriber (mode add leaves existing "
                                         "people unchanged)")
            elif k.subscriber_id is None:
                new.append(p)
            else:
                old.append((k.subscriber_id, p, k.member))
        ids = self._new_ids("subscriber", len(new))
        self._insert("subscriber", SUBSCRIBER, [
            (sid, p.email, p.email_hash, p.name, p.fields or "{}") for sid, p in zip(ids, new)],
            ("import", False, False, 0, at, at))
        if mode == "upsert":
            self._update(old, now)
        landed = list(zip(ids, new)) + [(sid, p) for sid, p, _ in old]
        self._insert("membership", MEMBERSHIP, [
            (sid,) for sid, p in landed if known.get(p.email, UNKNOWN).member is None],
            (list_id, "confirmed", "", "import", at, at, at))
        pending = [sid for sid, _, member in old if member == "pending"]
        if pending:  # the importer vouches for consent: a pending double opt-in is confirmed
            self._run_many("UPDATE membership SET status = 'confirmed', confirmed_at = :now, "
                           "updated_at = :now WHERE list_id = :lid AND subscriber_id = :sid "
                           "AND status = 'pending'",
                           [{"now": now, "lid": list_id, "sid": sid} for sid in pending])
        self._interests(ids, new, old)
        self._consent(landed, kind="import", list_id=list_id, now=now, actor=actor,
                      wording=wording, job_id=job_id)
        out.inserted, out.updated = len(new), len(old) if mode == "upsert" else 0

    def _run_many(self, sql: str, params: list[dict[str, Any]]) -> None:
        if params:
            self.conn.execute(text(sql), params)

    def _update(self, old: list[tuple[int, Person, str | None]], now: datetime) -> None:
        """Upsert: a name replaces the old one, field values merge into the old ones."""
        merge = ("fields || CAST(:fields AS JSONB)" if self.pg
                 else "json_patch(fields, :fields)")
        self._run_many(
            f"UPDATE subscriber SET name = coalesce(:name, name), fields = {merge}, "
            f"updated_at = :now WHERE id = :sid",
            [{"name": p.name or None, "fields": p.fields or "{}", "now": now, "sid": sid}
             for sid, p, _ in old])

    def _interests(self, ids: list[int], new: list[Person],
                   old: list[tuple[int, Person, str | None]]) -> None:
        self._insert("subscriber_interest", "subscriber_id, interest", [
            (sid, key) for sid, p in zip(ids, new) for key in p.interests])
        adds = [{"sid": sid, "key": key} for sid, p, _ in old for key in p.interests]
        self._run_many("INSERT INTO subscriber_interest (subscriber_id, interest) "
                       "VALUES (:sid, :key) ON CONFLICT DO NOTHING", adds)

    def suppress(self, out: Outcome, people: Sequence[Person], *, now: datetime, actor: str,
                 wording: str, job_id: int) -> None:
        """Mode suppress: put the addresses on the suppression list."""
        known = self.lookup(people, None)
        kept = self._screen(out, people, known, suppress=True)
        self.remember(kept)
        detail, at = f"import {job_id}: {wording}"[:500], stamp(now)
        self._insert("suppression", SUPPRESSION, [(p.email_hash, p.email, "manual", detail, at)
                                                  for p in kept])
        out.inserted = len(kept)
        members = [(k.subscriber_id, p) for p in kept
                   if (k := known.get(p.email, UNKNOWN)).subscriber_id is not None]
        self._consent(members, kind="suppressed", list_id=None,  # type: ignore[arg-type]
                      now=now, actor=actor, wording=wording, job_id=job_id)
