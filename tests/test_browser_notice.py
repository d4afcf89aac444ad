"""A visitor in headless Chromium opens a sign-up form, follows its "full notice" link and reads
what the list collects and which mail servers receive it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from werkzeug.serving import make_server

from listmgr.services import fielddefs, lists
from tests.browser_support import browser_page, require_chromium, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]
RELAY = "relay.mailer.example.net"


@pytest.fixture
def server(make_runtime, sink) -> Iterator[str]:
    from listmgr.app import create_app

    rt = make_runtime(smtp_url=f"{sink.url} smtp://{RELAY}:587?starttls=1")
    lists.create(rt, slug="news", name="Village News")
    fielddefs.create_field(rt, key="street", label="Street you live in", type="text")
    fielddefs.create_interest(rt, key="markets", label="Farmers' markets")
    lists.update(rt, "news", form_fields=["street"], form_interests=["markets"])
    srv = make_server("127.0.0.1", 0, create_app(rt=rt, migrate=False), threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.port}"
    srv.shutdown()


def test_the_full_notice_from_the_sign_up_form(server):
    require_chromium()
    with browser_page() as page:
        page.goto(f"{server}/subscribe/news")
        short = page.locator(".notice-short").inner_text()
        assert "sends you Village News" in short and "erase" in short
        page.get_by_role("link", name="Full privacy notice").click()
        page.wait_for_url(f"{server}/privacy/news")
        screenshot(page, "privacy-notice")
        assert page.locator("h1").inner_text() == "Privacy notice: Village News"
        collected = page.locator("#collected").inner_text()
        assert "Street you live in" in collected
        assert "Interests: Farmers' markets" in collected
        assert "Opens of our mail" in collected
        recipients = page.locator("#recipients").inner_text()
        assert RELAY in recipients and "127.0.0.1" in recipients
        assert "587" not in recipients


def test_the_admins_changes_make_new_versions_and_the_proof_keeps_the_old(app_server, rt, sink):
    """A visitor signs up and confirms; an owner adds a form field and a second SMTP server
    in the admin; the notice names both in a new version, while the visitor's proof of consent
    still shows the version they were given."""
    from sqlalchemy import select

    from listmgr.models import Subscriber
    from listmgr.services import accounts
    from tests.browser_support import PASSWORD, sign_in
    from tests.conftest import drain
    from tests.helpers import link_with

    require_chromium()
    lists.create(rt, slug="news", name="Village News")
    fielddefs.create_field(rt, key="street", label="Street you live in", type="text")
    accounts.create_user(rt, email="owner@staff.example.org", password=PASSWORD, role="owner")
    base = app_server
    with browser_page() as page:
        page.goto(f"{base}/subscribe/news")
        page.fill("input[name=email]", "emile@exämple.org")  # an IDN domain, non-ASCII name
        page.fill("input[name=name]", "Émile Zoë")
        page.click("button[type=submit]")
        page.wait_for_load_state()
        drain(rt)
        [mail] = sink.wait_for(1)
        assert mail.rcpt_tos == ["emile@xn--exmple-cua.org"]
        page.goto(link_with(mail.message, "/confirm/").replace("http://listmgr.test", base))
        page.click("#confirm")
        page.goto(f"{base}/privacy/news")
        assert "Version 1" in page.locator("main").inner_text()
        assert "Street you live in" not in page.locator("#collected").inner_text()

        sign_in(page, base, "owner@staff.example.org")
        page.goto(f"{base}/admin/lists/news")
        page.fill("textarea[name=form_fields]", "street")
        page.click("button:has-text('Save list')")
        page.goto(f"{base}/privacy/news")
        assert "Version 2" in page.locator("main").inner_text()
        assert "Street you live in" in page.locator("#collected").inner_text()
        assert RELAY not in page.locator("#recipients").inner_text()
        page.goto(f"{base}/admin/settings")
        page.fill("#smtp-host-2", RELAY)
        page.fill("#smtp-port-2", "587")
        # the tests' sender is at a reserved name (.test), which the form does not accept
        page.fill("#set-default_from_email", "news@example.org")
        page.click("button:has-text('Save settings')")
        assert page.locator("#smtp-host-2").input_value() == RELAY
        assert page.locator("p.error").count() == 0, page.locator("main").inner_text()

        page.goto(f"{base}/privacy/news")
        screenshot(page, "privacy-notice-after-changes")
        main = page.locator("main").inner_text()
        assert "Version 3" in main  # one version per change that altered the notice
        assert "Street you live in" in page.locator("#collected").inner_text()
        assert RELAY in page.locator("#recipients").inner_text()

        with rt.db.session() as s:
            sid = s.scalar(select(Subscriber.id))
        page.goto(f"{base}/admin/subscribers/{sid}/consent")
        proof = page.locator("main").inner_text()
        assert "Privacy notice shown: Village News, version 1" in proof
        assert RELAY not in proof and "Street you live in" not in proof


@pytest.fixture
def app_server(rt) -> Iterator[str]:
    from listmgr.app import create_app

    srv = make_server("127.0.0.1", 0, create_app(rt=rt, migrate=False), threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.port}"
    srv.shutdown()
