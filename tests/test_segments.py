"""Segments: the compiled SQL agrees with a direct Python evaluation (property-based, on the
database the fixtures give), explicit cases, bad rules, saved segments and the API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from listmgr import segments as compiler
from listmgr.errors import SegmentError
from listmgr.models import Campaign, FieldDef, Interest, Segment, Subscriber
from listmgr.services import lists, segments, subscribers
from tests import segments_support as sup

# Worker threads may touch the random module while examples are drawn; that is not ours.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
DEFS = {k: compiler.FieldSpec(t, c) for k, (t, c) in sup.FIELDS.items()}


@pytest.fixture
def world(rt):
    """Lists, field and interest definitions and two campaigns for deliveries."""
    for slug in sup.LISTS:
        lists.create(rt, slug=slug, name=slug.upper(), opt_in_levels=["weekly"])
    with rt.db.session() as s:
        for key, (kind, choices) in sup.FIELDS.items():
            s.add(FieldDef(key=key, label=key.upper(), type=kind, choices=list(choices)))
        for key in sup.INTERESTS:
            s.add(Interest(key=key, label=key))
        s.add(Campaign(name="c1", subject="s"))
        s.add(Campaign(name="c2", subject="s"))
    return rt


def _ids(rt, where) -> set[int]:
    with rt.db.session() as s:
        return set(s.scalars(select(Subscriber.id).where(where)))


def _compile(rule: Any) -> Any:
    return compiler.compile_rules(
        rule, fields=DEFS, now=sup.NOW, interests=sup.INTERESTS, lists=sup.LISTS
    )


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(
    persons=sup.people(),
    rules=st.lists(sup.rules, min_size=1, max_size=6),
    audience_lists=st.lists(st.sampled_from(sup.LISTS), min_size=1, unique=True),
)
def test_sql_agrees_with_python(world, persons, rules, audience_lists):
    with world.db.session() as s:
        sup.store(s, persons)
    for rule in rules:
        expected = {p.id for p in persons if sup.matches(p, rule)}
        assert _ids(world, _compile(rule)) == expected, rule
    rule = {"any": rules}
    where = compiler.audience(
        audience_lists,
        rule,
        fields=DEFS,
        now=sup.NOW,
        interests=sup.INTERESTS,
        known_lists=sup.LISTS,
    )
    expected = {
        p.id for p in persons if sup.in_audience(p, audience_lists) and sup.matches(p, rule)
    }
    assert _ids(world, where) == expected
    with world.db.session() as s:  # the lists named by id, as the service compiles them
        ids = segments.list_ids(s)
    where = compiler.audience(
        audience_lists,
        rule,
        fields=DEFS,
        now=sup.NOW,
        interests=sup.INTERESTS,
        known_lists=sup.LISTS,
        list_ids=ids,
    )
    assert _ids(world, where) == expected


def _person(i: int, **kw: Any) -> sup.Person:
    base: dict[str, Any] = dict(
        id=i,
        email=f"p{i}@example.org",
        name="",
        source="",
        created_at=sup.NOW,
        fields={},
        interests=set(),
        members={},
    )
    base.update(kw)
    return sup.Person(**base)


@pytest.mark.parametrize(
    "rule,expected",
    [
        ({"field": "n", "op": "gt", "value": 2}, {2}),
        ({"not": {"field": "n", "op": "gt", "value": 2}}, {1, 3, 4}),  # missing counts as no
        ({"field": "n", "op": "ne", "value": 1}, {2}),  # ne needs a value
        ({"field": "t", "op": "contains", "value": "ADA"}, {1}),
        ({"field": "t", "op": "contains", "value": "%"}, {3}),
        ({"field": "m", "op": "contains", "value": ["x", "y"]}, {1}),
        ({"field": "m", "op": "in", "value": ["y", "z"]}, {1, 2}),
        ({"field": "m", "op": "exists"}, {1, 2}),
        ({"field": "b", "op": "eq", "value": False}, {3}),
        ({"field": "d", "op": "before", "value": "2025-01-01"}, {4}),
        ({"interests": "has_all", "value": ["i1", "i2"]}, {2}),
        ({"interests": "has_none", "value": ["i1"]}, {3, 4}),
        ({"list": "l1"}, {1}),
        ({"list": "l1", "status": "any"}, {1, 2}),
        ({"list": "l1", "opt_in_level": "weekly", "status": "any"}, {2}),
        (
            {"event": "viewed", "where": {"properties.sku": "A1"}, "at_least": 2, "within_days": 7},
            {3},
        ),
        ({"all": []}, {1, 2, 3, 4}),
        ({"any": []}, set()),
        ({"field": "email", "op": "eq", "value": "P2@Example.org"}, {2}),
        ({"field": "n", "op": "between", "value": [1, 3]}, {1, 2}),
        ({"field": "created_at", "op": "within_last_days", "value": 3}, {1, 2, 3, 4}),
        ({"field": "created_at", "op": "within_last_days", "value": 2}, {1, 2, 3}),
        ({"field": "created_at", "op": "before", "value": "2025-06-15"}, {4}),
    ],
)
def test_explicit_cases(world, rule, expected):
    now, old = sup.NOW, sup.NOW.replace(year=2024)
    persons = [
        _person(
            1,
            fields={"n": 1, "t": "Ada", "m": ["x", "y"], "b": True},
            interests={"i1"},
            members={"l1": ("confirmed", "")},
        ),
        _person(
            2,
            fields={"n": 3, "m": ["z"], "t": 5},
            interests={"i1", "i2"},
            members={"l1": ("unsubscribed", "weekly")},
        ),
        _person(
            3,
            fields={"n": "7", "t": "50%", "b": False, "m": []},
            interests={"i3"},
            events=[
                ("viewed", {"sku": "A1"}, now),
                ("viewed", {"sku": "A1"}, now),
                ("viewed", {"sku": "B"}, now),
            ],
        ),
        _person(
            4,
            fields={"d": "2024-12-31"},
            created_at=now - timedelta(days=3),
            events=[("viewed", {"sku": "A1"}, now), ("viewed", {"sku": "A1"}, old)],
        ),
    ]
    with world.db.session() as s:
        sup.store(s, persons)
    assert _ids(world, _compile(rule)) == expected
    assert {p.id for p in persons if sup.matches(p, rule)} == expected


@pytest.mark.parametrize(
    "rule,path",
    [
        ([], "rules"),
        ({"field": "nope", "op": "eq", "value": 1}, "rules.field"),
        (
            {
                "all": [
                    {"field": "n", "op": "eq", "value": 1},
                    {"field": "n", "op": "eq", "value": "x"},
                ]
            },
            "rules.all[1].value",
        ),
        (
            {"all": [{"any": [{"not": {"field": "t", "op": "gt", "value": "a"}}]}]},
            "rules.all[0].any[0].not.op",
        ),
        ({"field": "n", "op": "between", "value": [5, 1]}, "rules.value"),
        ({"field": "n", "op": "in", "value": [1, "2"]}, "rules.value[1]"),
        ({"field": "c", "op": "eq", "value": "purple"}, "rules.value"),
        ({"field": "m", "op": "in", "value": ["x", "w"]}, "rules.value[1]"),
        ({"field": "d", "op": "after", "value": "2025-13-01"}, "rules.value"),
        ({"field": "b", "op": "eq", "value": "yes"}, "rules.value"),
        ({"field": "t", "op": "eq"}, "rules.value"),
        ({"field": "t", "op": "eq", "value": "a", "vaule": 1}, "rules.vaule"),
        ({"field": "created_at", "op": "after", "value": "yesterday"}, "rules.value"),
        ({"interests": "has_some", "value": ["i1"]}, "rules.interests"),
        ({"interests": "has_any", "value": []}, "rules.value"),
        ({"interests": "has_any", "value": ["i9"]}, "rules.value[0]"),
        ({"list": "nope"}, "rules.list"),
        ({"list": "l1", "status": "gone"}, "rules.status"),
        ({"event": "", "at_least": 1}, "rules.event"),
        ({"event": "e1", "at_least": 0}, "rules.at_least"),
        ({"event": "e1", "within_days": -1}, "rules.within_days"),
        ({"event": "e1", "where": {"sku": "x"}}, "rules.where.sku"),
        ({"event": "e1", "where": {"properties.sku": ["x"]}}, "rules.where.properties.sku"),
        ({"engagement": "forwarded"}, "rules.engagement"),
        ({"all": [], "any": []}, "rules.any"),
        ({"all": {"field": "n"}}, "rules.all"),
        ({"wat": 1}, "rules"),
    ],
)
def test_bad_rules_name_the_node(rule, path):
    with pytest.raises(SegmentError) as err:
        compiler.compile_rules(
            rule, fields=DEFS, now=sup.NOW, interests=sup.INTERESTS, lists=sup.LISTS
        )
    assert err.value.field == path, err.value.message
    assert err.value.message


def test_nesting_and_size_limits():
    rule: dict[str, Any] = {"field": "n", "op": "exists"}
    for _ in range(compiler.MAX_DEPTH):
        rule = {"not": rule}
    with pytest.raises(SegmentError) as err:
        _compile(rule)
    assert err.value.field == "rules" + ".not" * compiler.MAX_DEPTH
    wide = {"any": [{"field": "n", "op": "exists"}] * (compiler.MAX_CONDITIONS + 1)}
    with pytest.raises(SegmentError) as err:
        _compile(wide)
    assert err.value.field == f"rules.any[{compiler.MAX_CONDITIONS}]"


def test_service_count_and_crud(world):
    rt = world
    for i, plan in enumerate(["red", "red", "blue"]):
        subscribers.create(
            rt, email=f"c{i}@example.org", lists=["l1"], consent="test", fields={"c": plan}
        )
    subscribers.create(
        rt, email="other@example.org", lists=["l2"], consent="test", fields={"c": "red"}
    )
    red = {"field": "c", "op": "eq", "value": "red"}
    assert segments.count(rt, lists=["l1"], rules=red) == 2
    assert segments.count(rt, lists=[], rules=red) == 3
    assert segments.count(rt, lists=["l1", "l2"], rules=None) == 4
    with pytest.raises(SegmentError) as err:
        segments.count(rt, lists=["l1", "zz"], rules=red)
    assert err.value.field == "lists[1]"

    sid = segments.create(rt, name="Reds", lists=["l1"], rules=red)
    assert segments.get(rt, sid).rules == red
    info = segments.update(rt, sid, rules={"not": red})
    assert info.rules == {"not": red} and info.lists == ["l1"]
    with pytest.raises(SegmentError):
        segments.update(rt, sid, rules={"field": "zzz", "op": "eq", "value": 1})
    assert segments.get(rt, sid).rules == {"not": red}  # unchanged by the failed update
    segments.delete(rt, sid)
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Segment)) == 0


def test_api(world, api, client):
    rt = world
    subscribers.create(
        rt, email="a@example.org", lists=["l1"], consent="test", fields={"n": 5}, interests=["i1"]
    )
    subscribers.create(rt, email="b@example.org", lists=["l1"], consent="test", fields={"n": 1})
    rules = {
        "all": [{"field": "n", "op": "gte", "value": 2}, {"interests": "has_any", "value": ["i1"]}]
    }
    resp = api.post("/api/segments/count", json={"lists": ["l1"], "rules": rules})
    assert resp.status_code == 200 and resp.json == {"count": 1}

    bad = {"all": [rules, {"field": "n", "op": "gte", "value": "two"}]}
    resp = api.post("/api/segments/count", json={"lists": ["l1"], "rules": bad})
    assert resp.status_code == 422
    assert resp.json["error"]["code"] == "segment_error"
    assert resp.json["error"]["field"] == "rules.all[1].value"

    resp = api.post("/api/segments", json={"name": "Keen", "lists": ["l1"], "rules": rules})
    assert resp.status_code == 201
    sid = resp.json["id"]
    assert api.get(f"/api/segments/{sid}").json["rules"] == rules
    listing = api.get("/api/segments").json
    assert listing["total"] == 1 and listing["items"][0]["name"] == "Keen"
    resp = api.patch(f"/api/segments/{sid}", json={"rules": bad})
    assert resp.status_code == 422 and resp.json["error"]["field"] == "rules.all[1].value"
    assert api.get(f"/api/segments/{sid}").json["rules"] == rules
    resp = api.patch(f"/api/segments/{sid}", json={"name": "Keener"})
    assert resp.status_code == 200 and resp.json["name"] == "Keener"
    assert api.post("/api/segments", json={"name": "x", "lists": ["zz"]}).status_code == 422
    assert api.delete(f"/api/segments/{sid}").status_code == 204
    assert api.get(f"/api/segments/{sid}").status_code == 404
    assert client.post("/api/segments/count", json={"rules": {}}).status_code == 401


def test_api_permissions(world, client):
    from listmgr.services import accounts

    analyst = accounts.create_token(world, role="analyst", name="a")
    headers = {"Authorization": f"Bearer {analyst}"}
    resp = client.post("/api/segments/count", json={"lists": [], "rules": {}}, headers=headers)
    # an analyst may count, but a small count (0 included) reads only "fewer than 10"
    assert resp.status_code == 200 and resp.json == {"count": None, "fewer_than": 10}
    resp = client.post("/api/segments", json={"name": "x"}, headers=headers)
    assert resp.status_code == 403
