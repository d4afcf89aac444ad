"""The reputation pages and API: who may see and do what, CSRF, the chart, the JSON shapes."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from listmgr.models import AuditLog, Suppression
from listmgr.services import accounts
from tests.admin_support import accounts_by_role, csrf_from, session_login  # noqa: F401
from tests.campaign_support import make_list, person


@pytest.fixture
def flagged(rt):
    make_list(rt, "news")
    for email in ("abuse@example.org", "No-Reply@example.org", "ann@example.org"):
        person(rt, email, ["news"])


def test_page_and_chart_for_every_role(app, rt, accounts_by_role, flagged):
    client = app.test_client()
    for role in ("analyst", "editor", "admin", "owner"):
        session_login(client, rt, accounts_by_role[role])
        page = client.get("/admin/reputation")
        assert page.status_code == 200, role
        assert 'id="reputation-overall"' in page.text and 'href="/admin/reputation"' in page.text
        assert "/admin/charts/reputation.svg" in page.text
        chart = client.get("/admin/charts/reputation.svg")
        assert chart.status_code == 200 and chart.mimetype == "image/svg+xml"
        assert b"<script" not in chart.data and b"limit (0.3%)" in chart.data
        flags_page = client.get("/admin/reputation/flags?flag=role")
        if role == "analyst":  # addresses are personal data
            assert flags_page.status_code == 403
            assert "/admin/reputation/flags" not in page.text
        else:
            assert flags_page.status_code == 200
            assert "abuse@example.org" in flags_page.text
            assert "no-reply@example.org" in flags_page.text
            assert "ann@example.org" not in flags_page.text
            can_act = role in ("admin", "owner")
            assert ('id="suppress-all"' in flags_page.text) is can_act
    client.get("/admin/logout")
    anonymous = app.test_client().get("/admin/reputation")
    assert anonymous.status_code == 302 and "/admin/login" in anonymous.location


def test_bad_filters_are_refused(app, rt, accounts_by_role, flagged):
    client = app.test_client()
    session_login(client, rt, accounts_by_role["editor"])
    assert client.get("/admin/reputation/flags?flag=nonsense").status_code == 422
    assert client.get("/admin/reputation/flags?list=no-such-list").status_code == 404
    assert client.get("/admin/reputation/flags?flag=role&page=0").status_code == 422


def test_suppress_needs_the_role_and_csrf(app, rt, accounts_by_role, flagged):
    client = app.test_client()
    session_login(client, rt, accounts_by_role["editor"])
    token = csrf_from(client.get("/admin/reputation/flags?flag=role").text)
    refused = client.post(
        "/admin/reputation/flags",
        data={"flag": "role", "action": "suppress", "csrf_token": token},
    )
    assert refused.status_code == 403
    session_login(client, rt, accounts_by_role["admin"])
    no_token = client.post("/admin/reputation/flags", data={"flag": "role", "action": "suppress"})
    assert no_token.status_code == 400
    with rt.db.session() as s:
        assert s.scalar(select(Suppression)) is None
    token = csrf_from(client.get("/admin/reputation/flags?flag=role").text)
    bad = client.post(
        "/admin/reputation/flags",
        data={"flag": "role", "action": "delete-everyone", "csrf_token": token},
    )
    assert bad.status_code == 422
    done = client.post(
        "/admin/reputation/flags",
        data={"flag": "role", "action": "suppress", "list": "news", "csrf_token": token},
    )
    assert done.status_code == 302 and "flag=role" in done.location
    with rt.db.session() as s:
        assert sorted(s.scalars(select(Suppression.email))) == [
            "abuse@example.org",
            "no-reply@example.org",
        ]
        entry = s.scalar(select(AuditLog).where(AuditLog.action == "reputation.suppress"))
    assert entry.actor == accounts_by_role["admin"].email
    assert entry.detail == {"list": "news", "count": 2}
    assert "2 suppressed." in client.get(done.location).text


def test_api(rt, client, api, sink, flagged):
    body = api.get("/api/reputation")
    assert body.status_code == 200
    data = body.json
    assert set(data["windows"]) == {"7", "30"}
    assert data["thresholds"] == {
        "complaint_recommended": 0.001,
        "complaint_limit": 0.003,
        "bounce_limit": 0.05,
        "unsubscribe_seconds": 172800,
    }
    assert data["windows"]["30"]["unsubscribe_time"]["all"]["count"] == 0
    assert len(data["daily"]) == 30 and data["lists"] == [] and data["domains"] == []

    found = api.get("/api/reputation/flags?flag=role").json
    assert {i["email"] for i in found["items"]} == {"abuse@example.org", "no-reply@example.org"}
    assert found["summary"]["counts"]["role"] == 2
    assert api.get("/api/reputation/flags?flag=everyone").status_code == 422
    assert api.get("/api/reputation/flags?list=nope").status_code == 404

    abuse = next(i["id"] for i in found["items"] if i["email"] == "abuse@example.org")
    asked = api.post(
        "/api/reputation/flags",
        json={"flag": "role", "action": "repermission", "subscriber_ids": [abuse]},
    )
    assert asked.status_code == 200 and asked.json == {
        "flag": "role",
        "action": "repermission",
        "count": 1,
    }
    assert sink.wait_for(1)[0].rcpt_tos == ["abuse@example.org"]
    left = api.get("/api/reputation/flags?flag=role").json
    assert [i["email"] for i in left["items"]] == ["no-reply@example.org"]
    assert left["summary"]["waiting"] == 1
    bad = api.post("/api/reputation/flags", json={"flag": "role", "action": "erase"})
    assert bad.status_code == 422 and bad.json["error"]["code"] == "invalid"
    assert api.post("/api/reputation/flags", json={"flag": "role"}).status_code == 422

    analyst = accounts.create_token(rt, role="analyst", name="numbers")
    headers = {"Authorization": f"Bearer {analyst}"}
    assert client.get("/api/reputation", headers=headers).status_code == 200
    assert client.get("/api/reputation/flags", headers=headers).status_code == 403
    editor = accounts.create_token(rt, role="editor", name="editor")
    refused = client.post(
        "/api/reputation/flags",
        json={"flag": "role", "action": "suppress"},
        headers={"Authorization": f"Bearer {editor}"},
    )
    assert refused.status_code == 403

    spec = api.get("/api/openapi.json").json
    assert "/api/reputation" in spec["paths"] or "/reputation" in spec["paths"]


def test_small_figures_are_withheld_without_personal_data(app, rt, sink, accounts_by_role):
    """Three messages and one complaint would point at a person: roles without access to
    personal data see "fewer than" instead, in the page and in the API."""
    from listmgr.services import campaigns
    from tests.campaign_support import campaign, wait_status
    from tests.conftest import drain

    make_list(rt, "news")
    for i in range(3):
        person(rt, f"p{i}@example.org", ["news"])
    cid = campaign(rt)
    campaigns.start(rt, cid)
    drain(rt)
    wait_status(rt, cid)

    client = app.test_client()
    session_login(client, rt, accounts_by_role["analyst"])
    page = client.get("/admin/reputation").text
    assert "fewer than 10 messages" in page
    api = client.get("/api/reputation").json
    assert api["windows"]["7"] == {
        "handed_over": None,
        "withheld": True,
        "unsubscribe_time": api["windows"]["7"]["unsubscribe_time"],
    }
    assert api["lists"][0]["windows"]["30"]["withheld"] is True
    session_login(client, rt, accounts_by_role["editor"])
    shown = client.get("/api/reputation").json
    assert shown["windows"]["7"]["handed_over"] == 3
    assert shown["domains"][0]["key"] == "example.org"
    assert "fewer than 10 messages" not in client.get("/admin/reputation").text
