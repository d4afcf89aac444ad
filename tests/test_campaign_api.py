"""The campaign API: create, check, preview, test, send, follow, pause, resume, cancel, roles."""

from __future__ import annotations

from sqlalchemy import func, select

from listmgr.models import AuditLog, Campaign, Delivery
from listmgr.services import accounts
from tests.campaign_support import campaign_mail, make_list, person, recipients, wait_status
from tests.conftest import drain

BODY = {
    "name": "April",
    "subject": "Hello {{ subscriber.name }}",
    "lists": ["news"],
    "html": "<p>Dear {{ subscriber.name|default('reader', true) }},</p><p>news.</p>",
}


def _count(rt, model):
    with rt.db.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_create_get_send_and_follow(rt, api, sink):
    make_list(rt, "news")
    for i in range(5):
        person(rt, f"p{i}@example.org", ["news"], name=f"Person {i}")
    resp = api.post(
        "/api/campaigns", json={**BODY, "segment": None, "text": "Hi {{ subscriber.name }}"}
    )
    assert resp.status_code == 201, resp.json
    cid = resp.json["id"]
    got = api.get(f"/api/campaigns/{cid}").json
    assert got["status"] == "draft" and got["stats"]["sent"] == 0
    assert api.get(f"/api/campaigns/{cid}/audience").json == {"count": 5}
    assert api.post("/api/campaigns/audience", json={"lists": ["news"]}).json == {"count": 5}

    resp = api.post(f"/api/campaigns/{cid}/send")
    assert resp.status_code == 202 and resp.json["status"] in ("sending", "sent")
    drain(rt)
    wait_status(rt, cid)
    got = api.get(f"/api/campaigns/{cid}").json
    assert got["status"] == "sent"
    assert {k: got["stats"][k] for k in ("audience", "sent", "failed", "skipped")} == {
        "audience": 5,
        "sent": 5,
        "failed": 0,
        "skipped": 0,
    }
    stats = api.get(f"/api/campaigns/{cid}/stats").json
    assert stats["sent"] == 5 and sum(b["sent"] for b in stats["timeline"]) == 5
    assert stats["timeline"][0]["minute"][:4].isdigit()
    message = campaign_mail(sink, cid)[0].message
    assert message.get_body(("plain",)).get_content().startswith("Hi Person")
    # A sent campaign cannot be sent, edited or deleted again.
    assert api.post(f"/api/campaigns/{cid}/send").status_code == 409
    assert api.patch(f"/api/campaigns/{cid}", json={"name": "x"}).status_code == 409
    assert api.delete(f"/api/campaigns/{cid}").status_code == 409
    with rt.db.session() as s:
        actions = list(
            s.scalars(
                select(AuditLog.action)
                .where(AuditLog.target_type == "campaign")
                .order_by(AuditLog.id)
            )
        )
    assert actions == ["campaign.create", "campaign.send"]


def test_markdown_body_text_derivation_and_footer(rt, api, sink):
    make_list(rt, "news", postal_address="Acme, 5 Main St, Springfield")
    person(rt, "md@example.org", ["news"], name="Mark")
    resp = api.post(
        "/api/campaigns",
        json={
            "name": "md",
            "subject": "Markdown",
            "lists": ["news"],
            "markdown": "# Hi {{ subscriber.name }}\n\nSome *news* & [a link](https://example.org/a).\n"
            "{% if subscriber.name %}\nYou have a name.\n{% endif %}\n",
            "preheader": "Short & sweet",
        },
    )
    assert resp.status_code == 201, resp.json
    cid = resp.json["id"]
    view = api.post(f"/api/campaigns/{cid}/preview", json={"email": "md@example.org"}).json
    assert "<h1" in view["html"] and "Hi Mark</h1>" in view["html"]
    assert "<em>news</em> &amp;" in view["html"]
    assert 'style="' in view["html"]  # CSS inlined from the layout
    assert "Short &amp; sweet" in view["html"]  # preheader, escaped
    assert "Acme, 5 Main St, Springfield" in view["html"] and "/u/" in view["html"]
    text = view["text"]
    assert "Hi Mark" in text and "You have a name." in text and "<" not in text.split("(")[0]
    assert "https://example.org/a" in text  # links stay visible in the text part
    assert "Acme, 5 Main St, Springfield" in text and "/u/" in text and "/p/" in text
    assert view["to"] == '"Mark" <md@example.org>'
    # The preview's links never name the real person.
    token = view["html"].split("/u/")[1].split('"')[0]
    assert rt.tokens.read_unsubscribe(token).subscriber_id == 0


def test_template_errors_are_reported_at_save_time_with_the_line(rt, api):
    make_list(rt, "news")
    bad = {**BODY, "html": "<p>one</p>\n<p>two {{ subscriber.name </p>\n"}
    resp = api.post("/api/campaigns", json=bad)
    assert resp.status_code == 422
    error = resp.json["error"]
    assert error["code"] == "template_error" and error["field"] == "body"
    assert "line 2" in error["message"]
    resp = api.post("/api/campaigns", json={**BODY, "subject": "Hi {{ x|nosuchfilter }}"})
    assert resp.status_code == 422 and resp.json["error"]["field"] == "subject"
    resp = api.post("/api/campaigns", json={**BODY, "subject": "Hi\r\nBcc: x@example.org"})
    assert resp.status_code == 422 and resp.json["error"]["field"] == "subject"
    resp = api.post("/api/campaigns", json={**BODY, "lists": ["nope"]})
    assert resp.status_code == 422 and resp.json["error"]["field"].startswith("lists")
    resp = api.post(
        "/api/campaigns", json={**BODY, "segment": {"field": "nope", "op": "eq", "value": 1}}
    )
    assert resp.status_code == 422 and resp.json["error"]["code"] == "segment_error"
    resp = api.post("/api/campaigns", json={**BODY, "html": None, "markdown": "x", "body": "y"})
    assert resp.status_code == 422
    resp = api.post("/api/campaigns", json={**BODY, "from_email": "not an address"})
    assert resp.status_code == 422 and resp.json["error"]["field"] == "email"
    resp = api.post("/api/campaigns", json={**BODY, "layout": "<div>no content slot</div>"})
    assert resp.status_code == 422 and resp.json["error"]["field"] == "layout"
    assert _count(rt, Campaign) == 0
    # An edit with an error changes nothing.
    cid = api.post("/api/campaigns", json=BODY).json["id"]
    resp = api.patch(f"/api/campaigns/{cid}", json={"html": "{% for %}", "name": "changed"})
    assert resp.status_code == 422
    assert api.get(f"/api/campaigns/{cid}").json["name"] == "April"


def test_test_send_is_marked_and_names_nobody(rt, api, sink):
    make_list(rt, "news")
    person(rt, "real@example.org", ["news"], name="Real Person")
    cid = api.post("/api/campaigns", json=BODY).json["id"]
    resp = api.post(
        f"/api/campaigns/{cid}/test", json={"to": ["boss@example.org"], "email": "real@example.org"}
    )
    assert resp.status_code == 200 and resp.json["results"][0]["sent"]
    [mail] = sink.wait_for(1)
    msg = mail.message
    assert mail.rcpt_tos == ["boss@example.org"]
    assert msg["Subject"] == "[Test] Hello Real Person" and msg["X-Listmgr-Test"] == "yes"
    token = msg["List-Unsubscribe"].split("/u/")[1].split(">")[0]
    assert rt.tokens.read_unsubscribe(token).subscriber_id == 0
    assert api.get(f"/api/campaigns/{cid}").json["status"] == "draft"
    assert _count(rt, Delivery) == 0
    resp = api.post(f"/api/campaigns/{cid}/test", json={"to": []})
    assert resp.status_code == 422
    resp = api.post(f"/api/campaigns/{cid}/test", json={"to": ["x@example.org"] * 11})
    assert resp.status_code == 422


def test_pause_resume_cancel_and_schedule_states(rt, api, sink):
    make_list(rt, "news")
    person(rt, "a@example.org", ["news"])
    cid = api.post("/api/campaigns", json=BODY).json["id"]
    assert api.post(f"/api/campaigns/{cid}/pause").status_code == 409
    assert api.post(f"/api/campaigns/{cid}/resume").status_code == 409
    resp = api.post(f"/api/campaigns/{cid}/schedule", json={"at": "2001-01-01T00:00:00Z"})
    assert resp.status_code == 422 and resp.json["error"]["field"] == "at"
    resp = api.post(f"/api/campaigns/{cid}/schedule", json={"at": "2999-01-01T10:00:00+02:00"})
    assert resp.status_code == 200 and resp.json["status"] == "scheduled"
    assert resp.json["scheduled_at"] == "2999-01-01T08:00:00"
    resp = api.post(f"/api/campaigns/{cid}/schedule", json={"at": None})
    assert resp.json["status"] == "draft"
    assert api.post(f"/api/campaigns/{cid}/cancel").json["status"] == "cancelled"
    assert api.post(f"/api/campaigns/{cid}/send").status_code == 409
    assert api.get("/api/campaigns").json["total"] == 1
    assert api.get("/api/campaigns/999").status_code == 404


def test_roles(rt, client, api):
    make_list(rt, "news")
    cid = api.post("/api/campaigns", json=BODY).json["id"]
    analyst = {"Authorization": f"Bearer {accounts.create_token(rt, role='analyst')}"}
    editor = {"Authorization": f"Bearer {accounts.create_token(rt, role='editor')}"}
    assert client.get(f"/api/campaigns/{cid}", headers=analyst).status_code == 200
    assert client.get(f"/api/campaigns/{cid}/stats", headers=analyst).status_code == 200
    assert client.post("/api/campaigns", json=BODY, headers=analyst).status_code == 403
    assert client.post(f"/api/campaigns/{cid}/send", headers=analyst).status_code == 403
    assert client.post(f"/api/campaigns/{cid}/preview", json={}, headers=analyst).status_code == 403
    assert client.post("/api/campaigns", json=BODY, headers=editor).status_code == 201
    assert client.get("/api/campaigns").status_code == 401
    assert _count(rt, Delivery) == 0


def test_empty_audience_is_sent_at_once(rt, api, sink):
    make_list(rt, "news")
    cid = api.post("/api/campaigns", json=BODY).json["id"]
    resp = api.post(f"/api/campaigns/{cid}/send")
    assert resp.status_code == 202 and resp.json == {"id": cid, "status": "sent", "audience": 0}
    drain(rt)
    assert recipients(sink) == {}
