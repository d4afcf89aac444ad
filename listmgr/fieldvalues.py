"""Custom field types and their values: parse what forms, the API and CSV send (pure)."""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import Any

TYPES = ("text", "number", "date", "boolean", "choice", "multi_choice")
KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# Built-in subscriber properties (segments and templates name them beside custom keys).
RESERVED = frozenset(
    {
        "id",
        "email",
        "name",
        "created_at",
        "updated_at",
        "source",
        "status",
        "lists",
        "fields",
        "interests",
        "consent",
        "consents",
        "paused_until",
    }
)
MAX_TEXT = 1000
MAX_CHOICES = 200
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_INTEGER = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
MAX_NUMBER = 2**53 - 1  # the largest integer JSON readers (JavaScript) keep exactly
_TRUE = frozenset({"true", "1", "yes", "on", "y"})
_FALSE = frozenset({"false", "0", "no", "off", "n"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class FieldValueError(ValueError):
    """A value that does not fit its field; the message is for people."""


def sentence(exc: Exception) -> str:
    """An error message as a sentence: capital first letter, one full stop."""
    msg = str(exc)
    return (msg[:1].upper() + msg[1:]).rstrip(".") + "."


def check_key(key: Any) -> str:
    """A field or interest key: lower-case letters, digits, underscores, not a built-in name."""
    if not isinstance(key, str) or not KEY.match(key):
        raise FieldValueError(
            "the key must start with a letter and use only lower-case "
            "letters, digits and underscores (up to 64)"
        )
    if key in RESERVED:
        raise FieldValueError(f"{key!r} is a built-in property; choose another key")
    return key


def check_choices(type_: str, choices: Any) -> list[str]:
    """The choices of a choice or multi_choice field (none for the other types)."""
    if type_ not in ("choice", "multi_choice"):
        if choices:
            raise FieldValueError(f"a {type_} field has no choices")
        return []
    if not isinstance(choices, list) or not choices:
        raise FieldValueError(f"a {type_} field needs a list of choices")
    out: list[str] = []
    for c in choices:
        if not isinstance(c, str) or not c.strip() or _CONTROL.search(c) or len(c) > 200:
            raise FieldValueError("each choice must be a short line of text")
        if c.strip() in out:
            raise FieldValueError(f"the choice {c.strip()!r} appears twice")
        out.append(c.strip())
    if len(out) > MAX_CHOICES:
        raise FieldValueError(f"at most {MAX_CHOICES} choices")
    return out


def _one(value: Any, label: str) -> Any:
    """Forms send lists when an input repeats; single-valued fields take one value."""
    if isinstance(value, (list, tuple)):
        values = [v for v in value if v not in ("", None)]
        if len(values) > 1:
            raise FieldValueError(f"{label} takes one value, not {len(values)}")
        return values[0] if values else None
    return value


def _in_range(value: float, label: str) -> float:
    """Finite, and no larger than JSON readers keep exactly (every path: JSON, form, CSV)."""
    if isinstance(value, float) and math.isnan(value):
        raise FieldValueError(f"{label} must be a finite number")
    if abs(value) > MAX_NUMBER:  # infinity included
        raise FieldValueError(f"{label} is too large")
    return value


def _number_text(text: str, label: str) -> int | float:
    """A number as typed: whole numbers stay integers, however many digits they have."""
    if _INTEGER.fullmatch(text):
        if len(text.lstrip("+-").lstrip("0")) > len(str(MAX_NUMBER)):
            raise FieldValueError(f"{label} is too large")  # before int() reads 10**5 digits
        return int(text)
    if _DECIMAL.fullmatch(text):
        return float(text)
    raise FieldValueError(f"{label} must be a number, like 42 or 3.5")


def _number(value: Any, label: str) -> int | float:
    if isinstance(value, bool):
        raise FieldValueError(f"{label} must be a number")
    if isinstance(value, str):
        value = _number_text(value.strip(), label)
    if not isinstance(value, (int, float)):
        raise FieldValueError(f"{label} must be a number")
    return _in_range(value, label)


def _date(value: Any, label: str) -> str:
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and _DATE.match(value.strip()):
        try:
            return date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            pass
    raise FieldValueError(f"{label} must be a date written YYYY-MM-DD, like 2024-05-31")


def _boolean(value: Any, label: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise FieldValueError(f"{label} must be yes or no (true or false)")


def _text(value: Any, label: str) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)  # CSV and loose clients send numbers for text fields
    if not isinstance(value, str):
        raise FieldValueError(f"{label} must be text")
    if _CONTROL.search(value):
        raise FieldValueError(f"{label} must be one line of text without control characters")
    value = value.strip()
    if len(value) > MAX_TEXT:
        raise FieldValueError(f"{label} is longer than {MAX_TEXT} characters")
    return value


def coerce(type_: str, choices: list[str], value: Any, label: str) -> Any:
    """The stored form of a value (None means: no value), or FieldValueError."""
    if type_ == "multi_choice":
        items = value if isinstance(value, (list, tuple)) else [value]
        picked: set[str] = set()
        for item in items:
            if item in ("", None):
                continue
            if not isinstance(item, str) or item.strip() not in choices:
                raise FieldValueError(
                    f"{label}: {item!r} is not one of the choices ({', '.join(choices)})"
                )
            picked.add(item.strip())
        # Stored in the order of the definition so equal selections compare equal.
        return [c for c in choices if c in picked] or None
    value = _one(value, label)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if type_ == "text":
        return _text(value, label) or None
    if type_ == "number":
        return _number(value, label)
    if type_ == "date":
        return _date(value, label)
    if type_ == "boolean":
        return _boolean(value, label)
    if type_ == "choice":
        if not isinstance(value, str) or value.strip() not in choices:
            raise FieldValueError(
                f"{label}: {value!r} is not one of the choices ({', '.join(choices)})"
            )
        return value.strip()
    raise FieldValueError(f"{label} has an unknown type {type_!r}")
