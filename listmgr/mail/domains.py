"""Per receiving domain: which limit a recipient's domain falls under, which SMTP replies mean
"slow down", how long a domain backs off, and the warm-up plan's daily volume (pure)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

# Words receiving servers use when they defer for volume, not for the recipient (Gmail's
# "4.7.28 ... rate limited", Outlook's "4.7.650 ... throttled", Yahoo's "TSS04 ... try again").
SLOW_DOWN = re.compile(
    r"rate|throttl|too many|try again later|slow down|4\.7\.28|4\.7\.650|TSS04", re.IGNORECASE
)
# Greylisting also says "try again later", but of one sender and recipient, not of volume.
GREYLISTED = re.compile(r"gr[ea]ylist", re.IGNORECASE)
MAX_BACKOFF_SECONDS = 3600.0


def is_throttling(code: int | None, text: str) -> bool:
    """A reply that asks us to send less to that domain: any 421, or a 450/451/452 whose text
    speaks of rates, throttling or trying again later (greylisting aside)."""
    if code == 421:
        return True
    return code in (450, 451, 452) and bool(SLOW_DOWN.search(text)) and not GREYLISTED.search(text)


def domain_of(address: str) -> str:
    """The receiving domain of an address (lower case)."""
    return address.rpartition("@")[2].strip().lower()


@dataclass(frozen=True)
class DomainLimit:
    """One entry of `domain_limits`: the domains it covers share its rate and concurrency."""

    key: str  # the entry's name: the key of its shared rate, slots and back-off
    rate: float  # messages per second, 0 = no limit
    concurrency: int  # messages in flight at once, 0 = no limit


class DomainPolicy:
    """The limit each receiving domain falls under (a domain in no entry: none)."""

    def __init__(self, table: Mapping[str, Mapping[str, Any]]) -> None:
        self.limits: dict[str, DomainLimit] = {}
        for name, entry in table.items():
            limit = DomainLimit(
                name.lower(), float(entry.get("rate", 0)), int(entry.get("concurrency", 0))
            )
            for domain in entry.get("domains") or [name]:
                self.limits[domain.lower()] = limit

    def __bool__(self) -> bool:
        return any(lim.rate or lim.concurrency for lim in self.limits.values())

    def key_of(self, domain: str) -> str:
        """Whose back-off a domain shares: its entry's, else its own."""
        limit = self.limits.get(domain)
        return limit.key if limit is not None else domain

    def limit_of(self, domain: str) -> DomainLimit | None:
        return self.limits.get(domain)


def table_problems(table: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """What is wrong with a `domain_limits` table beyond its types: a domain in two entries,
    or a name that is no domain."""
    problems = []
    owner: dict[str, str] = {}
    for name, entry in table.items():
        for domain in entry.get("domains") or [name]:
            d = domain.lower()
            if not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", d):
                problems.append(f"domain_limits.{name}: {domain!r} is not a domain name")
            elif d in owner and owner[d] != name:
                problems.append(f"domain_limits: {d} is in both {owner[d]!r} and {name!r}")
            owner[d] = name
    return problems


def backoff_seconds(base: float, level: int) -> float:
    """How long a domain backs off after its `level`-th throttling reply in a row."""
    return min(base * 2 ** max(0, level - 1), MAX_BACKOFF_SECONDS)


@dataclass(frozen=True)
class Warmup:
    """A new sending domain's or IP's plan: `first_day` messages on its first day, times
    `growth` each day after, no limit from day `days` + 1 on."""

    start: date
    days: int
    first_day: int
    growth: float

    def cap(self, today: date) -> int | None:
        """Messages that may be handed over on `today` (UTC), None for no limit."""
        day = max(0, (today - self.start).days)  # before the start: the first day's volume
        if day >= self.days:
            return None
        return max(1, int(self.first_day * self.growth**day))
