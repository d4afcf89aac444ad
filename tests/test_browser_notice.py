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
