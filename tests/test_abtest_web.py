"""A/B tests through the API and the admin: set up, refused input (which changes nothing),
roles, CSRF, and the per-variant comparison."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from listmgr.models import Campaign, Delivery, Engagement
from listmgr.services import accounts, campaigns
from tests.admin_support import accounts_by_role, post_form, session_login  # noqa: F401
from tests.campaign_support import decide_ab_test_now, make_list, person
from tests.conftest import wait_until

BODY = {
    "name": "May news",
    "subject": "Subject A",
    "lists": ["news"],
    "html": "<p>Hello {{ subscriber.name }}</p>",
}
AB = {"alternatives": [{"subject": "Subject B"}], "test_percent": 50, "wait_minutes": 90}


@pytest.fixture
def rt(make_runtime):
    return make_runtime(aggregate_min_count=20)  # the audiences here are "small"


@pytest.fixture
def news(rt):
    make_list(rt, "news")
    for i in range(12):
        person(rt, f"p{i:02d}@example.org", ["news"])


def _stored(rt, cid: int) -> dict | None:
    with rt.db.session() as s:
        return s.scalar(select(Campaign.ab_test).where(Campaign.id == cid))


# -- API -------------------------------------------------------------------------------------
def test_api_creates_reads_and_changes_a_test(api, news):
    resp = api.post("/api/campaigns", json={**BODY, "ab_test": AB})
    assert resp.status_code == 201, resp.json
    out = resp.json
    assert out["ab_test"] == {
        "kind": "subject",
        "metric": "clicks",
        "test_percent": 50,
        "wait_minutes": 90,
        "alternatives": [{"subject": "Subject B"}],
    }
    assert out["ab_result"] is None
    cid = out["id"]
    more = {**AB, "metric": "opens", "alternatives": [{"subject": "B"}, {"subject": "C"}]}
    resp = api.patch(f"/api/campaigns/{cid}", json={"ab_test": more})
    assert resp.status_code == 200 and resp.json["ab_test"]["metric"] == "opens"
    assert len(resp.json["ab_test"]["alternatives"]) == 2
    # Leaving ab_test out changes nothing; null switches the test off.
    assert (
        api.patch(f"/api/campaigns/{cid}", json={"name": "x"}).json["ab_test"]["metric"] == "opens"
    )
    assert api.patch(f"/api/campaigns/{cid}", json={"ab_test": None}).json["ab_test"] is None


@pytest.mark.parametrize(
    ("ab_test", "field", "words"),
    [
        ({"alternatives": []}, "ab_test.alternatives", "2 to 4 variants"),
        (
            {"alternatives": [{"subject": s} for s in "BCDE"]},
            "ab_test.alternatives",
            "this one has 5",
        ),
        ({**AB, "test_percent": 0}, "ab_test.test_percent", "greater than or equal to 1"),
        ({**AB, "test_percent": 100}, "ab_test.test_percent", "less than or equal to 99"),
        ({**AB, "wait_minutes": -5}, "ab_test.wait_minutes", "greater than or equal to 0"),
        ({**AB, "metric": "revenue"}, "ab_test.metric", "clicks"),
        ({**AB, "kind": "layout"}, "ab_test.kind", "subject"),
        ({**AB, "winner": "B"}, "ab_test.winner", "Extra inputs"),
        (
            {"alternatives": [{"subject": "  "}]},
            "ab_test.alternatives[0].subject",
            "needs a subject",
        ),
        (
            {"alternatives": [{"subject": "Subject A"}]},
            "ab_test.alternatives[0]",
            "same as variant A",
        ),
        (
            {"alternatives": [{"subject": "B", "body": "<p>b</p>"}]},
            "ab_test.alternatives[0].body",
            "subject only",
        ),
        (
            {"kind": "content", "alternatives": [{"subject": "B"}]},
            "ab_test.alternatives[0].body",
            "needs a body",
        ),
        (
            {"alternatives": [{"subject": "Hi {{ oops("}]},
            "ab_test.alternatives[0].subject",
            "variant B",
        ),
        ({"alternatives": "B"}, "ab_test.alternatives", "valid list"),
        ({**AB, "test_percent": True}, "ab_test.test_percent", "integer"),
    ],
)
def test_api_refuses_a_bad_test_and_changes_nothing(api, rt, news, ab_test, field, words):
    cid = api.post("/api/campaigns", json={**BODY, "ab_test": AB}).json["id"]
    resp = api.patch(f"/api/campaigns/{cid}", json={"ab_test": ab_test})
    assert resp.status_code == 422, resp.json
    error = resp.json["error"]
    assert error["field"] == field and words in error["message"], error
    assert _stored(rt, cid)["alternatives"] == [{"subject": "Subject B"}]
    created = api.post("/api/campaigns", json={**BODY, "name": "new", "ab_test": ab_test})
    assert created.status_code == 422
    assert len(api.get("/api/campaigns").json["items"]) == 1


def test_api_roles_and_a_started_test_cannot_change(api, client, rt, news):
    cid = api.post("/api/campaigns", json={**BODY, "ab_test": AB}).json["id"]
    analyst = {"Authorization": f"Bearer {accounts.create_token(rt, role='analyst')}"}
    refused = client.patch(f"/api/campaigns/{cid}", json={"ab_test": None}, headers=analyst)
    assert refused.status_code == 403 and _stored(rt, cid) is not None
    assert (
        client.post("/api/campaigns", json={**BODY, "ab_test": AB}, headers=analyst).status_code
        == 403
    )
    assert (
        client.get(f"/api/campaigns/{cid}", headers=analyst).json["ab_test"]["test_percent"] == 50
    )
    # No session, no token: nothing.
    assert client.patch(f"/api/campaigns/{cid}", json={"ab_test": None}).status_code == 401
    api.post(f"/api/campaigns/{cid}/send")
    late = api.patch(f"/api/campaigns/{cid}", json={"ab_test": {**AB, "test_percent": 10}})
    assert late.status_code == 409 and _stored(rt, cid)["test_percent"] == 50


def test_api_stats_compare_the_variants_and_withhold_them_from_analysts(
    api, client, rt, news, sink
):
    cid = api.post("/api/campaigns", json={**BODY, "ab_test": AB}).json["id"]
    assert api.post(f"/api/campaigns/{cid}/send").status_code == 202
    wait_until(lambda: campaigns.stats(rt, cid).sent == 6, what="the test share sent")
    with rt.db.session() as s:
        sid = s.scalar(  # someone in the test share
            select(Delivery.subscriber_id).where(
                Delivery.campaign_id == cid, Delivery.status == "sent"
            )
        )
        s.add(Engagement(campaign_id=cid, subscriber_id=sid, kind="click"))
    stats = api.get(f"/api/campaigns/{cid}/stats").json
    ab = stats["ab_test"]
    assert ab["winner"] is None and ab["decide_at"] and stats["remaining"] == 6
    assert [v["letter"] for v in ab["variants"]] == ["A", "B"]
    assert sum(v["sent"] for v in ab["variants"]) == 6
    assert sum(v["clicked"] for v in ab["variants"]) == 1
    decide_ab_test_now(rt, cid)
    ab = api.get(f"/api/campaigns/{cid}/stats").json["ab_test"]
    winner = next(v for v in ab["variants"] if v["won"])
    assert ab["winner"] == winner["letter"] and winner["clicked"] == 1 and winner["sent"] == 9
    assert api.get(f"/api/campaigns/{cid}").json["ab_result"]["winner"] == winner["letter"]
    # Twelve people are too few for a role that may not see people: no figures per variant.
    analyst = {"Authorization": f"Bearer {accounts.create_token(rt, role='analyst')}"}
    shown = client.get(f"/api/campaigns/{cid}/stats", headers=analyst).json
    assert shown["sent"] is None and {v["sent"] for v in shown["ab_test"]["variants"]} == {None}
    assert shown["ab_test"]["winner"] == winner["letter"]


def test_the_openapi_document_describes_the_test(client):
    doc = client.get("/api/openapi.json").json
    schema = doc["components"]["schemas"]["AbTest"]
    assert schema["properties"]["test_percent"]["maximum"] == 99
    assert schema["properties"]["alternatives"]["maxItems"] == 3


# -- admin -----------------------------------------------------------------------------------
FORM = {
    "name": "June news",
    "subject": "Subject A",
    "lists": ["news"],
    "body": "<p>Hi</p>",
    "content_format": "html",
    "ab_on": "1",
    "ab_kind": "subject",
    "ab_metric": "opens",
    "ab_percent": "30",
    "ab_wait": "2",
    "ab_wait_unit": "hours",
    "ab_subject_1": "Subject B",
    "ab_subject_2": "",
    "ab_subject_3": "Subject D",
}


def test_admin_sets_up_a_test_and_refuses_bad_input(client, rt, news, accounts_by_role):
    session_login(client, rt, accounts_by_role["editor"])
    resp = post_form(client, "/admin/campaigns/new", "/admin/campaigns/new", FORM)
    assert resp.status_code == 302, resp.text
    cid = int(resp.headers["Location"].rsplit("/", 1)[1])
    assert _stored(rt, cid) == {
        "kind": "subject",
        "metric": "opens",
        "test_percent": 30,
        "wait_minutes": 120,
        "alternatives": [{"subject": "Subject B"}, {"subject": "Subject D"}],
    }
    page = client.get(f"/admin/campaigns/{cid}").text
    assert 'value="Subject B"' in page and 'value="Subject D"' in page and "checked" in page
    for bad, words in (
        ({"ab_percent": "0"}, "from 1 to 99"),
        ({"ab_percent": "100"}, "from 1 to 99"),
        ({"ab_percent": "ten"}, "whole number"),
        ({"ab_wait": "-1"}, "from 0 to"),
        ({"ab_subject_1": "", "ab_subject_3": ""}, "this one has 1"),
        ({"ab_kind": "content"}, "variant B needs a body"),
        ({"ab_wait_unit": "weeks"}, "minutes or hours"),
        # D moves up to C when C is left empty (the page shows it there too)
        ({"ab_subject_1": "<script>alert(1)</script>", "ab_subject_3": "{{ x("}, "variant C"),
    ):
        resp = post_form(
            client, f"/admin/campaigns/{cid}", f"/admin/campaigns/{cid}", {**FORM, **bad}
        )
        assert resp.status_code == 422 and words in resp.text, (bad, resp.text[:2000])
        assert "<script>alert(1)</script>" not in resp.text
        assert _stored(rt, cid)["test_percent"] == 30
    # Switched off: the campaign sends to everyone alike.
    off = {k: v for k, v in FORM.items() if k != "ab_on"}
    assert (
        post_form(client, f"/admin/campaigns/{cid}", f"/admin/campaigns/{cid}", off).status_code
        == 302
    )
    assert _stored(rt, cid) is None


def test_admin_needs_csrf_and_the_right_role(client, rt, news, accounts_by_role):
    session_login(client, rt, accounts_by_role["editor"])
    cid = (
        post_form(client, "/admin/campaigns/new", "/admin/campaigns/new", FORM)
        .headers["Location"]
        .rsplit("/", 1)[1]
    )
    no_csrf = client.post(f"/admin/campaigns/{cid}", data={**FORM, "ab_percent": "40"})
    assert no_csrf.status_code == 400 and _stored(rt, int(cid))["test_percent"] == 30
    session_login(client, rt, accounts_by_role["analyst"])
    page = client.get(f"/admin/campaigns/{cid}/stats")
    assert page.status_code == 200
    token = client.get("/admin/campaigns").text
    from tests.admin_support import csrf_from

    refused = client.post(
        f"/admin/campaigns/{cid}",
        data={**FORM, "ab_percent": "40", "csrf_token": csrf_from(token)},
    )
    assert refused.status_code == 403 and _stored(rt, int(cid))["test_percent"] == 30


def test_admin_stats_page_compares_the_variants(client, rt, news, accounts_by_role, sink):
    session_login(client, rt, accounts_by_role["editor"])
    cid = int(
        post_form(client, "/admin/campaigns/new", "/admin/campaigns/new", FORM)
        .headers["Location"]
        .rsplit("/", 1)[1]
    )
    page = client.get(f"/admin/campaigns/{cid}/stats").text
    assert "A/B test" in page and "the test starts with the send" in page
    campaigns.start(rt, cid)
    wait_until(lambda: campaigns.stats(rt, cid).sent == 3, what="the test share sent")
    page = client.get(f"/admin/campaigns/{cid}/stats").text
    assert 'id="ab-variants"' in page and "the winner is chosen at" in page
    for letter in "ABC":  # the variants as saved: B, and D lettered C
        assert f'data-variant="{letter}"' in page
    assert "<td>Subject D</td>" in page
    decide_ab_test_now(rt, cid)
    page = client.get(f"/admin/campaigns/{cid}/stats").text
    assert "variant A won" in page and 'class="winner"' in page


def test_admin_stats_page_shows_variant_subjects_as_a_sample_subscriber_reads_them(
    client, rt, news, accounts_by_role, api, sink
):
    ab = {
        "alternatives": [
            {"subject": "Hi {{ subscriber.name }}, B"},
            {"subject": "{{ subscriber.name|upper }}: C"},
        ],
        "test_percent": 50,
        "wait_minutes": 90,
    }
    body = {**BODY, "subject": "For {{ subscriber.name }}: A"}
    cid = api.post("/api/campaigns", json={**body, "ab_test": ab}).json["id"]
    session_login(client, rt, accounts_by_role["editor"])
    page = client.get(f"/admin/campaigns/{cid}/stats").text
    assert "<td>Hi Sample Person, B</td>" in page
    assert "<td>SAMPLE PERSON: C</td>" in page
    assert "<td>For Sample Person: A</td>" in page
    assert "{{" not in page.split('id="ab-variants"', 1)[1].split("</table>", 1)[0]
