"""Typed reads of one key of a JSON object column, compiled alike for SQLite and PostgreSQL.

Each read yields NULL unless the stored value has the expected JSON type, so a condition over a
field never fails on odd data (a number field holding a string simply does not match).
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import Boolean, Float, String, literal
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
    "array": "('array')",
}


# Predicates are wrapped in COALESCE(..., false): a NULL would make NOT(...) drop rows too.
class _KeyRead(FunctionElement[Any]):
    """Base: (json column, key) as the first two clauses."""

    inherit_cache = True

    def __init__(self, column: Any, key: str, *more: Any) -> None:
        super().__init__(column, literal(key, String), *more)


class JsonText(_KeyRead):
    """The string at key, or NULL."""

    type = String()
    inherit_cache = True


class JsonNumber(_KeyRead):
    """The number at key (as a float), or NULL."""

    type = Float()
    inherit_cache = True


class JsonBool(_KeyRead):
    """The boolean at key, or NULL."""

    type = Boolean()
    inherit_cache = True


class JsonArrayHasAny(_KeyRead):
    """True when the value at key is an array holding at least one of the given strings."""

    type = Boolean()
    inherit_cache = True

    def __init__(self, column: Any, key: str, values: list[str]) -> None:
        super().__init__(column, key, *(literal(v, String) for v in values))


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


class JsonArrayHasAll(_KeyRead):
    """True when the value at key is an array holding every one of the given strings."""

    type = Boolean()
    inherit_cache = True

    def __init__(self, column: Any, key: str, values: list[str]) -> None:
        super().__init__(
            column,
            key,
            literal(json.dumps({key: values}), String),
            *(literal(v, String) for v in values),
        )


class JsonArrayNonEmpty(_KeyRead):
    """True when the value at key is a non-empty array."""

    type = Boolean()
    inherit_cache = True


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


def _sqlite_typed(
    kind: str, element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any
) -> str:
    col, key = _parts(element, compiler, **kw)[:2]
    path = _sqlite_path(key)
    return (
        f"CASE WHEN json_type({col}, {path}) IN {_SQLITE_KIND[kind]} "
        f"THEN json_extract({col}, {path}) END"
    )


@compiles(JsonText, "sqlite")
def _text_sqlite(element: JsonText, compiler: SQLCompiler, **kw: Any) -> str:
    return _sqlite_typed("string", element, compiler, **kw)


@compiles(JsonNumber, "sqlite")
def _number_sqlite(element: JsonNumber, compiler: SQLCompiler, **kw: Any) -> str:
    return _sqlite_typed("number", element, compiler, **kw)


@compiles(JsonBool, "sqlite")
def _bool_sqlite(element: JsonBool, compiler: SQLCompiler, **kw: Any) -> str:
    return _sqlite_typed("boolean", element, compiler, **kw)


@compiles(JsonArrayHasAny, "sqlite")
def _has_any_sqlite(element: JsonArrayHasAny, compiler: SQLCompiler, **kw: Any) -> str:
    col, key, *values = _parts(element, compiler, **kw)
    path = _sqlite_path(key)
    return (
        f"COALESCE(json_type({col}, {path}) = 'array' AND EXISTS (SELECT 1 FROM "
        f"json_each({col}, {path}) AS je WHERE je.type = 'text' AND je.value IN "
        f"({', '.join(values)})), 0)"
    )


@compiles(JsonEquals, "sqlite")
def _equals_sqlite(element: JsonEquals, compiler: SQLCompiler, **kw: Any) -> str:
    col, key, value, _ = _parts(element, compiler, **kw)
    path = _sqlite_path(key)
    return (
        f"COALESCE(json_type({col}, {path}) IN {_SQLITE_KIND[element.kind]} "
        f"AND json_extract({col}, {path}) = {value}, 0)"
    )


@compiles(JsonArrayHasAll, "sqlite")
def _has_all_sqlite(element: JsonArrayHasAll, compiler: SQLCompiler, **kw: Any) -> str:
    col, key, _, *values = _parts(element, compiler, **kw)
    path = _sqlite_path(key)
    each = [
        f"EXISTS (SELECT 1 FROM json_each({col}, {path}) AS je WHERE je.type = 'text' "
        f"AND je.value = {v})"
        for v in values
    ]
    return f"COALESCE(json_type({col}, {path}) = 'array' AND {' AND '.join(each)}, 0)"


@compiles(JsonArrayNonEmpty, "sqlite")
def _nonempty_sqlite(element: JsonArrayNonEmpty, compiler: SQLCompiler, **kw: Any) -> str:
    col, key = _parts(element, compiler, **kw)
    path = _sqlite_path(key)
    return (
        f"COALESCE(json_type({col}, {path}) = 'array' AND json_array_length({col}, {path}) > 0, 0)"
    )


@compiles(AsciiContains, "sqlite")
def _contains_sqlite(element: AsciiContains, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite's LIKE ignores the case of ASCII letters only (without the ICU extension): exactly
    # this, and without folding each value first.
    text, like, _ = _parts(element, compiler, **kw)
    return f"({text} LIKE {like} ESCAPE '/')"


# -- PostgreSQL: jsonb operators (the cast also accepts a plain json column) --------------------
def _pg_value(col: str, key: str) -> str:
    return f"(CAST({col} AS JSONB) -> {key})"


@compiles(JsonText, "postgresql")
def _text_pg(element: JsonText, compiler: SQLCompiler, **kw: Any) -> str:
    col, key = _parts(element, compiler, **kw)
    return (
        f"CASE WHEN jsonb_typeof({_pg_value(col, key)}) = 'string' "
        f"THEN (CAST({col} AS JSONB) ->> {key}) END"
    )


@compiles(JsonNumber, "postgresql")
def _number_pg(element: JsonNumber, compiler: SQLCompiler, **kw: Any) -> str:
    col, key = _parts(element, compiler, **kw)
    return (
        f"CASE WHEN jsonb_typeof({_pg_value(col, key)}) = 'number' "
        f"THEN CAST(CAST({col} AS JSONB) ->> {key} AS DOUBLE PRECISION) END"
    )


@compiles(JsonBool, "postgresql")
def _bool_pg(element: JsonBool, compiler: SQLCompiler, **kw: Any) -> str:
    col, key = _parts(element, compiler, **kw)
    return (
        f"CASE WHEN jsonb_typeof({_pg_value(col, key)}) = 'boolean' "
        f"THEN CAST(CAST({col} AS JSONB) ->> {key} AS BOOLEAN) END"
    )


@compiles(JsonArrayHasAny, "postgresql")
def _has_any_pg(element: JsonArrayHasAny, compiler: SQLCompiler, **kw: Any) -> str:
    col, key, *values = _parts(element, compiler, **kw)
    value = _pg_value(col, key)
    return (
        f"COALESCE(jsonb_typeof({value}) = 'array' AND "
        f"{value} ?| CAST(ARRAY[{', '.join(values)}] AS TEXT[]), false)"
    )


@compiles(JsonEquals, "postgresql")
def _equals_pg(element: JsonEquals, compiler: SQLCompiler, **kw: Any) -> str:
    # Containment of {"key": value} is exactly "key holds this value, of this JSON type", and
    # PostgreSQL estimates how many rows match from its statistics of the column.
    parts = _parts(element, compiler, **kw)
    col, document = parts[0], parts[3]
    return f"(CAST({col} AS JSONB) @> CAST({document} AS JSONB))"


@compiles(JsonArrayHasAll, "postgresql")
def _has_all_pg(element: JsonArrayHasAll, compiler: SQLCompiler, **kw: Any) -> str:
    col, _, document = _parts(element, compiler, **kw)[:3]
    return f"(CAST({col} AS JSONB) @> CAST({document} AS JSONB))"


@compiles(JsonArrayNonEmpty, "postgresql")
def _nonempty_pg(element: JsonArrayNonEmpty, compiler: SQLCompiler, **kw: Any) -> str:
    col, key = _parts(element, compiler, **kw)
    value = _pg_value(col, key)
    return f"COALESCE(jsonb_typeof({value}) = 'array' AND jsonb_array_length({value}) > 0, false)"


@compiles(AsciiContains, "postgresql")
def _contains_pg(element: AsciiContains, compiler: SQLCompiler, **kw: Any) -> str:
    # ILIKE and lower() would follow the database locale, and folding each value with
    # translate() first took twice as long as this: each ASCII letter of the needle as [aA].
    text, _, regex = _parts(element, compiler, **kw)
    return f"({text} ~ {regex})"


def ascii_lower(text: str) -> str:
    """The Python twin of AsciiLower."""
    return text.translate(str.maketrans(ASCII_UPPER, ASCII_LOWER))


def json_text(column: Any, key: str) -> ColumnElement[Any]:
    return JsonText(column, key)


def json_number(column: Any, key: str) -> ColumnElement[Any]:
    return JsonNumber(column, key)


def json_bool(column: Any, key: str) -> ColumnElement[Any]:
    return JsonBool(column, key)


def json_array_has_any(column: Any, key: str, values: list[str]) -> ColumnElement[Any]:
    return JsonArrayHasAny(column, key, values)


def json_equals(column: Any, key: str, value: Any) -> ColumnElement[Any]:
    """Typed equality: a string matches strings only, a number numbers, a boolean booleans."""
    if isinstance(value, bool):
        return JsonEqualsBool(column, key, value)
    if isinstance(value, (int, float)):
        return JsonEqualsNumber(column, key, value)
    return JsonEquals(column, key, value)


def json_array_has_all(column: Any, key: str, values: list[str]) -> ColumnElement[Any]:
    return JsonArrayHasAll(column, key, values)


def json_array_nonempty(column: Any, key: str) -> ColumnElement[Any]:
    return JsonArrayNonEmpty(column, key)


def ascii_contains(expr: Any, needle: str) -> ColumnElement[Any]:
    return AsciiContains(expr, needle)
