"""Segment rules in words, for people reading a list of segments: `city is Berlin and (opened a
campaign in the last 30 days or has any of the interests books, films)` (pure).

Stored rules were checked when saved (listmgr.segments); anything else still reads as something
rather than failing, since this only describes."""

from __future__ import annotations

from typing import Any

FIELD_OPS = {
    "eq": "is",
    "ne": "is not",
    "in": "is one of",
    "contains": "contains",
    "gt": "is greater than",
    "gte": "is at least",
    "lt": "is less than",
    "lte": "is at most",
    "before": "is before",
    "after": "is after",
}
INTERESTS = {"has_any": "any", "has_all": "all", "has_none": "none"}
ENGAGEMENT = {"received": "received", "opened": "opened", "clicked": "clicked in"}
MAX_WORDS = 300  # characters: a long tree ends in an ellipsis


def describe(rules: Any) -> str:
    """The rule tree as one line of words; "everyone" for no condition."""
    text = _node(rules, top=True) or "everyone"
    return text if len(text) <= MAX_WORDS else text[: MAX_WORDS - 1].rstrip() + "…"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_value(v) for v in value)
    return str(value)


def _times(node: dict[str, Any]) -> str:
    words = ""
    if isinstance(node.get("at_least"), int) and node["at_least"] > 1:
        words += f" at least {node['at_least']} times"
    if isinstance(node.get("within_days"), int):
        words += f" in the last {node['within_days']} days"
    return words


def _node(node: Any, *, top: bool = False) -> str:
    if not isinstance(node, dict):
        return _value(node)
    for group, joiner in (("all", " and "), ("any", " or ")):
        if group in node:
            parts = [_node(child) for child in node[group] or []]
            parts = [p for p in parts if p]
            if not parts:
                return "" if group == "all" else "no one"
            text = joiner.join(parts)
            return text if top or len(parts) == 1 else f"({text})"
    if "not" in node:
        return f"not ({_node(node['not'], top=True) or 'everyone'})"
    if "field" in node:
        return _field(node)
    if "interests" in node:
        mode = INTERESTS.get(str(node["interests"]), str(node["interests"]))
        return f"has {mode} of the interests {_value(node.get('value', []))}"
    if "list" in node:
        status = str(node.get("status") or "confirmed")
        text = (
            f"is on list {node['list']}"
            if status == "any"
            else (f"is {status} on list {node['list']}")
        )
        if node.get("opt_in_level"):
            text += f" at the level {node['opt_in_level']}"
        return text
    if "event" in node:
        text = f"did {node['event']}"
        where = node.get("where")
        if isinstance(where, dict) and where:
            text += " where " + ", ".join(f"{k} is {_value(v)}" for k, v in where.items())
        return text + _times(node)
    if "engagement" in node:
        verb = ENGAGEMENT.get(str(node["engagement"]), str(node["engagement"]))
        return f"{verb} a campaign{_times(node)}"
    return _value(node)


def _field(node: dict[str, Any]) -> str:
    key, op, value = node.get("field"), node.get("op"), node.get("value")
    if op == "exists":
        return f"{key} is {'not ' if value is False else ''}set"
    if op == "between" and isinstance(value, list) and len(value) == 2:
        return f"{key} is between {_value(value[0])} and {_value(value[1])}"
    if op == "within_last_days":
        return f"{key} is within the last {_value(value)} days"
    return f"{key} {FIELD_OPS.get(str(op), str(op))} {_value(value)}"
