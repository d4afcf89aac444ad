"""What keeps segment rules and request bodies sound: a saved segment, field or interest that
rules still name cannot be deleted from under them; a started campaign keeps the rules it was
sent with; limits that keep a count answerable on both databases; JSON that no database can
store is refused with the path of the bad part."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from listmgr import segments as compiler
from listmgr.errors import Conflict, SegmentError
from listmgr.models import Campaign, FieldDef, Interest, Segment, Subscriber, utcnow
from listmgr.services import campaigns, fielddefs, segments, subscribers
from tests.admin_support import accounts_by_role  # noqa: F401
from tests.campaign_support import campaign, make_list, person, wait_status
from tests.conftest import drain

PROS = {"field": "plan", "op": "eq", "value": "pro"}


@pytest.fixture
def world(rt):
    make_list(rt, "news", opt_in_levels=["monthly digest only"])
    fielddefs.create_field(rt, key="plan", label="Plan", type="choice", choices=["free", "pro"])
    fielddefs.create_interest(rt, key="books", label="Books")
    for i, plan in enumerate(["pro", "free", "free"]):
        person(
            rt,
            f"p{i}@example.org",
            ["news"],
            fields={"plan": plan},
            interests=["books"] if i == 0 else [],
        )
    return rt


def _audience(api, campaign_id: int) -> int:
    return int(api.get(f"/api/campaigns/{campaign_id}/audience").json["count"])


def test_a_segment_in_use_by_an_unsent_campaign_cannot_be_deleted(world, api):
    rt = world
    seg = segments.create(rt, name="Pros", lists=["news"], rules=PROS)
    draft = campaign(rt, name="Draft one", segment_id=seg)
    later = campaign(rt, name="Later one", segment_id=seg)
    campaigns.schedule(rt, later, at=utcnow() + timedelta(days=30))
    assert _audience(api, draft) == 1 and _audience(api, later) == 1

    resp = api.delete(f"/api/segments/{seg}")
    assert resp.status_code == 409
    message = resp.json["error"]["message"]
    assert "'Draft one' (draft)" in message and "'Later one' (scheduled)" in message
    assert api.get(f"/api/segments/{seg}").status_code == 200
    assert _audience(api, draft) == 1 and _audience(api, later) == 1  # never widened

    campaigns.delete(rt, draft)
    campaigns.schedule(rt, later, at=None)
    campaigns.update(rt, later, segment={"field": "plan", "op": "eq", "value": "free"})
    # inline rules win, but the campaign still names the segment: still refused
    with pytest.raises(Conflict):
        segments.delete(rt, seg)
    campaigns.update(rt, later, segment_id=None)
    segments.delete(rt, seg)
    assert _audience(api, later) == 2


def test_a_started_campaign_keeps_the_rules_it_was_sent_with(world, sink):
    rt = world
    seg = segments.create(rt, name="Pros", lists=["news"], rules=PROS)
    cid = campaign(rt, segment_id=seg)
    assert campaigns.start(rt, cid, actor="tests") == 1
    drain(rt)
    wait_status(rt, cid)
    with rt.db.session() as s:
        assert s.get(Campaign, cid).segment_rules == PROS
    segments.delete(rt, seg)  # allowed: the campaign has its copy
    with rt.db.session() as s:
        row = s.get(Campaign, cid)
        assert row is not None and row.segment_id is None and row.segment_rules == PROS
        assert row.audience == 1


@pytest.mark.parametrize("what", ["field", "interest"])
def test_a_field_or_interest_named_by_rules_cannot_be_deleted(world, api, what):
    rt = world
    rule = PROS if what == "field" else {"interests": "has_any", "value": ["books"]}
    nested = {"any": [{"not": rule}, {"list": "news"}]}
    seg = segments.create(rt, name="Keen", lists=["news"], rules=nested)
    path = "/api/fields/plan" if what == "field" else "/api/interests/books"

    resp = api.delete(path)
    assert resp.status_code == 409, resp.json
    assert "segment 'Keen'" in resp.json["error"]["message"]
    segments.delete(rt, seg)
    cid = campaign(rt, name="Inline", segment=rule)
    resp = api.delete(path)
    assert resp.status_code == 409 and "campaign 'Inline' (draft)" in resp.json["error"]["message"]
    # nothing was deleted: the values are still there and the rules still count
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(FieldDef)) == 1
        assert s.scalar(select(func.count()).select_from(Interest)) == 1
    assert api.get(f"/api/campaigns/{cid}/audience").json["count"] == 1
    assert subscribers.get(rt, 1).fields == {"plan": "pro"}

    campaigns.delete(rt, cid)
    assert api.delete(path).status_code == 204


def test_references_read_every_node():
    rules = {
        "all": [
            {"field": "a", "op": "exists"},
            {
                "not": {
                    "any": [
                        {"interests": "has_all", "value": ["x", "y"]},
                        {"list": "l", "status": "any"},
                        {"event": "view"},
                    ]
                }
            },
            "junk",
            {"field": 3},
        ]
    }
    assert compiler.references(rules) == ({"a"}, {"x", "y"}, {"l"})
    assert compiler.references(None) == (set(), set(), set())


def test_limits_keep_counts_answerable_on_both_databases(world, api):
    terms = {"field": "plan", "op": "in", "value": ["pro"] * compiler.MAX_IN_TERMS}
    resp = api.post("/api/segments/count", json={"lists": ["news"], "rules": terms})
    assert resp.status_code == 200 and resp.json == {"count": 1}
    more = {"any": [terms, {"field": "plan", "op": "in", "value": ["free"]}]}
    resp = api.post("/api/segments/count", json={"lists": ["news"], "rules": more})
    assert resp.status_code == 422 and resp.json["error"]["field"] == "rules.any[1].value"

    event = {"event": "product_view", "where": {"properties.sku": "P-1"}}
    fine = {"all": [event] * compiler.MAX_ACTIVITY}
    resp = api.post("/api/segments/count", json={"lists": ["news"], "rules": fine})
    assert resp.status_code == 200 and resp.json == {"count": 0}
    many = {"all": [event] * (compiler.MAX_ACTIVITY + 1)}
    resp = api.post("/api/segments/count", json={"lists": ["news"], "rules": many})
    assert resp.status_code == 422
    assert resp.json["error"]["field"] == f"rules.all[{compiler.MAX_ACTIVITY}]"


def test_opt_in_levels_in_rules_are_the_lists_own(world, api):
    rt = world
    api.post("/api/lists", json={"slug": "plain", "name": "Plain"})
    count = "/api/segments/count"
    for rule, status in [
        ({"list": "news", "opt_in_level": "monthly digest only"}, 200),
        ({"list": "news", "opt_in_level": ""}, 200),
        ({"list": "news", "opt_in_level": "weekly"}, 422),
        ({"list": "plain", "opt_in_level": "x"}, 422),
    ]:
        resp = api.post(count, json={"rules": {"all": [rule]}})
        assert resp.status_code == status, (rule, resp.json)
        if status == 422:
            assert resp.json["error"]["field"] == "rules.all[0].opt_in_level"
    assert api.post(count, json={"rules": {"list": "news", "opt_in_level": ""}}).json["count"] == 3
    with pytest.raises(SegmentError):
        segments.create(rt, name="Weekly", rules={"list": "news", "opt_in_level": "weekly"})


def test_json_bodies_no_database_can_store_are_refused(world, api, client):
    rt = world
    with rt.db.session() as s:
        before = s.scalar(select(func.count()).select_from(Subscriber))
    lone = '{"email": "new@example.org", "name": "x\\ud800y", "lists": ["news"]}'
    resp = api.post("/api/subscribers", data=lone, content_type="application/json")
    assert resp.status_code == 422 and resp.json["error"]["field"] == "name"
    resp = api.patch(
        "/api/subscribers/1",
        data='{"fields": {"plan": "\\udfff"}}',
        content_type="application/json",
    )
    assert resp.status_code == 422 and resp.json["error"]["field"] == "fields.plan"
    resp = client.post(
        "/subscribe/news",
        data='{"email": "s@example.org", "name": "\\ud800"}',
        content_type="application/json",
    )
    assert resp.status_code == 422 and resp.json["error"]["field"] == "name"
    deep = '{"rules": ' + "[" * 1100 + "]" * 1100 + "}"
    resp = api.post("/api/segments/count", data=deep, content_type="application/json")
    assert resp.status_code == 422 and "nested deeper" in resp.json["error"]["message"]
    resp = client.post(
        "/subscribe/news",
        data='{"email": "d@example.org", "fields": ' + "[" * 100 + "]" * 100 + "}",
        content_type="application/json",
    )
    assert resp.status_code == 422
    # a pair of surrogates is one character and fine
    resp = api.post(
        "/api/subscribers",
        data='{"email": "ok@example.org", "name": '
        '"\\ud83d\\ude00", "lists": ["news"], "consent": "fair"}',
        content_type="application/json",
    )
    assert resp.status_code == 201
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Subscriber)) == before + 1
        assert (
            s.scalar(select(Subscriber.name).where(Subscriber.email == "ok@example.org"))
            == "\U0001f600"
        )
        assert s.scalar(select(Subscriber.name).where(Subscriber.id == 1)) == ""
        assert s.scalar(select(func.count()).select_from(Segment)) == 0


def test_sign_up_interests_must_be_a_list(world, client):
    resp = client.post("/subscribe/news", json={"email": "j@example.org", "interests": "books"})
    assert resp.status_code == 422
    assert resp.json["error"]["field"] == "interests"
    assert "list" in resp.json["error"]["message"]


def test_search_results_carry_interests_and_suppression(world, api):
    found = api.get("/api/subscribers?email=p0@example.org").json["items"]
    assert found[0]["interests"] == ["books"]
    page = api.get("/api/subscribers?q=p").json["items"]
    assert {x["email"]: x["interests"] for x in page} == {
        "p0@example.org": ["books"],
        "p1@example.org": [],
        "p2@example.org": [],
    }


def test_without_access_to_people_counts_cannot_pick_someone_out(world, client):
    from listmgr.services import accounts

    rt = world
    probe = {
        "all": [
            {"field": "email", "op": "eq", "value": "p0@example.org"},
            {"field": "plan", "op": "eq", "value": "pro"},
        ]
    }
    saved = segments.create(rt, name="One person", rules=probe)
    for role, status in [("analyst", 403), ("editor", 200)]:
        headers = {"Authorization": f"Bearer {accounts.create_token(rt, role=role)}"}
        resp = client.post("/api/segments/count", json={"rules": probe}, headers=headers)
        assert resp.status_code == status, (role, resp.json)
        by_name = {"not": {"field": "name", "op": "contains", "value": "a"}}
        resp = client.post("/api/segments/count", json={"rules": by_name}, headers=headers)
        assert resp.status_code == status
        if status == 403:
            assert "needs access to personal data" in resp.json["error"]["message"]
        aggregate = {"field": "plan", "op": "eq", "value": "free"}
        # a small count reads only "fewer than 10" without access to people
        small = {"count": 2} if role == "editor" else {"count": None, "fewer_than": 10}
        resp = client.post("/api/segments/count", json={"rules": aggregate}, headers=headers)
        assert resp.status_code == 200 and resp.json == small
        # nor through a campaign's audience, inline or with a saved segment
        resp = client.post(
            "/api/campaigns/audience", json={"lists": ["news"], "segment": probe}, headers=headers
        )
        assert resp.status_code == status, resp.json
        resp = client.post(
            "/api/campaigns/audience",
            json={"lists": ["news"], "segment_id": saved},
            headers=headers,
        )
        assert resp.status_code == status, resp.json
        resp = client.post(
            "/api/campaigns/audience",
            json={"lists": ["news"], "segment": aggregate},
            headers=headers,
        )
        assert resp.status_code == 200 and resp.json == small


def test_a_choice_or_level_named_by_rules_or_held_cannot_be_removed(world, api):
    rt = world
    seg = segments.create(rt, name="Pros", rules={"any": [PROS]})
    resp = api.patch("/api/fields/plan", json={"choices": ["free"]})
    assert resp.status_code == 409 and "1 subscriber(s)" in resp.json["error"]["message"]
    assert api.patch("/api/subscribers/1", json={"fields": {"plan": "free"}}).status_code == 200
    resp = api.patch("/api/fields/plan", json={"choices": ["free"]})
    assert resp.status_code == 409 and "segment 'Pros'" in resp.json["error"]["message"]
    segments.update(rt, seg, rules={"field": "plan", "op": "in", "value": ["free"]})
    assert api.patch("/api/fields/plan", json={"choices": ["free"]}).status_code == 200

    level = {"list": "news", "opt_in_level": "monthly digest only"}
    cid = campaign(rt, name="Digest", segment=level)
    resp = api.patch("/api/lists/news", json={"opt_in_levels": ["weekly"]})
    assert resp.status_code == 409 and "campaign 'Digest' (draft)" in resp.json["error"]["message"]
    campaigns.delete(rt, cid)
    with rt.db.session() as s:
        s.execute(
            text(
                "UPDATE membership SET opt_in_level = 'monthly digest only' WHERE subscriber_id = 2"
            )
        )
    resp = api.patch("/api/lists/news", json={"opt_in_levels": ["weekly"]})
    assert resp.status_code == 409 and "1 member(s)" in resp.json["error"]["message"]
    assert api.get("/api/lists/news").json["opt_in_levels"] == ["monthly digest only"]
    with rt.db.session() as s:
        s.execute(text("UPDATE membership SET opt_in_level = ''"))
    assert api.patch("/api/lists/news", json={"opt_in_levels": ["weekly"]}).status_code == 200


def test_a_segment_whose_rules_broke_still_opens_in_the_admin(world, client, accounts_by_role):
    from tests.admin_support import session_login

    rt = world
    with rt.db.session() as s:  # as an older version could leave it
        s.add(Segment(name="Old", lists=[], rules={"field": "gone", "op": "exists"}))
    with rt.db.session() as s:
        seg = s.scalar(select(Segment.id).where(Segment.name == "Old"))
    session_login(client, rt, accounts_by_role["admin"])
    page = client.get(f"/admin/segments/{seg}")
    assert page.status_code == 200 and "unknown field" in page.text


def test_ids_beyond_the_databases_are_refused_not_crashed_on(world, api):
    huge = 18446744073709551616
    for method, path, body in [
        ("post", "/api/events", {"subscriber_id": huge, "type": "x"}),
        ("post", "/api/events", {"events": [{"subscriber_id": 2**63, "type": "x"}]}),
        (
            "post",
            "/api/campaigns",
            {
                "name": "c",
                "subject": "s",
                "lists": ["news"],
                "segment_id": huge,
                "html": "<p>x</p>",
            },
        ),
        ("post", "/api/campaigns/audience", {"lists": ["news"], "segment_id": huge}),
        ("get", f"/api/subscribers?page={huge}", None),
        ("get", f"/api/lists/news/export?segment={huge}", None),
    ]:
        resp = getattr(api, method)(path, json=body) if body else getattr(api, method)(path)
        assert resp.status_code == 422, (path, resp.status_code, resp.get_data(as_text=True))
        assert resp.json["error"]["message"]
    cid = campaign(world)
    resp = api.post(
        f"/api/campaigns/{cid}/test", json={"subscriber_id": huge, "to": ["t@example.org"]}
    )
    assert resp.status_code == 422
    assert segments.count(world, lists=[], rules=None) == 3  # nothing else happened


def test_numbers_beyond_2_53_are_refused_in_events_and_rules(world, api):
    api.patch("/api/subscribers/1", json={"consents": {"profiling": True}})
    for props, where in [
        ({"n": 2**60}, "properties.n"),
        ({"a": [1, {"b": 1e300}]}, "properties.a[1].b"),
    ]:
        resp = api.post(
            "/api/events", json={"email": "p0@example.org", "type": "x", "properties": props}
        )
        assert resp.status_code == 422 and resp.json["error"]["field"] == where, resp.json
    fine = api.post(
        "/api/events", json={"email": "p0@example.org", "type": "x", "properties": {"n": 2**53 - 1}}
    )
    assert fine.status_code == 200 and fine.json == {"kept": 1, "dropped": 0}
    fielddefs.create_field(world, key="age", label="Age", type="number")
    for rule, where in [
        ({"field": "age", "op": "gt", "value": 2**60}, "rules.value"),
        ({"field": "age", "op": "between", "value": [0, 2**60]}, "rules.value"),
        ({"event": "x", "where": {"properties.n": 2.0**60}}, "rules.where.properties.n"),
    ]:
        resp = api.post("/api/segments/count", json={"rules": rule})
        assert resp.status_code == 422, (rule, resp.json)
        assert resp.json["error"]["field"].startswith(where), resp.json
