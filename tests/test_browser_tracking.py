"""Tracking as a marketer and a reader see it, in headless Chromium: the marketer sends a
campaign from the admin; a reader who allows tracking opens it in a mail client (the pixel
loads), views it in the browser and clicks a link; the stats page and the dashboard show it;
the reader withdraws consent on the preferences page and the numbers are gone."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from listmgr.services import accounts, lists, segments, subscribers
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

pytestmark = BROWSER_TEST
READER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0"
BODY = (
    "<h1>Hello {{ subscriber.name }}</h1>"
    '<p><a href="https://shop.example.com/sale">The sale</a> starts today.</p>'
)


@pytest.fixture
def rt(make_runtime):
    # Clicks and opens within seconds of sending would be taken for a scanner's.
    return make_runtime(scanner_click_seconds=0.0, machine_open_seconds=0.0)


def _read_as_mail_client(browser_page, server: str, html: str) -> None:
    """Show the message as a mail client does: its images load, its links can be clicked."""

    def to_server(route):
        route.continue_(url=route.request.url.replace("http://listmgr.test", server))

    browser_page.route("http://listmgr.test/**", to_server)
    browser_page.route(
        "https://shop.example.com/**",
        lambda route: route.fulfill(body="<h1>The sale</h1>", content_type="text/html"),
    )
    with browser_page.expect_response(re.compile(r"/o/[^/]+\.gif$")) as pixel:
        browser_page.set_content(html)
    assert pixel.value.status == 200


def test_send_open_click_see_numbers_withdraw(page, server, rt, sink):
    accounts.create_user(rt, email="mara@example.org", password=PASSWORD, role="owner")
    lists.create(rt, slug="monthly", name="Monthly", postal_address="1 Main Street, Town")
    for name, tracked in (("Ada", True), ("Bea", True), ("Cy", False)):
        subscribers.create(
            rt,
            email=f"{name.lower()}@example.org",
            name=name,
            lists=["monthly"],
            consent="signed up at the fair",
            consents={"tracking": tracked},
        )
    sign_in(page, server, "mara@example.org")
    page.goto(f"{server}/admin/campaigns/new")
    page.fill("input[name=name]", "Sale")
    page.fill("input[name=subject]", "The sale, {{ subscriber.name }}")
    page.check("input[name=lists][value=monthly]")
    page.fill("textarea[name=body]", BODY)
    page.click("button:has-text('Create draft')")
    expect(page.locator(".notice")).to_contain_text("Draft saved")
    click_confirmed(page, "#send-now")
    page.wait_for_url("**/stats")
    expect(page.locator("#campaign-status")).to_have_text("sent", timeout=60000)
    sink.wait_for(3)
    stats_url = page.url
    mails = {m.rcpt_tos[0]: m.message for m in sink.messages}
    html = mails["ada@example.org"].get_body(("html",)).get_content()
    assert "shop.example.com" not in html  # tracked for Ada
    untracked = mails["cy@example.org"].get_body(("html",)).get_content()
    assert "https://shop.example.com/sale" in untracked and "/o/" not in untracked

    # Ada reads the mail: the pixel loads; she opens the web version, then clicks the link.
    # A mail client, not a headless robot (whose hits are left out as a scanner's).
    reader = page.context.browser.new_context(user_agent=READER_AGENT).new_page()
    _read_as_mail_client(reader, server, html)
    with reader.expect_navigation():
        reader.click("text=View this email in your browser")
    expect(reader.locator("h1")).to_have_text("Hello Ada")
    _read_as_mail_client(reader, server, html)
    reader.click("text=The sale")
    reader.wait_for_url("https://shop.example.com/sale")
    expect(reader.locator("h1")).to_have_text("The sale")

    page.goto(stats_url)
    expect(page.locator("#open-rate")).to_have_text("50.0%")  # 1 of the 2 who allow tracking
    expect(page.locator("#click-rate")).to_have_text("50.0%")
    expect(page.locator("#unique-clicks")).to_have_text("1")
    expect(page.locator("#link-clicks")).to_contain_text("https://shop.example.com/sale")
    expect(page.locator("#left-out")).to_contain_text("0 opens by mail privacy proxies")
    screenshot(page, "admin/20-campaign-engagement")
    assert segments.count(rt, lists=["monthly"], rules={"engagement": "clicked"}) == 1
    page.goto(f"{server}/admin/")
    row = page.locator("table.data tr", has_text="Sale")
    expect(row).to_contain_text("50.0%")

    # Ada withdraws her consent on the preferences page: her opens and clicks go.
    manage = re.search(r'href="(http://listmgr\.test/p/[^"]+)"', html).group(1)
    reader.goto(manage.replace("http://listmgr.test", server))
    reader.uncheck("input[name=consent_tracking]")
    reader.click("#save")
    expect(reader.locator("input[name=consent_tracking]")).not_to_be_checked()
    page.goto(stats_url)
    expect(page.locator("#unique-clicks")).to_have_text("0")
    expect(page.locator("#engagement")).to_contain_text("Counted only for the 1 recipients")
    assert not [p for p in page.problems if not p.startswith("Failed to load resource")], (
        page.problems
    )


def test_a_reader_allows_tracking_at_sign_up_and_the_archive_names_nobody(page, server, rt, sink):
    accounts.create_user(rt, email="mara@example.org", password=PASSWORD, role="owner")
    lists.create(
        rt, slug="monthly", name="Monthly", postal_address="1 Main Street, Town", opt_in="single"
    )
    # A visitor signs up on the hosted form; the tracking box is unticked until she ticks it.
    visitor = page.context.browser.new_context(user_agent=READER_AGENT).new_page()
    visitor.goto(f"{server}/subscribe/monthly")
    visitor.fill("input[name=email]", "ada@example.org")
    visitor.fill("input[name=name]", "Ada")
    expect(visitor.locator("#consent_tracking")).not_to_be_checked()
    visitor.check("#consent_tracking")
    visitor.click("button:has-text('Subscribe')")
    expect(visitor.locator("h1")).to_have_text("Almost done")
    assert subscribers.search(rt, email="ada@example.org")[0][0].consents["tracking"] is True

    # The marketer opens the list's public archive and sends a campaign.
    sign_in(page, server, "mara@example.org")
    page.goto(f"{server}/admin/lists/monthly")
    page.check("input[name=archive]")
    page.click("button:has-text('Save list')")
    page.goto(f"{server}/admin/campaigns/new")
    page.fill("input[name=name]", "Issue 1")
    page.fill("input[name=subject]", "Issue 1 for {{ subscriber.name|default('you', true) }}")
    page.check("input[name=lists][value=monthly]")
    page.fill("textarea[name=body]", BODY)
    page.click("button:has-text('Create draft')")
    click_confirmed(page, "#send-now")
    page.wait_for_url("**/stats")
    expect(page.locator("#campaign-status")).to_have_text("sent", timeout=60000)
    sink.wait_for(1)
    html = sink.messages[-1].message.get_body(("html",)).get_content()
    assert "/t/" in html and "/o/" in html  # she allowed tracking: tracked links and a pixel

    # Anyone may read the archive: the issue rendered for no one, nothing personal, untracked.
    visitor.goto(f"{server}/archive/monthly")
    visitor.click("#archive a:has-text('Issue 1 for you')")
    expect(visitor.locator("h1")).to_have_text("Hello")
    content = visitor.content()
    assert "Ada" not in content and "ada@example.org" not in content
    assert "/t/" not in content and "/o/" not in content
