"""Failed sign-ins slow the next ones down, per account + address and per address (no lockout)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlmodel import col

from listmgr.models import LoginThrottle, utcnow
from listmgr.runtime import Runtime

# A key whose last failure is older than this starts again from zero.
FORGET_AFTER = timedelta(hours=24)


@dataclass(frozen=True)
class Keys:
    """The two counters one attempt touches, with how many failures each allows for free."""

    account: str
    address: str
    account_free: int
    address_free: int
    max_delay: int


def keys_for(rt: Runtime, *, email: str, ip: str) -> Keys:
    """Counters for this typed address (known or not: the answer must not tell) and client IP."""
    secret = hashlib.sha256(b"login-throttle:" + rt.settings.secret_key.encode()).digest()

    def key(kind: str, value: str) -> str:
        # Keyed hashes: the table holds neither addresses nor IPs.
        return hmac.new(secret, f"{kind}\0{value}".encode(), hashlib.sha256).hexdigest()

    s = rt.settings
    return Keys(
        account=key("account+ip", f"{email}\0{ip}"),
        address=key("ip", ip),
        account_free=s.login_free_failures,
        address_free=s.login_free_failures_per_ip,
        max_delay=s.login_max_delay_seconds,
    )


def wait_seconds(s: Session, keys: Keys, now: datetime | None = None) -> int:
    """Seconds before this account may be tried again from this address (0: go ahead)."""
    now = now or utcnow()
    until = s.scalars(
        select(col(LoginThrottle.blocked_until)).where(
            col(LoginThrottle.key).in_((keys.account, keys.address)),
            col(LoginThrottle.blocked_until) > now,
        )
    ).all()
    latest = max((u for u in until if u is not None), default=None)  # none: the query says >
    if latest is None:
        return 0
    return max(1, int((latest - now).total_seconds() + 0.999))


def _row(s: Session, key: str, now: datetime) -> LoginThrottle:
    """The counter row, created if missing and locked for this transaction."""
    row = s.scalar(select(LoginThrottle).where(col(LoginThrottle.key) == key).with_for_update())
    if row is not None:
        return row
    try:
        with s.begin_nested():
            s.add(LoginThrottle(key=key, failures=0, last_failed_at=now))
    except IntegrityError:
        pass  # another process created it first; lock theirs
    return s.scalars(
        select(LoginThrottle).where(col(LoginThrottle.key) == key).with_for_update()
    ).one()


def failed(s: Session, keys: Keys, now: datetime | None = None) -> None:
    """Count a failure; past the free ones each waits twice as long (up to max_delay)."""
    now = now or utcnow()
    for key, free in ((keys.account, keys.account_free), (keys.address, keys.address_free)):
        row = _row(s, key, now)
        if now - row.last_failed_at > FORGET_AFTER:
            row.failures = 0
        row.failures += 1
        row.last_failed_at = now
        if row.failures >= free:
            delay = min(2 ** min(row.failures - free, 30), keys.max_delay)
            row.blocked_until = now + timedelta(seconds=delay)
    s.flush()


def succeeded(s: Session, keys: Keys) -> None:
    """A right password clears its own account + address counter (never the address's)."""
    s.execute(delete(LoginThrottle).where(col(LoginThrottle.key) == keys.account))


def prune(s: Session, now: datetime | None = None) -> None:
    """Forget counters untouched for a day (the table stays small); rows someone else holds are
    skipped, so this never waits for or deadlocks with a sign-in in progress."""
    now = now or utcnow()
    stale = (
        select(col(LoginThrottle.key))
        .where(col(LoginThrottle.last_failed_at) < now - FORGET_AFTER)
        .limit(500)
        .with_for_update(skip_locked=True)
    )
    s.execute(delete(LoginThrottle).where(col(LoginThrottle.key).in_(stale.scalar_subquery())))
