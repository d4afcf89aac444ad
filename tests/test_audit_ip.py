"""Every audit entry written while serving a request keeps the client's address; entries of the
command line say so on the audit page, and an erasure keeps none."""

from __future__ import annotations

from sqlalchemy import select

from listmgr.models import AuditLog
from listmgr.services import imports, inbound, subscribers
from listmgr.services.subscriptions import Origin
from tests.admin_support import PASSWORD, accounts_by_role, post_form, session_login  # noqa: F401
from tests.campaign_support import make_list, person
from tests.conftest import drain

CAMPAIGN = {"name": "April", "subject": "Hello", "lists": ["news"], "html": "<p>news</p>"}
PEER = {"REMOTE_ADDR": "203.0.113.7"}


def _rows(rt):
    with rt.db.session() as s:
        return list(s.scalars(select(AuditLog).order_by(AuditLog.id)))


def test_every_admin_and_api_action_stores_the_clients_address(
    rt, app, client, owner_token, accounts_by_role, sink
):
    make_list(rt, "news")
    sid = person(rt, "reader@example.org", ["news"], name="Reader")
    bearer = {"Authorization": f"Bearer {owner_token}"}
    client.environ_base.update(PEER)
    # the API: campaigns (written by the campaign service), segments, settings
    cid = client.post("/api/campaigns", json=CAMPAIGN, headers=bearer).json["id"]
    client.patch(f"/api/campaigns/{cid}", json={"name": "May"}, headers=bearer)
    resp = client.post(
        f"/api/campaigns/{cid}/test", json={"to": ["boss@example.org"]}, headers=bearer
    )
    assert resp.status_code == 200
    client.post(
        "/api/segments",
        json={"name": "All", "lists": ["news"]},
        headers=bearer,
    )
    resp = client.patch(
        "/api/settings", json={"values": {"default_from_name": "News desk"}}, headers=bearer
    )
    assert resp.status_code == 200
    client.get(f"/api/subscribers/{sid}", headers=bearer)
    # the admin pages
    session_login(client, rt, accounts_by_role["owner"])
    assert post_form(client, "/admin/settings", "/admin/settings/smtp-check", {}).status_code == 302
    post_form(client, "/admin/settings", "/admin/settings/dkim", {"dkim_selector": "s1"})
    post_form(client, "/admin/suppression", "/admin/suppression", {"email": "no@example.org"})
    client.get(f"/admin/subscribers/{sid}")
    post_form(client, "/admin/tokens", "/admin/tokens", {"name": "ci", "role": "analyst"})
    post_form(
        client,
        "/admin/lists/new",
        "/admin/lists/new",
        {"slug": "extra", "name": "Extra", "from_email": "extra@example.org"},
    )
    post_form(
        client,
        "/admin/subscribers/new",
        "/admin/subscribers/new",
        {
            "email": "added@example.org",
            "lists": ["news"],
            "status": "confirmed",
            "consent": "asked",
        },
    )
    post_form(
        client,
        "/admin/users",
        "/admin/users",
        {"email": "new@staff.example.org", "name": "New", "role": "editor", "password": PASSWORD},
    )
    page = f"/admin/subscribers/{sid}"
    post_form(client, page, f"{page}/unsubscribe", {"list": "news"})
    mid = inbound.store(rt, b"From: q@example.org\r\nSubject: hi\r\n\r\nhello\r\n").id
    drain(rt)
    post_form(client, f"/admin/inbound/{mid}", f"/admin/inbound/{mid}", {"action": "handled"})
    post_form(client, f"/admin/inbound/{mid}", f"/admin/inbound/{mid}/reply", {"text": "Hi"})
    assert client.get("/api/lists/news/export", headers=bearer).status_code == 200
    actions = {r.action for r in _rows(rt)}
    assert {
        "campaign.create",
        "campaign.edit",
        "campaign.test",
        "settings.change",
        "settings.smtp_check",
        "dkim.generate",
        "suppression.add",
        "subscriber.view",
        "token.create",
        "list.create",
        "subscriber.create",
        "subscriber.unsubscribe",
        "user.create",
        "inbound.handled",
        "inbound.reply",
        "people.export",
    } <= actions, actions
    assert [(r.action, r.ip) for r in _rows(rt) if r.ip != "203.0.113.7"] == []


def test_command_line_entries_say_so_and_an_erasure_keeps_no_address(
    rt, client, accounts_by_role, tmp_path
):
    make_list(rt, "news")
    # outside any request (as the command line or a worker would)
    csv = tmp_path / "people.csv"
    csv.write_text("email\nnew@example.org\n")
    imports.create_job(rt, path=csv, list_slug="news", actor="cli", consent="test")
    sid = subscribers.create(rt, email="bye@example.org", lists=["news"], consent="test")
    client.environ_base.update(PEER)
    session_login(client, rt, accounts_by_role["owner"])
    from listmgr.services import privacy

    privacy.erase_subscriber(rt, sid, origin=Origin(source="admin", actor="owner", ip="1.2.3.4"))
    by_action = {r.action: r.ip for r in _rows(rt)}
    assert by_action["people.import"] == "" and by_action["subscriber.erase"] == ""
    page = client.get("/admin/audit").text
    assert "— (command line or background job)" in page
    assert "— (not kept for an erasure)" in page
