"""Campaign templates in the admin: shipped designs, saved templates (create, edit, preview,
delete), who may do what, CSRF, bad input, and new campaigns started from either."""

from __future__ import annotations

import html

import pytest
from markupsafe import escape
from sqlalchemy import func, select

from listmgr.models import AuditLog, CampaignTemplate
from listmgr.services import accounts, campaign_templates, lists
from listmgr.web.admin import visual_editor_installed
from tests.admin_support import (  # noqa: F401
    accounts_by_role,
    csrf_from,
    post_form,
    session_login,
)

BODY = "<h1>Hello {{ subscriber.name }}</h1><p>Our <b>spring</b> letter.</p>"


@pytest.fixture
def as_role(client, rt, accounts_by_role):
    lists.create(rt, slug="news", name="News", postal_address="1 Main St, Town")

    def sign_in(role: str):
        session_login(client, rt, accounts_by_role[role])
        return client

    return sign_in


def _rows(rt) -> list[CampaignTemplate]:
    with rt.db.session() as s:
        rows = list(s.scalars(select(CampaignTemplate).order_by(CampaignTemplate.id)))
        s.expunge_all()
        return rows


def _audit(rt, action: str) -> list[AuditLog]:
    with rt.db.session() as s:
        rows = list(s.scalars(select(AuditLog).where(AuditLog.action == action)))
        s.expunge_all()
        return rows


def _create(client, name: str = "Spring letter", body: str = BODY, fmt: str = "visual"):
    return post_form(
        client,
        "/admin/templates/new",
        "/admin/templates/new",
        {"name": name, "content_format": fmt, "body": body},
    )


def test_editor_creates_edits_previews_and_deletes_a_template(rt, as_role):
    client = as_role("editor")
    page = client.get("/admin/templates")
    assert page.status_code == 200
    for d in campaign_templates.designs():
        assert f'data-design="{d.key}"' in page.text
    assert 'href="/admin/templates"' in page.text  # the nav link

    resp = _create(client)
    assert resp.status_code == 302
    (row,) = _rows(rt)
    assert (row.name, row.content_format, row.body) == ("Spring letter", "visual", BODY)
    assert row.created_by == "editor@staff.example.org"
    assert [a.target_id for a in _audit(rt, "template.create")] == [str(row.id)]

    edit = client.get(f"/admin/templates/{row.id}")
    assert edit.status_code == 200 and str(escape(BODY)) in edit.text
    resp = post_form(
        client,
        f"/admin/templates/{row.id}",
        f"/admin/templates/{row.id}",
        {"name": "  Spring   letter 2 ", "content_format": "html", "body": BODY + "<p>PS</p>"},
    )
    assert resp.status_code == 302
    (row,) = _rows(rt)
    assert (row.name, row.content_format) == ("Spring letter 2", "html")
    (edited,) = _audit(rt, "template.edit")
    assert edited.detail["fields"] == ["body", "content_format", "name"]

    preview = client.get(f"/admin/templates/{row.id}/preview.html")
    assert preview.status_code == 200
    assert "Hello Sample Person" in preview.text and "<b>spring</b>" in preview.text
    assert preview.headers["Content-Security-Policy"].startswith("sandbox")

    resp = post_form(client, "/admin/templates", f"/admin/templates/{row.id}/delete", {})
    assert resp.status_code == 302 and _rows(rt) == []
    assert len(_audit(rt, "template.delete")) == 1
    assert client.get(f"/admin/templates/{row.id}").status_code == 404


def test_an_analyst_may_look_but_not_change(rt, as_role, accounts_by_role):
    editor = as_role("editor")
    _create(editor)
    (row,) = _rows(rt)
    token = csrf_from(editor.get("/admin/templates").text)
    analyst = as_role("analyst")
    page = analyst.get("/admin/templates")
    assert page.status_code == 200 and "Spring letter" in page.text
    assert "New template" not in page.text and "Delete" not in page.text
    form = analyst.get(f"/admin/templates/{row.id}")
    assert form.status_code == 200
    assert "save-template" not in form.text and "readonly" in form.text
    assert analyst.get(f"/admin/templates/{row.id}/preview.html").status_code == 200
    assert analyst.get("/admin/templates/designs/digest/preview.html").status_code == 200
    token = csrf_from(analyst.get("/admin/templates").text)
    assert analyst.get("/admin/templates/new").status_code == 403
    for url, data in (
        ("/admin/templates/new", {"name": "Mine", "content_format": "html", "body": "x"}),
        (f"/admin/templates/{row.id}", {"name": "Taken", "content_format": "html", "body": "x"}),
        (f"/admin/templates/{row.id}/delete", {}),
    ):
        assert analyst.post(url, data={**data, "csrf_token": token}).status_code == 403
    assert [(r.name, r.body) for r in _rows(rt)] == [("Spring letter", BODY)]
    # and nobody signed out gets anything
    analyst.post("/admin/logout", data={"csrf_token": token})
    assert analyst.get("/admin/templates").status_code in (302, 401)


def test_changes_need_the_csrf_token(rt, as_role):
    client = as_role("editor")
    _create(client)
    (row,) = _rows(rt)
    for url, data in (
        ("/admin/templates/new", {"name": "Forged", "content_format": "html", "body": "x"}),
        (f"/admin/templates/{row.id}", {"name": "Forged", "content_format": "html", "body": "x"}),
        (f"/admin/templates/{row.id}/delete", {}),
    ):
        assert client.post(url, data=data).status_code == 400
        assert client.post(url, data={**data, "csrf_token": "forged"}).status_code == 400
    assert [r.name for r in _rows(rt)] == ["Spring letter"]


@pytest.mark.parametrize(
    ("values", "status", "message"),
    [
        ({"name": "", "content_format": "html", "body": BODY}, 422, "give the template a name"),
        ({"name": "x" * 201, "content_format": "html", "body": BODY}, 422, "at most 200"),
        ({"name": "Bell\x07", "content_format": "html", "body": BODY}, 422, "one line"),
        ({"name": "Doc", "content_format": "docx", "body": BODY}, 422, "content_format must"),
        ({"name": "Empty", "content_format": "html", "body": "  \n"}, 422, "body is required"),
        ({"name": "Broken", "content_format": "html", "body": "{{ oops"}, 422, "body, line 1"),
        (
            {"name": "Sneaky", "content_format": "html", "body": "{{ ''.__class__ }}"},
            422,
            "not allowed",
        ),
        ({"name": "Spring letter", "content_format": "html", "body": BODY}, 409, "already"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message_and_nothing_changes(
    rt, as_role, values, status, message
):
    client = as_role("editor")
    _create(client)
    _create(client, name="Autumn letter")
    before = [(r.name, r.content_format, r.body) for r in _rows(rt)]
    resp = post_form(client, "/admin/templates/new", "/admin/templates/new", values)
    assert resp.status_code == status
    assert html.escape(message, quote=True) in resp.text
    other = _rows(rt)[1].id  # "Autumn letter": renaming it to "Spring letter" is a conflict
    url = f"/admin/templates/{other}"
    resp = post_form(client, url, url, values)
    assert resp.status_code == status
    assert html.escape(message, quote=True) in resp.text
    assert [(r.name, r.content_format, r.body) for r in _rows(rt)] == before
    assert client.get("/admin/templates/123456/preview.html").status_code == 404
    assert client.get("/admin/templates/designs/nope/preview.html").status_code == 404


def test_a_new_campaign_starts_from_a_template_or_a_design(rt, as_role):
    client = as_role("editor")
    _create(client, body="<p>From the {{ list.name }} template &amp; more</p>")
    (row,) = _rows(rt)
    page = client.get(f"/admin/campaigns/new?template={row.id}")
    assert page.status_code == 200
    assert "&lt;p&gt;From the {{ list.name }} template &amp;amp; more&lt;/p&gt;" in page.text
    if visual_editor_installed():
        assert 'value="visual" checked' in page.text
    else:  # installed without npm: no visual mode is offered
        assert 'value="visual"' not in page.text
    design = campaign_templates.design("announcement")
    page = client.get("/admin/campaigns/new?design=announcement")
    assert str(escape(design.body)) in page.text
    assert 'value="html" checked' in page.text
    for bad in (
        "template=999999",
        "template=abc",
        "template=-1",
        "template=1" + "0" * 30,
        "template=²",
    ):
        assert client.get(f"/admin/campaigns/new?{bad}").status_code == 404
    assert client.get("/admin/campaigns/new?design=../designs").status_code == 404


def test_every_shipped_design_builds_and_fits_a_phone(rt, as_role):
    client = as_role("editor")
    designs = campaign_templates.designs()
    assert len(designs) == 3
    for d in designs:
        view = campaign_templates.preview(
            rt, body=d.body, content_format=d.content_format, name=d.name
        )
        assert "Your list" in view.html and "{{" not in view.html
        assert 'name="viewport"' in view.html
        assert "max-width" in view.html or 'width="100%"' in view.html
        resp = client.get(f"/admin/templates/designs/{d.key}/preview.html")
        assert resp.status_code == 200 and "Sample Person" in resp.text
        copy = client.get(f"/admin/templates/new?design={d.key}")
        assert copy.status_code == 200 and f"{d.name} (mine)" in copy.text
    assert client.get("/admin/templates/new?design=missing").status_code == 404
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(CampaignTemplate)) == 0


def test_the_api_manages_templates_with_the_same_rules(rt, client, api):
    resp = api.get("/api/templates/designs")
    assert resp.status_code == 200 and len(resp.json["items"]) == 3
    resp = api.post(
        "/api/templates", json={"name": "Api", "content_format": "visual", "body": BODY}
    )
    assert resp.status_code == 201, resp.text
    tid = resp.json["id"]
    assert resp.json["name"] == "Api" and resp.json["body"] == BODY
    resp = api.patch(f"/api/templates/{tid}", json={"name": "Api 2"})
    assert resp.status_code == 200 and resp.json["content_format"] == "visual"
    assert [t["name"] for t in api.get("/api/templates").json["items"]] == ["Api 2"]
    for payload, field in (
        ({"name": "X", "body": "{{ oops"}, "body"),
        ({"name": "X", "body": BODY, "content_format": "pdf"}, "content_format"),
        ({"name": "X", "body": BODY, "extra": 1}, None),
        ({"name": 5, "body": BODY}, None),
        ({"name": "Api 2", "body": BODY}, "name"),
    ):
        resp = api.post("/api/templates", json=payload)
        assert 400 <= resp.status_code < 500 and "error" in resp.json, payload
        if field:
            assert resp.json["error"]["field"] == field
    assert api.patch(f"/api/templates/{tid}", json={"body": ""}).status_code == 422
    assert api.get("/api/templates/999999").status_code == 404

    analyst = accounts.create_token(rt, role="analyst", name="reader")
    headers = {"Authorization": f"Bearer {analyst}"}
    assert client.get(f"/api/templates/{tid}", headers=headers).status_code == 200
    assert client.delete(f"/api/templates/{tid}", headers=headers).status_code == 403
    assert (
        client.post("/api/templates", headers=headers, json={"name": "N", "body": BODY}).status_code
        == 403
    )
    assert client.get("/api/templates").status_code == 401
    assert [(r.name, r.body) for r in _rows(rt)] == [("Api 2", BODY)]
    assert api.delete(f"/api/templates/{tid}").status_code == 204 and _rows(rt) == []
    assert len(_audit(rt, "template.delete")) == 1
