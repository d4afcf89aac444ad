"""Reading the operands of segment conditions: each check names the bad node's path (pure)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from listmgr.errors import SegmentError
from listmgr.fieldvalues import MAX_NUMBER

MAX_VALUES = 1000


def fail(message: str, path: str) -> SegmentError:
    return SegmentError(message, field=path)


def whole(value: Any, path: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise fail(f"expected a whole number from {low} to {high}", path)
    return value


def number(value: Any, path: str) -> float | int:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or value != value
        or value in (float("inf"), float("-inf"))
    ):
        raise fail("expected a number", path)
    if abs(value) > MAX_NUMBER:  # stored values never are; and the databases would disagree
        raise fail(f"a number may be at most {MAX_NUMBER} in size", path)
    return value


def string(value: Any, path: str, *, empty: bool = True) -> str:
    if not isinstance(value, str) or (not empty and not value):
        raise fail("expected a non-empty string" if not empty else "expected a string", path)
    return value


def strings(value: Any, path: str) -> list[str]:
    if not isinstance(value, list) or not value:
        raise fail("expected a non-empty list", path)
    if len(value) > MAX_VALUES:
        raise fail(f"at most {MAX_VALUES} values", path)
    return [string(v, f"{path}[{i}]") for i, v in enumerate(value)]


def iso_date(value: Any, path: str) -> date:
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise fail("expected a date as YYYY-MM-DD", path)


def moment(value: Any, path: str) -> tuple[datetime, bool]:
    """A date (start of day, True) or a naive UTC datetime (False)."""
    if isinstance(value, str) and len(value) == 10:
        return datetime.combine(iso_date(value, path), datetime.min.time()), True
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise fail("expected a date (YYYY-MM-DD) or a date and time (ISO 8601)", path) from None
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        return moment, False
    raise fail("expected a date (YYYY-MM-DD) or a date and time (ISO 8601)", path)


def pair(value: Any, path: str, item: Callable[[Any, str], Any]) -> tuple[Any, Any]:
    if not isinstance(value, list) or len(value) != 2:
        raise fail("expected [low, high]", path)
    low, high = item(value[0], f"{path}[0]"), item(value[1], f"{path}[1]")
    if low > high:
        raise fail("low is above high", path)
    return low, high
