"""The campaign checklist on the API and in the admin: who may read it, unknown campaigns, the
composer's live answer, and sending or scheduling refused on blockers with nothing changed."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from listmgr.models import AuditLog, Campaign, Delivery, utcnow
from listmgr.services import accounts, campaign_checklist
from tests.admin_support import accounts_by_role, csrf_from, session_login  # noqa: F401
from tests.campaign_support import make_list, past_deliveries, person
from tests.conftest import drain

BODY = {
    "name": "April",
    "subject": "Hello {{ subscriber.name }}",
    "preheader": "News of April",
    "lists": ["news"],
    "html": '<p>Dear reader,</p><img src="https://example.org/a.png" alt="A">',
}


def _state(rt, cid: int) -> tuple:
    with rt.db.session() as s:
        row = s.get(Campaign, cid)
        return (
            row.status,
            row.scheduled_at,
            row.started_at,
            row.updated_at,
            s.scalar(select(func.count()).select_from(Delivery)),
            s.scalar(
                select(func.count())
                .select_from(AuditLog)
                .where(AuditLog.action.in_(("campaign.send", "campaign.schedule")))
            ),
        )


def _codes(checklist: dict, level: str) -> list[str]:
    return [c["code"] for c in checklist["checks"] if c["level"] == level]


def test_api_checklist_reads_and_roles(rt, client, api):
    make_list(rt, "news")
    make_list(rt, "empty")
    person(rt, "p@example.org", ["news"])
    cid = api.post("/api/campaigns", json=BODY).json["id"]
    resp = api.get(f"/api/campaigns/{cid}/checklist")
    assert resp.status_code == 200, resp.json
    assert resp.json["blockers"] == 0 and _codes(resp.json, "blocker") == []
    assert all(c["level"] in ("blocker", "warning", "ok") for c in resp.json["checks"])
    assert resp.json == campaign_checklist.for_campaign(rt, cid).as_json()
    # read permission is enough; no token is not
    analyst = {"Authorization": f"Bearer {accounts.create_token(rt, role='analyst')}"}
    assert client.get(f"/api/campaigns/{cid}/checklist", headers=analyst).status_code == 200
    assert client.get(f"/api/campaigns/{cid}/checklist").status_code == 401
    bad = {"Authorization": "Bearer nope"}
    assert client.get(f"/api/campaigns/{cid}/checklist", headers=bad).status_code == 401
    # unknown campaign: 404 JSON
    for path in ("/api/campaigns/9999/checklist", "/api/campaigns/0/checklist"):
        resp = api.get(path)
        assert resp.status_code == 404 and resp.json["error"]["code"] == "not_found"
    assert api.get("/api/campaigns/abc/checklist").status_code == 404
    assert api.post(f"/api/campaigns/{cid}/checklist").status_code == 405
    # the route is in the OpenAPI document
    doc = api.get("/api/openapi.json").json
    assert "get" in doc["paths"]["/api/campaigns/{campaign_id}/checklist"]


def test_api_send_and_schedule_refused_on_blockers(rt, api, sink):
    make_list(rt, "news")
    make_list(rt, "bad")
    person(rt, "p@example.org", ["news", "bad"])
    past_deliveries(rt, list_slug="bad", count=200, complained=2)  # 1 % complaints
    cid = api.post("/api/campaigns", json={**BODY, "lists": ["bad"]}).json["id"]
    assert _codes(api.get(f"/api/campaigns/{cid}/checklist").json, "blocker") == ["complaint_rate"]
    before = _state(rt, cid)
    for path, body in (
        ("send", None),
        ("schedule", {"at": (utcnow() + timedelta(days=1)).isoformat() + "Z"}),
    ):
        resp = api.post(f"/api/campaigns/{cid}/{path}", json=body)
        assert resp.status_code == 422, resp.json
        error = resp.json["error"]
        assert error["code"] == "checklist_blocked" and error["field"] == "checklist"
        assert "complaints" in error["message"]
        assert _codes(error["detail"]["checklist"], "blocker") == ["complaint_rate"]
        assert _state(rt, cid) == before
    # a test send still goes
    resp = api.post(f"/api/campaigns/{cid}/test", json={"to": ["me@example.org"]})
    assert resp.json["results"][0]["sent"], resp.json
    # fixed: it goes, warnings and all
    api.patch(f"/api/campaigns/{cid}", json={"lists": ["news"]})
    resp = api.post(f"/api/campaigns/{cid}/send")
    assert resp.status_code == 202, resp.json
    drain(rt)


def _editor(client, rt, accounts_by_role):
    session_login(client, rt, accounts_by_role["editor"])
    return client


def test_admin_composer_shows_the_checklist_and_its_live_answer(rt, client, accounts_by_role):
    make_list(rt, "news")
    person(rt, "p@example.org", ["news"])
    editor = _editor(client, rt, accounts_by_role)
    token = csrf_from(editor.get("/admin/campaigns/new").text)
    form = {
        "name": "x",
        "subject": "Hi",
        "preheader": "Short",
        "body": '<img src="https://example.org/a.png">',
        "content_format": "html",
        "lists": ["news"],
        "csrf_token": token,
    }
    resp = editor.post("/admin/campaigns/preview.json", data=form)
    assert resp.status_code == 200, resp.text
    assert "image_alt" in _codes(resp.json["checklist"], "warning")
    assert resp.json["checklist"]["blockers"] == 0
    form["body"] = '<img src="https://example.org/a.png" alt="A">'
    form["subject"] = ""
    resp = editor.post("/admin/campaigns/preview.json", data=form)
    assert "image_alt" not in _codes(resp.json["checklist"], "warning")
    assert _codes(resp.json["checklist"], "blocker") == ["subject"]
    # the saved draft's composer lists the checks (without script too)
    form["subject"] = "Hi <b>there</b>"
    resp = editor.post("/admin/campaigns/new", data=form)
    assert resp.status_code == 302, resp.text
    page = editor.get(resp.headers["Location"]).text
    assert 'id="checklist"' in page and 'data-code="subject"' in page
    assert "0 blockers" in page


def test_admin_send_and_schedule_refused_with_a_page_message(rt, client, accounts_by_role):
    make_list(rt, "news")
    make_list(rt, "bad")
    person(rt, "p@example.org", ["bad"])
    past_deliveries(rt, list_slug="bad", count=200, complained=2)  # 1 % complaints
    editor = _editor(client, rt, accounts_by_role)
    token = csrf_from(editor.get("/admin/campaigns/new").text)
    resp = editor.post(
        "/admin/campaigns/new",
        data={
            "name": "Empty",
            "subject": "Hi",
            "body": "<p>Hello</p>",
            "content_format": "html",
            "lists": ["bad"],
            "csrf_token": token,
        },
    )
    url = resp.headers["Location"]
    cid = int(url.rstrip("/").rsplit("/", 1)[1])
    before = _state(rt, cid)
    page = editor.get(url).text
    assert 'data-level="blocker"' in page and 'data-code="complaint_rate"' in page
    resp = editor.post(f"/admin/campaigns/{cid}/send", data={"csrf_token": csrf_from(page)})
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/campaigns/{cid}")
    shown = editor.get(resp.headers["Location"]).text
    assert "Not sent: the campaign checklist has blockers" in shown
    assert "complaints" in shown
    assert _state(rt, cid) == before
    resp = editor.post(
        f"/admin/campaigns/{cid}/schedule",
        data={"csrf_token": csrf_from(shown), "at": "2999-01-01T10:00", "timezone": "UTC"},
    )
    assert resp.status_code == 422
    assert 'data-field-error="checklist"' in resp.text and "complaints" in resp.text
    assert 'value="2999-01-01T10:00"' in resp.text  # what was typed stays
    assert _state(rt, cid) == before
