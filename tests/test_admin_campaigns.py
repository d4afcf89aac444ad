"""Campaigns in the admin: compose, preview as a subscriber, test-send, send, progress, stats."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from listmgr.models import AuditLog, Campaign
from listmgr.services.subscriptions import Origin
from tests.admin_support import accounts_by_role, post_form, session_login  # noqa: F401
from tests.campaign_support import make_list, person
from tests.conftest import drain

pytest.importorskip("listmgr.services.campaigns")

BODY = "<h1>Hello {{ subscriber.name }}</h1><p>News of the month.</p>"


@pytest.fixture
def editor(client, rt, accounts_by_role):
    make_list(rt, "news", postal_address="1 Main St, Town", from_email="news@example.org")
    for email, name in (("ada@example.org", "Ada <b>L</b>"), ("alan@example.org", "Alan")):
        person(rt, email, ["news"], name=name, consent="test", origin=Origin(source="test"))
    session_login(client, rt, accounts_by_role["editor"])
    return client


def _draft(client) -> int:
    resp = post_form(
        client,
        "/admin/campaigns/new",
        "/admin/campaigns/new",
        {
            "name": "May news",
            "subject": "News for {{ subscriber.name }}",
            "lists": ["news"],
            "body": BODY,
            "content_format": "html",
        },
    )
    assert resp.status_code == 302, resp.text
    return int(resp.headers["Location"].rsplit("/", 1)[1])


def test_compose_refuses_a_broken_template_and_saves_nothing(editor, rt):
    resp = post_form(
        editor,
        "/admin/campaigns/new",
        "/admin/campaigns/new",
        {"name": "Broken", "subject": "Hi", "lists": ["news"], "body": "<p>{{ oops(</p>"},
    )
    assert resp.status_code == 422
    assert "{{ oops(" in resp.text  # what was typed is kept for fixing
    no_list = post_form(
        editor,
        "/admin/campaigns/new",
        "/admin/campaigns/new",
        {"name": "No list", "subject": "Hi", "body": "<p>x</p>"},
    )
    assert no_list.status_code == 422 and "list" in no_list.text
    with rt.db.session() as s:
        assert s.scalar(select(func.count(Campaign.id))) == 0


def test_preview_as_a_subscriber_is_personal_and_sandboxed(editor, rt):
    cid = _draft(editor)
    page = editor.get(f"/admin/campaigns/{cid}?as=ada@example.org")
    assert page.status_code == 200 and "News for Ada &lt;b&gt;L&lt;/b&gt;" in page.text
    assert (
        f'sandbox title="Preview of the message" src="/admin/campaigns/{cid}/preview.html'
        in page.text
    )
    html = editor.get(f"/admin/campaigns/{cid}/preview.html?as=ada@example.org")
    assert html.headers["Content-Security-Policy"].startswith("sandbox")
    assert "Hello Ada &lt;b&gt;L&lt;/b&gt;" in html.text and "1 Main St, Town" in html.text
    missing = editor.get(f"/admin/campaigns/{cid}/preview.html?as=nobody@example.org")
    assert "no subscriber" in missing.text


def test_save_test_send_send_and_follow_progress(editor, rt, sink, accounts_by_role):
    cid = _draft(editor)
    detail = f"/admin/campaigns/{cid}"
    resp = post_form(
        editor,
        detail,
        detail,
        {
            "name": "May news",
            "subject": "Our May news",
            "lists": ["news"],
            "body": BODY + "<p>PS</p>",
        },
    )
    assert resp.status_code == 302
    resp = post_form(
        editor, detail, f"{detail}/test", {"to": "me@staff.example.org", "as": "ada@example.org"}
    )
    assert resp.status_code == 302
    [test_mail] = sink.wait_for(1)
    assert test_mail.rcpt_tos == ["me@staff.example.org"]
    assert "Our May news" in test_mail.message["Subject"]
    resp = post_form(editor, detail, f"{detail}/send", {})
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"{cid}/stats")
    drain(rt)
    deadline = time.monotonic() + 30
    while True:
        progress = editor.get(f"/admin/campaigns/{cid}/progress.json").json
        if progress["done"] or time.monotonic() > deadline:
            break
        drain(rt)
    assert progress["status"] == "sent" and progress["sent"] == 2 and progress["audience"] == 2
    got = sorted(r for m in sink.messages[1:] for r in m.rcpt_tos)
    assert got == ["ada@example.org", "alan@example.org"]
    stats = editor.get(f"/admin/campaigns/{cid}/stats")
    assert stats.status_code == 200 and 'data-poll="/admin/campaigns/' in stats.text
    for chart in ("timeline", "outcome"):
        svg = editor.get(f"/admin/charts/campaign/{cid}/{chart}.svg")
        assert svg.status_code == 200 and b"<script" not in svg.data
    assert editor.get(detail).status_code == 302  # a sent campaign opens on its stats
    with rt.db.session() as s:
        actions = set(s.scalars(select(AuditLog.action).where(AuditLog.target_id == str(cid))))
    assert {"campaign.create", "campaign.test", "campaign.send"} <= actions
    again = post_form(editor, f"{detail}/stats", f"{detail}/send", {})
    assert again.status_code == 409


def test_schedule_pause_resume_cancel(editor, rt):
    cid = _draft(editor)
    detail = f"/admin/campaigns/{cid}"
    past = post_form(editor, detail, f"{detail}/schedule", {"at": "2001-01-01T00:00"})
    assert past.status_code == 422
    bad = post_form(editor, detail, f"{detail}/schedule", {"at": "tomorrow"})
    assert bad.status_code == 422
    ok = post_form(editor, detail, f"{detail}/schedule", {"at": "2099-05-31T09:00"})
    assert ok.status_code == 302
    with rt.db.session() as s:
        row = s.get(Campaign, cid)
        assert row.status == "scheduled" and row.scheduled_at.year == 2099
    assert "for 2099-05-31 09:00 UTC" in editor.get(detail).text
    assert post_form(editor, detail, f"{detail}/pause", {}).status_code == 409
    assert post_form(editor, detail, f"{detail}/schedule", {"at": ""}).status_code == 302
    assert post_form(editor, detail, f"{detail}/cancel", {}).status_code == 302
    with rt.db.session() as s:
        assert s.get(Campaign, cid).status == "cancelled"


def test_analyst_sees_stats_but_never_the_composer(client, rt, editor, accounts_by_role):
    cid = _draft(editor)
    session_login(client, rt, accounts_by_role["analyst"])
    resp = client.get(f"/admin/campaigns/{cid}")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/stats")
    stats = client.get(f"/admin/campaigns/{cid}/stats")
    assert stats.status_code == 200 and "@example.org" not in stats.text
    assert client.get(f"/admin/campaigns/{cid}/preview.html").status_code == 403
