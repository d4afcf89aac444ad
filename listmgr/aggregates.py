"""Counts as shown to a role: exact for those who may see people, k-anonymous for the others."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Count:
    """A count as one role may see it: the number, or only that it is under the threshold."""

    value: int | None  # None: fewer than `fewer_than` (0 included)
    fewer_than: int | None = None

    def as_json(self) -> dict[str, Any]:
        """{"count": N}, or {"count": null, "fewer_than": K} for a small count kept back."""
        if self.value is not None:
            return {"count": self.value}
        return {"count": None, "fewer_than": self.fewer_than}

    @property
    def label(self) -> str:
        """For a page: "1,234" or "fewer than 10"."""
        return f"{self.value:,}" if self.value is not None else f"fewer than {self.fewer_than}"

    def __str__(self) -> str:
        return self.label


def shown(n: int, *, personal: bool, threshold: int) -> Count:
    """The count as a caller sees it. Without access to personal data every count under the
    threshold (0 too: "none" vs "one" tells as much as the number) reads the same, so no rule
    can be narrowed until it answers a question about one person."""
    if personal or threshold <= 0 or n >= threshold:
        return Count(int(n))
    return Count(None, threshold)


def small_group(size: int, *, personal: bool, threshold: int) -> bool:
    """Whether the figures of a group of `size` people (a campaign's audience) are withheld from
    this reader: its outcomes (who bounced, opened, unsubscribed) would be about so few people
    that they read as facts about persons."""
    return not personal and threshold > 0 and size < threshold


def withheld(figures: dict[str, Any], threshold: int) -> dict[str, Any]:
    """A small group's figures: every number null, no timeline, and "fewer_than"."""
    out = {
        k: None if isinstance(v, (int, float)) and not isinstance(v, bool) else v
        for k, v in figures.items()
    }
    if "timeline" in out:
        out["timeline"] = []
    if "engagement" in out:
        out["engagement"] = None
    out["fewer_than"] = threshold
    return out
