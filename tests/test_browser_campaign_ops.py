"""Campaign housekeeping in headless Chromium (its clock in New York): the list shows subjects as
a sample subscriber reads them, a time in the past is refused on the form itself, a schedule in
the browser's zone shows its UTC time, a campaign is copied and the copy deleted."""

from __future__ import annotations

import pytest

from listmgr.services import accounts
from tests.browser_support import BROWSER_TEST, PASSWORD, page, server, sign_in  # noqa: F401
from tests.campaign_support import campaign, make_list, person

pytestmark = [*BROWSER_TEST, pytest.mark.slow]


@pytest.fixture
def page_options() -> dict:
    return {"timezone_id": "America/New_York"}


def test_copy_delete_and_schedule_in_the_browsers_zone(page, server, rt):
    from playwright.sync_api import expect

    expect.set_options(timeout=20_000)
    accounts.create_user(
        rt, email="ed@staff.example.org", password=PASSWORD, role="editor", name="Ed"
    )
    make_list(rt, "news")
    person(rt, "reader@example.org", ["news"], name="Reader")
    cid = campaign(rt, name="June news", subject="Hello {{ subscriber.name }}, June is here")

    sign_in(page, server, "ed@staff.example.org")

    # The list shows the subject as a sample subscriber reads it.
    page.goto(f"{server}/admin/campaigns")
    row = page.locator("#campaign-table tr", has_text="June news")
    expect(row).to_contain_text("Hello Sample Person, June is here")
    expect(row).not_to_contain_text("{{")

    # The schedule form starts in the browser's zone; a time in the past comes back on the form.
    row.locator("a", has_text="June news").click()
    expect(page.locator("h1")).to_have_text("June news")
    expect(page.locator("#schedule-timezone")).to_have_value("America/New_York")
    page.fill("#schedule-at", "2001-01-01T09:00")
    page.click("#schedule")
    expect(page.locator("#schedule-form .error.inline")).to_contain_text("is in the past")
    expect(page.locator("#schedule-at")).to_have_value("2001-01-01T09:00")
    expect(page.locator("#schedule-timezone")).to_have_value("America/New_York")
    expect(page.locator("#compose input[name=name]")).to_have_value("June news")

    # 09:00 in New York in July is 13:00 UTC.
    page.fill("#schedule-at", "2031-07-01T09:00")
    page.click("#schedule")
    expect(page.locator("#schedule-utc")).to_have_text("2031-07-01 13:00 UTC")
    expect(page.locator("#schedule-shown")).to_contain_text("2031-07-01 09:00 America/New_York")
    expect(page.locator("#schedule-at")).to_have_value("2031-07-01T09:00")

    # Copy it: the copy is a draft of its own, never scheduled.
    page.click("#copy-campaign")
    expect(page.locator("#compose input[name=name]")).to_have_value("Copy of June news")
    expect(page.locator(".badge.draft").first).to_be_visible()
    expect(page.locator("#schedule-shown")).to_have_count(0)
    copy_url = page.url
    assert not copy_url.endswith(f"/campaigns/{cid}")

    # Delete the copy, after confirming.
    questions: list[str] = []

    def answer(dialog) -> None:
        questions.append(dialog.message)
        dialog.accept()

    page.on("dialog", answer)
    page.click("#delete-draft")
    page.wait_for_url(f"{server}/admin/campaigns")
    expect(page.locator("body")).to_contain_text("The draft “Copy of June news” was deleted.")
    assert questions and "Copy of June news" in questions[0]
    assert "Hello Sample Person, June is here" in questions[0]
    expect(page.locator("#campaign-table")).not_to_contain_text("Copy of June news")
    expect(page.locator("#campaign-table")).to_contain_text("June news")
    assert page.goto(copy_url).status == 404
    # the refused schedule (422) and the deleted draft (404) are the only failed loads
    expected = ("status of 422", "status of 404")
    assert not [p for p in page.problems if not any(e in p for e in expected)], page.problems
