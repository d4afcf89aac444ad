"""The subscriber's journey in headless Chromium against a running `listmgr serve`."""

from __future__ import annotations

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


def _subjects(page, base: str, newest: str, timeout: float = 30) -> list[str]:
    """The outbox's subjects, newest first, once the newest contains `newest` (the worker
    sends in the background, so the page is reloaded until the mail is there)."""
    deadline = time.monotonic() + timeout
    while True:
        page.goto(f"{base}/dev/outbox")
        subjects = page.locator("table.data tbody tr td:nth-child(4)").all_inner_texts()
        if (subjects and newest in subjects[0]) or time.monotonic() > deadline:
            return subjects
        time.sleep(0.3)


def _latest_mail_text(page, base: str, subject_part: str) -> str:
    _subjects(page, base, subject_part)
    page.get_by_role("link", name=re.compile(subject_part)).first.click()
    return page.locator("#text-part").inner_text()


def test_subscriber_journey_in_a_browser(tmp_path):
    require_chromium()
    env = {"LISTMGR_CONFIRM_WINDOW_MINUTES": "0", "LISTMGR_DATABASE_URL": ""}
    full = {
        **__import__("os").environ,
        **env,
        "LISTMGR_SECRET_KEY": "browser-test-secret-0123456789",
    }
    subprocess.run([sys.executable, "-m", "listmgr", "demo"], cwd=tmp_path, check=True, env=full)
    create_outbox_admin(tmp_path, env)
    with serve(tmp_path, free_port(), **env) as base, browser_page() as page:
        sign_in_to_outbox(page, base)
        page.goto(f"{base}/subscribe/newsletter")
        screenshot(page, "public-subscribe")
        page.fill("input[name=email]", "browser@example.org")
        page.fill("input[name=name]", "Browser User")
        page.click("button[type=submit]")
        assert "confirm" in page.locator("main").inner_text()

        text = _latest_mail_text(page, base, "Please confirm")
        screenshot(page, "dev-outbox-mail")
        confirm_url = re.search(r"http://\S+/confirm/\S+", text).group(0)
        page.goto(confirm_url)
        screenshot(page, "public-confirm")
        page.click("#confirm")
        assert "now subscribed" in page.locator("main").inner_text()

        # Signing up again sends a notice with the one-click link instead of a new confirmation.
        page.goto(f"{base}/subscribe/newsletter")
        page.fill("input[name=email]", "browser@example.org")
        page.click("button[type=submit]")
        text = _latest_mail_text(page, base, "already subscribed")
        unsubscribe_url = re.search(r"Unsubscribe: (\S+)", text).group(1)
        page.goto(unsubscribe_url)
        screenshot(page, "public-unsubscribe")
        assert page.locator("#unsubscribe").is_visible()
        page.click("#unsubscribe")
        assert "You are unsubscribed" in page.locator("h1").inner_text()

        # Resubscribing needs a new confirmation.
        page.goto(f"{base}/subscribe/newsletter")
        page.fill("input[name=email]", "browser@example.org")
        page.click("button[type=submit]")
        subjects = _subjects(page, base, "Please confirm")
        assert subjects[0].startswith("Please confirm")
        assert sum(1 for s in subjects if s.startswith("Please confirm")) == 2
        page.goto(unsubscribe_url)  # pending again, so there is something to leave
        assert page.locator("#unsubscribe").is_visible()
