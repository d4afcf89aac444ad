"""Custom field conditions of segment rules: who has a value of a field that satisfies a
predicate, read from the indexed rows of subscriber_field_value (pure: builds expressions).

A value of the wrong JSON type is no row of that kind, so it reads as missing, as it always
did: text, choice and date fields read strings, number fields numbers, boolean fields
booleans, multi_choice fields the string items of an array.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import ExternallyTraversible, replacement_traverse
from sqlmodel import col

from listmgr.models import LONG_TEXT, Subscriber, SubscriberFieldValue

Expr = ColumnElement[bool]
Predicate = Callable[[ColumnElement[Any]], Expr]
# The row kind each field type reads (number and boolean values have a column of their own).
_STRING_KIND = {"text": "string", "choice": "string", "date": "string", "multi_choice": "item"}
_COLUMNS = SubscriberFieldValue.__table__.c  # type: ignore[attr-defined]
_TYPED = {"number": _COLUMNS.value_number, "boolean": _COLUMNS.value_bool}


def matching(
    key: str,
    kind: str,
    predicate: Predicate | None = None,
    *,
    equal_to: Sequence[Any] | None = None,
) -> Expr:
    """Subscribers whose value of the field `key` (of field type `kind`) satisfies `predicate`
    over the value's column; without one, those who have a value of that type at all (for a
    multi_choice field: an array with at least one item). `equal_to`: the values an equality
    predicate compares with (a string longer than any of them cannot match)."""
    sid = _COLUMNS.subscriber_id
    # A value (not an array's item) is at position 0: with the key, that names one row per
    # subscriber (the primary key), so PostgreSQL joins the ids as they are instead of first
    # making them distinct.
    rows = and_(_COLUMNS.key == key, _COLUMNS.position == 0)
    if kind in _TYPED:
        value = _TYPED[kind]
        where = predicate(value) if predicate else value.is_not(None)
        return col(Subscriber.id).in_(select(sid).where(rows, where))
    if kind == "multi_choice":
        rows = _COLUMNS.key == key  # any item may match
        if predicate is None:
            # An array has items when it has a first one: again one row per subscriber.
            rows = and_(rows, _COLUMNS.position == 1)
    rows = and_(rows, _COLUMNS.kind == _STRING_KIND[kind])
    if predicate is None:
        return col(Subscriber.id).in_(select(sid).where(rows))
    short, longer = _COLUMNS.value_text, _COLUMNS.value_long
    where = predicate(short)
    if equal_to is not None and not any(_long(v) for v in equal_to):
        # One index range, in subscriber order: PostgreSQL merges it with the other sets.
        return col(Subscriber.id).in_(select(sid).where(rows, where))

    # The same predicate over the few strings too long for the index (value_text is NULL), as
    # a second set beside the first: under one UNION ALL PostgreSQL could no longer tell how
    # many subscribers a wide condition names, and looked each of them up one by one.
    def swap(element: ExternallyTraversible, **_: Any) -> ExternallyTraversible | None:
        return longer if element is short else None

    long = replacement_traverse(where, {}, swap)
    return or_(
        col(Subscriber.id).in_(select(sid).where(rows, where)),
        col(Subscriber.id).in_(select(sid).where(rows, short.is_(None), long)),
    )


def _long(value: Any) -> bool:
    return isinstance(value, str) and len(value.encode()) > LONG_TEXT
