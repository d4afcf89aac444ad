"""Sending a campaign: each job takes this process's free kept-open SMTP connections, claims a
batch under a lease, and sends it in rounds of one message per connection: the round's messages
are rendered with the campaign's compiled templates, the previous round's outcomes are recorded
together with the consent check of this round's recipients (one statement), and the messages
are handed to SMTP on all connections at once.

One thread drives all the connections of a job, so their waits overlap without threads
competing for the interpreter, and the database sees one statement per round. Jobs chain
themselves: a job that claimed rows enqueues one more job while fewer than 2 x send_connections
claims are active (so each new job lands on whichever worker fetches it), and enqueues its
successor when done. The database holds all the work; the broker only wakes.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlmodel import col

from listmgr import metrics
from listmgr.errors import ListmgrError
from listmgr.mail.bounces import HARD, reply_verdict
from listmgr.mail.campaign import CampaignRenderer, Outgoing, Recipient, RenderError
from listmgr.mail.domains import is_throttling
from listmgr.mail.transport import (
    DevOutboxConnection,
    PermanentFailure,
    SharedThrottle,
    SmtpConnection,
    TemporaryFailure,
    Transport,
    send_all,
)
from listmgr.models import Campaign, CampaignStatus, utcnow
from listmgr.runtime import Runtime
from listmgr.services import abtests, breaker, devmail, domain_guard, settings_store
from listmgr.services import ledger as L
from listmgr.services.bounces import hard_bounce
from listmgr.services.campaign_setup import renderer as build_renderer
from listmgr.services.campaign_setup import source_of
from listmgr.settings import Settings

log = logging.getLogger(__name__)
TIME_BOX = 30.0  # seconds one job sends before handing over to its successor
CONNECTION_FAILURES = 3  # in a row: stop this job and come back later
BUSY_RETRY_MS = 200  # all connections busy with another campaign: look again after
Connection = SmtpConnection | DevOutboxConnection


class SenderPool:
    """This process's kept-open connections for campaigns (at most `size` at once)."""

    def __init__(self, settings: Settings, db: Any) -> None:
        self.key = _pool_key(settings)
        self.transport = Transport(
            settings.smtp_url,
            devmail.sink(db),
            settings.send_rate,
            settings.send_rate_per_server,
            throttle_factory=_shared_throttles(
                settings,
                bool(
                    settings.send_rate
                    or settings.send_rate_per_server
                    or "rate=" in settings.smtp_url
                ),
            ),
        )
        self.size = max(1, settings.send_connections)
        self._free: list[Connection] = []
        self._open = 0
        self._lock = threading.Lock()

    def acquire(self, limit: int) -> list[Connection]:
        """Up to `limit` of the connections this process may use now (opening up to `size`):
        they go round-robin over the configured servers, so every server gets its share."""
        with self._lock:
            taken, self._free = self._free[:limit], self._free[limit:]
            while self._open < self.size and len(taken) < limit:
                self._open += 1
                taken.append(self.transport.connection())
        return taken

    def release(self, conn: Connection, *, keep: bool = True) -> None:
        with self._lock:
            if keep:
                self._free.append(conn)
                return
            self._open -= 1
        conn.close()


def _shared_throttles(settings: Settings, limited: bool) -> Any:
    """With a Redis broker the rate limits hold over all worker processes together."""
    if not settings.broker_url.startswith(("redis://", "rediss://", "unix://")):
        return None  # in-process or RabbitMQ: the limits apply per worker process
    if not limited:
        return None
    import redis

    client = redis.Redis.from_url(settings.broker_url)
    prefix = f"{settings.broker_namespace}:send-rate:"
    return lambda name, rate: SharedThrottle(client, prefix + name, rate)


def _pool_key(settings: Settings) -> tuple[Any, ...]:
    return (
        settings.smtp_url,
        settings.send_rate,
        settings.send_rate_per_server,
        settings.send_connections,
    )


def _pool(rt: Runtime, settings: Settings) -> SenderPool:
    with _state_lock:
        pool = rt.state.get("campaign_pool")
        if pool is None or pool.key != _pool_key(settings):
            pool = SenderPool(settings, rt.db)  # connections of an old pool close on release
            rt.state["campaign_pool"] = pool
        return pool


_state_lock = threading.Lock()


@dataclass
class _Plan:
    renderers: list[CampaignRenderer]  # per A/B test variant (one without a test)
    list_ids: list[int]
    key: tuple[Any, ...]

    @property
    def uses_interests(self) -> bool:
        return any(r.built.uses_interests for r in self.renderers)

    def for_row(self, row: L.Claimed) -> CampaignRenderer:
        """The renderer of the variant this row gets."""
        return self.renderers[row.variant or 0]


def _plan(rt: Runtime, settings: Settings, row: Campaign) -> _Plan:
    """The campaign's renderer, compiled once per process (and again if anything changed)."""
    key = (
        row.updated_at,
        settings.mail_domain,
        settings.base_url,
        settings.dkim_selector,
        settings.dkim_private_key_path,
        settings.dkim_domain,
        settings.default_postal_address,
        settings.tracking,
    )
    cache: dict[int, _Plan] = rt.state.setdefault("campaign_plans", {})
    assert row.id is not None  # a stored campaign
    plan = cache.get(row.id)
    if plan is None or plan.key != key:
        renderers = []
        with rt.db.session() as s:
            for source in abtests.sources(source_of(row), row.ab_test):
                renderer, list_ids = build_renderer(rt, s, row, settings, source, sending=True)
                renderers.append(renderer)
        plan = _Plan(renderers, list_ids, key)
        cache[row.id] = plan
    return plan


def parallel_jobs(settings: Settings) -> int:
    """How many jobs may send one campaign at once, over all worker processes."""
    return max(1, 2 * settings.send_connections)


def backoff(settings: Settings, attempts: int) -> timedelta:
    """Delay before retry number `attempts` (exponential, jittered, capped at an hour)."""
    base = settings.retry_base_seconds
    seconds = min(base * 2 ** max(0, attempts - 1), 3600.0)
    return timedelta(seconds=seconds * random.uniform(0.9, 1.1))


def send_batch(rt: Runtime, campaign_id: int) -> None:
    """One job: send batches of the campaign over this process's free connections, and keep
    the chain going."""
    settings = settings_store.effective(rt)
    with rt.db.session() as s:
        row = s.get(Campaign, campaign_id)
        sending = (
            s.scalar(
                select(func.count())
                .select_from(Campaign)
                .where(col(Campaign.status) == CampaignStatus.sending.value)
            )
            or 1
        )
    if row is not None and abtests.due(row, utcnow()):
        abtests.decide(rt, campaign_id)  # the test's wait is over: the winner goes to the rest
    if row is None or row.status != CampaignStatus.sending.value:
        return
    try:
        plan = _plan(rt, settings, row)
    except ListmgrError as exc:  # e.g. an unreadable DKIM key: nothing is sent, try later
        log.error("campaign %s cannot be sent now: %s", campaign_id, exc.message)
        rt.enqueue("send_batch", campaign_id, delay_ms=60_000)
        return
    pool = _pool(rt, settings)
    # Campaigns sending at once share the connections (a job keeps them up to TIME_BOX).
    conns = pool.acquire(limit=-(-pool.size // sending))
    if not conns:
        # This process sends with all its connections. Another job of this campaign carries
        # on; if none does (the connections serve other campaigns), look again shortly.
        book = L.Ledger(rt.db)
        try:
            idle = book.active_claims(campaign_id, utcnow()) == 0
        finally:
            book.close()
        if idle:
            rt.enqueue("send_batch", campaign_id, delay_ms=BUSY_RETRY_MS)
        return
    book = L.Ledger(rt.db, synchronous=settings.send_synchronous_commit)
    keep = True
    try:
        delay = _job(rt, settings, campaign_id, plan, conns, pool, book)
    except BaseException:
        keep = False
        raise
    finally:
        book.close()
        for conn in conns:
            pool.release(conn, keep=keep and pool is rt.state.get("campaign_pool"))
    if delay is not None:
        rt.enqueue("send_batch", campaign_id, delay_ms=delay or None)


def _job(
    rt: Runtime,
    settings: Settings,
    cid: int,
    plan: _Plan,
    conns: list[Connection],
    pool: SenderPool,
    book: L.Ledger,
) -> int | None:
    """Returns the delay (ms) before the next job of this chain, or None to end the chain."""
    now = utcnow()
    book.reap(cid, now)
    token = L.claim_token(
        f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:16]}", len(conns)
    )
    lease = timedelta(seconds=settings.lease_seconds)
    limit = max(1, settings.send_batch_size)
    rate = settings.send_rate or settings.send_rate_per_server
    if rate:
        limit = max(1, min(limit, int(rate * TIME_BOX)))
    domains = _gate(rt, settings, token)
    started = time.monotonic()
    early = True  # the breaker's window may still be under its minimum

    def tripped() -> bool:
        nonlocal early
        judged = breaker.check(rt, settings, cid)
        early = judged.early
        return judged.paused

    # A job keeps the domain slots it took until it ends (one statement per slot per job).
    try:
        # Batch after batch until the time box is used up: handing over to a successor job after
        # every batch left the connections idle while the broker delivered it.
        while True:
            now = utcnow()
            wanted = limit
            if domains is not None and domains.guard.warmup is not None:
                wanted = domains.reserve(limit, now)
                if not wanted:  # today's warm-up volume is used up: the rest waits for tomorrow
                    book.defer_due(cid, domain_guard.tomorrow(now), L.WARMUP_WAIT, now)
                    return _idle(book, cid)
            rows, skipped = book.claim(
                cid,
                plan.list_ids,
                token,
                limit=wanted,
                now=now,
                lease_until=now + lease,
                interests=plan.uses_interests,
            )
            claimed_at = time.monotonic()
            if skipped:
                metrics.count_messages(cid, {("", "skipped"): skipped})
            if not rows:
                if domains is not None:
                    domains.give_back()
                if skipped and time.monotonic() - started <= TIME_BOX:
                    continue
                return 0 if skipped else _idle(book, cid)
            if book.active_claims(cid, now) < parallel_jobs(settings):
                # Fan out, one job per batch: it lands on whichever worker fetches it first, so a
                # worker without a job of this campaign gets one after a batch or a few.
                rt.enqueue("send_batch", cid)
            bounces: list[tuple[int, int, str]] = []
            unrecorded: set[int] = set()  # handed over, and the ledger does not say so yet
            done: list[L.Outcome] = []  # outcomes of the last round, recorded with the next
            try:
                result = _send_rows(
                    settings,
                    cid,
                    plan,
                    rows,
                    token,
                    conns,
                    pool,
                    book,
                    bounces,
                    (started, claimed_at),
                    done,
                    unrecorded,
                    tripped,
                    domains,
                )
            except BaseException:
                _record_last_round(book, cid, token, done, unrecorded)
                raise
            finally:
                # Whatever was claimed and not handed over goes back; a row that may have gone
                # out unrecorded (something failed between its hand-over and the next record)
                # does not: sending it again would be a duplicate nobody marked.
                book.release(cid, token, keep=unrecorded)
                if domains is not None:
                    domains.give_back()
                if bounces:
                    _hard_bounces(rt, cid, bounces)
            # Once a batch while the window is under its minimum: more messages alone may bring
            # a verdict then (past it, only a new hard bounce or complaint can raise a rate).
            if result is not None and early and tripped():
                return None
            if result != 0 or time.monotonic() - started > TIME_BOX:
                return result
    finally:
        if domains is not None:
            domains.release()


def _gate(rt: Runtime, settings: Settings, token: str) -> domain_guard.JobGate | None:
    """The job's side of the guard per receiving domain, or None when nothing is guarded."""
    domain_rates = any(v.rate for v in settings.domain_limits.values())
    guard = domain_guard.process_guard(rt, settings, _shared_throttles(settings, domain_rates))
    if not guard.active and guard.warmup is None:
        return None
    return domain_guard.JobGate(rt, guard, token)


def _record_last_round(
    book: L.Ledger, cid: int, token: str, done: list[L.Outcome], unrecorded: set[int]
) -> None:
    """After a failure: the last round went out and is recorded only with the next one, so
    record it now if the database still answers (a throttle's Redis going away must not cost
    a duplicate); what stays in `unrecorded` is left for the reaper to mark."""
    if not done:
        return
    try:
        if book.step(cid, token, done, [], utcnow()).recorded:
            _count(cid, done)
        unrecorded.difference_update(o.delivery_id for o in done)
    except Exception:
        log.exception("campaign %s: cannot record the last round", cid)


def _send_rows(
    settings: Settings,
    cid: int,
    plan: _Plan,
    rows: list[L.Claimed],
    token: str,
    conns: list[Connection],
    pool: SenderPool,
    book: L.Ledger,
    bounces: list[tuple[int, int, str]],
    times: tuple[float, float],
    done: list[L.Outcome],
    unrecorded: set[int],
    tripped: Callable[[], bool],
    domains: domain_guard.JobGate | None = None,
) -> int | None:
    """Send the claimed rows (`times`: when the job started and when the rows were claimed).
    `done` holds the outcomes not recorded yet, `unrecorded` the rows that may have gone out
    without the ledger knowing."""
    started, claimed_at = times
    lease = timedelta(seconds=settings.lease_seconds)
    renewed = time.monotonic()
    pending = deque(rows)
    live = list(conns)
    failures = 0
    result: int | None = 0
    while (pending or (domains is not None and domains.parked)) and live:
        if domains is not None:
            domains.new_round(pending, utcnow())
        # Under a rate limit each wait comes right before its own recipient's consent check,
        # so a round is one message (the connections take turns).
        turn = live[:1] if pool.transport.limited else list(live)
        batch = _round(
            cid, plan, pending, turn, live, pool, done, settings.template_failures_pause, domains
        )
        live[:] = [c for c in live if c not in turn] + [c for c in turn if c in live]
        stop = _template_failures(settings, cid, token, book, done)
        if not done:  # recorded (or given up with the lease)
            unrecorded.clear()
        if stop != -1:
            return stop
        if not batch:
            if not live:  # no server answers: the rows go back unsent
                result = int(backoff(settings, 1).total_seconds() * 1000)
            continue
        # Record the previous round and check this round's consent in one transaction, right
        # before the hand-over: an unsubscribe that committed before it stops the mail.
        gate = book.step(cid, token, done, [row for _, row, _ in batch], utcnow())
        bounced = any(o.bounced for o in done)
        if gate.recorded:
            _count(cid, done)
        done.clear()
        unrecorded.clear()
        if not gate.recorded:
            return 0  # our lease ran out and the rows went to another job: stop here
        if gate.campaign_status != CampaignStatus.sending.value:
            return None  # paused or cancelled
        if bounced and tripped():
            return None  # the circuit breaker paused the campaign: this round stays queued
        sendable = []
        for item, eligible in zip(batch, gate.eligible, strict=False):
            if eligible:
                sendable.append(item)
            else:
                done.append(
                    L.Outcome(item[1].delivery_id, L.SKIPPED, error=L.NO_CONSENT, attempted=False)
                )
        unrecorded.update(row.delivery_id for _, row, _ in sendable)
        results = send_all(
            [(conn, out.envelope_from, out.rcpt, out.data) for conn, _, out in sendable]
        )
        if domains is not None:
            domains.handed += len(sendable)
        metrics.observe_claim_to_send(
            time.monotonic() - claimed_at, sum(exc is None for exc in results)
        )
        refused = False
        for (conn, row, _), exc in zip(sendable, results, strict=False):
            if exc is None:
                done.append(L.Outcome(row.delivery_id, L.SENT, server=conn.server.label))
                failures = 0
                continue
            assert isinstance(exc, (PermanentFailure, TemporaryFailure))
            if exc.stage == "mail":
                # The server refuses our sender, not this recipient: nothing of this row was
                # attempted; stop and come back later rather than fail every row.
                log.error("campaign %s: %s refuses the sender: %s", cid, conn.server.label, exc)
                refused = True
            elif isinstance(exc, PermanentFailure):
                done.append(
                    L.Outcome(
                        row.delivery_id,
                        L.FAILED,
                        error=str(exc),
                        server=conn.server.label,
                        bounced=True,
                    )
                )
                if exc.stage == "rcpt" and reply_verdict(exc.code, str(exc)) == HARD:
                    bounces.append((row.subscriber_id, row.list_id, str(exc)))
            elif (
                domains is not None
                and domains.guard.base
                and exc.stage in ("rcpt", "data")
                and is_throttling(exc.code, str(exc))
            ):
                # The receiving domain asks us to slow down: it alone backs off (all workers).
                until = domains.throttled(row.email, utcnow())
                done.append(_retry(settings, row, exc, conn.server.label, not_before=until))
            else:
                done.append(_retry(settings, row, exc, conn.server.label))
                if exc.code is None or exc.code == 421:  # the connection, not this recipient
                    failures += 1
        if refused or failures >= CONNECTION_FAILURES:
            result = int(backoff(settings, 1).total_seconds() * 1000)
            break
        now = time.monotonic()
        if now - renewed > lease.total_seconds() / 3:
            book.renew(cid, token, utcnow() + lease)
            renewed = now
        if now - started > TIME_BOX:
            break
    if done:
        if book.step(cid, token, done, [], utcnow()).recorded:
            _count(cid, done)
        done.clear()
    unrecorded.clear()  # every row handed over is recorded (a refused sender hands over none)
    return result


OUTCOMES = {L.SENT: "sent", L.FAILED: "failed", L.QUEUED: "deferred", L.SKIPPED: "skipped"}


def _count(cid: int, outcomes: list[L.Outcome]) -> None:
    """Count a round's recorded outcomes for /metrics (in memory, once per round)."""
    metrics.count_messages(cid, Counter((o.server, OUTCOMES[o.status]) for o in outcomes))


def _round(
    cid: int,
    plan: _Plan,
    pending: deque[L.Claimed],
    turn: list[Connection],
    live: list[Connection],
    pool: SenderPool,
    done: list[L.Outcome],
    stop_after: int,
    domains: domain_guard.JobGate | None = None,
) -> list[tuple[Connection, L.Claimed, Outgoing]]:
    """The next row for each connection whose turn it is, rendered, with the rate limits
    waited for and the connection open (both happen before the consent check). Rows that
    cannot be built fail into `done` (after `stop_after` template failures the round ends: the
    campaign is about to pause); a connection that cannot connect leaves `live` and its row
    goes back to the front of `pending`. Rows whose receiving domain must wait (the gate) wait
    aside in the job or go back to the ledger until their time."""
    batch: list[tuple[Connection, L.Claimed, Outgoing]] = []
    now = utcnow() if domains is not None else None
    for conn in turn:
        out = None
        while pending and out is None:
            row = pending.popleft()
            if domains is not None and now is not None:
                verdict = domains.admit(row.email, row, now)
                if verdict is not None:
                    if verdict is not domain_guard.PARKED:
                        done.append(
                            L.Outcome(
                                row.delivery_id,
                                L.QUEUED,
                                error=verdict[1],
                                attempted=False,
                                next_attempt_at=verdict[0],
                            )
                        )
                    continue
            try:
                out = plan.for_row(row).message(
                    Recipient(
                        row.delivery_id,
                        row.subscriber_id,
                        row.email,
                        row.name,
                        row.list_id,
                        row.fields,
                        row.interests,
                        row.attempts,
                        row.link_epoch,
                        row.tracking,
                    )
                )
            except RenderError as exc:
                done.append(L.Outcome(row.delivery_id, L.FAILED, error=str(exc)))
                if sum(o.error.startswith(L.TEMPLATE_FAILURE) for o in done) >= stop_after:
                    return batch
            except Exception as exc:  # one unbuildable message must not stall the campaign
                log.exception(
                    "campaign %s: cannot build the message of delivery %s", cid, row.delivery_id
                )
                done.append(
                    L.Outcome(
                        row.delivery_id,
                        L.FAILED,
                        error=f"cannot build the message: {exc.__class__.__name__}: {exc}",
                    )
                )
        if out is None:
            break
        pool.transport.throttle.wait()
        if isinstance(conn, SmtpConnection):
            conn.throttle.wait()
        try:
            conn.ensure_open()
        except TemporaryFailure as exc:  # the server, not this row: it goes back unsent
            log.warning("campaign %s: cannot connect to %s: %s", cid, conn.server.label, exc)
            live.remove(conn)
            pending.appendleft(row)
            continue
        batch.append((conn, row, out))
    return batch


# -- the template budget: a template that fails for several recipients pauses the campaign --
def _template_failures(
    settings: Settings, cid: int, token: str, book: L.Ledger, done: list[L.Outcome]
) -> int | None:
    """When this round's messages include template failures: record them now and pause the
    campaign once `template_failures_pause` of them have happened since it last (re)started.
    Returns -1 to carry on, else what `_send_rows` returns (None: paused, 0: lease lost)."""
    failed = [o for o in done if o.error.startswith(L.TEMPLATE_FAILURE)]
    if not failed:
        return -1
    gate = book.step(cid, token, done, [], utcnow())
    done.clear()
    if not gate.recorded:
        return 0
    reason = (
        f"paused: the template failed for {settings.template_failures_pause} or more "
        f"recipients (the last: {failed[-1].error})"
    )
    if book.pause_for_templates(cid, settings.template_failures_pause, reason, utcnow()):
        log.warning("campaign %s %s", cid, reason)
        return None
    return None if gate.campaign_status != CampaignStatus.sending.value else -1


def _retry(
    settings: Settings,
    row: L.Claimed,
    exc: TemporaryFailure,
    server: str,
    *,
    not_before: datetime | None = None,
) -> L.Outcome:
    """A 4xx or connection failure: try again later (at `not_before` when the receiving
    domain backs off), or give up after the last attempt."""
    attempts = row.attempts + 1
    if attempts >= settings.retry_max_attempts:
        return L.Outcome(
            row.delivery_id,
            L.FAILED,
            server=server,
            duplicate=exc.ambiguous,
            error=f"gave up after {attempts} attempts: {exc}",
        )
    return L.Outcome(
        row.delivery_id,
        L.QUEUED,
        error=str(exc),
        server=server,
        duplicate=exc.ambiguous,
        next_attempt_at=not_before or utcnow() + backoff(settings, attempts),
    )


def _idle(book: L.Ledger, cid: int) -> int | None:
    """Nothing to claim now: finish the campaign, or come back when a retry is due.

    Rows claimed by a live job are that job's to finish; a dead job's rows are put back by the
    next job after their lease ends, and the periodic sweep starts one if none is running.
    """
    queued, retry_at, claimed, _lease_end = book.progress(cid)
    now = utcnow()
    if not queued and not claimed:
        book.finish(cid, now)
        return None
    if not queued:
        return None
    if retry_at is None or retry_at <= now:
        # Due, yet not claimable a moment ago: a concurrent claim holds it, or it became due
        # since. Look again shortly (the chain must not end while rows wait).
        return 500
    return max(50, int(((retry_at - now).total_seconds() + 0.2) * 1000))


def _hard_bounces(rt: Runtime, cid: int, bounces: list[tuple[int, int, str]]) -> None:
    """An address the receiving server refused permanently goes on the suppression list."""
    from listmgr.models import Subscriber
    from listmgr.services.subscriptions import Origin

    origin = Origin(source="smtp", actor="system")
    with rt.db.session() as s:
        for sid, lid, reply in bounces:
            sub = s.get(Subscriber, sid)
            if sub is None:
                continue
            hard_bounce(
                s,
                sub,
                origin=origin,
                reason=f"campaign {cid}: {reply}",
                list_id=lid,
                campaign_id=cid,
                detail={"smtp": reply[:500]},
            )
