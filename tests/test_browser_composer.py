"""The composer in headless Chromium: a marketer writes in the visual editor (types, bolds),
watches the preview and the audience follow before saving, saves the HTML; then starts a
campaign from a template. The editor's files come from the app itself under its CSP."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from listmgr.models import AuditLog
from listmgr.services import accounts, campaign_templates, campaigns, lists, subscribers
from listmgr.services.subscriptions import Origin
from listmgr.web.admin import visual_editor_installed
from tests.browser_support import (  # noqa: F401
    BROWSER_TEST,
    PASSWORD,
    page,
    page_options,
    screenshot,
    server,
    sign_in,
)

pytestmark = [
    *BROWSER_TEST,
    pytest.mark.slow,
    pytest.mark.skipif(
        not visual_editor_installed(),
        reason="the visual editor was not fetched at install (it needs npm)",
    ),
]


@pytest.fixture
def marketer(rt):
    accounts.create_user(
        rt, email="mara@staff.example.org", password=PASSWORD, role="editor", name="Mara"
    )
    lists.create(
        rt,
        slug="monthly",
        name="Monthly letter",
        postal_address="1 Main St, Town",
        from_email="mara@example.org",
    )
    for i in range(3):
        subscribers.create(
            rt,
            email=f"p{i}@example.org",
            name=f"Person {i}",
            lists=["monthly"],
            status="confirmed",
            consent="test",
            origin=Origin(source="test"),
        )
    return "mara@staff.example.org"


def _edits(rt) -> int:
    with rt.db.session() as s:
        return (
            s.scalar(
                select(func.count())
                .select_from(AuditLog)
                .where(AuditLog.action.in_(("campaign.create", "campaign.edit")))
            )
            or 0
        )


def test_a_marketer_writes_in_the_visual_editor_and_previews_before_saving(
    page, server, rt, marketer
):
    from playwright.sync_api import expect

    expect.set_options(timeout=20_000)
    sign_in(page, server, marketer)
    page.goto(f"{server}/admin/campaigns/new")
    frame = page.frame_locator("#preview-frame")
    expect(frame.locator("h1")).to_contain_text("Hello Sample Person")  # before any keystroke
    page.fill("input[name=name]", "Spring")
    page.fill("input[name=subject]", "Spring for {{ subscriber.name }}")
    expect(page.locator("#pv-subject")).to_have_text("Spring for Sample Person")
    page.check("#compose input[name=lists][value=monthly]")
    expect(page.locator("#audience-count")).to_have_text("3")

    page.check("#compose input[name=content_format][value=visual]")
    editor = page.locator("#visual-body")
    expect(editor).to_be_visible()
    expect(page.locator("textarea[name=body]")).to_be_hidden()
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.type("Fresh news")
    expect(frame.locator("body")).to_contain_text("Fresh news")
    page.keyboard.press("Control+A")
    page.click("button[data-command=bold]")
    expect(editor.locator("b")).to_have_text("Fresh news")
    expect(frame.locator("b")).to_have_text("Fresh news")  # the preview follows, unsaved
    page.keyboard.press("End")
    page.keyboard.type(" for you")
    expect(frame.locator("body")).to_contain_text("Fresh news for you")
    expect(page.locator("#save-state")).to_have_text("Unsaved changes")
    page.fill("#preview-as", "p1@example.org")
    expect(page.locator("#pv-to")).to_contain_text("p1@example.org")
    expect(page.locator("#pv-subject")).to_have_text("Spring for Person 1")
    screenshot(page, "admin/visual-compose")
    assert campaigns.all_campaigns(rt)[1] == 0 and _edits(rt) == 0  # nothing saved yet

    page.click("button:has-text('Create draft')")
    expect(page.locator(".notice")).to_contain_text("Draft saved")
    (info,), _ = campaigns.all_campaigns(rt)
    assert info.content_format == "visual"
    assert "<b>Fresh news</b>" in info.body and "for you" in info.body  # HTML, as shown
    assert "Write your message" not in info.body
    assert _edits(rt) == 1
    expect(page.locator("#visual-body b")).to_have_text("Fresh news")  # reopened visually
    expect(page.locator("#save-state")).to_have_text("")  # opening it changes nothing
    page.locator("#visual-body b").click()
    page.keyboard.type("zq")  # an edit of the saved draft: previewed, not saved
    expect(page.locator("#save-state")).to_have_text("Unsaved changes")
    expect(frame.locator("body")).to_contain_text("zq")
    assert "zq" not in campaigns.get(rt, info.id).body and _edits(rt) == 1
    assert not [p for p in page.problems if "Content Security Policy" in p], page.problems
    assert not [p for p in page.problems if not p.startswith("Failed to load resource")], (
        page.problems
    )


def test_a_marketer_starts_a_campaign_from_a_template(page, server, rt, marketer):
    from playwright.sync_api import expect

    expect.set_options(timeout=20_000)
    campaign_templates.create(
        rt,
        actor="tests",
        name="House style",
        content_format="visual",
        body="<p>Dear {{ subscriber.name }}, <i>our</i> news.</p>",
    )
    sign_in(page, server, marketer)
    page.click("nav.side >> text=Templates")
    expect(page.locator("#design-table tbody tr")).to_have_count(3)
    row = page.locator("#template-table tr", has_text="House style")
    row.locator("text=New campaign").click()
    expect(page.locator("#compose input[name=content_format][value=visual]")).to_be_checked()
    expect(page.locator("#visual-body i")).to_have_text("our")
    frame = page.frame_locator("#preview-frame")
    expect(frame.locator("body")).to_contain_text("Dear Sample Person, our news.")
    page.fill("input[name=name]", "From the house style")
    page.fill("input[name=subject]", "News")
    page.check("#compose input[name=lists][value=monthly]")
    page.click("button:has-text('Create draft')")
    expect(page.locator(".notice")).to_contain_text("Draft saved")
    (info,), _ = campaigns.all_campaigns(rt)
    assert info.body == "<p>Dear {{ subscriber.name }}, <i>our</i> news.</p>"

    # and from a shipped design, in HTML
    page.click("nav.side >> text=Templates")
    page.locator("tr[data-design=announcement]").locator("text=New campaign").click()
    expect(page.locator("#compose input[name=content_format][value=html]")).to_be_checked()
    expect(page.locator("textarea[name=body]")).to_contain_text("Find out more")
    expect(frame.locator("a", has_text="Find out more")).to_be_visible()
    assert not [p for p in page.problems if not p.startswith("Failed to load resource")], (
        page.problems
    )


def release(page, held: list) -> None:
    """Let the held script request through (it may come after the fields are typed in)."""
    while not held:
        page.wait_for_timeout(50)
    held[0].continue_()


def test_what_is_typed_before_the_composer_script_runs_is_previewed(page, server, rt, marketer):
    """On a slow connection the page can be typed into before its script has run: the preview,
    the test form and the unsaved state catch up with it when the script arrives."""
    from playwright.sync_api import expect

    expect.set_options(timeout=20_000)
    campaign_id = campaigns.create(
        rt,
        actor="tests",
        name="Spring",
        subject="News for {{ subscriber.name }}",
        lists=["monthly"],
        body="<h1>Hello {{ subscriber.name }}</h1>",
    )
    sign_in(page, server, marketer)
    held: list = []
    page.route("**/static/campaigns.js*", lambda route: held.append(route))  # answered later

    def open_composer() -> None:
        held.clear()
        page.goto(f"{server}/admin/campaigns/{campaign_id}", wait_until="commit")
        page.wait_for_selector("#preview-as")
        expect(page.locator("#pv-subject")).to_have_text("News for Sample Person")

    open_composer()
    page.fill("#preview-as", "p2@example.org")
    release(page, held)
    expect(page.locator("#pv-subject")).to_have_text("News for Person 2")
    expect(page.frame_locator("#preview-frame").locator("h1")).to_have_text("Hello Person 2")
    copies = page.locator("form input[type=hidden][name=as]")  # the test and schedule forms
    assert copies.count() == 2
    for i in range(2):
        expect(copies.nth(i)).to_have_value("p2@example.org")
    expect(page.locator("#save-state")).to_have_text("")  # choosing whom to preview edits nothing

    open_composer()
    page.fill("input[name=subject]", "Early news for {{ subscriber.name }}")
    release(page, held)
    expect(page.locator("#pv-subject")).to_have_text("Early news for Sample Person")
    expect(page.locator("#save-state")).to_have_text("Unsaved changes")
    assert campaigns.get(rt, campaign_id).subject == "News for {{ subscriber.name }}"  # unsaved


@pytest.mark.parametrize("page_options", [{"timezone_id": "Europe/Berlin"}])
def test_a_zone_picked_before_the_schedule_script_runs_stays_picked(page, server, rt, marketer):
    """The schedule's zone starts as the browser's own, unless one was picked before the script
    that sets it ran."""
    from playwright.sync_api import expect

    expect.set_options(timeout=20_000)
    campaign_id = campaigns.create(
        rt, actor="tests", name="Later", subject="Later", lists=["monthly"], body="<p>Hi</p>"
    )
    sign_in(page, server, marketer)
    page.goto(f"{server}/admin/campaigns/{campaign_id}")
    expect(page.locator("#schedule-timezone")).to_have_value("Europe/Berlin")  # the browser's

    held: list = []
    page.route("**/static/schedule.js*", lambda route: held.append(route))
    page.goto(f"{server}/admin/campaigns/{campaign_id}", wait_until="commit")
    page.wait_for_selector("#schedule-timezone")
    page.select_option("#schedule-timezone", "Asia/Tokyo")
    release(page, held)
    page.wait_for_load_state("load")  # the deferred scripts have run
    expect(page.locator("#schedule-timezone")).to_have_value("Asia/Tokyo")
