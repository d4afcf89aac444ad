"""The delivery ledger's SQL: materialize an audience, claim rows under a lease (re-checking
consent in the claim), record outcomes together with the consent gate of the next messages,
release, and reap the claims of dead workers.

A sending job drives its connections in rounds: it works through its claim in id order, one
row per connection, and records every outcome of a round before it hands the next round to
SMTP. Of a dead job's unrecorded rows only the first `connections` (the number its claim token
ends with) can have been sent: the reaper marks those "possibly duplicate" and puts all of them
back in the queue. The hot statements run on a raw DB-API connection (one round trip per
round on PostgreSQL).
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Insert, and_, exists, false, func, insert, literal, or_, select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from listmgr.db import Database
from listmgr.models import Delivery, Membership, MemberStatus, Subscriber, Suppression

QUEUED, CLAIMED, SENT, FAILED, SKIPPED = "queued", "claimed", "sent", "failed", "skipped"
HELD = "held"  # an A/B test's remaining audience, released to the winner (services/abtests)
NO_CONSENT = "not sent: no consent at send time (unsubscribed, suppressed, paused or erased)"
WARMUP_WAIT = "waiting for tomorrow's warm-up volume"  # rows the warm-up plan put off
TEMPLATE_FAILURE = "template:"  # how the error of a row whose message could not be rendered starts


def materialize_statement(
    campaign_id: int,
    list_ids: Sequence[int],
    rules: ColumnElement[bool],
    now: datetime,
    status: str = QUEUED,
) -> Insert:
    """One INSERT … SELECT of the audience into the ledger (unique per subscriber+campaign):
    confirmed on one of the lists, not suppressed, not paused, matching the segment rules;
    `status` HELD for an A/B test (its test share is released from there)."""
    member = and_(
        col(Membership.subscriber_id) == Subscriber.id,
        col(Membership.list_id).in_(list_ids),
        col(Membership.status) == MemberStatus.confirmed.value,
    )
    # With several lists, the first the person is confirmed on names the unsubscribe token.
    list_id: Any = Membership.list_id if len(list_ids) == 1 else func.min(Membership.list_id)
    columns = [
        "campaign_id",
        "subscriber_id",
        "list_id",
        "status",
        "attempts",
        "claimed_by",
        "in_flight",
        "possibly_duplicate",
        "smtp_server",
        "error",
        "bounced",
        "complained",
        "unsubscribed",
    ]
    rows = (
        select(
            literal(campaign_id),
            col(Subscriber.id),
            list_id,
            literal(status),
            literal(0),
            literal(""),
            false(),
            false(),
            literal(""),
            literal(""),
            false(),
            false(),
            false(),
        )
        .select_from(Subscriber)
        .join(Membership, member)
        .where(
            ~exists().where(col(Suppression.email_hash) == Subscriber.email_hash),
            or_(col(Subscriber.paused_until).is_(None), col(Subscriber.paused_until) <= now),
            rules,
        )
    )
    if len(list_ids) > 1:
        rows = rows.group_by(col(Subscriber.id))
    return insert(Delivery).from_select(columns, rows).execution_options(preserve_rowcount=True)


@dataclass(frozen=True)
class Claimed:
    delivery_id: int
    subscriber_id: int
    list_id: int
    email: str
    name: str
    fields: dict[str, Any]
    interests: tuple[str, ...]
    possibly_duplicate: bool
    attempts: int
    link_epoch: int = 0
    tracking: bool = False  # the subscriber allows open and click tracking
    variant: int | None = None  # the A/B test variant to send (None: no test)


@dataclass(frozen=True)
class Outcome:
    """What became of one claimed row."""

    delivery_id: int
    status: str  # sent failed skipped queued (retry later)
    error: str = ""
    server: str = ""
    next_attempt_at: datetime | None = None
    duplicate: bool = False  # it may have reached the person already
    bounced: bool = False
    attempted: bool = True  # counts as a delivery attempt


@dataclass(frozen=True)
class Gate:
    recorded: bool  # the outcomes were ours to record (False: lease taken)
    campaign_status: str
    eligible: tuple[bool, ...]  # per upcoming row: that recipient may be mailed now


def _fields(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


class Ledger:
    """The ledger statements on one raw connection, held by one sending job."""

    def __init__(self, db: Database, *, synchronous: bool = True) -> None:
        self.pg = db.dialect == "postgresql"
        self._pooled = db.engine.raw_connection()
        self.conn: Any = cast(Any, self._pooled.driver_connection)  # not None: just checked out
        self.cur = self.conn.cursor()
        self.synchronous = synchronous
        self._generic = False  # plan_cache_mode set on this connection (see _step_pg)
        if self.pg:
            import psycopg

            # $n placeholders, no query rewriting per call: the per-round statement is hot.
            self.raw = psycopg.RawCursor(self.conn)
            self.conn.autocommit = True  # each statement is its own transaction
            # A claim takes the first due rows of an index range and stops. Right after a
            # campaign starts, the statistics still count the delivery table as before the
            # start, and PostgreSQL would read the whole range into a bitmap first: every
            # claim of a 3M campaign read 2.7M index entries (about 56 ms) for 500 rows.
            self.cur.execute("SET enable_bitmapscan = off")
            if not synchronous:
                # The per-message records need not wait for the disk: a killed worker loses
                # nothing (PostgreSQL has the commit); only a crash of the database server
                # itself may forget the last fraction of a second, and those rows are sent again.
                self.cur.execute("SET synchronous_commit = off")

    def close(self) -> None:
        try:
            if self._generic:
                self.cur.execute("RESET plan_cache_mode")
            if self.pg:
                self.cur.execute("RESET enable_bitmapscan")
                if not self.synchronous:
                    self.cur.execute("RESET synchronous_commit")
            self.cur.close()
            if self.pg:
                self.raw.close()
                self.conn.autocommit = False
        finally:
            self._pooled.close()

    # -- helpers -----------------------------------------------------------------------------
    def _ts(self, value: datetime | None) -> Any:
        if value is None or self.pg:
            return value
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")  # SQLAlchemy's SQLite format

    def _run(self, sql: str, params: Any = (), *, prepare: bool = False) -> Any:
        if self.pg:
            return self.cur.execute(sql, params, prepare=prepare)
        return self.cur.execute(sql, params)

    def _atomic(self, fn: Any) -> Any:
        """SQLite: several statements under one write lock (PostgreSQL statements are single)."""
        if self.pg:
            return fn()
        self.cur.execute("BEGIN IMMEDIATE")
        try:
            result = fn()
        except BaseException:
            self.cur.execute("ROLLBACK")
            raise
        self.cur.execute("COMMIT")
        return result

    # -- reap --------------------------------------------------------------------------------
    def reap(self, campaign_id: int, now: datetime) -> int:
        """Put expired claims back in the queue; the rows that were in flight are marked."""
        p = "%s" if self.pg else "?"
        tokens = [
            t
            for (t,) in self._run(
                f"SELECT DISTINCT claimed_by FROM delivery WHERE campaign_id = {p} "
                f"AND status = 'claimed' AND lease_until < {p}",
                (campaign_id, self._ts(now)),
            ).fetchall()
        ]
        count = 0
        for token in tokens:

            def put_back(token: str = token) -> int:
                return int(
                    self._run(
                        f"UPDATE delivery SET status = 'queued', claimed_by = '', "
                        f"lease_until = NULL, possibly_duplicate = (possibly_duplicate OR id IN ("
                        f"SELECT id FROM delivery WHERE campaign_id = {p} AND status = 'claimed' "
                        f"AND claimed_by = {p} ORDER BY id LIMIT {p})) "
                        f"WHERE campaign_id = {p} AND status = 'claimed' AND claimed_by = {p} "
                        f"AND lease_until < {p}",
                        (campaign_id, token, in_flight(token), campaign_id, token, self._ts(now)),
                    ).rowcount
                )

            count += self._atomic(put_back)
        return count

    # -- claim -------------------------------------------------------------------------------
    def claim(
        self,
        campaign_id: int,
        list_ids: Sequence[int],
        token: str,
        *,
        limit: int,
        now: datetime,
        lease_until: datetime,
        interests: bool,
    ) -> tuple[list[Claimed], int]:
        """Claim up to `limit` due rows; those without consent now are marked skipped.

        Returns (claimed rows in id order, number skipped).
        """
        lists = ",".join(str(int(x)) for x in list_ids) or "NULL"
        if self.pg:
            rows = self._claim_pg(campaign_id, lists, token, limit, now, lease_until, interests)
        else:
            rows = self._atomic(
                lambda: self._claim_sqlite(
                    campaign_id, lists, token, limit, now, lease_until, interests
                )
            )
        claimed, skipped = [], 0
        for row in rows:
            did, status, sid, email, name, fields, lid, dup, attempts, tags, epoch, track, var = row
            if status != CLAIMED:
                skipped += 1
                continue
            if isinstance(tags, str):
                tags = [t for t in tags.split("\x1f") if t]
            claimed.append(
                Claimed(
                    int(did),
                    int(sid),
                    int(lid),
                    email,
                    name or "",
                    _fields(fields),
                    tuple(tags or ()),
                    bool(dup),
                    int(attempts),
                    int(epoch or 0),
                    bool(track),
                    None if var is None else int(var),
                )
            )
        claimed.sort(key=lambda c: c.delivery_id)
        return claimed, skipped

    def _claim_pg(
        self,
        cid: int,
        lists: str,
        token: str,
        limit: int,
        now: datetime,
        lease: datetime,
        interests: bool,
    ) -> list[tuple[Any, ...]]:
        tags = (
            "(SELECT array_agg(i.interest) FROM subscriber_interest i WHERE i.subscriber_id = s.id)"
            if interests
            else "NULL::text[]"
        )
        ok = "j.awake AND j.lid IS NOT NULL"
        sql = f"""
WITH picked AS (
    SELECT id, subscriber_id FROM delivery
    WHERE campaign_id = %(cid)s AND status = 'queued'
      AND (next_attempt_at IS NULL OR next_attempt_at <= %(now)s)
    LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), judged AS (
    SELECT p.id, s.id AS sid, s.email, s.name, s.fields, {tags} AS tags, s.link_epoch,
           s.consent_tracking,
           (SELECT min(m.list_id) FROM membership m WHERE m.subscriber_id = s.id
              AND m.list_id IN ({lists}) AND m.status = 'confirmed') AS lid,
           (s.paused_until IS NULL OR s.paused_until <= %(now)s) AND NOT EXISTS (
              SELECT 1 FROM suppression x WHERE x.email_hash = s.email_hash) AS awake
    FROM picked p LEFT JOIN subscriber s ON s.id = p.subscriber_id
)
UPDATE delivery AS d SET
    status = CASE WHEN {ok} THEN 'claimed' ELSE 'skipped' END,
    list_id = COALESCE(j.lid, d.list_id),
    claimed_by = CASE WHEN {ok} THEN %(token)s ELSE '' END,
    lease_until = CASE WHEN {ok} THEN %(lease)s::timestamp END,
    attempted_at = CASE WHEN {ok} THEN d.attempted_at ELSE %(now)s END,
    error = CASE WHEN {ok} THEN d.error ELSE %(reason)s END
FROM judged j WHERE d.id = j.id
RETURNING d.id, d.status, j.sid, j.email, j.name, j.fields, d.list_id,
          d.possibly_duplicate, d.attempts, j.tags, j.link_epoch, j.consent_tracking,
          d.variant"""
        return self.cur.execute(
            sql,
            {
                "cid": cid,
                "now": now,
                "limit": limit,
                "token": token,
                "lease": lease,
                "reason": NO_CONSENT,
            },
        ).fetchall()

    def _claim_sqlite(
        self,
        cid: int,
        lists: str,
        token: str,
        limit: int,
        now: datetime,
        lease: datetime,
        interests: bool,
    ) -> list[tuple[Any, ...]]:
        tags = (
            "(SELECT group_concat(i.interest, char(31)) FROM subscriber_interest i "
            "WHERE i.subscriber_id = s.id)"
            if interests
            else "NULL"
        )
        ts = self._ts(now)
        found = self.cur.execute(
            f"""
SELECT d.id, s.id, s.email, s.name, s.fields,
       (SELECT min(m.list_id) FROM membership m WHERE m.subscriber_id = s.id
          AND m.list_id IN ({lists}) AND m.status = 'confirmed'),
       (s.paused_until IS NULL OR s.paused_until <= ?) AND NOT EXISTS (
          SELECT 1 FROM suppression x WHERE x.email_hash = s.email_hash),
       d.possibly_duplicate, d.attempts, d.list_id, {tags}, s.link_epoch, s.consent_tracking,
       d.variant
FROM delivery d LEFT JOIN subscriber s ON s.id = d.subscriber_id
WHERE d.campaign_id = ? AND d.status = 'queued'
  AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= ?)
LIMIT ?""",
            (ts, cid, ts, limit),
        ).fetchall()
        out = []
        for row in found:
            did, sid, email, name, fields, lid, awake, dup, attempts, old_lid, tag, epoch = row[:12]
            track, var = row[12:]
            if awake and lid is not None:
                self.cur.execute(
                    "UPDATE delivery SET status = 'claimed', list_id = ?, "
                    "claimed_by = ?, lease_until = ? WHERE id = ?",
                    (lid, token, self._ts(lease), did),
                )
                out.append(
                    (
                        did,
                        CLAIMED,
                        sid,
                        email,
                        name,
                        fields,
                        lid,
                        dup,
                        attempts,
                        tag,
                        epoch,
                        track,
                        var,
                    )
                )
            else:
                self.cur.execute(
                    "UPDATE delivery SET status = 'skipped', attempted_at = ?, "
                    "error = ? WHERE id = ?",
                    (ts, NO_CONSENT, did),
                )
                out.append(
                    (
                        did,
                        SKIPPED,
                        sid,
                        email,
                        name,
                        fields,
                        old_lid,
                        dup,
                        attempts,
                        tag,
                        epoch,
                        0,
                        var,
                    )
                )
        return out

    # -- one round of messages (one per connection) at a time ---------------------------------
    _STEP_PG = """
WITH rec AS (
    UPDATE delivery d SET status = o.status, attempts = d.attempts + o.attempted,
        sent_at = o.sent_at, attempted_at = $3, error = o.error, smtp_server = o.server,
        next_attempt_at = o.next_at, claimed_by = '', lease_until = NULL,
        possibly_duplicate = (d.possibly_duplicate OR o.dup), bounced = (d.bounced OR o.bounced)
    FROM json_to_recordset($1::json) AS o(id int, status text, attempted int,
        sent_at timestamp, error text, server text, next_at timestamp, dup bool, bounced bool)
    WHERE d.id = ANY($7::int[]) AND d.id = o.id AND d.claimed_by = $2
      AND d.status = 'claimed'
    RETURNING d.id
)
SELECT (SELECT count(*) FROM rec), (SELECT status FROM campaign WHERE id = $4),
       (SELECT string_agg(CASE WHEN EXISTS (
            SELECT 1 FROM membership m JOIN subscriber s ON s.id = m.subscriber_id
            WHERE m.subscriber_id = u.sid AND m.list_id = u.lid AND m.status = 'confirmed'
              AND (s.paused_until IS NULL OR s.paused_until <= $3)
              AND NOT EXISTS (SELECT 1 FROM suppression x WHERE x.email_hash = s.email_hash))
            THEN 't' ELSE 'f' END, '' ORDER BY u.n)
        FROM unnest($5::int[], $6::int[]) WITH ORDINALITY AS u(sid, lid, n))"""

    _RECORD_SQLITE = """
UPDATE delivery SET status = ?, attempts = attempts + ?, sent_at = ?, attempted_at = ?,
    error = ?, smtp_server = ?, next_attempt_at = ?, claimed_by = '', lease_until = NULL,
    possibly_duplicate = (possibly_duplicate OR ?), bounced = (bounced OR ?)
WHERE id = ? AND claimed_by = ? AND status = 'claimed'"""

    _GATE_SQLITE = """
SELECT EXISTS (SELECT 1 FROM membership m JOIN subscriber s ON s.id = m.subscriber_id
               WHERE m.subscriber_id = ? AND m.list_id = ? AND m.status = 'confirmed'
                 AND (s.paused_until IS NULL OR s.paused_until <= ?)
                 AND NOT EXISTS (SELECT 1 FROM suppression x
                                 WHERE x.email_hash = s.email_hash))"""

    def _step_pg(self, params: list[bytes]) -> tuple[int, str, str]:
        """The per-round statement through libpq directly (a third of psycopg's cost)."""
        # Imported here, not at the top: an install for SQLite alone has no psycopg (or libpq).
        import psycopg
        from psycopg.pq import DiagnosticField, ExecStatus

        pg = self.conn.pgconn
        if not self._generic:
            # The statement's plan does not depend on its values; planning it anew for each
            # call (PostgreSQL's default for a row source of unknown size) cost more than
            # running it.
            self.cur.execute("SET plan_cache_mode = force_generic_plan")
            self._generic = True
        for attempt in (1, 2):
            if self.conn not in _PREPARED:
                result = pg.prepare(b"listmgr_step", self._STEP_PG.encode())
                if result.status != ExecStatus.COMMAND_OK:
                    raise psycopg.OperationalError(pg.error_message.decode("utf-8", "replace"))
                _PREPARED.add(self.conn)
            result = pg.exec_prepared(b"listmgr_step", params)
            if result.status == ExecStatus.TUPLES_OK:
                break
            # psycopg runs DEALLOCATE ALL when it rolls back a connection that holds its own
            # prepared statements (the pool does so on return): prepare ours again, once.
            if attempt == 1 and result.error_field(DiagnosticField.SQLSTATE) == b"26000":
                _PREPARED.discard(self.conn)
                continue
            raise psycopg.OperationalError(pg.error_message.decode("utf-8", "replace"))
        status, flags = result.get_value(0, 1), result.get_value(0, 2)
        return (
            int(result.get_value(0, 0) or 0),
            status.decode() if status else "",
            flags.decode() if flags else "",
        )

    def step(
        self,
        campaign_id: int,
        token: str,
        done: Sequence[Outcome],
        upcoming: Sequence[Claimed],
        now: datetime,
    ) -> Gate:
        """Record the outcomes in `done` and, in the same transaction, check consent for each
        row in `upcoming` (the next message of each connection)."""
        if self.pg:
            records = json.dumps(
                [
                    {
                        "id": o.delivery_id,
                        "status": o.status,
                        "attempted": int(o.attempted),
                        "sent_at": now.isoformat() if o.status == SENT else None,
                        "error": o.error[:1000],
                        "server": o.server[:200],
                        "next_at": o.next_attempt_at.isoformat() if o.next_attempt_at else None,
                        "dup": o.duplicate,
                        "bounced": o.bounced,
                    }
                    for o in done
                ]
            )
            recorded, status, flags = self._step_pg(
                [
                    records.encode(),
                    token.encode(),
                    now.isoformat(" ").encode(),
                    str(campaign_id).encode(),
                    _int_array(c.subscriber_id for c in upcoming),
                    _int_array(c.list_id for c in upcoming),
                    _int_array(o.delivery_id for o in done),
                ]
            )  # the ids again: an index scan
            eligible = tuple(f == "t" for f in flags)
        else:

            def run() -> tuple[int, str, tuple[bool, ...]]:
                ts = self._ts(now)
                count = 0
                for o in done:
                    count += self.cur.execute(
                        self._RECORD_SQLITE,
                        (
                            o.status,
                            int(o.attempted),
                            ts if o.status == SENT else None,
                            ts,
                            o.error[:1000],
                            o.server[:200],
                            self._ts(o.next_attempt_at),
                            int(o.duplicate),
                            int(o.bounced),
                            o.delivery_id,
                            token,
                        ),
                    ).rowcount
                status = self.cur.execute(
                    "SELECT status FROM campaign WHERE id = ?", (campaign_id,)
                ).fetchone()
                oks = tuple(
                    bool(
                        self.cur.execute(
                            self._GATE_SQLITE, (c.subscriber_id, c.list_id, ts)
                        ).fetchone()[0]
                    )
                    for c in upcoming
                )
                return count, status[0] if status else "", oks

            recorded, status, eligible = self._atomic(run)
        return Gate(recorded == len(done), status or "", eligible)

    def renew(self, campaign_id: int, token: str, lease_until: datetime) -> int:
        p = "%s" if self.pg else "?"
        return int(
            self._run(
                f"UPDATE delivery SET lease_until = {p} WHERE campaign_id = {p} "
                f"AND status = 'claimed' AND claimed_by = {p}",
                (self._ts(lease_until), campaign_id, token),
            ).rowcount
        )

    def release(self, campaign_id: int, token: str, *, keep: Collection[int] = ()) -> int:
        """Give back what this job claimed and did not send (nothing of it went out). Rows in
        `keep` may have gone out unrecorded: they stay claimed until the lease runs out, and
        then `reap` marks them as possibly sent twice."""
        p = "%s" if self.pg else "?"
        kept = sorted(keep)
        spare = f" AND id NOT IN ({', '.join([p] * len(kept))})" if kept else ""
        return int(
            self._run(
                f"UPDATE delivery SET status = 'queued', claimed_by = '', "
                f"lease_until = NULL WHERE campaign_id = {p} "
                f"AND status = 'claimed' AND claimed_by = {p}{spare}",
                (campaign_id, token, *kept),
            ).rowcount
        )

    def defer_due(self, campaign_id: int, until: datetime, reason: str, now: datetime) -> int:
        """Make the campaign's rows that are due now wait until `until` (no attempt counted)."""
        p = "%s" if self.pg else "?"
        return int(
            self._run(
                f"UPDATE delivery SET next_attempt_at = {p}, error = {p} "
                f"WHERE campaign_id = {p} AND status = 'queued' "
                f"AND (next_attempt_at IS NULL OR next_attempt_at <= {p})",
                (self._ts(until), reason, campaign_id, self._ts(now)),
            ).rowcount
        )

    def active_claims(self, campaign_id: int, now: datetime) -> int:
        p = "%s" if self.pg else "?"
        row = self._run(
            f"SELECT count(DISTINCT claimed_by) FROM delivery "
            f"WHERE campaign_id = {p} AND status = 'claimed' "
            f"AND lease_until >= {p}",
            (campaign_id, self._ts(now)),
        ).fetchone()
        return int(row[0] or 0)

    def progress(self, campaign_id: int) -> tuple[int, datetime | None, int, datetime | None]:
        """(queued, earliest retry time or None when one is due now, claimed, earliest lease
        end) of one campaign."""
        p = "%s" if self.pg else "?"
        rows = self._run(
            f"SELECT status, count(*), min(next_attempt_at), min(lease_until), "
            f"sum(CASE WHEN next_attempt_at IS NULL THEN 1 ELSE 0 END) "
            f"FROM delivery WHERE campaign_id = {p} "
            f"AND status IN ('queued', 'claimed') GROUP BY status",
            (campaign_id,),
        ).fetchall()
        queued = claimed = 0
        retry_at = lease_end = None
        for status, n, next_at, lease, due_now in rows:
            if status == QUEUED:  # retry_at None: some row is due now
                queued, retry_at = int(n), None if due_now else _dt(next_at)
            else:
                claimed, lease_end = int(n), _dt(lease)
        return queued, retry_at, claimed, lease_end

    def pause_for_templates(
        self, campaign_id: int, at_least: int, reason: str, now: datetime
    ) -> bool:
        """Pause a sending campaign whose template failed for `at_least` recipients since it
        last (re)started, with the reason; True when this call paused it."""
        p = "%s" if self.pg else "?"
        return bool(
            self._run(
                f"UPDATE campaign SET status = 'paused', status_reason = {p}, updated_at = {p} "
                f"WHERE id = {p} AND status = 'sending' AND (SELECT count(*) FROM delivery d "
                f"WHERE d.campaign_id = {p} AND d.status = 'failed' AND d.error LIKE {p} "
                f"AND d.attempted_at >= campaign.updated_at) >= {p}",
                (
                    reason[:1000],
                    self._ts(now),
                    campaign_id,
                    campaign_id,
                    TEMPLATE_FAILURE + "%",
                    at_least,
                ),
            ).rowcount
        )

    def finish(self, campaign_id: int, now: datetime) -> bool:
        """Mark the campaign sent when nothing is queued, claimed or held any more."""
        p = "%s" if self.pg else "?"
        return bool(
            self._run(
                f"UPDATE campaign SET status = 'sent', finished_at = {p}, updated_at = {p} "
                f"WHERE id = {p} AND status = 'sending' AND NOT EXISTS (SELECT 1 FROM delivery "
                f"WHERE campaign_id = {p} AND status IN ('queued', 'claimed', 'held'))",
                (self._ts(now), self._ts(now), campaign_id, campaign_id),
            ).rowcount
        )


def claim_token(owner: str, connections: int) -> str:
    """A claim's name: who holds it, and how many messages it may have in flight at once."""
    return f"{owner}:{max(1, connections)}"


def in_flight(token: str) -> int:
    """How many of a claim's first unrecorded rows may have been handed to SMTP."""
    tail = token.rpartition(":")[2]
    return int(tail) if tail.isdigit() else 1


# Connections (kept by the pool) on which the per-round statement is already prepared.
_PREPARED: weakref.WeakSet[Any] = weakref.WeakSet()


def _int_array(values: Any) -> bytes:
    """An int[] parameter in PostgreSQL's text format."""
    return ("{" + ",".join(str(int(v)) for v in values) + "}").encode()


def _dt(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))
