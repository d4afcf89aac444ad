"""The composer's live preview and audience count before any save, the visual format, and one
audit entry per save (previews store and log nothing)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from listmgr.models import AuditLog, Campaign
from listmgr.services import campaigns, lists
from listmgr.services.subscriptions import Origin
from tests.admin_support import accounts_by_role, csrf_from, session_login  # noqa: F401
from tests.campaign_support import make_list, person

BODY = "<h1>Hello {{ subscriber.name }}</h1><p>It is <b>spring</b>.</p>"


@pytest.fixture
def editor(client, rt, accounts_by_role):
    make_list(rt, "news", postal_address="1 Main St, Town", from_email="news@example.org")
    lists.create(rt, slug="other", name="Other", postal_address="2 Side St, Town")
    for email, name in (("ada@example.org", "Ada"), ("alan@example.org", "Alan")):
        person(rt, email, ["news"], name=name, consent="test", origin=Origin(source="test"))
    session_login(client, rt, accounts_by_role["editor"])
    return client


def _form(client, **values):
    token = csrf_from(client.get("/admin/campaigns/new").text)
    data = {"name": "", "subject": "", "body": "", "content_format": "html", "csrf_token": token}
    data.update(values)
    return data


def _counts(rt) -> tuple[int, int]:
    with rt.db.session() as s:
        return (
            s.scalar(select(func.count()).select_from(Campaign)) or 0,
            s.scalar(select(func.count()).select_from(AuditLog)) or 0,
        )


def test_a_new_campaign_previews_from_the_first_keystroke_and_stores_nothing(editor, rt):
    before = _counts(rt)
    # nothing chosen yet but one letter typed: a sample list and person stand in
    resp = editor.post("/admin/campaigns/preview.json", data=_form(editor, body="Hq7"))
    assert resp.status_code == 200, resp.text
    assert resp.json["audience"] == {"count": 0, "label": "0"}
    assert resp.json["subject"] == "(no subject yet)"
    page = editor.post("/admin/campaigns/preview.html", data=_form(editor, body="Hq7"))
    assert page.status_code == 200 and "Hq7" in page.text
    assert "Your list" in page.text
    # the audience follows the lists, and the preview names the chosen subscriber
    data = _form(
        editor,
        subject="For {{ subscriber.name }}",
        body=BODY,
        lists=["news"],
        **{"as": "ada@example.org"},
    )
    resp = editor.post("/admin/campaigns/preview.json", data=data)
    assert resp.json["subject"] == "For Ada"
    assert "<ada@example.org>" in resp.json["to"]
    assert resp.json["audience"]["count"] == 2
    assert "<news@example.org>" in resp.json["from"]
    page = editor.post("/admin/campaigns/preview.html", data=data)
    assert "Hello Ada</h1>" in page.text and "<b>spring</b>" in page.text
    assert page.headers["Content-Security-Policy"].startswith("sandbox")
    assert page.headers["Cache-Control"] == "no-store"
    data["lists"] = ["other"]
    assert editor.post("/admin/campaigns/preview.json", data=data).json["audience"]["count"] == 0
    assert _counts(rt) == before


@pytest.mark.parametrize(
    ("values", "status", "field", "message"),
    [
        ({"body": "{{ oops"}, 422, "body", "template error in body, line 1"),
        ({"body": "{{ ''.__class__ }}"}, 422, "body", "not allowed"),
        ({"content_format": "docx"}, 422, "content_format", "content_format must be"),
        ({"lists": ["nope"]}, 422, "lists[0]", "there is no list 'nope'"),
        ({"segment_id": "x"}, 422, "segment_id", "choose a segment"),
        ({"from_email": "not an address"}, 422, "from_email", ""),
        ({"as": "nobody@example.org"}, 404, "email", "no such subscriber"),
    ],
)
def test_bad_content_gets_a_clear_error_and_nothing_changes(
    editor, rt, values, status, field, message
):
    before = _counts(rt)
    resp = editor.post(
        "/admin/campaigns/preview.json", data=_form(editor, **{"body": BODY, **values})
    )
    assert resp.status_code == status
    assert resp.json["error"]["field"] == field and message in resp.json["error"]["message"]
    page = editor.post(
        "/admin/campaigns/preview.html", data=_form(editor, **{"body": BODY, **values})
    )
    assert page.status_code == 200 and "Hello" not in page.text  # an explanation instead
    assert page.headers["Content-Security-Policy"].startswith("sandbox")
    assert _counts(rt) == before


def test_previews_need_csrf_and_the_right_to_write_campaigns(editor, client, rt, accounts_by_role):
    data = _form(editor, body=BODY)
    token = data.pop("csrf_token")
    for url in ("/admin/campaigns/preview.json", "/admin/campaigns/preview.html"):
        assert editor.post(url, data=data).status_code == 400
        assert editor.post(url, data={**data, "csrf_token": "forged"}).status_code == 400
    session_login(client, rt, accounts_by_role["analyst"])
    token = csrf_from(client.get("/admin/campaigns").text)
    for url in ("/admin/campaigns/preview.json", "/admin/campaigns/preview.html"):
        assert client.post(url, data={**data, "csrf_token": token}).status_code == 403
    assert (
        client.post(
            "/admin/campaigns/999/preview.json", data={**data, "csrf_token": token}
        ).status_code
        == 403
    )


def test_a_saved_draft_previews_unsaved_edits_and_each_save_is_one_audit_entry(editor, rt):
    cid = campaigns.create(
        rt, actor="tests", name="Spring", subject="Spring", lists=["news"], body=BODY
    )
    page = editor.get(f"/admin/campaigns/{cid}")
    assert f'data-preview-json="/admin/campaigns/{cid}/preview.json"' in page.text

    def edits() -> int:
        with rt.db.session() as s:
            return (
                s.scalar(
                    select(func.count())
                    .select_from(AuditLog)
                    .where(AuditLog.action == "campaign.edit", AuditLog.target_id == str(cid))
                )
                or 0
            )

    typed = ""
    for letter in "Bonjour":  # every keystroke refreshes the preview
        typed += letter
        data = _form(
            editor,
            name="Spring",
            subject="Spring",
            lists=["news"],
            body=f"<p>{typed}</p>",
            content_format="visual",
        )
        resp = editor.post(f"/admin/campaigns/{cid}/preview.html", data=data)
        assert f"<p>{typed}</p>" in resp.text
        assert editor.post(f"/admin/campaigns/{cid}/preview.json", data=data).status_code == 200
    assert campaigns.get(rt, cid).body == BODY and edits() == 0
    resp = editor.post(f"/admin/campaigns/{cid}", data=data)
    assert resp.status_code == 302
    info = campaigns.get(rt, cid)
    assert (info.body, info.content_format) == ("<p>Bonjour</p>", "visual")
    assert edits() == 1
    assert editor.post("/admin/campaigns/424242/preview.json", data=data).status_code == 404


def test_the_visual_format_is_built_as_html(rt, editor):
    """What the visual editor writes goes through the layout and CSS inlining as HTML does."""
    views = {}
    for fmt in ("visual", "html"):
        cid = campaigns.create(
            rt,
            actor="tests",
            name=f"As {fmt}",
            subject="Hi",
            lists=["news"],
            body=BODY,
            content_format=fmt,
        )
        views[fmt] = campaigns.preview(rt, cid, email="ada@example.org")

    def same(part: str) -> set[str]:  # signed links differ by campaign only
        return {re.sub(r"/([a-z])/[^\"\s<]+", r"/\1/…", getattr(v, part)) for v in views.values()}

    assert len(same("html")) == 1 and len(same("text")) == 1
    assert "<h1" in views["visual"].html and 'style="' in views["visual"].html  # inlined
    assert "Unsubscribe" in views["visual"].html


def test_the_api_takes_the_visual_format_and_refuses_others(api, rt):
    lists.create(rt, slug="news", name="News", postal_address="1 Main St, Town")
    resp = api.post(
        "/api/campaigns",
        json={
            "name": "V",
            "subject": "S",
            "lists": ["news"],
            "body": BODY,
            "content_format": "visual",
        },
    )
    assert resp.status_code == 201, resp.text
    assert resp.json["content_format"] == "visual"
    resp = api.post(
        "/api/campaigns",
        json={
            "name": "W",
            "subject": "S",
            "lists": ["news"],
            "body": BODY,
            "content_format": "word",
        },
    )
    assert resp.status_code == 422 and "error" in resp.json
