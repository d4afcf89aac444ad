"""Analysts see aggregates only: an analyst who counts cannot pick a person out, by narrowing
rules until a count is small, by testing free text (a phone number digit by digit), or by
reading the values in saved segments and campaigns."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import event

from listmgr.services import accounts, campaigns, fielddefs, segments
from tests.admin_support import accounts_by_role, post_form, session_login  # noqa: F401
from tests.campaign_support import campaign, make_list, person
from tests.conftest import PG_URL

PHONE = "+491701234567"
SECRET_EMAIL = "vip.person@example.org"
SECRET_NAME = "Ramona Quistorp"
SECRET_SKU = "sku-private-7781"


@pytest.fixture
def town(rt):
    """12 people on one list: 3 on the pro plan, one with a phone number."""
    make_list(rt, "news")
    fielddefs.create_field(rt, key="plan", label="Plan", type="choice", choices=["free", "pro"])
    fielddefs.create_field(rt, key="phone", label="Phone", type="text")
    fielddefs.create_field(rt, key="age", label="Age", type="number")
    for i in range(12):
        fields = {"plan": "pro" if i < 3 else "free", "age": 20 + i}
        if i == 0:
            fields["phone"] = PHONE
        person(
            rt,
            SECRET_EMAIL if i == 0 else f"p{i}@example.org",
            ["news"],
            fields=fields,
            name=SECRET_NAME if i == 0 else f"Person {i}",
        )
    return rt


def _bearer(rt, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {accounts.create_token(rt, role=role)}"}


def _age_under(n: int) -> dict[str, object]:
    return {"field": "age", "op": "lt", "value": 20 + n}


def test_every_small_count_reads_the_same_to_an_analyst(town, client):
    analyst, editor = _bearer(town, "analyst"), _bearer(town, "editor")
    answers = set()
    for n in range(0, 10):  # 0 .. 9 people: one answer, so nobody is narrowed down
        for path, body in (
            ("/api/segments/count", {"lists": ["news"], "rules": _age_under(n)}),
            ("/api/campaigns/audience", {"lists": ["news"], "segment": _age_under(n)}),
        ):
            resp = client.post(path, json=body, headers=analyst)
            assert resp.status_code == 200, resp.json
            answers.add(resp.get_data(as_text=True))
            assert resp.json == {"count": None, "fewer_than": 10}
            # roles with access to people keep the exact number
            assert client.post(path, json=body, headers=editor).json == {"count": n}
    assert len(answers) == 1
    # a count of 10 or more is exact for everyone
    for n in (10, 12):
        resp = client.post("/api/segments/count", json={"rules": _age_under(n)}, headers=analyst)
        assert resp.json == {"count": n}


def test_free_text_cannot_be_bisected_even_through_not(town, client):
    analyst = _bearer(town, "analyst")
    probes = [
        {"field": "phone", "op": "contains", "value": "+49170"},
        {"not": {"field": "phone", "op": "contains", "value": "+49170"}},
        {
            "any": [
                {"field": "plan", "op": "eq", "value": "free"},
                {"all": [{"field": "phone", "op": "eq", "value": PHONE}]},
            ]
        },
        {"field": "phone", "op": "in", "value": [PHONE, "+1"]},
        {"not": {"field": "email", "op": "eq", "value": SECRET_EMAIL}},
        {"field": "name", "op": "contains", "value": "Quist"},
    ]
    for rules in probes:
        for path, body in (
            ("/api/segments/count", {"rules": rules}),
            ("/api/campaigns/audience", {"lists": ["news"], "segment": rules}),
        ):
            resp = client.post(path, json=body, headers=analyst)
            assert resp.status_code == 403, (path, rules, resp.json)
            assert "personal data" in resp.json["error"]["message"]
            assert resp.json["error"]["field"] == "rules"
    # whether the field is filled in is an aggregate, and stays countable (k-anonymous)
    resp = client.post(
        "/api/segments/count", json={"rules": {"field": "phone", "op": "exists"}}, headers=analyst
    )
    assert resp.json == {"count": None, "fewer_than": 10}
    resp = client.post(
        "/api/segments/count",
        json={"rules": {"not": {"field": "phone", "op": "exists"}}},
        headers=analyst,
    )
    assert resp.json == {"count": 11}


def test_the_admin_live_count_and_saved_segment_pages_keep_small_counts_back(
    town, client, accounts_by_role
):
    rt = town
    pros = segments.create(
        rt, name="Pros", lists=["news"], rules={"field": "plan", "op": "eq", "value": "pro"}
    )
    session_login(client, rt, accounts_by_role["analyst"])
    page = client.get(f"/admin/segments/{pros}")
    assert page.status_code == 200
    count = re.search(r'id="live-count"[^>]*>([^<]*)<', page.text).group(1)
    assert count == "fewer than 10"
    resp = post_form(
        client,
        "/admin/segments/new",
        "/admin/segments/count",
        {
            "name": "",
            "lists": ["news"],
            "rules": json.dumps({"field": "plan", "op": "eq", "value": "pro"}),
        },
    )
    assert resp.status_code == 200
    assert re.search(r'id="live-count"[^>]*>([^<]*)<', resp.text).group(1) == "fewer than 10"
    resp = post_form(
        client,
        "/admin/segments/new",
        "/admin/segments/count",
        {
            "name": "",
            "lists": ["news"],
            "rules": json.dumps({"field": "phone", "op": "contains", "value": "+4917"}),
        },
    )
    assert resp.status_code == 403 and "fewer than" not in resp.text
    # an editor sees the number
    session_login(client, rt, accounts_by_role["editor"])
    page = client.get(f"/admin/segments/{pros}")
    assert re.search(r'id="live-count"[^>]*>([^<]*)<', page.text).group(1) == "3"


def test_saved_rules_never_show_an_analyst_who_they_pick(town, client, accounts_by_role):
    rt = town
    rules = {
        "all": [
            {"field": "email", "op": "eq", "value": SECRET_EMAIL},
            {"field": "name", "op": "in", "value": [SECRET_NAME]},
            {"not": {"field": "phone", "op": "contains", "value": PHONE}},
            {"event": "viewed", "where": {"properties.sku": SECRET_SKU}},
            {"field": "plan", "op": "eq", "value": "pro"},
        ]
    }
    sid = segments.create(rt, name="Picked", lists=["news"], rules=rules)
    cid = campaign(rt, name="Just them", segment=rules)
    secrets = (SECRET_EMAIL, SECRET_NAME, PHONE, SECRET_SKU, "vip.person", "Quistorp", "1234567")
    analyst = _bearer(rt, "analyst")
    for path in (
        "/api/segments",
        f"/api/segments/{sid}",
        "/api/campaigns",
        f"/api/campaigns/{cid}",
    ):
        resp = client.get(path, headers=analyst)
        assert resp.status_code == 200, path
        body = resp.get_data(as_text=True)
        assert not [s for s in secrets if s in body], (path, body)
        assert '"pro"' in body  # a choice is an aggregate: still shown
    shown = client.get(f"/api/segments/{sid}", headers=analyst).json["rules"]
    assert shown["all"][0] == {"field": "email", "op": "eq", "value": "•••"}
    session_login(client, rt, accounts_by_role["analyst"])
    for path in (
        "/admin/segments",
        f"/admin/segments/{sid}",
        "/admin/campaigns",
        f"/admin/campaigns/{cid}/stats",
    ):
        resp = client.get(path)
        assert resp.status_code == 200, path
        assert not [s for s in secrets if s in resp.text], path
    # the editor who wrote them still reads them
    editor = _bearer(rt, "editor")
    assert client.get(f"/api/segments/{sid}", headers=editor).json["rules"] == rules
    assert client.get(f"/api/campaigns/{cid}", headers=editor).json["segment"] == rules


def test_a_draft_campaigns_audience_is_k_anonymous(town, client):
    cid = campaign(town, segment={"field": "plan", "op": "eq", "value": "pro"})
    resp = client.get(f"/api/campaigns/{cid}/audience", headers=_bearer(town, "analyst"))
    assert resp.json == {"count": None, "fewer_than": 10}
    resp = client.get(f"/api/campaigns/{cid}/audience", headers=_bearer(town, "editor"))
    assert resp.json == {"count": 3}


def test_the_threshold_is_a_setting(make_runtime, client):
    rt = make_runtime(aggregate_min_count=3)
    from listmgr.app import create_app

    app = create_app(rt=rt, migrate=False)
    app.config["TESTING"] = True
    c = app.test_client()
    make_list(rt, "news")
    for i in range(4):
        person(rt, f"q{i}@example.org", ["news"])
    analyst = _bearer(rt, "analyst")
    assert c.post("/api/segments/count", json={"lists": ["news"]}, headers=analyst).json == {
        "count": 4
    }
    resp = c.post(
        "/api/segments/count",
        json={
            "lists": ["news"],
            "rules": {"field": "created_at", "op": "before", "value": "2000-01-01"},
        },
        headers=analyst,
    )
    assert resp.json == {"count": None, "fewer_than": 3}


@pytest.mark.skipif(not PG_URL, reason="statement timeouts are a PostgreSQL matter")
def test_campaign_audience_counts_are_bounded_in_time_like_segment_counts(town, client):
    seen: list[str] = []

    def spy(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(town.db.engine, "before_cursor_execute", spy)
    try:
        resp = client.post(
            "/api/campaigns/audience", json={"lists": ["news"]}, headers=_bearer(town, "editor")
        )
        assert resp.status_code == 200 and resp.json == {"count": 12}
        cid = campaign(town)
        seen.clear()
        assert client.get(
            f"/api/campaigns/{cid}/audience", headers=_bearer(town, "editor")
        ).json == {"count": 12}
    finally:
        event.remove(town.db.engine, "before_cursor_execute", spy)
    timeout = [i for i, s in enumerate(seen) if "statement_timeout" in s]
    counts = [i for i, s in enumerate(seen) if "count(" in s.lower()]
    assert timeout and timeout[0] < counts[-1]
    assert any("statement_timeout = '30s'" in s for s in seen)


def test_counting_without_access_to_people_in_the_service_too(town):
    from listmgr.errors import Forbidden

    with pytest.raises(Forbidden):
        campaigns.count_audience(
            town,
            lists=["news"],
            personal=False,
            segment={"field": "phone", "op": "contains", "value": "1"},
        )


def _sent(rt, name: str, rules) -> int:
    from tests.campaign_support import wait_status
    from tests.conftest import drain

    cid = campaign(rt, name=name, segment=rules)
    campaigns.start(rt, cid, actor="tests")
    drain(rt)
    wait_status(rt, cid)
    return cid


def test_a_small_campaigns_figures_are_withheld_from_an_analyst(
    town, client, sink, accounts_by_role
):
    rt = town
    pros = _sent(rt, "To the pros", {"field": "plan", "op": "eq", "value": "pro"})  # 3 people
    everyone = _sent(rt, "To everyone", None)  # 12
    analyst, editor = _bearer(rt, "analyst"), _bearer(rt, "editor")
    for path in (f"/api/campaigns/{pros}", f"/api/campaigns/{pros}/stats"):
        body = client.get(path, headers=analyst).json
        figures = body.get("stats", body)
        assert figures["fewer_than"] == 10
        assert all(
            figures[k] is None for k in ("audience", "sent", "failed", "bounced", "unsubscribed")
        )
        assert figures.get("timeline", []) == []
    assert client.get(f"/api/campaigns/{pros}/audience", headers=analyst).json == {
        "count": None,
        "fewer_than": 10,
    }
    listing = {
        c["id"]: c["stats"] for c in client.get("/api/campaigns", headers=analyst).json["items"]
    }
    assert listing[pros]["sent"] is None and listing[everyone]["sent"] == 12
    assert client.get(f"/api/campaigns/{everyone}/stats", headers=analyst).json["sent"] == 12
    assert client.get(f"/api/campaigns/{pros}/stats", headers=editor).json["sent"] == 3
    session_login(client, rt, accounts_by_role["analyst"])
    page = client.get(f"/admin/campaigns/{pros}/stats")
    assert page.status_code == 200 and 'id="withheld"' in page.text
    assert 'data-field="sent"' not in page.text
    progress = client.get(f"/admin/campaigns/{pros}/progress.json").json
    assert progress["sent"] is None and progress["audience"] is None
    assert "fewer than 10 recipients" in client.get("/admin/campaigns").text
    assert "fewer than 10 recipients" in client.get("/admin/").text
    assert 'id="withheld"' not in client.get(f"/admin/campaigns/{everyone}/stats").text
    session_login(client, rt, accounts_by_role["editor"])
    assert 'id="withheld"' not in client.get(f"/admin/campaigns/{pros}/stats").text


def test_list_member_counts_and_the_dashboard_are_k_anonymous(town, client, accounts_by_role):
    rt = town
    make_list(rt, "vip")
    person(rt, "solo@example.org", ["vip"])  # one person on a list of their own
    analyst, editor = _bearer(rt, "analyst"), _bearer(rt, "editor")
    got = client.get("/api/lists/vip", headers=analyst).json
    assert got["counts"]["confirmed"] is None and got["fewer_than"] == 10
    assert client.get("/api/lists/news", headers=analyst).json["counts"]["confirmed"] == 12
    listing = {x["slug"]: x for x in client.get("/api/lists", headers=analyst).json["items"]}
    assert listing["vip"]["counts"]["confirmed"] is None
    assert client.get("/api/lists/vip", headers=editor).json["counts"]["confirmed"] == 1
    session_login(client, rt, accounts_by_role["analyst"])
    page = client.get("/admin/lists/vip").text
    assert "fewer than 10" in page
    dashboard = client.get("/admin/").text
    assert re.search(r'id="stat-confirmed">13<', dashboard)  # 13 distinct people confirmed
    chart = client.get("/admin/charts/growth.svg").get_data(as_text=True)
    assert "Vip" not in chart and "News" in chart
