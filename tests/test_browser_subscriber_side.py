"""The subscriber's own side in headless Chromium: leaving and undoing it, moving to a new
address confirmed from the new mailbox, and reading everything held about them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

from tests.browser_support import (
    browser_page,
    create_outbox_admin,
    require_chromium,
    screenshot,
    serve,
    sign_in_to_outbox,
)
from tests.conftest import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

OLD = "side@example.org"
NEW = "side.new@example.net"


def _mail_text(page, base: str, subject_part: str, to: str, timeout: float = 30) -> str:
    """The text of the newest mail with this subject to this address (the worker sends in the
    background, so the outbox is reloaded until it is there)."""
    deadline = time.monotonic() + timeout
    while True:
        page.goto(f"{base}/dev/outbox")
        rows = page.locator("table.data tbody tr")
        for i in range(rows.count()):
            row = rows.nth(i)
            text = row.inner_text()
            if subject_part in text and to in text:
                row.get_by_role("link").first.click()
                return page.locator("#text-part").inner_text()
        assert time.monotonic() < deadline, f"no mail {subject_part!r} to {to}"
        time.sleep(0.3)


def _url(text: str, path: str) -> str:
    found = re.search(rf"http://\S+{re.escape(path)}\S*", text)
    assert found, f"no {path} link in {text!r}"
    return found.group(0)


def test_leave_undo_move_address_and_read_my_data(tmp_path, database_url):
    require_chromium()
    env = {
        "LISTMGR_CONFIRM_WINDOW_MINUTES": "0",
        # the tests' database: SQLite, or PostgreSQL when the tests run on it
        "LISTMGR_DATABASE_URL": database_url,
        "LISTMGR_SECRET_KEY": "browser-test-secret-0123456789",
    }
    subprocess.run(
        [sys.executable, "-m", "listmgr", "demo"],
        cwd=tmp_path,
        check=True,
        env={**os.environ, **env},
    )
    create_outbox_admin(tmp_path, env)
    with serve(tmp_path, free_port(), **env) as base, browser_page() as page:
        sign_in_to_outbox(page, base)
        page.goto(f"{base}/subscribe/newsletter")
        page.fill("input[name=email]", OLD)
        page.fill("input[name=name]", "Side Person")
        page.click("button[type=submit]")
        page.goto(_url(_mail_text(page, base, "Please confirm", OLD), "/confirm/"))
        page.click("#confirm")
        assert "now subscribed" in page.locator("main").inner_text()
        page.goto(f"{base}/subscribe/newsletter")
        page.fill("input[name=email]", OLD)
        page.click("button[type=submit]")
        text = _mail_text(page, base, "already subscribed", OLD)
        unsubscribe_url = _url(text, "/u/")

        # Leave, then change one's mind on the page that follows.
        page.goto(unsubscribe_url)
        page.click("#unsubscribe")
        assert "You are unsubscribed" in page.locator("h1").inner_text()
        screenshot(page, "public-unsubscribed-undo")
        page.click("#undo")
        assert "subscribed again" in page.locator("h1").inner_text()
        page.goto(unsubscribe_url)
        assert page.locator("#unsubscribe").is_visible()  # subscribed as before

        # Move to a new address; it changes only once confirmed from the new mailbox.
        page.get_by_role("link", name="Manage your preferences instead").click()
        manage_url = page.url
        page.fill("#new-email", NEW)
        page.click("#change-address")
        assert "link is on its way" in page.locator("main").inner_text()
        page.goto(manage_url)
        assert OLD in page.locator("main").inner_text()
        page.goto(_url(_mail_text(page, base, "confirm your new address", NEW), "/address/"))
        screenshot(page, "public-address-confirm")
        page.click("#confirm-address")
        assert "Your address is changed" in page.locator("h1").inner_text()
        assert "s***@example.net" in _mail_text(page, base, "Your address was changed", OLD)
        page.goto(manage_url)
        assert NEW in page.locator("main").inner_text()

        # Read everything held, as a page.
        page.get_by_role("link", name="Download my data").click()
        page.click("#request-link")
        data_mail = _mail_text(page, base, "download or erase", NEW)
        assert "/privacy/newsletter" in data_mail  # mail about the person links their notices
        page.goto(_url(data_mail, "/export"))
        page.click("#read")
        assert page.locator("h1").inner_text() == "Everything we hold about you"
        report = page.locator("main").inner_text()
        assert NEW in report and "Side Person" in report and "resubscribe" in report
        assert "address_change" in report and "Newsletter" in report
        assert "Privacy notice shown (version)" in report
        assert page.locator("a#download-json").get_attribute("download") == "my-data.json"
        screenshot(page, "public-data-report")
