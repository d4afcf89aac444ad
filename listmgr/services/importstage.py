"""Applying one chunk of validated import rows with set-based SQL: a staging table filled by
COPY (PostgreSQL) or executemany (SQLite), then a few INSERT ... SELECT / UPDATE ... FROM."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Sequence

from sqlalchemy import text
from sqlalchemy.engine import Connection

from listmgr.importrows import Person

STAGE_COLUMNS = "row_no, email, email_hash, name, fields, interests"


@dataclass
class Outcome:
    """What one chunk did: counts and the report lines (row, email, result, reason)."""

    inserted: int = 0
    updated: int = 0
    skipped: int = 0
    lines: list[tuple[int, str, str, str]] = field(default_factory=list)

    def skip(self, rows: Sequence[Any], reason: str) -> None:
        for row in rows:
            self.lines.append((row[0], row[1], "skipped", reason.format(*row[2:])))
        self.skipped += len(rows)


class Stage:
    """The staging tables of one import run, on one connection (temporary tables)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.pg = conn.dialect.name == "postgresql"
        self.jsonb = "CAST({} AS JSONB)" if self.pg else "{}"
        for name in ("imp_stage", "imp_seen"):
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {'' if self.pg else 'temp.'}{name}")
        conn.exec_driver_sql(
            "CREATE TEMPORARY TABLE imp_stage (row_no INTEGER NOT NULL, email TEXT NOT NULL, "
            "email_hash TEXT NOT NULL, name TEXT NOT NULL, fields TEXT NOT NULL, "
            "interests TEXT NOT NULL, sub_id INTEGER, member TEXT, is_new INTEGER DEFAULT 0)")
        conn.exec_driver_sql("CREATE TEMPORARY TABLE imp_seen (email TEXT PRIMARY KEY, "
                             "row_no INTEGER NOT NULL)")
        if self.pg:
            conn.exec_driver_sql("CREATE INDEX ON imp_stage (email)")

    def drop(self) -> None:
        for name in ("imp_stage", "imp_seen"):
            self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")

    def _run(self, sql: str, **params: Any) -> Any:
        return self.conn.execute(text(sql), params)

    def load(self, people: Sequence[Person]) -> None:
        """Replace the staging rows with these people."""
        self.conn.exec_driver_sql("DELETE FROM imp_stage")
        if not people:
            return
        if self.pg:
            cursor = self.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            with cursor.copy(f"COPY imp_stage ({STAGE_COLUMNS}) FROM STDIN") as copy:
                for p in people:
                    copy.write_row((p.row, p.email, p.email_hash, p.name, p.fields, p.interests))
            cursor.close()
            self.conn.exec_driver_sql("ANALYZE imp_stage")
        else:
            self.conn.exec_driver_sql(
                f"INSERT INTO imp_stage ({STAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                [(p.row, p.email, p.email_hash, p.name, p.fields, p.interests)
                 for p in people])

    def remember(self, people: Sequence[Person]) -> None:
        """Record addresses already handled (a resumed run skips their rows)."""
        self.load(people)
        self._run("INSERT INTO imp_seen (email, row_no) SELECT email, row_no FROM imp_stage "
                  "WHERE true ON CONFLICT (email) DO NOTHING")

    def _drop_where(self, condition: str, **params: Any) -> None:
        self._run(f"DELETE FROM imp_stage WHERE {condition}", **params)

    def screen(self, out: Outcome) -> None:
        """Skip addresses seen earlier in the file and addresses on the suppression list."""
        out.skip(self._run("SELECT st.row_no, st.email, sn.row_no FROM imp_stage st "
                           "JOIN imp_seen sn ON sn.email = st.email ORDER BY st.row_no").all(),
                 "the same address as row {}")
        self._drop_where("email IN (SELECT email FROM imp_seen)")
        self._run("INSERT INTO imp_seen (email, row_no) SELECT email, row_no FROM imp_stage")

    def screen_suppressed(self, out: Outcome) -> None:
        out.skip(self._run("SELECT st.row_no, st.email, sp.reason FROM imp_stage st JOIN "
                           "suppression sp ON sp.email_hash = st.email_hash "
                           "ORDER BY st.row_no").all(),
                 "on the suppression list ({}): only a new sign-up by the person can add "
                 "this address again")
        self._drop_where("email_hash IN (SELECT email_hash FROM suppression)")

    def apply(self, out: Outcome, *, list_id: int, mode: str, now: datetime, actor: str,
              wording: str, job_id: int) -> None:
        """Create or update the subscribers, their membership, interests and consent events."""
        self.screen(out)
        self.screen_suppressed(out)
        self._run("UPDATE imp_stage SET sub_id = s.id FROM subscriber s "
                  "WHERE s.email = imp_stage.email")
        self._run("UPDATE imp_stage SET member = m.status FROM membership m "
                  "WHERE m.subscriber_id = imp_stage.sub_id AND m.list_id = :lid", lid=list_id)
        out.skip(self._run("SELECT row_no, email, member FROM imp_stage WHERE member IN "
                           "('unsubscribed', 'bounced') ORDER BY row_no").all(),
                 "{} on this list: an import never subscribes someone again")
        self._drop_where("member IN ('unsubscribed', 'bounced')")
        if mode == "add":
            out.skip(self._run("SELECT row_no, email FROM imp_stage WHERE sub_id IS NOT NULL "
                               "ORDER BY row_no").all(),
                     "already a subscriber (mode add leaves existing people unchanged)")
            self._drop_where("sub_id IS NOT NULL")
        fields = self.jsonb.format("CASE WHEN fields = '' THEN '{}' ELSE fields END")
        out.inserted = self._run(
            f"INSERT INTO subscriber (email, email_hash, name, fields, source, "
            f"consent_profiling, consent_tracking, soft_bounces, created_at, updated_at) "
            f"SELECT email, email_hash, name, {fields}, 'import', false, false, 0, :now, :now "
            f"FROM imp_stage WHERE sub_id IS NULL ORDER BY row_no "
            f"ON CONFLICT (email) DO NOTHING", now=now).rowcount
        self._run("UPDATE imp_stage SET sub_id = s.id, is_new = 1 FROM subscriber s "
                  "WHERE imp_stage.sub_id IS NULL AND s.email = imp_stage.email")
        if mode == "upsert":
            merged = ("subscriber.fields || CAST(st.fields AS JSONB)" if self.pg
                      else "json_patch(subscriber.fields, st.fields)")
            out.updated = self._run(
                f"UPDATE subscriber SET name = CASE WHEN st.name <> '' THEN st.name "
                f"ELSE subscriber.name END, fields = CASE WHEN st.fields <> '' THEN {merged} "
                f"ELSE subscriber.fields END, updated_at = :now FROM imp_stage st "
                f"WHERE st.sub_id = subscriber.id AND st.is_new = 0", now=now).rowcount
        self._run("INSERT INTO membership (subscriber_id, list_id, status, opt_in_level, source, "
                  "created_at, confirmed_at, updated_at) SELECT sub_id, :lid, 'confirmed', '', "
                  "'import', :now, :now, :now FROM imp_stage WHERE member IS NULL "
                  "ORDER BY row_no ON CONFLICT (subscriber_id, list_id) DO NOTHING",
                  lid=list_id, now=now)
        # The importer vouches for consent: a pending double opt-in becomes confirmed.
        self._run("UPDATE membership SET status = 'confirmed', confirmed_at = :now, "
                  "updated_at = :now WHERE list_id = :lid AND status = 'pending' AND "
                  "subscriber_id IN (SELECT sub_id FROM imp_stage WHERE member = 'pending')",
                  lid=list_id, now=now)
        elements = ("jsonb_array_elements_text(CAST(st.interests AS JSONB)) AS j(value)"
                    if self.pg else "json_each(st.interests) AS j")
        self._run(f"INSERT INTO subscriber_interest (subscriber_id, interest) SELECT st.sub_id, "
                  f"j.value FROM imp_stage st, {elements} WHERE st.interests <> '[]' "
                  f"ON CONFLICT DO NOTHING")
        self._consent(kind="import", list_id=list_id, now=now, actor=actor, wording=wording,
                      job_id=job_id, source_sql="FROM imp_stage st WHERE st.sub_id IS NOT NULL")

    def _consent(self, *, kind: str, list_id: int | None, now: datetime, actor: str,
                 wording: str, job_id: int, source_sql: str) -> None:
        detail = ("json_build_object('job', :job, 'row', st.row_no)" if self.pg
                  else "json_object('job', :job, 'row', st.row_no)")
        self._run(f"INSERT INTO consent_event (subscriber_id, list_id, kind, at, source, actor, "
                  f"ip, user_agent, wording, detail) SELECT st.sub_id, :lid, :kind, :now, "
                  f"'import', :actor, '', '', :wording, {detail} {source_sql}",
                  lid=list_id, kind=kind, now=now, actor=actor[:100], wording=wording,
                  job=job_id)

    def suppress(self, out: Outcome, *, now: datetime, actor: str, wording: str,
                 job_id: int) -> None:
        """Mode suppress: put the addresses on the suppression list."""
        self.screen(out)
        out.skip(self._run("SELECT st.row_no, st.email, sp.reason FROM imp_stage st JOIN "
                           "suppression sp ON sp.email_hash = st.email_hash "
                           "ORDER BY st.row_no").all(), "already on the suppression list ({})")
        self._drop_where("email_hash IN (SELECT email_hash FROM suppression)")
        out.inserted = self._run(
            "INSERT INTO suppression (email_hash, email, reason, detail, created_at) "
            "SELECT email_hash, email, 'manual', :detail, :now FROM imp_stage "
            "WHERE true ON CONFLICT (email_hash) DO NOTHING",  # WHERE: SQLite's parser needs it
            detail=f"import {job_id}: {wording}"[:500], now=now).rowcount
        self._run("UPDATE imp_stage SET sub_id = s.id FROM subscriber s "
                  "WHERE s.email = imp_stage.email")
        self._consent(kind="suppressed", list_id=None, now=now, actor=actor, wording=wording,
                      job_id=job_id, source_sql="FROM imp_stage st WHERE st.sub_id IS NOT NULL")
