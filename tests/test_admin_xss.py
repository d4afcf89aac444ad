"""Stored payloads from the public form (names, field values) and from inbound mail render inert on
every admin page that shows them."""

from __future__ import annotations

import pytest

from listmgr.services import lists
from tests.admin_support import accounts_by_role, session_login  # noqa: F401
from tests.conftest import drain

SCRIPT = '<script>alert("x")</script>'
IMG = '"><img src=x onerror=alert(1)>'
NAME = SCRIPT + IMG
RAW = (SCRIPT, "<img src=x onerror", "onerror=alert(1)>")


def _inert(html: str, where: str, *, shown: bool = True) -> None:
    for needle in RAW:
        assert needle not in html, f"{where}: raw {needle!r} in the page"
    if shown:
        assert "&lt;script&gt;" in html or "&lt;img" in html, f"{where}: payload not shown"


@pytest.fixture
def stored(app, rt):
    """A subscriber who typed script into every box of the public form, on a list so named."""
    from listmgr.services import fielddefs

    fielddefs.create_field(rt, key="city", label="City " + IMG, type="text")
    lists.create(
        rt,
        slug="evil",
        name="Evil " + NAME,
        form_fields=["city"],
        consent_wording="I agree " + SCRIPT,
        postal_address=IMG,
    )
    client = app.test_client()
    resp = client.post(
        "/subscribe/evil",
        data={
            "email": "victim@example.org",
            "name": NAME,
            "field_city": NAME,
            "consent_text": "I agree " + SCRIPT,
        },
    )
    assert resp.status_code == 200, resp.text
    drain(rt)
    from listmgr.services import subscribers

    [sub], _ = subscribers.search(rt, email="victim@example.org")
    assert sub.name == NAME
    return sub.id


def test_subscriber_payloads_render_inert_everywhere(client, rt, stored, accounts_by_role):
    session_login(client, rt, accounts_by_role["owner"])
    pages = [
        "/admin/subscribers",
        "/admin/subscribers?q=victim",
        "/admin/subscribers?list=evil",
        f"/admin/subscribers/{stored}",
        f"/admin/subscribers/{stored}/consent",
        f"/admin/subscribers/{stored}/erase",
        "/admin/lists",
        "/admin/lists/evil",
        "/admin/",
        "/admin/audit",
    ]
    for path in pages:
        resp = client.get(path)
        assert resp.status_code == 200, path
        _inert(resp.text, path, shown=not path.endswith(("/admin/", "/admin/audit", "/erase")))
    chart = client.get("/admin/charts/growth.svg").data.decode()
    assert "<script" not in chart and "&lt;script&gt;" in chart


def test_payloads_in_the_dev_outbox_and_inbox_render_inert(make_runtime, accounts_by_role):
    from listmgr.app import create_app
    from listmgr.services import accounts

    rt = make_runtime(smtp_url="")
    app = create_app(rt=rt, migrate=False)
    lists.create(rt, slug="evil", name="Evil " + NAME)
    client = app.test_client()
    client.post("/subscribe/evil", data={"email": "victim@example.org", "name": NAME})
    drain(rt)
    uid = accounts.create_user(
        rt, email="boss@staff.example.org", password="plum kettle orbit 42", role="owner"
    )
    from tests.admin_support import Account

    session_login(client, rt, Account(uid, "boss@staff.example.org", "owner"))
    page = client.get("/admin/outbox")
    _inert(page.text, "outbox", shown=False)
    mail_id = int(page.text.split("/admin/outbox/", 1)[1].split('"', 1)[0])
    _inert(client.get(f"/admin/outbox/{mail_id}").text, "outbox mail")
    _inert(client.get(f"/dev/outbox/{mail_id}").text, "dev outbox mail")
    html = client.get(f"/admin/outbox/{mail_id}/html")
    assert html.headers["Content-Security-Policy"].startswith("sandbox")

    inbound = pytest.importorskip("listmgr.services.inbound")
    raw = (
        f"From: {NAME} <x@example.net>\r\nTo: news@lists.example.test\r\n"
        f"Subject: {NAME}\r\nMessage-ID: <xss@example.net>\r\n"
        f"Content-Type: text/html\r\n\r\n<p>{SCRIPT}</p>\r\n"
    ).encode()
    stored = inbound.store(rt, raw, envelope_from="x@example.net")
    drain(rt)
    _inert(client.get("/admin/inbound?view=all").text, "inbox")
    _inert(client.get(f"/admin/inbound/{stored.id}").text, "inbound message")
    part = client.get(f"/admin/inbound/{stored.id}/html")
    assert part.headers["Content-Security-Policy"].startswith("sandbox")
    assert "script-src" not in part.headers["Content-Security-Policy"]


def test_segment_names_and_rules_render_inert(client, rt, accounts_by_role):
    segments = pytest.importorskip("listmgr.services.segments")
    sid = segments.create(
        rt, name="Seg " + NAME, rules={"all": [{"field": "name", "op": "eq", "value": NAME}]}
    )
    session_login(client, rt, accounts_by_role["editor"])
    _inert(client.get("/admin/segments").text, "segments", shown=False)
    page = client.get(f"/admin/segments/{sid}").text
    _inert(page, "segment")
