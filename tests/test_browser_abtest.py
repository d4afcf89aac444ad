"""A marketer sets up a two-variant subject test in headless Chromium, sends it, and reads the
variants side by side on the stats page: while the test runs, then with the winner."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from listmgr.models import Campaign, Delivery, Engagement
from listmgr.services import accounts, campaigns
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
from tests.campaign_support import decide_ab_test_now, make_list, person
from tests.conftest import wait_until

pytestmark = [*BROWSER_TEST, pytest.mark.slow]


def test_a_subject_test_from_the_composer_to_the_comparison(page, server, rt, sink):
    from playwright.sync_api import expect

    expect.set_options(timeout=20_000)
    make_list(rt, "news", name="News")
    for i in range(20):
        person(rt, f"reader{i:02d}@example.org", ["news"])
    accounts.create_user(rt, email="mara@staff.example.org", password=PASSWORD, role="editor")
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    sign_in(page, server, "mara@staff.example.org")

    page.goto(f"{server}/admin/campaigns/new")
    page.fill("input[name=name]", "Spring sale")
    page.fill("input[name=subject]", "Spring sale starts today")
    page.check("input[name=lists][value=news]")
    page.fill("textarea[name=body]", "<p>Everything must go.</p>")
    page.check("#ab-on")
    page.fill("#ab-subject-b", "Last chance: spring sale")
    page.fill("#ab-percent", "50")
    page.fill("#ab-wait", "2")
    page.select_option("#ab-wait-unit", "hours")
    page.select_option("#ab-metric", "clicks")
    page.click("button:has-text('Create draft')")
    page.wait_for_url(re.compile(r".*/admin/campaigns/\d+$"))
    page.wait_for_load_state("load")  # the composer's script listens from here on
    expect(page.locator(".notice")).to_contain_text("Draft saved")
    expect(page.locator("#ab-on")).to_be_checked()
    expect(page.locator("#ab-subject-b")).to_have_value("Last chance: spring sale")
    # A typing mistake in the composer is shown with the reason at once, and saved when fixed.
    page.fill("#ab-percent", "100")
    expect(page.locator("#compose-error")).to_contain_text("test_percent")
    page.fill("#ab-percent", "40")
    expect(page.locator("#compose-error")).to_be_hidden()
    with page.expect_navigation():  # the page before saving may show "Draft saved" too
        page.click("button:has-text('Save draft')")
    expect(page.locator(".notice")).to_contain_text("Draft saved")
    screenshot(page, "abtest-compose")
    cid = int(page.url.rsplit("/", 1)[1])
    with rt.db.session() as s:
        stored = s.scalar(select(Campaign.ab_test).where(Campaign.id == cid))
    assert stored["test_percent"] == 40 and stored["wait_minutes"] == 120

    click_confirmed(page, "#send-now")
    page.wait_for_url("**/stats")
    wait_until(lambda: campaigns.stats(rt, cid).sent == 8, what="the test share sent")
    page.reload()
    table = page.locator("#ab-variants")
    expect(table.locator("tr[data-variant=A] td").nth(1)).to_have_text("Spring sale starts today")
    expect(table.locator("tr[data-variant=B] td[data-col=sent]")).to_have_text("4")
    expect(page.locator("#abtest-results")).to_contain_text("the winner is chosen at")

    # Two of B's readers click; the wait ends (as the periodic sweep would find it).
    with rt.db.session() as s:
        readers = s.scalars(
            select(Delivery.subscriber_id).where(Delivery.campaign_id == cid, Delivery.variant == 1)
        ).all()
        for sid in readers[:2]:
            s.add(Engagement(campaign_id=cid, subscriber_id=sid, kind="click"))
    decide_ab_test_now(rt, cid)
    page.reload()
    expect(page.locator("#ab-winner")).to_have_text("variant B won")
    expect(table.locator("tr[data-variant=B] td[data-col=sent]")).to_have_text("16")
    expect(table.locator("tr[data-variant=B] td[data-col=clicked]")).to_have_text("2")
    expect(table.locator("tr.winner")).to_have_attribute("data-variant", "B")
    screenshot(page, "abtest-stats")
    assert not problems, problems
    subjects = [m.message["Subject"] for m in sink.messages]
    assert subjects.count("Last chance: spring sale") == 16
    assert subjects.count("Spring sale starts today") == 4
