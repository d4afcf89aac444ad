"""Segment rules (a JSON tree) -> one SQLAlchemy boolean expression over Subscriber (pure).

Rules: ``{"all": [...]}``, ``{"any": [...]}``, ``{"not": rule}`` over conditions:

- ``{"field": KEY, "op": OP, "value": V}``: a custom field or a built-in (``email``, ``name``,
  ``source``, ``created_at``). Ops by type: text eq ne in contains exists; choice eq ne in exists;
  number eq ne in gt gte lt lte between exists; date eq ne before after gt gte lt lte between
  within_last_days exists; boolean eq ne exists; multi_choice contains (all of V) in (any of V)
  exists. A stored value of the wrong JSON type counts as missing, and a missing value matches no
  comparison (so ``ne`` needs a value, and ``not`` of a comparison matches the missing ones).
  ``contains`` on text ignores ASCII case. ``exists`` takes an optional boolean value.
- ``{"interests": "has_any"|"has_all"|"has_none", "value": [KEY, ...]}``.
- ``{"list": SLUG, "status": "confirmed"|"pending"|"unsubscribed"|"bounced"|"any",
  "opt_in_level"?: LEVEL}`` (status defaults to confirmed).
- ``{"event": TYPE, "where"?: {"properties.K": scalar}, "at_least"?: N, "within_days"?: D}``.
- ``{"engagement": "received"|"opened"|"clicked", "within_days"?: D, "at_least"?: N}``:
  received counts deliveries sent, opened/clicked count engagement rows (open/click; a click
  counts as an open too, images may be blocked).

Sub-conditions are uncorrelated ``subscriber.id IN (SELECT subscriber_id ...)`` subqueries: the
planners turn them into semi-joins (or one hashed lookup under OR/NOT) on both engines. Custom
field conditions read the indexed rows of subscriber_field_value (listmgr.segmentfields).
Bad trees raise SegmentError whose ``field`` is the path of the bad node (``rules.all[2].value``).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, false, func, literal, not_, or_, select, true
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from listmgr import segmentfields
from listmgr.errors import SegmentError
from listmgr.models import (
    ActivityEvent,
    Delivery,
    Engagement,
    MailingList,
    Membership,
    MemberStatus,
    Subscriber,
    SubscriberInterest,
    Suppression,
)
from listmgr.segmentvalues import (
    MAX_VALUES,
    fail,
    iso_date,
    moment,
    number,
    pair,
    string,
    strings,
    whole,
)
from listmgr.sqljson import ascii_contains, ascii_lower, json_equals

MAX_DEPTH = 8
MAX_CONDITIONS = 200
MAX_ACTIVITY = 20  # event and engagement conditions: each is a subquery PostgreSQL plans
MAX_IN_TERMS = 500  # values of "in" over custom fields, in all
MAX_DAYS = 36500
FIELD_TYPES = ("text", "number", "date", "boolean", "choice", "multi_choice")
BUILTINS = {"email": "text", "name": "text", "source": "text", "created_at": "datetime"}
OPS: dict[str, tuple[str, ...]] = {
    "text": ("eq", "ne", "in", "contains", "exists"),
    "choice": ("eq", "ne", "in", "exists"),
    "number": ("eq", "ne", "in", "gt", "gte", "lt", "lte", "between", "exists"),
    "date": (
        "eq",
        "ne",
        "before",
        "after",
        "gt",
        "gte",
        "lt",
        "lte",
        "between",
        "within_last_days",
        "exists",
    ),
    "datetime": ("eq", "before", "after", "gt", "gte", "lt", "lte", "between", "within_last_days"),
    "boolean": ("eq", "ne", "exists"),
    "multi_choice": ("contains", "in", "exists"),
}
STATUSES = tuple(s.value for s in MemberStatus)
ENGAGEMENT = ("received", "opened", "clicked")
_PROPERTY_KEY = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
_CONDITION_KEYS = {
    "field": {"field", "op", "value"},
    "interests": {"interests", "value"},
    "list": {"list", "status", "opt_in_level"},
    "event": {"event", "where", "at_least", "within_days"},
    "engagement": {"engagement", "within_days", "at_least"},
}
_GROUPS = ("all", "any", "not")
Expr = ColumnElement[bool]


@dataclass(frozen=True)
class FieldSpec:
    """What the compiler needs to know of a custom field."""

    type: str
    choices: tuple[str, ...] = ()


def _rank(node: Any) -> int:
    if isinstance(node, dict):
        if "event" in node or "engagement" in node:
            return 0
        if node.get("interests") in ("has_any", "has_all"):
            return 1
    return 2


def _in_subquery(subquery: Any) -> Expr:
    return col(Subscriber.id).in_(subquery)


def _of_lists(slugs: Sequence[str], list_ids: Mapping[str, int] | None) -> Expr:
    """Membership rows of these lists. With the lists' ids known, as constants: the planners
    then read the membership index (list_id, status, subscriber_id) in subscriber order and
    merge it with the other sorted id sets (PostgreSQL), instead of hashing every member."""
    if list_ids is None or any(slug not in list_ids for slug in slugs):
        return col(Membership.list_id).in_(
            select(col(MailingList.id)).where(col(MailingList.slug).in_(slugs))
        )
    ids = sorted({list_ids[slug] for slug in slugs})
    return col(Membership.list_id) == ids[0] if len(ids) == 1 else col(Membership.list_id).in_(ids)


class _Compiler:
    """One compilation: the definitions it checks against and a condition budget."""

    def __init__(
        self,
        fields: Mapping[str, FieldSpec | tuple[str, Sequence[str]]],
        *,
        interests: Collection[str] | None,
        lists: Collection[str] | None,
        now: datetime,
        list_ids: Mapping[str, int] | None = None,
    ) -> None:
        self.fields = {
            k: v if isinstance(v, FieldSpec) else FieldSpec(v[0], tuple(v[1] or ()))
            for k, v in fields.items()
        }
        self.interests = None if interests is None else set(interests)
        # known list slugs, or a mapping of slug -> the list's opt-in levels (then checked)
        self.lists: Collection[str] | None = (
            None if lists is None else dict(lists) if isinstance(lists, Mapping) else set(lists)
        )
        self.now = now
        self.list_ids = list_ids
        self.conditions = 0
        self.activity = 0
        self.in_terms = 0

    def rule(self, node: Any, path: str, depth: int) -> Expr:
        if depth > MAX_DEPTH:
            raise fail(f"rules are nested deeper than {MAX_DEPTH} levels", path)
        if not isinstance(node, dict) or not node:
            raise fail('expected a rule object such as {"all": [...]} or a condition', path)
        groups = [k for k in _GROUPS if k in node]
        if groups:
            if len(node) != 1:
                extra = sorted(set(node) - {groups[0]})[0] if len(groups) == 1 else groups[1]
                raise fail(f"a {groups[0]!r} group takes nothing else", f"{path}.{extra}")
            key = groups[0]
            if key == "not":
                return not_(self.rule(node["not"], f"{path}.not", depth + 1))
            items = node[key]
            if not isinstance(items, list):
                raise fail(f"{key!r} takes a list of rules", f"{path}.{key}")
            parts = [self.rule(x, f"{path}.{key}[{i}]", depth + 1) for i, x in enumerate(items)]
            if not parts:  # an empty all matches everyone, an empty any nobody
                return true() if key == "all" else false()
            if key == "any":
                return or_(*parts)
            # SQLite drives the query from the first IN subquery it can: put the usually
            # narrow ones (activity, engagement, interests) first. PostgreSQL plans by cost.
            ranked = sorted(zip(items, parts, strict=False), key=lambda pair: _rank(pair[0]))
            return and_(*(part for _, part in ranked))
        kinds = [k for k in _CONDITION_KEYS if k in node]
        if len(kinds) != 1:
            raise fail(
                "expected one of all, any, not, field, interests, list, event, engagement", path
            )
        unknown = sorted(set(node) - _CONDITION_KEYS[kinds[0]])
        if unknown:
            raise fail(f"unknown property {unknown[0]!r}", f"{path}.{unknown[0]}")
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise fail(f"more than {MAX_CONDITIONS} conditions", path)
        if kinds[0] in ("event", "engagement"):
            self.activity += 1
            if self.activity > MAX_ACTIVITY:
                raise fail(f"more than {MAX_ACTIVITY} event and engagement conditions", path)
        return getattr(self, f"_{kinds[0]}")(node, path)

    # -- profile fields ---------------------------------------------------------------------------
    def _field(self, node: dict[str, Any], path: str) -> Expr:
        key = string(node["field"], f"{path}.field", empty=False)
        choices: Sequence[str]
        if key in BUILTINS:
            kind, choices = BUILTINS[key], ()
        elif key in self.fields:
            kind, choices = self.fields[key].type, self.fields[key].choices
        else:
            raise fail(f"unknown field {key!r}", f"{path}.field")
        op = node.get("op")
        if op not in OPS.get(kind, ()):
            raise fail(f"{kind} fields take op {', '.join(OPS.get(kind, ()))}", f"{path}.op")
        vpath = f"{path}.value"
        if op == "exists":
            wanted = node.get("value", True)
            if not isinstance(wanted, bool):
                raise fail("exists takes true or false", vpath)
            present = self._present(key, kind)
            return present if wanted else not_(present)
        if "value" not in node:
            raise fail("this condition needs a value", vpath)
        value = node["value"]
        if kind == "datetime":
            return self._datetime(op, value, vpath)
        if kind == "multi_choice":
            values = [value] if op == "contains" and isinstance(value, str) else value
            values = strings(values, vpath)
            self._check_choices(values, choices, vpath)
            if op == "in":
                return segmentfields.matching(key, kind, lambda c: c.in_(values), equal_to=values)

            def holding(v: str) -> Expr:
                return segmentfields.matching(key, kind, lambda c: c == v, equal_to=[v])

            return and_(*(holding(v) for v in dict.fromkeys(values)))

        def predicate(column: ColumnElement[Any]) -> Expr:
            return self._predicate(column, key, kind, op, value, vpath, choices)

        if key in BUILTINS:
            return predicate(getattr(Subscriber, key))
        equal_to = (value if isinstance(value, list) else [value]) if op in ("eq", "in") else None
        return segmentfields.matching(key, kind, predicate, equal_to=equal_to)

    def _predicate(
        self,
        column: ColumnElement[Any],
        key: str,
        kind: str,
        op: str,
        value: Any,
        vpath: str,
        choices: Sequence[str],
    ) -> Expr:
        """The condition on one value (a built-in column, or a custom field's value column)."""
        custom = key not in BUILTINS
        if kind == "number":
            # As floats: the values are stored as double precision, and a list starting with
            # an integer would otherwise be bound as integers (0.5 compared as 0).
            return self._compare(column, op, value, vpath, _as_float, custom)
        if kind == "boolean":
            if not isinstance(value, bool):
                raise fail("expected true or false", vpath)
            return self._compare(column, op, value, vpath, lambda v, p: v, custom)
        if kind == "date":
            return self._date(column, op, value, vpath, custom)
        # text and choice
        if op == "contains":
            needle = ascii_lower(string(value, vpath, empty=False))
            # Addresses are stored lower-cased (listmgr.addresses): folding each of a million
            # of them again only costs time.
            found = (
                column.contains(needle, autoescape=True)
                if key == "email"
                else ascii_contains(column, needle)
            )
            return and_(column.is_not(None), found)
        fix = (lambda v: v.lower()) if key == "email" else (lambda v: v)
        values = strings(value, vpath) if op == "in" else [string(value, vpath)]
        if kind == "choice":
            self._check_choices(values, tuple(choices), vpath)
        return self._compare(
            column, op, values if op == "in" else values[0], vpath, lambda v, p: fix(v), custom
        )

    @staticmethod
    def _check_choices(values: list[str], choices: tuple[str, ...], path: str) -> None:
        for i, v in enumerate(values):
            if choices and v not in choices:
                raise fail(
                    f"{v!r} is not one of the choices {', '.join(choices)}",
                    path if len(values) == 1 else f"{path}[{i}]",
                )

    @staticmethod
    def _present(key: str, kind: str) -> Expr:
        if key in BUILTINS:
            column = getattr(Subscriber, key)
            return and_(column.is_not(None), column != "")
        if kind in ("text", "choice", "date"):
            return segmentfields.matching(key, kind, lambda c: and_(c.is_not(None), c != ""))
        return segmentfields.matching(key, kind)

    def _compare(
        self,
        column: ColumnElement[Any],
        op: str,
        value: Any,
        path: str,
        item: Callable[[Any, str], Any],
        custom: bool = False,
    ) -> Expr:
        """column OP value (custom: a custom field's value column, whose "in" values count
        against MAX_IN_TERMS)."""
        # "IS NOT NULL AND ..." keeps every condition two-valued, so NOT behaves like Python's.
        present = column.is_not(None)
        if op == "in":
            if not isinstance(value, list) or not value or len(value) > MAX_VALUES:
                raise fail(f"expected a non-empty list of up to {MAX_VALUES} values", path)
            values = [item(v, f"{path}[{i}]") for i, v in enumerate(value)]
            if custom:
                self.in_terms += len(values)
                if self.in_terms > MAX_IN_TERMS:
                    raise fail(
                        f"more than {MAX_IN_TERMS} values in all of the segment's 'in' "
                        "conditions on custom fields",
                        path,
                    )
            return and_(present, column.in_(values))
        if op == "between":
            low, high = pair(value, path, item)
            return and_(present, column >= low, column <= high)
        v = literal(item(value, path), column.type)
        compare = {
            "eq": operator.eq,
            "ne": operator.ne,
            "gt": operator.gt,
            "gte": operator.ge,
            "lt": operator.lt,
            "lte": operator.le,
            "after": operator.gt,
            "before": operator.lt,
        }[op]
        return and_(present, compare(column, v))

    def _date(
        self, column: ColumnElement[Any], op: str, value: Any, path: str, custom: bool
    ) -> Expr:
        def iso(v: Any, p: str) -> str:
            return iso_date(v, p).isoformat()

        if op == "within_last_days":
            days = whole(value, path, 0, MAX_DAYS)
            today = self.now.date()
            return and_(
                column.is_not(None),
                column >= (today - timedelta(days=days)).isoformat(),
                column <= today.isoformat(),
            )
        return self._compare(column, op, value, path, iso, custom)

    def _datetime(self, op: str, value: Any, path: str) -> Expr:
        column = col(Subscriber.created_at)
        if op == "within_last_days":
            return column >= self.now - timedelta(days=whole(value, path, 0, MAX_DAYS))
        if op == "between":
            if not isinstance(value, list) or len(value) != 2:
                raise fail("expected [from, to]", path)
            (low, _), (high, high_day) = (
                moment(value[0], f"{path}[0]"),
                moment(value[1], f"{path}[1]"),
            )
            if low > high:
                raise fail("from is after to", path)
            return (
                and_(column >= low, column < high + timedelta(days=1))
                if high_day
                else and_(column >= low, column <= high)
            )
        at, whole_day = moment(value, path)
        end = at + timedelta(days=1) if whole_day else at
        if op == "eq":
            return and_(column >= at, column < end) if whole_day else column == at
        if op in ("before", "lt"):
            return column < at
        if op == "gte":
            return column >= at
        if op == "lte":
            return column < end if whole_day else column <= at
        return column >= end if whole_day else column > at  # after, gt

    # -- interests, lists, activity, engagement --------------------------------------------------
    def _interests(self, node: dict[str, Any], path: str) -> Expr:
        mode = node["interests"]
        if mode not in ("has_any", "has_all", "has_none"):
            raise fail("interests takes has_any, has_all or has_none", f"{path}.interests")
        values = strings(node.get("value"), f"{path}.value")
        for i, v in enumerate(values):
            if self.interests is not None and v not in self.interests:
                raise fail(f"unknown interest {v!r}", f"{path}.value[{i}]")

        def having(keys: list[str]) -> Expr:
            return _in_subquery(
                select(col(SubscriberInterest.subscriber_id)).where(
                    col(SubscriberInterest.interest).in_(keys)
                )
            )

        if mode == "has_all":
            return and_(*(having([v]) for v in dict.fromkeys(values)))
        return having(values) if mode == "has_any" else not_(having(values))

    def _list(self, node: dict[str, Any], path: str) -> Expr:
        slug = string(node["list"], f"{path}.list", empty=False)
        if self.lists is not None and slug not in self.lists:
            raise fail(f"unknown list {slug!r}", f"{path}.list")
        status = node.get("status", MemberStatus.confirmed.value)
        statuses = [status] if isinstance(status, str) else status
        if (
            not isinstance(statuses, list)
            or not statuses
            or any(s not in (*STATUSES, "any") for s in statuses)
        ):
            raise fail(f"status takes {', '.join(STATUSES)} or any", f"{path}.status")
        query = select(col(Membership.subscriber_id)).where(_of_lists([slug], self.list_ids))
        if "any" not in statuses:
            query = query.where(col(Membership.status).in_(statuses))
        if "opt_in_level" in node:
            level = string(node["opt_in_level"], f"{path}.opt_in_level")
            if isinstance(self.lists, dict) and level and level not in self.lists[slug]:
                offered = ", ".join(repr(x) for x in self.lists[slug])
                raise fail(
                    f'{slug!r} offers the opt-in levels {offered} (or "" for the default, all mail)'
                    if offered
                    else f'{slug!r} has no opt-in levels: only "" (the default, all mail)',
                    f"{path}.opt_in_level",
                )
            query = query.where(col(Membership.opt_in_level) == level)
        return _in_subquery(query)

    def _counted(self, query: Any, column: Any, node: dict[str, Any], path: str, at: Any) -> Expr:
        if node.get("within_days") is not None:
            days = whole(node["within_days"], f"{path}.within_days", 0, MAX_DAYS)
            query = query.where(at >= self.now - timedelta(days=days))
        at_least = whole(node.get("at_least", 1), f"{path}.at_least", 1, 1_000_000)
        if at_least > 1:
            query = query.group_by(column).having(func.count() >= at_least)
        return _in_subquery(query)

    def _event(self, node: dict[str, Any], path: str) -> Expr:
        kind = string(node["event"], f"{path}.event", empty=False)
        query = select(col(ActivityEvent.subscriber_id)).where(col(ActivityEvent.type) == kind)
        where = node.get("where", {})
        if not isinstance(where, dict):
            raise fail('where takes an object of "properties.KEY": value', f"{path}.where")
        for name, value in where.items():
            wpath = f"{path}.where.{name}"
            prop = name[len("properties.") :] if name.startswith("properties.") else ""
            if not _PROPERTY_KEY.match(prop):
                raise fail("filter keys look like properties.KEY (letters, digits, _ or -)", wpath)
            if not isinstance(value, (bool, str)):
                if not isinstance(value, (int, float)):
                    raise fail("a property filter takes a string, number or boolean", wpath)
                value = number(value, wpath)
            query = query.where(json_equals(ActivityEvent.properties, prop, value))
        return self._counted(query, ActivityEvent.subscriber_id, node, path, ActivityEvent.at)

    def _engagement(self, node: dict[str, Any], path: str) -> Expr:
        kind = node["engagement"]
        if kind not in ENGAGEMENT:
            raise fail(f"engagement takes {', '.join(ENGAGEMENT)}", f"{path}.engagement")
        if kind == "received":
            query = select(col(Delivery.subscriber_id)).where(
                col(Delivery.status) == "sent", col(Delivery.subscriber_id).is_not(None)
            )
            return self._counted(query, Delivery.subscriber_id, node, path, Delivery.sent_at)
        # A click counts as an open (images may be blocked), as in the campaign's stats.
        kinds = ("open", "click") if kind == "opened" else ("click",)
        query = select(col(Engagement.subscriber_id)).where(
            col(Engagement.machine).is_(False),  # a privacy proxy's open is nobody's
            col(Engagement.kind).in_(kinds),
        )
        return self._counted(query, Engagement.subscriber_id, node, path, Engagement.at)


def _as_float(value: Any, path: str) -> float:
    """A rule's number (checked by segmentvalues.number), as the stored values are: exact up
    to fieldvalues.MAX_NUMBER."""
    return float(number(value, path))


def _conditions(rules: Any) -> Iterator[dict[str, Any]]:
    """Every object node of a rule tree, as far as it can be read."""
    stack = [rules]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        if isinstance(node, dict):
            stack.extend(node[k] for k in _GROUPS if k in node)
            yield node


def _blank(value: Any) -> bool:
    if isinstance(value, list):
        return all(_blank(v) for v in value)
    return value is None or (isinstance(value, str) and not value.strip())


def incomplete(node: Any) -> bool:
    """A condition still being filled in: it names no field, list or event yet, or no value
    (an "exists" test needs none)."""
    if not isinstance(node, dict):
        return False
    if "field" in node:
        return _blank(node["field"]) or (node.get("op") != "exists" and _blank(node.get("value")))
    if "interests" in node:
        return _blank(node.get("value"))
    kind = next((k for k in ("event", "list") if k in node), None)
    return kind is not None and _blank(node[kind])


def without_incomplete(rules: Any) -> tuple[Any, int]:
    """The rules without the conditions still being filled in (and without the groups that
    held nothing else), and how many conditions were left out. Anything else stays as it is,
    for the compiler to judge."""
    left_out = 0

    def walk(node: Any) -> Any:
        nonlocal left_out
        if not isinstance(node, dict):
            return node
        if len(node) == 1 and "not" in node:
            inner = walk(node["not"])
            return None if inner is None else {"not": inner}
        key = next((k for k in ("all", "any") if k in node), None)
        if key is not None and len(node) == 1 and isinstance(node[key], list):
            items = [y for y in (walk(x) for x in node[key]) if y is not None]
            return None if node[key] and not items else {key: items}
        if incomplete(node):
            left_out += 1
            return None
        return node

    kept = walk(rules)
    return ({} if kept is None else kept), left_out


def references(rules: Any) -> tuple[set[str], set[str], set[str]]:
    """The field keys, interest keys and list slugs a rule tree names (as far as it can be
    read: a tree that does not compile names what it names)."""
    fields: set[str] = set()
    interests: set[str] = set()
    lists: set[str] = set()
    for node in _conditions(rules):
        if isinstance(node.get("field"), str):
            fields.add(node["field"])
        if "interests" in node and isinstance(node.get("value"), list):
            interests.update(v for v in node["value"] if isinstance(v, str))
        if isinstance(node.get("list"), str):
            lists.add(node["list"])
    return fields, interests, lists


def values_named(rules: Any) -> set[tuple[str, str]]:
    """(field key, text value) of every field condition, and ("list:" + slug, opt-in level)
    of every list condition with a level: what removing a choice or a level would break."""
    out: set[tuple[str, str]] = set()
    for node in _conditions(rules):
        if isinstance(node.get("field"), str):
            value = node.get("value")
            for v in value if isinstance(value, list) else [value]:
                if isinstance(v, str):
                    out.add((node["field"], v))
        if isinstance(node.get("list"), str) and isinstance(node.get("opt_in_level"), str):
            out.add(("list:" + node["list"], node["opt_in_level"]))
    return out


def compile_rules(
    rules: Any,
    *,
    fields: Mapping[str, FieldSpec | tuple[str, Sequence[str]]],
    now: datetime,
    interests: Collection[str] | None = None,
    lists: Collection[str] | None = None,
    list_ids: Mapping[str, int] | None = None,
    path: str = "rules",
) -> Expr:
    """The boolean SQL expression over Subscriber for a rule tree (None or {} match everyone).

    ``fields`` maps custom field keys to FieldSpec (or (type, choices)); ``interests`` and
    ``lists`` are the known keys and slugs (None skips that check; a mapping of slug to the
    list's opt-in levels checks levels too); ``list_ids`` maps slugs to ids (optional: the
    query then names the lists by id); ``now`` is naive UTC.
    """
    if rules is None or rules == {}:
        return true()
    return _Compiler(fields, interests=interests, lists=lists, now=now, list_ids=list_ids).rule(
        rules, path, 1
    )


def audience(
    lists: Sequence[str],
    rules: Any,
    *,
    fields: Mapping[str, FieldSpec | tuple[str, Sequence[str]]],
    now: datetime,
    interests: Collection[str] | None = None,
    known_lists: Collection[str] | None = None,
    list_ids: Mapping[str, int] | None = None,
    path: str = "rules",
) -> Expr:
    """Who a campaign to ``lists`` narrowed by ``rules`` may reach, as one expression.

    Confirmed on at least one of the lists, not on the suppression list, not paused at ``now``,
    and matching the rules. Use: ``select(Subscriber.id).where(audience(...))``.
    """
    slugs = list(dict.fromkeys(lists))
    if not slugs:
        raise SegmentError("choose at least one list", field="lists")
    for i, slug in enumerate(slugs):
        if not isinstance(slug, str) or (known_lists is not None and slug not in known_lists):
            raise SegmentError(f"unknown list {slug!r}", field=f"lists[{i}]")
    # EXISTS: checked per candidate the rules found (SQLite), a semi-join (PostgreSQL: with
    # the list ids as constants, a merge join over index-only scans in subscriber order).
    confirmed = exists().where(
        col(Membership.subscriber_id) == Subscriber.id,
        col(Membership.status) == MemberStatus.confirmed.value,
        _of_lists(slugs, list_ids),
    )
    # NOT EXISTS (not NOT IN): PostgreSQL plans it as an anti-join, so a narrow segment is
    # found from its selective conditions instead of by scanning every subscriber.
    suppressed = exists().where(col(Suppression.email_hash) == Subscriber.email_hash)
    awake = or_(col(Subscriber.paused_until).is_(None), col(Subscriber.paused_until) <= now)
    # The rules first: on SQLite the first subquery drives the query, and a segment is
    # usually narrower than the lists it is taken from.
    return and_(
        compile_rules(
            rules,
            fields=fields,
            now=now,
            interests=interests,
            lists=known_lists,
            list_ids=list_ids,
            path=path,
        ),
        confirmed,
        not_(suppressed),
        awake,
    )


HIDDEN = "•••"  # what a masked rule value reads as


def masked(rules: Any, hidden_fields: Collection[str]) -> Any:
    """A copy of a rule tree whose values on ``hidden_fields`` (and every activity property
    filter: free text) read HIDDEN, for a reader without access to personal data."""
    if isinstance(rules, list):
        return [masked(x, hidden_fields) for x in rules]
    if not isinstance(rules, dict):
        return rules
    out = {k: masked(v, hidden_fields) if k in _GROUPS else v for k, v in rules.items()}
    if out.get("field") in hidden_fields and "value" in out:
        value = out["value"]
        out["value"] = [HIDDEN for _ in value] if isinstance(value, list) else HIDDEN
    if "event" in out and isinstance(out.get("where"), dict):
        out["where"] = {k: HIDDEN for k in out["where"]}
    return out


def valued(rules: Any, keys: Collection[str]) -> set[str]:
    """The keys among ``keys`` whose values a rule tree tests (anything but "exists")."""
    return {
        node["field"]
        for node in _conditions(rules)
        if node.get("field") in keys and node.get("op") != "exists"
    }
