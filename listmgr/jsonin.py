"""JSON from outside (request bodies, form fields, files): what json.loads accepts but neither
the databases nor the code can take is refused with the path of the bad part. That is text with
a lone surrogate escape such as "\\ud800" (not a character: PostgreSQL refuses it, SQLite stores
it and breaks every later read), and nesting deep enough to exhaust the interpreter's stack."""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64


class BadJSON(ValueError):
    """Valid JSON syntax we cannot take; path names the part ("" for the whole)."""

    def __init__(self, msg: str, path: str = "") -> None:
        super().__init__(msg)
        self.msg, self.path = msg, path


def loads(text: str | bytes, root: str = "") -> Any:
    """json.loads, then check(): raises json.JSONDecodeError or BadJSON (both ValueError).
    root names the whole in BadJSON's path (e.g. "rules": "rules.all[2]")."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise BadJSON(f"nested deeper than {MAX_DEPTH} levels", root) from None
    check(value, root)
    return value


def check(value: Any, root: str = "") -> None:
    """Refuse lone surrogates in any string or key, and nesting deeper than MAX_DEPTH."""
    stack: list[tuple[Any, str, int]] = [(value, root, 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            _text(item, path)
            continue
        if isinstance(item, dict):
            pairs: Any = item.items()
        elif isinstance(item, list):
            pairs = ((f"[{i}]", v) for i, v in enumerate(item))
        else:
            continue
        if depth >= MAX_DEPTH:
            raise BadJSON(f"nested deeper than {MAX_DEPTH} levels", path)
        for key, child in pairs:
            if isinstance(item, dict):
                _text(key, path)
                key = f"{path}.{key}" if path else key
            else:
                key = f"{path}{key}"
            stack.append((child, key, depth + 1))


def _text(value: str, path: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadJSON(
            "text must be Unicode characters: a lone surrogate escape such as \\ud800 is not one",
            path,
        ) from None
