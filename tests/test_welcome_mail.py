"""A list's welcome mail: sent through the outbox once per confirmation, never for people
added by an admin or an import; the list option is set by form and API by those who may."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from listmgr.models import MailingList, Outbox
from tests.admin_support import accounts_by_role, session_login  # noqa: F401
from tests.conftest import drain
from tests.helpers import link_with, path_of
from tests.principal_support import make_caller

TEXT = "<b>Hello</b> & welcome!\n\nWe write twice a month."


def _welcomes(rt) -> list[Outbox]:
    with rt.db.session() as s:
        return list(s.scalars(select(Outbox).where(Outbox.kind == "welcome")))


def _sign_up(rt, client, sink, slug: str, email: str):
    sent = len(sink.messages)
    assert client.post(f"/subscribe/{slug}", data={"email": email}).status_code == 200
    drain(rt)
    return path_of(link_with(sink.wait_for(sent + 1)[sent].message, "/confirm/"))


def test_confirming_sends_one_welcome_with_the_lists_words(rt, api, client, sink):
    resp = api.post(
        "/api/lists",
        json={"slug": "news", "name": "News", "welcome_mail": True, "welcome_text": TEXT},
    )
    assert resp.status_code == 201 and resp.json["welcome_mail"] is True
    assert resp.json["welcome_text"] == TEXT
    link = _sign_up(rt, client, sink, "news", "ann@example.org")
    assert _welcomes(rt) == []  # nothing before the confirmation
    assert client.post(link).status_code == 200
    drain(rt)
    mail = sink.wait_for(2)[1].message
    assert mail["Subject"] == "Welcome to News" and "ann@example.org" in mail["To"]
    assert mail["List-Unsubscribe"]
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert "<b>Hello</b> & welcome!" in text
    assert "&lt;b&gt;Hello&lt;/b&gt; &amp; welcome!" in html and "<b>Hello" not in html
    assert "/u/" in text and "/p/" in text
    # the same link again confirms nothing and welcomes no one twice
    assert client.post(link).status_code != 200
    drain(rt)
    assert len(_welcomes(rt)) == 1 and len(sink.messages) == 2


def test_no_welcome_without_the_option_nor_for_admin_adds(rt, api, client, sink):
    api.post("/api/lists", json={"slug": "plain", "name": "Plain"})
    api.post("/api/lists", json={"slug": "warm", "name": "Warm", "welcome_mail": True})
    assert client.post(_sign_up(rt, client, sink, "plain", "bo@example.org")).status_code == 200
    resp = api.post(
        "/api/subscribers",
        json={"email": "cy@example.org", "lists": ["warm"], "consent": "asked in the shop"},
    )
    assert resp.status_code in (200, 201), resp.json
    drain(rt)
    assert _welcomes(rt) == []
    # a standard welcome when the list has no words of its own
    assert client.post(_sign_up(rt, client, sink, "warm", "di@example.org")).status_code == 200
    drain(rt)
    mail = sink.to("di@example.org")[-1].message
    assert mail["Subject"] == "Welcome to Warm"
    assert "now gets" in mail.get_body(("plain",)).get_content()


@pytest.mark.parametrize(
    "body",
    [
        {"welcome_mail": "yes"},
        {"welcome_mail": 1},
        {"welcome_text": 5},
        {"welcome_text": "x" * 5001},
    ],
)
def test_bad_welcome_values_are_refused(rt, api, body):
    api.post("/api/lists", json={"slug": "news", "name": "News"})
    resp = api.patch("/api/lists/news", json=body)
    assert resp.status_code == 422 and "error" in resp.json
    with rt.db.session() as s:
        lst = s.scalar(select(MailingList))
        assert (lst.welcome_mail, lst.welcome_text) == (False, "")


def test_only_list_writers_set_the_welcome(app, rt, api, accounts_by_role):
    api.post("/api/lists", json={"slug": "news", "name": "News"})
    analyst = make_caller(app, rt, accounts_by_role, "session", "analyst")
    resp = analyst.api("PATCH", "/api/lists/news", json={"welcome_mail": True})
    assert resp.status_code == 403
    admin = make_caller(app, rt, accounts_by_role, "session", "admin")
    resp = admin.page_post(
        "/admin/lists/news",
        "/admin/lists/news",
        {"name": "News", "opt_in": "double", "welcome_mail": "1", "welcome_text": "Hi <there>"},
    )
    assert resp.status_code in (200, 302)
    page = admin.client.get("/admin/lists/news").text
    assert 'id="welcome_mail" checked' in page and "Hi &lt;there&gt;" in page
    with rt.db.session() as s:
        lst = s.scalar(select(MailingList))
        assert (lst.welcome_mail, lst.welcome_text) == (True, "Hi <there>")
