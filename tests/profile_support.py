"""Shared set-up for profile, event and privacy tests: one field of every type, interests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from listmgr.models import SQLModel
from listmgr.services import fielddefs, lists

FIELDS: list[dict[str, Any]] = [
    {"key": "nickname", "label": "Nickname", "type": "text"},
    {"key": "height", "label": "Height in cm", "type": "number"},
    {"key": "birthday", "label": "Birthday", "type": "date"},
    {"key": "vip", "label": "VIP", "type": "boolean"},
    {"key": "plan", "label": "Plan", "type": "choice", "choices": ["free", "pro"]},
    {
        "key": "topics",
        "label": "Topics",
        "type": "multi_choice",
        "choices": ["news", "tips", "events"],
    },
    {"key": "account_id", "label": "Account number", "type": "text", "editable": False},
]
INTERESTS = [("python", "Python"), ("rust", "Rust"), ("gardening", "Gardening")]

# A good value (as a form sends it), what is stored, and a bad value with a word of the error.
FORM_CASES = {
    "nickname": ("Ada", "Ada", "line\r\nbreak", "one line"),
    "height": ("172.5", 172.5, "tall", "must be a number"),
    "birthday": ("1990-12-10", "1990-12-10", "10/12/1990", "YYYY-MM-DD"),
    "vip": ("true", True, "perhaps", "yes or no"),
    "plan": ("pro", "pro", "gold", "not one of the choices"),
    "topics": (
        ["news", "events"],
        ["news", "events"],
        ["news", "gossip"],
        "not one of the choices",
    ),
}
API_GOOD = {  # JSON values as API clients send them, and what is stored
    "nickname": ("  Ada ", "Ada"),
    "height": (172, 172),
    "birthday": ("1990-12-10", "1990-12-10"),
    "vip": (False, False),
    "plan": ("free", "free"),
    "topics": (["tips", "news"], ["news", "tips"]),
}
API_BAD = {
    "nickname": ["x" * 1001, ["a", "b"]],
    "height": ["12 cm", True, "NaN", 2**60],
    "birthday": ["2024-5-1", 20240501, "yesterday"],
    "vip": ["maybe", 2],
    "plan": ["Pro", ["free", "pro"]],
    "topics": [["news", "news", "x"], [1]],
}


def define_everything(rt) -> None:
    for spec in FIELDS:
        fielddefs.create_field(rt, **spec)
    for key, label in INTERESTS:
        fielddefs.create_interest(rt, key=key, label=label)


def make_list(rt, slug: str = "news", **extra: Any) -> int:
    values: dict[str, Any] = {"name": slug.title(), "consent_wording": "Send me the news."}
    values.update(extra)
    return lists.create(rt, slug=slug, **values)


def counts(rt) -> dict[str, int]:
    """Rows per table: proof that a refused request changed nothing (the audit log, which
    records API calls themselves, aside)."""
    with rt.db.session() as s:
        return {
            t.name: s.scalar(select(func.count()).select_from(t)) or 0
            for t in SQLModel.metadata.sorted_tables
            if t.name not in ("audit_log", "worker_process")  # heartbeats come and go
        }


def snapshot(rt) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables a profile write touches."""
    names = (
        "subscriber",
        "subscriber_interest",
        "membership",
        "consent_event",
        "activity_event",
        "outbox",
        "engagement",
    )
    with rt.db.session() as s:
        out = {}
        for t in SQLModel.metadata.sorted_tables:
            if t.name in names:
                out[t.name] = sorted(
                    (tuple(str(v) for v in row) for row in s.execute(select(t))), key=repr
                )
        return out
