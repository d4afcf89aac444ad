"""A straightforward Python evaluation of segment rules over in-memory people, and the data
generators the segment tests share. It is written independently of listmgr.segments: the
property test checks that both agree."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from hypothesis import strategies as st
from sqlalchemy import delete, insert, select

from listmgr.models import (
    ActivityEvent,
    Campaign,
    Delivery,
    Engagement,
    MailingList,
    Membership,
    Subscriber,
    SubscriberInterest,
    Suppression,
)

NOW = datetime(2025, 6, 15, 12, 0, 0)
TODAY = NOW.date()
FIELDS = {
    "t": ("text", ()),
    "c": ("choice", ("red", "green", "blue")),
    "n": ("number", ()),
    "d": ("date", ()),
    "b": ("boolean", ()),
    "m": ("multi_choice", ("x", "y", "z")),
}
INTERESTS = ("i1", "i2", "i3")
LISTS = ("l1", "l2")
STATUSES = ("pending", "confirmed", "unsubscribed", "bounced")
LEVELS = ("", "weekly")
TEXTS = ("", "Ada", "ada", "ADA Lovelace", "Zoë", "ZOË", "50%_off", "o'hara", "Straße", "x_y")
NEEDLES = ("a", "AD", "zo", "Ë", "%", "_", "50%_", "'", "ß", "love")
SOURCES = ("", "form", "api", "import")


@dataclass
class Person:
    id: int
    email: str
    name: str
    source: str
    created_at: datetime
    fields: dict[str, Any]
    interests: set[str]
    members: dict[str, tuple[str, str]]  # slug -> (status, opt_in_level)
    events: list[tuple[str, dict[str, Any], datetime]] = field(default_factory=list)
    sent: list[datetime] = field(default_factory=list)
    engagement: list[tuple[str, datetime]] = field(default_factory=list)
    suppressed: bool = False
    paused_until: datetime | None = None


# -- data ----------------------------------------------------------------------------------------
def _moment(days: int, seconds: int) -> datetime:
    return NOW - timedelta(days=days, seconds=seconds)


moments = st.builds(_moment, st.integers(0, 12), st.sampled_from([0, 1, 43200, 86399]))
field_values = {
    "t": st.one_of(st.sampled_from(TEXTS), st.just(7)),
    "c": st.sampled_from(["red", "green", "blue", "purple", ""]) | st.just(3),
    "n": st.one_of(
        st.integers(-2, 2),
        st.integers(-2, 2),
        st.sampled_from([-2.5, 0.5, 1e3]),
        st.just("3"),
        st.just(True),
    ),
    "d": st.one_of(
        st.builds(lambda d: (TODAY - timedelta(days=d)).isoformat(), st.integers(-2, 12)),
        st.just(20250101),
        st.just(""),
    ),
    "b": st.one_of(st.booleans(), st.just("yes"), st.just(0)),
    "m": st.one_of(
        st.lists(st.sampled_from(["x", "y", "z"]), unique=True, max_size=3),
        st.just("x"),
        st.just([1, "q"]),
    ),
}
event_props = st.dictionaries(
    st.just("k"), st.sampled_from(["a", "b", 1, 2.5, True, False]), max_size=1
)


@st.composite
def people(draw: Any) -> list[Person]:
    count = draw(st.integers(0, 24))
    out = []
    for i in range(1, count + 1):
        fields = {k: draw(v) for k, v in field_values.items() if draw(st.booleans())}
        members = {
            slug: (draw(st.sampled_from(STATUSES)), draw(st.sampled_from(LEVELS)))
            for slug in LISTS
            if draw(st.booleans())
        }
        out.append(
            Person(
                id=i,
                email=f"{draw(st.sampled_from(['ada', 'bob', 'zoe_1', 'a%b']))}{i}@"
                f"{draw(st.sampled_from(['example.org', 'mail.test']))}",
                name=draw(st.sampled_from(TEXTS)),
                source=draw(st.sampled_from(SOURCES)),
                created_at=draw(moments),
                fields=fields,
                interests=set(draw(st.lists(st.sampled_from(INTERESTS), unique=True))),
                members=members,
                events=draw(
                    st.lists(
                        st.tuples(st.sampled_from(["e1", "e2"]), event_props, moments), max_size=4
                    )
                ),
                sent=draw(st.lists(moments, max_size=2)),
                engagement=draw(
                    st.lists(st.tuples(st.sampled_from(["open", "click"]), moments), max_size=3)
                ),
                suppressed=draw(st.booleans()) and draw(st.booleans()),
                paused_until=draw(
                    st.one_of(
                        st.none(),
                        st.none(),
                        st.builds(lambda d: NOW + timedelta(days=d), st.integers(-3, 3)),
                    )
                ),
            )
        )
    return out


def store(s: Any, persons: list[Person]) -> None:
    """Replace the people in the database with these (set-based inserts)."""
    for table in (
        Engagement,
        Delivery,
        ActivityEvent,
        SubscriberInterest,
        Membership,
        Suppression,
        Subscriber,
    ):
        s.execute(delete(table))
    if not persons:
        return
    lists = {lst.slug: lst.id for lst in s.query(MailingList)}
    campaign_id = min(s.scalars(select(Campaign.id)))
    s.execute(
        insert(Subscriber),
        [
            {
                "id": p.id,
                "email": p.email,
                "email_hash": f"h{p.id}",
                "name": p.name,
                "fields": p.fields,
                "source": p.source,
                "created_at": p.created_at,
                "updated_at": p.created_at,
                "paused_until": p.paused_until,
            }
            for p in persons
        ],
    )
    rows = [{"subscriber_id": p.id, "interest": i} for p in persons for i in p.interests]
    if rows:
        s.execute(insert(SubscriberInterest), rows)
    rows = [
        {"subscriber_id": p.id, "list_id": lists[slug], "status": status, "opt_in_level": level}
        for p in persons
        for slug, (status, level) in p.members.items()
    ]
    if rows:
        s.execute(insert(Membership), rows)
    rows = [
        {"subscriber_id": p.id, "type": t, "properties": props, "at": at}
        for p in persons
        for t, props, at in p.events
    ]
    if rows:
        s.execute(insert(ActivityEvent), rows)
    rows = [
        {"campaign_id": campaign_id, "subscriber_id": p.id, "status": "sent", "sent_at": at}
        for p in persons
        for at in p.sent[:1]
    ]
    rows += [
        {"campaign_id": campaign_id + 1, "subscriber_id": p.id, "status": "sent", "sent_at": at}
        for p in persons
        for at in p.sent[1:]
    ]
    if rows:
        s.execute(insert(Delivery), rows)
    rows = [
        {"subscriber_id": p.id, "kind": kind, "at": at, "campaign_id": campaign_id}
        for p in persons
        for kind, at in p.engagement
    ]
    if rows:
        s.execute(insert(Engagement), rows)
    rows = [{"email_hash": f"h{p.id}", "reason": "manual"} for p in persons if p.suppressed]
    if rows:
        s.execute(insert(Suppression), rows)


# -- rules -----------------------------------------------------------------------------------------
def _cond(key: str, op: str, value: Any = None) -> dict[str, Any]:
    out = {"field": key, "op": op}
    if value is not None:
        out["value"] = value
    return out


day_strings = st.builds(lambda d: (TODAY - timedelta(days=d)).isoformat(), st.integers(-2, 13))
numbers = st.one_of(st.integers(-2, 2), st.integers(-2, 2), st.sampled_from([0.5, -2.5]))
moment_strings = st.one_of(day_strings, st.builds(lambda m: m.isoformat(), moments))
exists = st.builds(
    lambda k, v: {"field": k, "op": "exists", "value": v},
    st.sampled_from(["t", "c", "n", "d", "b", "m", "name", "source"]),
    st.booleans(),
)
field_rules = st.one_of(
    exists,
    st.builds(
        _cond,
        st.sampled_from(["t", "name", "email", "source"]),
        st.sampled_from(["eq", "ne"]),
        st.sampled_from(TEXTS + SOURCES),
    ),
    st.builds(
        _cond,
        st.sampled_from(["t", "name", "email"]),
        st.just("contains"),
        st.sampled_from(NEEDLES),
    ),
    st.builds(
        _cond,
        st.sampled_from(["t", "source"]),
        st.just("in"),
        st.lists(st.sampled_from(TEXTS + SOURCES), min_size=1, max_size=3),
    ),
    st.builds(
        _cond,
        st.just("c"),
        st.sampled_from(["eq", "ne"]),
        st.sampled_from(["red", "green", "blue"]),
    ),
    st.builds(
        _cond,
        st.just("c"),
        st.just("in"),
        st.lists(st.sampled_from(["red", "green", "blue"]), min_size=1, max_size=2),
    ),
    st.builds(
        _cond, st.just("n"), st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte"]), numbers
    ),
    st.builds(_cond, st.just("n"), st.just("in"), st.lists(numbers, min_size=1, max_size=3)),
    st.builds(lambda a, b: _cond("n", "between", sorted([a, b])), numbers, numbers),
    st.builds(
        _cond,
        st.just("d"),
        st.sampled_from(["eq", "ne", "before", "after", "gt", "gte", "lt", "lte"]),
        day_strings,
    ),
    st.builds(lambda a, b: _cond("d", "between", sorted([a, b])), day_strings, day_strings),
    st.builds(
        _cond, st.sampled_from(["d", "created_at"]), st.just("within_last_days"), st.integers(0, 12)
    ),
    st.builds(
        _cond,
        st.just("created_at"),
        st.sampled_from(["eq", "before", "after", "gt", "gte", "lt", "lte"]),
        moment_strings,
    ),
    st.builds(
        lambda a, b: _cond("created_at", "between", sorted([a, b])), day_strings, day_strings
    ),
    st.builds(_cond, st.just("b"), st.sampled_from(["eq", "ne"]), st.booleans()),
    st.builds(
        _cond,
        st.just("m"),
        st.sampled_from(["contains", "in"]),
        st.lists(st.sampled_from(["x", "y", "z"]), min_size=1, max_size=3),
    ),
    st.builds(_cond, st.just("m"), st.just("contains"), st.sampled_from(["x", "y", "z"])),
)
other_rules = st.one_of(
    st.builds(
        lambda mode, v: {"interests": mode, "value": v},
        st.sampled_from(["has_any", "has_all", "has_none"]),
        st.lists(st.sampled_from(INTERESTS), min_size=1, max_size=3),
    ),
    st.builds(
        lambda slug, status, level: {"list": slug, **status, **level},
        st.sampled_from(LISTS),
        st.one_of(
            st.just({}), st.builds(lambda x: {"status": x}, st.sampled_from((*STATUSES, "any")))
        ),
        st.one_of(st.just({}), st.builds(lambda x: {"opt_in_level": x}, st.sampled_from(LEVELS))),
    ),
    st.builds(
        lambda t, where, n, d: {
            "event": t,
            "where": where,
            "at_least": n,
            **({"within_days": d} if d is not None else {}),
        },
        st.sampled_from(["e1", "e2"]),
        st.dictionaries(
            st.just("properties.k"), st.sampled_from(["a", "b", 1, 2.5, True, False]), max_size=1
        ),
        st.integers(1, 3),
        st.one_of(st.none(), st.integers(0, 12)),
    ),
    st.builds(
        lambda kind, n, d: {
            "engagement": kind,
            "at_least": n,
            **({"within_days": d} if d is not None else {}),
        },
        st.sampled_from(["received", "opened", "clicked"]),
        st.integers(1, 2),
        st.one_of(st.none(), st.integers(0, 12)),
    ),
)
rules = st.recursive(
    st.one_of(field_rules, other_rules),
    lambda children: st.one_of(
        st.builds(lambda xs: {"all": xs}, st.lists(children, max_size=3)),
        st.builds(lambda xs: {"any": xs}, st.lists(children, max_size=3)),
        st.builds(lambda x: {"not": x}, children),
    ),
    max_leaves=6,
)


# -- the reference evaluation ---------------------------------------------------------------------
def _fold(text: str) -> str:
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)


def _typed(value: Any, kind: str) -> Any:
    if kind in ("text", "choice", "date"):
        return value if isinstance(value, str) else None
    if kind == "number":
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if kind == "boolean":
        return value if isinstance(value, bool) else None
    return value if isinstance(value, list) else None


def _compare(v: Any, op: str, x: Any) -> bool:
    if v is None:
        return False
    if op == "in":
        return v in x
    if op == "between":
        return x[0] <= v <= x[1]
    return {
        "eq": v == x,
        "ne": v != x,
        "gt": v > x,
        "gte": v >= x,
        "lt": v < x,
        "lte": v <= x,
        "after": v > x,
        "before": v < x,
    }[op]


def _when(text: str) -> tuple[datetime, bool]:
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), datetime.min.time()), True
    return datetime.fromisoformat(text), False


def _created(p: Person, op: str, x: Any) -> bool:
    c = p.created_at
    if op == "within_last_days":
        return c >= NOW - timedelta(days=x)
    if op == "between":
        (lo, _), (hi, day) = _when(x[0]), _when(x[1])
        return lo <= c < hi + timedelta(days=1) if day else lo <= c <= hi
    m, day = _when(x)
    end = m + timedelta(days=1) if day else m
    return {
        "eq": m <= c < end if day else c == m,
        "before": c < m,
        "lt": c < m,
        "gte": c >= m,
        "lte": c < end if day else c <= m,
        "after": c >= end if day else c > m,
        "gt": c >= end if day else c > m,
    }[op]


def _field(p: Person, node: dict[str, Any]) -> bool:
    key, op, x = node["field"], node["op"], node.get("value", True)
    if key == "created_at":
        return _created(p, op, x)
    if key in ("email", "name", "source"):
        kind, v = "text", getattr(p, key)
        if key == "email":
            x = (
                [i.lower() for i in x]
                if isinstance(x, list)
                else x.lower()
                if isinstance(x, str)
                else x
            )
    else:
        kind = FIELDS[key][0]
        v = _typed(p.fields.get(key), kind)
    if op == "exists":
        has = (
            (v is not None and v != "")
            if kind in ("text", "choice", "date")
            else (bool(v) if kind == "multi_choice" else v is not None)
        )
        return has == x
    if kind == "multi_choice":
        held = {i for i in v if isinstance(i, str)} if v is not None else set()
        wanted = [x] if isinstance(x, str) else x
        return bool(held & set(wanted)) if op == "in" else set(wanted) <= held
    if op == "contains":
        return v is not None and _fold(x) in _fold(v)
    if op == "within_last_days":
        return v is not None and (TODAY - timedelta(days=x)).isoformat() <= v <= TODAY.isoformat()
    return _compare(v, op, x)


def _prop_ok(props: dict[str, Any], want: dict[str, Any]) -> bool:
    for name, x in want.items():
        v = props.get(name.split(".", 1)[1])
        if isinstance(x, bool):
            if not (isinstance(v, bool) and v == x):
                return False
        elif isinstance(x, (int, float)):
            if not (isinstance(v, (int, float)) and not isinstance(v, bool) and v == x):
                return False
        elif not (isinstance(v, str) and v == x):
            return False
    return True


def _since(node: dict[str, Any]) -> datetime | None:
    d = node.get("within_days")
    return None if d is None else NOW - timedelta(days=d)


def matches(p: Person, node: dict[str, Any]) -> bool:
    """Whether this person matches the rule, evaluated directly."""
    if "all" in node:
        return all(matches(p, x) for x in node["all"])
    if "any" in node:
        return any(matches(p, x) for x in node["any"])
    if "not" in node:
        return not matches(p, node["not"])
    if "field" in node:
        return _field(p, node)
    if "interests" in node:
        wanted = set(node["value"])
        return {
            "has_any": bool(p.interests & wanted),
            "has_all": wanted <= p.interests,
            "has_none": not p.interests & wanted,
        }[node["interests"]]
    if "list" in node:
        m = p.members.get(node["list"])
        status = node.get("status", "confirmed")
        return (
            m is not None
            and (status == "any" or m[0] == status)
            and ("opt_in_level" not in node or m[1] == node["opt_in_level"])
        )
    since = _since(node)
    if "event" in node:
        n = sum(
            1
            for t, props, at in p.events
            if t == node["event"]
            and _prop_ok(props, node.get("where", {}))
            and (since is None or at >= since)
        )
    else:
        kind = node["engagement"]
        times = (
            p.sent
            if kind == "received"
            else [at for k, at in p.engagement if k == "click" or kind == "opened"]  # a click opens
        )
        n = sum(1 for at in times if since is None or at >= since)
    return n >= node.get("at_least", 1)


def in_audience(p: Person, lists: list[str]) -> bool:
    return (
        any(p.members.get(slug, ("", ""))[0] == "confirmed" for slug in lists)
        and not p.suppressed
        and (p.paused_until is None or p.paused_until <= NOW)
    )
