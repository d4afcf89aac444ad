"""How long and what shape stored text may be: one rule for every table and every way in (API,
admin forms, CLI, public forms, imports through the ORM), checked before anything is written.

The lengths of String columns are the ones declared on the models; Text columns, which have no
length in the schema, are bounded here. Without this check SQLite stores any length and
PostgreSQL refuses with a database error, so the same input got two different answers.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from listmgr.errors import ValidationError

# Text columns (unbounded in the schema), in characters.
TEXT_LIMITS: dict[tuple[str, str], int] = {
    ("mailing_list", "description"): 5_000,
    ("mailing_list", "consent_wording"): 5_000,
    ("consent_event", "wording"): 10_000,
    ("campaign", "body"): 1_000_000,
    ("campaign", "layout"): 1_000_000,
    ("campaign", "text"): 1_000_000,
    ("import_job", "consent"): 5_000,
}

# Values that end up in a mail header (List-Id, From, To, Reply-To, Subject) or name one thing
# on a page: one line, no control characters (a line break in a header is an injection).
ONE_LINE: dict[str, frozenset[str]] = {
    "mailing_list": frozenset({"slug", "name", "from_name", "from_email", "reply_to"}),
    "subscriber": frozenset({"email", "name", "source"}),
    "campaign": frozenset({"name", "subject", "preheader", "from_name", "from_email", "reply_to"}),
    "segment": frozenset({"name"}),
    "field_def": frozenset({"key", "label"}),
    "interest": frozenset({"key", "label"}),
    "app_user": frozenset({"email", "name"}),
    "api_token": frozenset({"name"}),
}

# Columns that callers know by another name (the error names the field they sent).
FIELD_NAMES: dict[tuple[str, str], str] = {
    ("consent_event", "wording"): "consent",
    ("import_job", "consent"): "consent",
}

# C0 controls, DEL, C1 controls (NEL among them) and the Unicode line and paragraph separators.
_BREAKS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def limit_of(table: str, column: Any) -> int | None:
    """The most characters a column holds (None: not bounded)."""
    return getattr(column.type, "length", None) or TEXT_LIMITS.get((table, column.key))


def check_text(key: str, value: str, limit: int | None, *, one_line: bool = False) -> None:
    """Raise ValidationError naming `key` when value does not fit the column."""
    if limit is not None and len(value) > limit:
        raise ValidationError(
            f"{key} must be at most {limit:,} characters (it has {len(value):,})", field=key
        )
    if one_line and _BREAKS.search(value):
        raise ValidationError(f"{key} must be one line without control characters", field=key)
    if "\x00" in value:  # PostgreSQL cannot store it in text
        raise ValidationError(f"{key} may not contain NUL characters", field=key)


# Per mapped class: (attribute, name in errors, limit, one line) of every column attribute.
_SPECS: dict[Any, tuple[tuple[str, str, int | None, bool], ...]] = {}


def _specs(mapper: Any) -> tuple[tuple[str, str, int | None, bool], ...]:
    found = _SPECS.get(mapper)
    if found is None:
        table = getattr(mapper.local_table, "name", "")
        found = tuple(
            (
                attr.key,
                FIELD_NAMES.get((table, attr.key), attr.key),
                limit_of(table, attr.columns[0]),
                attr.key in ONE_LINE.get(table, ()),
            )
            for attr in mapper.column_attrs
        )
        _SPECS[mapper] = found
    return found


def check_row(obj: Any) -> None:
    """Check the text a new or changed row is about to write (unchanged old values are left
    alone: a legacy value must not stop an unsubscribe)."""
    state = inspect(obj)
    specs = _specs(state.mapper)
    if state.persistent:  # only what changed, and nothing loaded to find out
        changed = state.committed_state
        for key, name, limit, one_line in specs:
            if key in changed:
                added = state.attrs[key].history.added
                value = added[0] if added else None
                if isinstance(value, str):
                    check_text(name, value, limit, one_line=one_line)
        return
    values = state.dict
    for key, name, limit, one_line in specs:
        value = values.get(key)
        if isinstance(value, str):
            check_text(name, value, limit, one_line=one_line)


def _before_flush(session: Session, _context: Any, _instances: Any) -> None:
    for obj in list(session.new) + list(session.dirty):
        check_row(obj)


def install() -> None:
    """Check every ORM flush (idempotent)."""
    if not event.contains(Session, "before_flush", _before_flush):
        event.listen(Session, "before_flush", _before_flush)
