"""The marketer's day in headless Chromium against a running server: sign in, create a list,
import a CSV and watch it finish, build a segment and see the count change, compose a campaign
with a preview, test-send, send, watch the progress, open the stats. Screenshots of the main
pages go to test-artifacts/."""

from __future__ import annotations

import importlib.util

import pytest

from listmgr.services import accounts, subscribers
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

pytestmark = [*BROWSER_TEST, pytest.mark.slow]


def test_marketers_day(page, server, rt, sink, tmp_path):
    from playwright.sync_api import expect

    expect.set_options(timeout=20_000)  # a busy CI machine: waits end as soon as the page is right
    accounts.create_user(
        rt,
        email="marketer@staff.example.org",
        password=PASSWORD,
        role="owner",
        name="Mara Marketer",
    )
    page.goto(f"{server}/admin/login")
    screenshot(page, "admin/01-login")
    sign_in(page, server, "marketer@staff.example.org")
    expect(page.locator("h1")).to_have_text("Dashboard")
    screenshot(page, "admin/02-dashboard")

    # A list, made in the UI.
    page.click("nav.side >> text=Lists")
    page.click("text=New list")
    page.fill("input[name=slug]", "monthly")
    page.fill("input[name=name]", "Monthly letter")
    page.check("input[name=opt_in][value=single]")
    page.fill("input[name=from_name]", "Mara")
    page.fill("input[name=from_email]", "mara@example.org")
    page.fill("textarea[name=postal_address]", "Example Ltd, 1 Main Street, Town")
    page.click("button:has-text('Create list')")
    expect(page.locator("h1")).to_have_text("Monthly letter")
    expect(page.locator("#embed-code")).to_contain_text('action="http://listmgr.test/subscribe/')
    screenshot(page, "admin/03-list")

    # People: a CSV import with a live progress bar, or (without the import service) the API.
    people = [
        (f"person{i}@example.org", f"Person {i}", "Berlin" if i % 3 == 0 else "Paris")
        for i in range(30)
    ]
    from listmgr.services import fielddefs

    fielddefs.create_field(rt, key="city", label="City", type="text")
    if importlib.util.find_spec("listmgr.services.imports") is not None:
        csv_path = tmp_path / "people.csv"
        csv_path.write_text(
            "E-mail,Full name,Town\n"
            + "".join(f"{e},{n},{c}\n" for e, n, c in people)
            + "not-an-address,Broken,Nowhere\n"
        )
        page.click("nav.side >> text=Import & export")
        page.set_input_files("#upload-form input[type=file]", str(csv_path))
        page.select_option("#upload-form select[name=list]", "monthly")
        page.click("button:has-text('Upload')")
        expect(page.locator("h1")).to_contain_text("Map the columns")
        page.select_option("select[name=map_0]", "email")
        page.select_option("select[name=map_1]", "name")
        page.select_option("select[name=map_2]", "fields.city")
        screenshot(page, "admin/04-import-mapping")
        page.fill("textarea[name=consent]", "Signed up at the spring fair (paper forms)")
        page.click("button:has-text('Start import')")
        expect(page.locator("#import-status")).to_have_text("done", timeout=60000)
        expect(page.locator("[data-field=inserted]")).to_have_text("30")
        expect(page.locator("#import-report")).to_contain_text("not-an-address")
        screenshot(page, "admin/04-import")
    else:
        for email, name, city in people:
            subscribers.create(
                rt,
                email=email,
                name=name,
                lists=["monthly"],
                status="confirmed",
                consent="fair",
                fields={"city": city},
                origin=Origin(source="test"),
            )

    page.click("nav.side >> text=Subscribers")
    page.fill("input[name=q]", "person1")
    page.click("button:has-text('Search')")
    expect(page.locator("#subscriber-table")).to_contain_text("person10@example.org")
    screenshot(page, "admin/05-subscribers")
    page.click("text=person12@example.org")
    expect(page.locator("h2:has-text('Consent history')")).to_be_visible()
    screenshot(page, "admin/06-subscriber")

    # A segment: the live count follows the rules as they are typed.
    page.click("nav.side >> text=Segments")
    page.click("text=New segment")
    page.fill("input[name=name]", "Berliners")
    page.check("input[name=lists][value=monthly]")
    expect(page.locator("#live-count")).to_have_text("30")
    page.click("button:has-text('+ Condition')")
    row = page.locator(".rule-row").first
    row.locator("select").nth(1).select_option("city")
    row.locator("select").nth(2).select_option("eq")
    row.locator("input").first.fill("Berlin")
    expect(page.locator("#live-count")).to_have_text("10")
    screenshot(page, "admin/07-segment")
    page.click("button:has-text('Save segment')")
    expect(page.locator(".notice")).to_contain_text("Segment saved")

    # A campaign: compose, preview as a subscriber, test-send, send, progress, stats.
    page.click("nav.side >> text=Campaigns")
    page.click("text=New campaign")
    page.fill("input[name=name]", "Spring news")
    page.fill("input[name=subject]", "Spring news for {{ subscriber.name }}")
    page.check("input[name=lists][value=monthly]")
    page.select_option("select[name=segment_id]", label="Berliners")
    page.fill("textarea[name=body]", "<h1>Hello {{ subscriber.name }}</h1><p>Spring is here.</p>")
    page.click("button:has-text('Create draft')")
    expect(page.locator(".notice")).to_contain_text("Draft saved")
    expect(page.locator("#audience-count")).to_have_text("10")
    page.fill("#preview-as", "person3@example.org")
    page.locator("#preview-as").dispatch_event("change")
    expect(page.locator("#pv-subject")).to_have_text("Spring news for Person 3")
    frame = page.frame_locator("#preview-frame")
    expect(frame.locator("h1")).to_have_text("Hello Person 3")
    page.fill("textarea[name=body]", "<h1>Hi {{ subscriber.name }}!</h1><p>Spring is here.</p>")
    expect(page.locator("#save-state")).to_have_text("Unsaved changes")
    expect(frame.locator("h1")).to_have_text("Hi Person 3!")
    screenshot(page, "admin/08-compose")
    with page.expect_navigation():  # the page before saving shows "Draft saved" too
        page.click("button:has-text('Save draft')")
    expect(page.locator(".notice")).to_contain_text("Draft saved")
    page.fill("#test-to", "mara@example.org")
    page.click("#send-test")
    expect(page.locator(".notice")).to_contain_text("Test sent to mara@example.org")
    sink.wait_for(1)
    # The button asks first (a native confirm), answered in the page itself.
    assert "now to everyone" in (page.get_attribute("#send-now >> xpath=..", "data-confirm") or "")
    with page.expect_navigation(url="**/stats", timeout=60000):
        click_confirmed(page, "#send-now")
    expect(page.locator("#campaign-status")).to_have_text("sent", timeout=60000)
    expect(page.locator("#sent-count")).to_have_text("10")
    screenshot(page, "admin/09-campaign-stats")
    sink.wait_for(11)
    assert len({r for m in sink.messages for r in m.rcpt_tos}) == 11

    for name, path in (
        ("10-audit", "/admin/audit"),
        ("11-settings", "/admin/settings"),
        ("12-users", "/admin/users"),
        ("13-tokens", "/admin/tokens"),
        ("14-suppression", "/admin/suppression"),
        ("15-dashboard", "/admin/"),
        ("16-api-docs", "/api/docs"),
    ):
        page.goto(server + path)
        screenshot(page, f"admin/{name}")
    assert not [p for p in page.problems if not p.startswith("Failed to load resource")], (
        page.problems
    )


def test_api_docs_page_tries_calls_with_the_admins_session(page, server, rt):
    """The interactive API page runs real calls from the browser: a read, and a write that
    needs the CSRF token the page adds."""
    from playwright.sync_api import expect

    from listmgr.services import lists

    expect.set_options(timeout=20_000)
    accounts.create_user(rt, email="dev@staff.example.org", password=PASSWORD, role="admin")
    lists.create(rt, slug="weekly", name="Weekly <b>news</b>")
    sign_in(page, server, "dev@staff.example.org")
    page.goto(f"{server}/api/docs")
    op = page.locator("#operations-lists-get_lists")
    op.locator(".opblock-summary").click()
    op.locator("button.execute").click()
    expect(op.locator(".live-responses-table tbody .response-col_status")).to_have_text("200")
    expect(op.locator(".live-responses-table tbody .response-col_description")).to_contain_text(
        "Weekly <b>news</b>"
    )  # shown as text, not markup
    screenshot(page, "admin/17-api-try-get")

    post = page.locator("#operations-lists-post_lists")
    post.locator(".opblock-summary").click()
    post.locator("textarea.body-param__text").fill(
        '{"slug": "from-docs", "name": "Made in the API page"}'
    )
    post.locator("button.execute").click()
    expect(post.locator(".live-responses-table tbody .response-col_status")).to_have_text("201")
    assert lists.get(rt, "from-docs").name == "Made in the API page"
    assert not [p for p in page.problems if not p.startswith("Failed to load resource")], (
        page.problems
    )
