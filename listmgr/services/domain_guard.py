"""The delivery guard per receiving domain, over every worker: back-off after "slow down"
replies, rate and concurrency per `domain_limits` entry, and the warm-up plan's daily volume.

Where each piece of shared state lives, and why:
- back-off: the `domain_backoff` table. It is written only when a domain throttles us (rare)
  and read by each process at most once a second into memory, so it costs the hot path a
  dictionary look-up; the database is there for every broker (in-process, Redis, RabbitMQ).
- concurrency: `domain_slot` rows, one per message in flight, each with a lease (a killed
  worker's slots expire). A job takes slots as its rounds need them and keeps them until it
  ends (at most TIME_BOX), so the database sees a statement per slot and job, never per
  message; meanwhile another job's rows of that domain wait aside while it sends the others.
- rate: the transport's throttles per entry (SharedThrottle in Redis with a Redis broker,
  else per process), asked without waiting: a domain whose next slot is not free yet waits
  aside while the job sends to the others.
- warm-up: the `send_volume` counter of the UTC day, taken a batch at a time by compare and
  set (exact over all workers and campaigns); what a batch did not hand over is given back.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, bindparam, delete, select, text, update
from sqlmodel import col

from listmgr.db import rows_changed
from listmgr.mail.domains import DomainPolicy, backoff_seconds, domain_of
from listmgr.mail.transport import Throttle
from listmgr.models import DomainBackoff, DomainSlot, SendVolume
from listmgr.runtime import Runtime
from listmgr.settings import Settings

SLOT_RETRY = 0.25  # seconds before a job asks again for a slot another job holds
REFRESH = 1.0  # seconds between two reads of the back-off table by one process
DEFER_AFTER = 2.0  # a domain that waits longer than this goes back to the ledger


class Guard:
    """This process's view of the guard: the policy, throttles per entry, back-offs."""

    def __init__(self, settings: Settings, make_throttle: Callable[[str, float], Any]) -> None:
        self.key = guard_key(settings)
        self.policy = DomainPolicy({k: v.model_dump() for k, v in settings.domain_limits.items()})
        self.base = settings.domain_backoff_seconds
        self.warmup = settings.warmup
        self.lease = timedelta(seconds=settings.lease_seconds)
        self.throttles = {
            lim.key: make_throttle(f"domain:{lim.key}", lim.rate)
            for lim in self.policy.limits.values()
            if lim.rate
        }
        self.backoffs: dict[str, datetime] = {}
        self._read_at = 0.0
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return bool(self.policy) or self.base > 0

    def refresh(self, rt: Runtime, now: datetime) -> None:
        """Read the back-offs in force (at most once a second)."""
        if not self.base or time.monotonic() - self._read_at < REFRESH:
            return
        with rt.db.session() as s:
            rows = s.execute(
                select(col(DomainBackoff.domain), col(DomainBackoff.until)).where(
                    col(DomainBackoff.until) > now
                )
            ).all()
        with self._lock:
            self.backoffs = {d: u for d, u in rows}
            self._read_at = time.monotonic()

    def throttled(self, rt: Runtime, key: str, now: datetime) -> datetime:
        """Record a "slow down" reply from `key`: it backs off (longer if it did so lately)."""
        with rt.db.session() as s:
            # The domain's row first (another worker may make it at the same moment), then
            # read it under a lock: two workers throttled at once raise the level once.
            s.execute(
                text(
                    "INSERT INTO domain_backoff (domain, until, level) VALUES (:d, :t, 0) "
                    "ON CONFLICT DO NOTHING"
                ).bindparams(bindparam("d", key), bindparam("t", now, type_=DateTime))
            )
            row = s.get(DomainBackoff, key, with_for_update=rt.db.dialect == "postgresql")
            assert row is not None  # just made, and never deleted
            if row.until > now:
                until = row.until  # already backing off: the replies of messages in flight
            else:
                recent = timedelta(seconds=2 * backoff_seconds(self.base, row.level))
                # Throttled again soon after the last back-off ended: wait longer this time.
                level = row.level + 1 if row.level and now - row.until < recent else 1
                until = now + timedelta(seconds=backoff_seconds(self.base, level))
                row.until, row.level = until, level
        with self._lock:
            self.backoffs[key] = until
        return until


def guard_key(settings: Settings) -> tuple[Any, ...]:
    return (
        repr(settings.domain_limits),
        settings.domain_backoff_seconds,
        settings.warmup,
        settings.lease_seconds,
        settings.broker_url,
    )


def process_guard(rt: Runtime, settings: Settings, make_throttle: Any) -> Guard:
    """The guard of this process for these settings."""
    with _lock:
        guard = rt.state.get("domain_guard")
        if guard is None or guard.key != guard_key(settings):
            guard = Guard(settings, make_throttle or (lambda _n, r: Throttle(r)))
            rt.state["domain_guard"] = guard
        return guard


_lock = threading.Lock()


class JobGate:
    """One sending job's side of the guard: which of its rows may go now."""

    def __init__(self, rt: Runtime, guard: Guard, holder: str) -> None:
        self.rt = rt
        self.guard = guard
        self.holder = holder
        self.slots: Counter[str] = Counter()  # concurrency slots this job holds per entry
        self.in_round: Counter[str] = Counter()
        self.denied: dict[str, float] = {}  # entry -> when to ask for a slot again
        self.parked: deque[tuple[float, Any]] = deque()  # (monotonic time, row) waiting aside
        self.granted = 0  # warm-up volume taken for the current batch
        self.day = date.min  # the UTC day it was taken from
        self.handed = 0  # messages of the batch handed over

    # -- per round -------------------------------------------------------------------------
    def new_round(self, pending: deque[Any], now: datetime) -> None:
        """Start a round: rows parked until now go back to the front of `pending` (with
        nothing else to send, wait for the first of them)."""
        self.in_round.clear()
        self.guard.refresh(self.rt, now)
        if not self.parked:
            return
        if not pending:
            first = min(t for t, _ in self.parked)
            delay = first - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        clock = time.monotonic()
        keep: deque[tuple[float, Any]] = deque()
        due: list[Any] = []
        for ready, row in self.parked:
            (due if ready <= clock else keep).append((ready, row) if ready > clock else row)
        self.parked = keep
        pending.extendleft(reversed(due))

    def admit(self, email: str, row: Any, now: datetime) -> Verdict:
        """None when the row may go in this round (its slot and rate taken); PARKED when it
        waits aside in this job; else (time, reason): it goes back to the ledger till then."""
        guard = self.guard
        domain = domain_of(email)
        key = guard.policy.key_of(domain)
        if guard.backoffs:
            until = guard.backoffs.get(key)
            if until is not None and until > now:
                return until, f"waiting: {key} asked us to slow down"
        limit = guard.policy.limit_of(domain)
        if limit is None:
            return None
        if (
            limit.concurrency
            and self.in_round[key] >= self.slots[key]
            and not self._take_slot(key, limit.concurrency, now)
        ):
            self._park(row, 0.0 if self.slots[key] else SLOT_RETRY)
            return PARKED
        throttle = guard.throttles.get(key)
        if throttle is not None:
            wait = throttle.try_acquire()
            if wait > DEFER_AFTER:
                return now + timedelta(seconds=wait), f"waiting: the rate limit of {key}"
            if wait > 0:
                self._park(row, wait)
                return PARKED
        self.in_round[key] += 1
        return None

    def _park(self, row: Any, seconds: float) -> None:
        self.parked.append((time.monotonic() + seconds, row))

    def _take_slot(self, key: str, concurrency: int, now: datetime) -> bool:
        if self.denied.get(key, 0.0) > time.monotonic():
            return False
        if take_slot(self.rt, key, self.holder, concurrency, now, now + self.guard.lease):
            self.slots[key] += 1
            return True
        self.denied[key] = time.monotonic() + SLOT_RETRY
        return False

    def release(self) -> None:
        """Give back this job's slots (when it ends)."""
        if self.slots:
            release_slots(self.rt, self.holder)
            self.slots.clear()
        self.denied.clear()

    def throttled(self, email: str, now: datetime) -> datetime:
        """The recipient's domain said "slow down": until when it backs off."""
        return self.guard.throttled(self.rt, self.guard.policy.key_of(domain_of(email)), now)

    # -- warm-up ----------------------------------------------------------------------------
    def reserve(self, wanted: int, now: datetime) -> int:
        """How many messages this batch may hand over under today's warm-up volume."""
        self.handed = 0
        self.day = now.date()
        warmup = self.guard.warmup
        cap = warmup.cap(now.date()) if warmup is not None else None
        if cap is None:
            self.granted = -1
            return wanted
        self.granted = reserve_volume(self.rt, now.date(), cap, wanted)
        return self.granted

    def give_back(self) -> None:
        """Return the volume taken for the batch and not handed over."""
        unused = self.granted - self.handed
        if self.granted > 0 and unused > 0:
            give_back_volume(self.rt, self.day, unused)
        self.granted = 0


# What admit answers for a row that waits aside in this job.
PARKED = (datetime.min, "")
Verdict = tuple[datetime, str] | None


def tomorrow(now: datetime) -> datetime:
    """The start of the next UTC day."""
    return datetime.combine(now.date() + timedelta(days=1), datetime.min.time())


# -- the shared state's statements ------------------------------------------------------------
def take_slot(
    rt: Runtime, key: str, holder: str, concurrency: int, now: datetime, lease: datetime
) -> bool:
    """Take one of `key`'s `concurrency` slots if one is free (expired leases are free)."""
    with rt.db.session() as s:
        if rt.db.dialect == "postgresql":
            # Counting and taking must not interleave with another job's: one lock per entry.
            s.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": "slot:" + key})
        s.execute(
            delete(DomainSlot).where(
                col(DomainSlot.domain) == key,
                col(DomainSlot.lease_until) < now,
            )
        )
        # One statement: on SQLite the count and the insert happen under one write lock.
        return bool(
            rows_changed(
                s,
                text(
                    "INSERT INTO domain_slot (domain, holder, lease_until) SELECT :k, :h, :l "
                    "WHERE (SELECT count(*) FROM domain_slot WHERE domain = :k) < :n"
                ).bindparams(
                    bindparam("k", key),
                    bindparam("h", holder),
                    bindparam("l", lease, type_=DateTime),
                    bindparam("n", concurrency),
                ),
            )
        )


def release_slots(rt: Runtime, holder: str) -> None:
    with rt.db.session() as s:
        s.execute(delete(DomainSlot).where(col(DomainSlot.holder) == holder))


def reserve_volume(rt: Runtime, day: date, cap: int, wanted: int) -> int:
    """Take up to `wanted` of the day's `cap` messages (compare and set: exact over workers)."""
    name = day.isoformat()
    for _ in range(50):
        with rt.db.session() as s:
            used = s.scalar(select(col(SendVolume.used)).where(col(SendVolume.day) == name))
            if used is None:  # the day's first batch (another worker may make the row too)
                s.execute(
                    text(
                        "INSERT INTO send_volume (day, used) VALUES (:d, 0) ON CONFLICT DO NOTHING"
                    ),
                    {"d": name},
                )
                continue
            grant = max(0, min(wanted, cap - used))
            if not grant:
                return 0
            changed = rows_changed(
                s,
                update(SendVolume)
                .where(col(SendVolume.day) == name, col(SendVolume.used) == used)
                .values(used=used + grant),
            )
            if changed:
                return grant
    return 0


def give_back_volume(rt: Runtime, day: date, count: int) -> None:
    with rt.db.session() as s:
        s.execute(
            update(SendVolume)
            .where(col(SendVolume.day) == day.isoformat())
            .values(used=SendVolume.used - count)
        )
