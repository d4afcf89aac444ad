"""Typed equality on one key of a JSON object column (activity event properties) and text
"contains" that ignores ASCII case only, compiled alike for SQLite and PostgreSQL.

Equality holds only when the stored value has the JSON type of the one compared with, so a
condition never fails on odd data (a number property holding a string simply does not match).
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import Boolean, String, literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

ASCII_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
ASCII_LOWER = ASCII_UPPER.lower()
_SQLITE_KIND = {
    "string": "('text')",
    "number": "('integer', 'real')",
    "boolean": "('true', 'false')",
}


# Predicates are wrapped in COALESCE(..., false): a NULL would make NOT(...) drop rows too.
class _KeyRead(FunctionElement[Any]):
    """Base: (json column, key) as the first two clauses."""

    inherit_cache = True

    def __init__(self, column: Any, key: str, *more: Any) -> None:
        super().__init__(column, literal(key, String), *more)


class JsonEquals(_KeyRead):
    """True when the value at key is this string, number or boolean (of that JSON type)."""

    type = Boolean()
    inherit_cache = True
    kind = "string"  # one subclass per kind: the kind shapes the SQL, so it keys the cache

    def __init__(self, column: Any, key: str, value: Any) -> None:
        # The value twice: plain for SQLite, as a one-key JSON document for PostgreSQL's @>.
        super().__init__(column, key, literal(value), literal(json.dumps({key: value}), String))


class JsonEqualsNumber(JsonEquals):
    inherit_cache = True
    kind = "number"


class JsonEqualsBool(JsonEquals):
    inherit_cache = True
    kind = "boolean"


class AsciiContains(FunctionElement[Any]):
    """True when the text holds the needle, the case of ASCII letters aside and other
    characters as they are (the same on both engines); NULL when the text is NULL."""

    type = Boolean()
    inherit_cache = True

    def __init__(self, expr: Any, needle: str) -> None:
        folded = ascii_lower(needle)
        like = "%" + re.sub(r"([%_/])", r"/\1", folded) + "%"
        regex = "".join(
            f"[{c}{c.upper()}]" if c in ASCII_LOWER else c if c.isalnum() else "\\" + c
            for c in folded
        )
        super().__init__(expr, literal(like, String), literal(regex, String))


def _parts(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> list[str]:
    return [compiler.process(c, **kw) for c in element.clauses.clauses]


# -- SQLite: json_type() names the kind; json_extract() returns native values ----------------------
def _sqlite_path(key_sql: str) -> str:
    # '$."key"' keeps keys with dots or dashes intact; keys with quotes are refused upstream.
    return f"'$.\"' || {key_sql} || '\"'"


@compiles(JsonEquals, "sqlite")
def _equals_sqlite(element: JsonEquals, compiler: SQLCompiler, **kw: Any) -> str:
    col, key, value, _ = _parts(element, compiler, **kw)
    path = _sqlite_path(key)
    return (
        f"COALESCE(json_type({col}, {path}) IN {_SQLITE_KIND[element.kind]} "
        f"AND json_extract({col}, {path}) = {value}, 0)"
    )


@compiles(AsciiContains, "sqlite")
def _contains_sqlite(element: AsciiContains, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite's LIKE ignores the case of ASCII letters only (without the ICU extension): exactly
    # this, and without folding each value first.
    text, like, _ = _parts(element, compiler, **kw)
    return f"({text} LIKE {like} ESCAPE '/')"


# -- PostgreSQL: jsonb operators (the cast also accepts a plain json column) --------------------
@compiles(JsonEquals, "postgresql")
def _equals_pg(element: JsonEquals, compiler: SQLCompiler, **kw: Any) -> str:
    # Containment of {"key": value} is exactly "key holds this value, of this JSON type", and
    # PostgreSQL estimates how many rows match from its statistics of the column.
    parts = _parts(element, compiler, **kw)
    col, document = parts[0], parts[3]
    return f"(CAST({col} AS JSONB) @> CAST({document} AS JSONB))"


@compiles(AsciiContains, "postgresql")
def _contains_pg(element: AsciiContains, compiler: SQLCompiler, **kw: Any) -> str:
    # ILIKE and lower() would follow the database locale, and folding each value with
    # translate() first took twice as long as this: each ASCII letter of the needle as [aA].
    text, _, regex = _parts(element, compiler, **kw)
    return f"({text} ~ {regex})"


def ascii_lower(text: str) -> str:
    """The Python twin of AsciiLower."""
    return text.translate(str.maketrans(ASCII_UPPER, ASCII_LOWER))


def json_equals(column: Any, key: str, value: Any) -> ColumnElement[Any]:
    """Typed equality: a string matches strings only, a number numbers, a boolean booleans."""
    if isinstance(value, bool):
        return JsonEqualsBool(column, key, value)
    if isinstance(value, (int, float)):
        return JsonEqualsNumber(column, key, value)
    return JsonEquals(column, key, value)


def ascii_contains(expr: Any, needle: str) -> ColumnElement[Any]:
    return AsciiContains(expr, needle)
