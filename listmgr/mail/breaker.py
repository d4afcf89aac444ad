"""The circuit breaker's rule: over the last messages a campaign handed over, too many hard
bounces or complaints stop it. Pure: counts in, a reason out (None: carry on)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """The breaker's settings (breaker_* in config/defaults.toml); a rate of 0 turns that
    check off, a window of 0 the whole breaker."""

    bounce_rate: float  # hard bounces, a share of the messages in the window
    complaint_rate: float
    window: int  # the last N messages handed over since the campaign (re)started
    min_deliveries: int  # no verdict on fewer messages than this

    @property
    def enabled(self) -> bool:
        return self.window > 0 and (self.bounce_rate > 0 or self.complaint_rate > 0)


def percent(share: float) -> str:
    """A share as a percentage with at most two decimals, e.g. 0.062 -> "6.2", 0.001 -> "0.1"."""
    text = f"{share * 100:.2f}".rstrip("0").rstrip(".")
    return text or "0"


def _over(count: int, handed: int, limit: float, what: str) -> str | None:
    if limit <= 0 or count / handed <= limit:
        return None
    shown, limit_shown = percent(count / handed), percent(limit)
    if shown == limit_shown:  # just over the limit: show enough digits to tell them apart
        shown = f"{count / handed * 100:.4f}".rstrip("0")
    return f"{what} {shown} % of the last {handed:,} messages (limit {limit_shown} %)"


def verdict(limits: Limits, *, handed: int, bounces: int, complaints: int) -> str | None:
    """Why the campaign must stop, or None. `handed` counts the messages in the window (at
    most `limits.window`), `bounces` and `complaints` those of them that hard-bounced or were
    reported as spam. A rate must exceed its limit; none is judged before `min_deliveries`."""
    if not limits.enabled or handed <= 0 or handed < limits.min_deliveries:
        return None
    reasons = [
        _over(bounces, handed, limits.bounce_rate, "hard bounces"),
        _over(complaints, handed, limits.complaint_rate, "complaints"),
    ]
    return "; ".join(r for r in reasons if r) or None
