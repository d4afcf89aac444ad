"""The reputation page and flagged subscribers in headless Chromium: reached from the
navigation, the chart loads under the CSP, one click suppresses the flagged role addresses."""

from __future__ import annotations

import pytest

from listmgr.services import accounts
from tests.browser_support import (  # noqa: F401
    BROWSER_TEST,
    PASSWORD,
    click_confirmed,
    page,
    page_options,
    screenshot,
    server,
    sign_in,
)
from tests.campaign_support import make_list, person

pytestmark = [*BROWSER_TEST, pytest.mark.slow]


def test_reputation_and_one_click_suppress(page, server, rt):
    from playwright.sync_api import expect

    expect.set_options(timeout=20_000)
    accounts.create_user(rt, email="ada@staff.example.org", password=PASSWORD, role="admin")
    make_list(rt, "news")
    for email in ("Abuse@Example.org", "postmaster+x@example.org", "ann@example.org"):
        person(rt, email, ["news"])
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    sign_in(page, server, "ada@staff.example.org")
    page.click("nav.side >> text=Reputation")
    expect(page.locator("h1")).to_have_text("Reputation")
    chart = page.locator("img.chart")
    expect(chart).to_be_visible()
    page.wait_for_function("document.querySelector('img.chart').naturalWidth > 0")
    screenshot(page, "admin/reputation")

    page.click("text=Flagged subscribers")
    page.click("#flag-role")
    table = page.locator("#flagged-table")
    expect(table).to_contain_text("abuse@example.org")
    expect(table).to_contain_text("postmaster+x@example.org")
    expect(table).not_to_contain_text("ann@example.org")
    click_confirmed(page, "#suppress-all")
    expect(page.locator("body")).to_contain_text("2 suppressed.")
    expect(table).to_contain_text("Nobody is flagged for this reason.")
    assert not errors, errors
