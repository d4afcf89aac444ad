"""Writing validated import rows, set-based: a chunk's people arrive as one JSON array, go into
a temporary staging table in one statement, one lookup finds the addresses the database already
knows (seen earlier in the file, suppressed, existing, member of the list), and each target
table then gets one INSERT ... SELECT from the staging table. Per row, no Python runs here."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import text
from sqlalchemy.engine import Connection

# act of a staged row: new (a new subscriber), old (an existing one), kept (skipped but
# remembered as handled), gone (skipped and not remembered: a repeat or a suppressed address).
STAGE = (
    "row_no INTEGER PRIMARY KEY, email TEXT NOT NULL, email_hash TEXT NOT NULL, "
    "name TEXT NOT NULL, fields TEXT NOT NULL, interests TEXT NOT NULL, "
    "act TEXT NOT NULL DEFAULT 'new', member TEXT, sid INTEGER"
)
PEOPLE = "row_no, email, email_hash, name, fields, interests"  # see importrows.person
LANDED = "act IN ('new', 'old')"
SUPPRESSED_PEOPLE = "act = 'old' AND sid IS NOT NULL"  # mode suppress: a subscriber's event


@dataclass
class Outcome:
    """What one piece did: counts and the report lines (row, email, result, reason)."""

    inserted: int = 0
    updated: int = 0
    skipped: int = 0
    lines: list[tuple[int, str, str, str]] = field(default_factory=list)
    erased: set[str] = field(default_factory=set)  # addresses of erased people: not reported

    def skip(self, row: int, email: str, reason: str) -> None:
        self.lines.append((row, email, "skipped", reason))
        self.skipped += 1


class Known(NamedTuple):
    """A staged address the database knows."""

    row: int
    email: str
    seen_row: int | None  # an earlier row of this file had it
    suppressed: str | None  # the suppression reason
    subscriber_id: int | None
    member: str | None  # membership status on the import's list


def stamp(now: datetime) -> str:
    """A timestamp as SQLAlchemy stores it on SQLite."""
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
    raw = cast(sqlite3.Connection, conn.connection.driver_connection)
    before = raw.execute("PRAGMA foreign_keys").fetchone()[0]
    raw.execute("PRAGMA foreign_keys = OFF")
    try:
        yield
    finally:
        raw.execute(f"PRAGMA foreign_keys = {int(before)}")


class Writer:
    """Writes the pieces of one import run on one connection. Its temporary tables: imp_seen
    (addresses already handled that left no consent event of the job, so repeats across
    chunks are found without keeping them in memory) and imp_batch (the piece being written)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.pg = conn.dialect.name == "postgresql"
        self.drop()
        conn.exec_driver_sql(
            "CREATE TEMPORARY TABLE imp_seen (email TEXT PRIMARY KEY, row_no INTEGER NOT NULL)"
        )
        if self.pg:  # new subscribers' ids as the rows arrive (unused ones are only a gap)
            sequence = conn.exec_driver_sql(
                "SELECT pg_get_serial_sequence('subscriber', 'id')"
            ).scalar_one()
            literal = "'" + sequence.replace("'", "''") + "'"
            conn.exec_driver_sql(
                f"CREATE TEMPORARY TABLE imp_batch ({STAGE} DEFAULT nextval({literal}))"
            )
        else:
            conn.exec_driver_sql(f"CREATE TEMPORARY TABLE imp_batch ({STAGE})")
            # A larger page cache for this connection: index inserts at random keys (the
            # address) otherwise re-read the same pages for every chunk.
            conn.exec_driver_sql("PRAGMA cache_size = -32000")

    def begin_chunk(self) -> None:
        """Per chunk transaction: its commit need not wait for the disk (a crash loses the
        chunk and its progress mark together, and the resumed run redoes it), and its
        statements are not compiled to machine code (JIT): the row estimates of the index
        probes add up to costs that start a compilation of about a second a statement, for a
        statement that runs in tens of milliseconds."""
        if self.pg:
            self.conn.exec_driver_sql(
                "SELECT set_config('synchronous_commit', 'off', true), "
                "set_config('jit', 'off', true)"
            )

    def drop(self) -> None:
        for name in ("imp_seen", "imp_batch"):
            self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS {'' if self.pg else 'temp.'}{name}")
        if not self.pg:
            self.conn.exec_driver_sql("PRAGMA cache_size = -2000")  # the default again

    def _run(self, sql: str, **params: Any) -> Any:
        return self.conn.execute(text(sql), params)

    def _at(self, now: datetime) -> Any:
        return now if self.pg else stamp(now)

    # -- staging -----------------------------------------------------------------------------------
    def stage(self, people: str, count: int, first: int, after_row: int) -> int:
        """Put a piece's people (count of them, from importrows.encode, the first in row first)
        into imp_batch; rows up to after_row (done by an earlier run) are only remembered.
        Returns how many are staged."""
        if self.pg:
            self.conn.exec_driver_sql("TRUNCATE imp_batch")
            driver: Any = self.conn.connection.driver_connection  # a psycopg connection
            cursor = driver.cursor()
            with cursor.copy(f"COPY imp_batch ({PEOPLE}) FROM STDIN") as copy:
                copy.write(people)
            cursor.close()
        else:
            # SQLite: this transaction holds the write lock (BEGIN IMMEDIATE), so the highest
            # id ever given is ours to go on from; new subscribers get the ids after it in row
            # order (and AUTOINCREMENT remembers them).
            self.conn.exec_driver_sql("DELETE FROM imp_batch")
            top = (
                self.conn.exec_driver_sql(
                    "SELECT max(coalesce((SELECT max(id) FROM subscriber), 0), coalesce((SELECT seq "
                    "FROM sqlite_sequence WHERE name = 'subscriber'), 0))"
                ).scalar()
                or 0
            )
            self._run(
                f"INSERT INTO imp_batch ({PEOPLE}, sid) SELECT value ->> 0, "
                "value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, "
                ":base + (value ->> 0) FROM json_each(:people)",
                people=people,
                base=top - first + 1,
            )
        if after_row:
            self._run(
                "INSERT INTO imp_seen (email, row_no) SELECT email, row_no FROM imp_batch "
                "WHERE row_no <= :r",
                r=after_row,
            )
            count -= self._run("DELETE FROM imp_batch WHERE row_no <= :r", r=after_row).rowcount
        return count

    def lookup(self, list_id: int | None, job_id: int) -> list[Known]:
        """The staged addresses the database knows (a new address costs no result row)."""
        # Index probes row by row, written so that no plan can do otherwise: the temporary
        # tables have no statistics, and PostgreSQL otherwise chose joins that read the whole
        # subscriber table for every piece (quadratic: 24 s of a million-row import). An
        # address this run handled is a subscriber or suppressed by now, so only those are
        # looked for among the rows handled: in imp_seen, or by the consent event this job
        # wrote for them (see _remember).
        rows = self._run(
            "WITH k AS MATERIALIZED (SELECT b.row_no, b.email, "
            "(SELECT sp.reason FROM suppression sp WHERE sp.email_hash = b.email_hash) "
            "AS reason, (SELECT s.id FROM subscriber s WHERE s.email = b.email) AS sid "
            "FROM imp_batch b) "
            "SELECT row_no, email, coalesce((SELECT sn.row_no FROM imp_seen sn "
            "WHERE sn.email = k.email), (SELECT min(CAST(ce.detail ->> 'row' AS INTEGER)) "
            "FROM consent_event ce WHERE ce.subscriber_id = k.sid AND ce.source = 'import' "
            "AND CAST(ce.detail ->> 'job' AS INTEGER) = :job)), reason, sid, "
            "(SELECT m.status FROM membership m WHERE m.subscriber_id = k.sid AND "
            "m.list_id = :lid) FROM k WHERE reason IS NOT NULL OR sid IS NOT NULL "
            "ORDER BY row_no",
            lid=list_id,
            job=job_id,
        )
        return [Known(*r) for r in rows]

    def _decide(self, decisions: list[tuple[Known, str]]) -> None:
        """Write the act (and subscriber id, member status) of known rows into imp_batch."""
        if decisions:
            self.conn.execute(
                text(
                    "UPDATE imp_batch SET act = :act, sid = coalesce(:sid, sid), "
                    "member = :member WHERE row_no = :row"
                ),
                [
                    {"row": k.row, "act": act, "sid": k.subscriber_id, "member": k.member}
                    for k, act in decisions
                ],
            )

    def _screen(self, out: Outcome, known: list[Known], suppress: bool) -> list[tuple[Known, str]]:
        """Skip repeats and suppressed addresses ("gone"); the others known belong to a
        subscriber ("old")."""
        decisions = []
        for k in known:
            if k.suppressed == "erased":
                out.erased.add(k.email)
            if k.seen_row is not None:
                out.skip(k.row, k.email, f"the same address as row {k.seen_row}")
            elif k.suppressed is not None:
                out.skip(
                    k.row,
                    k.email,
                    f"already on the suppression list ({k.suppressed})"
                    if suppress
                    else f"on the suppression list ({k.suppressed}): only a "
                    "new sign-up by the person can add this address again",
                )
            else:
                decisions.append((k, "old"))
                continue
            decisions.append((k, "gone"))
        return decisions

    def _remember(self, evidenced: str) -> None:
        """Remember the rows of imp_batch that were handled (not "gone") and left no consent
        event of this job (those where `evidenced` holds did: the lookup finds them through
        it)."""
        self._run(
            "INSERT INTO imp_seen (email, row_no) SELECT email, row_no FROM imp_batch "
            f"WHERE act <> 'gone' AND NOT ({evidenced})"
        )

    # -- the piece ---------------------------------------------------------------------------------
    def apply(
        self,
        out: Outcome,
        staged: int,
        *,
        list_id: int,
        mode: str,
        now: datetime,
        actor: str,
        wording: str,
        job_id: int,
    ) -> None:
        """Create or update the staged subscribers, their membership, interests and consent
        events."""
        decisions = []
        for k, act in self._screen(out, self.lookup(list_id, job_id), suppress=False):
            if act == "old" and k.member in ("unsubscribed", "bounced"):
                out.skip(
                    k.row,
                    k.email,
                    f"{k.member} on this list: an import never subscribes someone again",
                )
                act = "kept"
            elif act == "old" and mode == "add":
                out.skip(
                    k.row,
                    k.email,
                    "already a subscriber (mode add leaves existing people unchanged)",
                )
                act = "kept"
            decisions.append((k, act))
        self._decide(decisions)
        self._remember(LANDED)
        old = sum(1 for _, act in decisions if act == "old")
        new = staged - len(decisions)
        at = self._at(now)
        fields = "CAST(fields AS JSONB)" if self.pg else "fields"
        self._run(
            "INSERT INTO subscriber (id, email, email_hash, name, fields, source, "
            "consent_profiling, consent_tracking, soft_bounces, created_at, updated_at) "
            f"SELECT sid, email, email_hash, name, {fields}, 'import', false, false, 0, "
            ":at, :at FROM imp_batch WHERE act = 'new' ORDER BY sid",
            at=at,
        )
        if mode == "upsert" and old:
            # A name replaces the old one, field values merge into the old ones.
            merge = (
                "subscriber.fields || CAST(b.fields AS JSONB)"
                if self.pg
                else "json_patch(subscriber.fields, b.fields)"
            )
            self._run(
                f"UPDATE subscriber SET name = CASE WHEN b.name <> '' THEN b.name "
                f"ELSE subscriber.name END, fields = {merge}, updated_at = :at "
                f"FROM imp_batch b WHERE b.act = 'old' AND subscriber.id = b.sid",
                at=at,
            )
        self._run(
            "INSERT INTO membership (subscriber_id, list_id, status, opt_in_level, source, "
            "created_at, confirmed_at, updated_at) SELECT sid, :lid, 'confirmed', '', "
            f"'import', :at, :at, :at FROM imp_batch WHERE {LANDED} AND member IS NULL "
            "ORDER BY sid",
            lid=list_id,
            at=at,
        )
        if old:  # the importer vouches for consent: a pending double opt-in is confirmed
            self._run(
                "UPDATE membership SET status = 'confirmed', confirmed_at = :at, "
                "updated_at = :at WHERE list_id = :lid AND status = 'pending' AND "
                "subscriber_id IN (SELECT sid FROM imp_batch WHERE act = 'old' AND "
                "member = 'pending')",
                lid=list_id,
                at=at,
            )
        self._interests(old)
        self._consent(
            LANDED,
            kind="import",
            list_id=list_id,
            at=at,
            actor=actor,
            wording=wording,
            job_id=job_id,
        )
        out.inserted, out.updated = new, old if mode == "upsert" else 0

    def _interests(self, old: int) -> None:
        each = (
            "jsonb_array_elements_text(CAST(b.interests AS JSONB)) AS j(value)"
            if self.pg
            else "json_each(b.interests) AS j"
        )
        self._run(
            f"INSERT INTO subscriber_interest (subscriber_id, interest) SELECT b.sid, "
            f"j.value FROM imp_batch b, {each} WHERE b.act = 'new' AND b.interests <> '[]'"
        )
        if old:
            self._run(
                f"INSERT INTO subscriber_interest (subscriber_id, interest) SELECT b.sid, "
                f"j.value FROM imp_batch b, {each} WHERE b.act = 'old' AND "
                f"b.interests <> '[]' ON CONFLICT DO NOTHING"
            )

    def _consent(
        self,
        where: str,
        *,
        kind: str,
        list_id: int | None,
        at: Any,
        actor: str,
        wording: str,
        job_id: int,
    ) -> None:
        detail = (
            "CAST(json_build_object('job', CAST(:job AS INTEGER), 'row', row_no) AS JSON)"
            if self.pg
            else "json_object('job', :job, 'row', row_no)"
        )
        self._run(
            "INSERT INTO consent_event (subscriber_id, detail, list_id, kind, at, source, "
            f"actor, ip, user_agent, wording) SELECT sid, {detail}, :lid, :kind, :at, "
            f"'import', :actor, '', '', :wording FROM imp_batch WHERE {where} "
            "ORDER BY sid",
            job=job_id,
            lid=list_id,
            kind=kind,
            at=at,
            actor=actor[:100],
            wording=wording,
        )

    def suppress(
        self, out: Outcome, staged: int, *, now: datetime, actor: str, wording: str, job_id: int
    ) -> None:
        """Mode suppress: put the staged addresses on the suppression list."""
        decisions = self._screen(out, self.lookup(None, job_id), suppress=True)
        self._decide(decisions)
        self._remember(SUPPRESSED_PEOPLE)
        detail = f"import {job_id}: {wording}" if wording else f"import {job_id}"
        detail, at = detail[:500], self._at(now)
        self._run(
            "INSERT INTO suppression (email_hash, email, reason, detail, created_at) "
            "SELECT email_hash, email, 'manual', :detail, :at FROM imp_batch "
            f"WHERE {LANDED}",
            detail=detail,
            at=at,
        )
        out.inserted = staged - sum(1 for _, act in decisions if act == "gone")
        self._consent(
            SUPPRESSED_PEOPLE,
            kind="suppressed",
            list_id=None,
            at=at,
            actor=actor,
            wording=wording,
            job_id=job_id,
        )
