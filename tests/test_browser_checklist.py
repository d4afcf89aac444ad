"""The campaign checklist in headless Chromium: as a marketer types in the composer, before any
save, the checklist panel follows (an image loses its alt-text warning, an empty subject becomes
a blocker); a refused send comes back with the reason."""

from __future__ import annotations

import pytest

from listmgr.services import accounts, campaigns, lists, subscribers
from listmgr.services.subscriptions import Origin
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
from tests.campaign_support import past_deliveries

pytestmark = [*BROWSER_TEST, pytest.mark.slow]


@pytest.fixture
def marketer(rt):
    accounts.create_user(
        rt, email="mara@staff.example.org", password=PASSWORD, role="editor", name="Mara"
    )
    for slug in ("monthly", "risky"):
        lists.create(rt, slug=slug, name=slug.title(), postal_address="1 Main St, Town")
    past_deliveries(rt, list_slug="risky", count=200, complained=2)  # 1 % complaints
    subscribers.create(
        rt,
        email="p@example.org",
        lists=["monthly"],
        status="confirmed",
        consent="test",
        origin=Origin(source="test"),
    )
    return "mara@staff.example.org"


def test_the_checklist_follows_what_is_typed_before_saving(page, server, rt, marketer):
    from playwright.sync_api import expect

    expect.set_options(timeout=20_000)
    sign_in(page, server, marketer)
    page.goto(f"{server}/admin/campaigns/new")
    page.check("#compose input[name=content_format][value=html]")
    page.fill("input[name=name]", "Spring")
    page.fill("input[name=subject]", "Spring news")
    page.fill("input[name=preheader]", "What is new")
    page.check("#compose input[name=lists][value=monthly]")
    body = page.locator("textarea[name=body]")
    body.fill('<p>Hello</p><img src="https://example.org/a.png">')
    alt = page.locator("#checklist li[data-code=image_alt]")
    expect(alt).to_have_attribute("data-level", "warning")
    expect(alt).to_contain_text("1 image without alt text")
    body.press("End")
    body.type("<img src='https://example.org/b.png'>")
    expect(alt).to_contain_text("2 images without alt text")
    body.fill('<p>Hello</p><img src="https://example.org/a.png" alt="A tree">')
    expect(alt).to_have_attribute("data-level", "ok")
    subject = page.locator("#checklist li[data-code=subject]")
    expect(subject).to_have_attribute("data-level", "ok")
    page.fill("input[name=subject]", "")
    expect(subject).to_have_attribute("data-level", "blocker")
    expect(page.locator("#checklist-summary")).to_contain_text("1 blocker")
    page.locator("input[name=subject]").type(
        "A subject far too long to be read on a phone, or in any inbox at all, really it is"
    )
    expect(subject).to_have_attribute("data-level", "warning")
    expect(page.locator("#checklist-summary")).to_have_text("0 blockers, 2 warnings")
    screenshot(page, "admin/campaign-checklist")
    assert campaigns.all_campaigns(rt)[1] == 0  # nothing saved yet

    # saved to a list with too many complaints: the send is refused with the reason
    page.uncheck("#compose input[name=lists][value=monthly]")
    page.check("#compose input[name=lists][value=risky]")
    expect(page.locator("#checklist li[data-code=complaint_rate]").first).to_have_attribute(
        "data-level", "blocker"
    )
    page.click("button:has-text('Create draft')")
    expect(page.locator(".notice")).to_contain_text("Draft saved")
    click_confirmed(page, "#send-now")
    expect(page.locator("p.error[role=status]")).to_contain_text("Not sent: the campaign checklist")
    (info,), _ = campaigns.all_campaigns(rt)
    assert info.status == "draft"
    # the preview frame loads no images from outside (by design); nothing else is refused
    refused = [p for p in page.problems if "Content Security Policy" in p and "img-src" not in p]
    assert not refused, page.problems
