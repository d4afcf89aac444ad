"""People pages in headless Chromium: tick subscribers and add them to a list, import a CSV whose
German headers are mapped by themselves (defining a field while mapping), add an empty segment
condition without an error, and a subscriber with very long values fits a 1280 px window."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from listmgr.models import MailingList, Membership, Subscriber
from listmgr.services import accounts, activity, fielddefs, lists, subscribers
from listmgr.services.subscriptions import Origin
from tests.browser_support import BROWSER_TEST, PASSWORD, page, screenshot, server, sign_in  # noqa: F401

ORIGIN = Origin(source="test", actor="test")

pytestmark = [*BROWSER_TEST, pytest.mark.slow]


@pytest.fixture
def page_options() -> dict:
    return {"viewport": {"width": 1280, "height": 900}}


@pytest.fixture(autouse=True)
def signed_in_owner(page, server, rt) -> None:
    """Every test here starts signed in as an owner who accepts every confirmation."""
    from playwright.sync_api import expect

    expect.set_options(timeout=20_000)
    accounts.create_user(rt, email="owner@staff.example.org", password=PASSWORD, role="owner")
    page.on("dialog", lambda d: d.accept())
    sign_in(page, server, "owner@staff.example.org")


def _on_list(rt, slug: str) -> set[str]:
    with rt.db.session() as s:
        return set(
            s.scalars(
                select(Subscriber.email)
                .join(Membership, Membership.subscriber_id == Subscriber.id)
                .join(MailingList, MailingList.id == Membership.list_id)
                .where(MailingList.slug == slug, Membership.status == "confirmed")
            )
        )


def test_tick_subscribers_and_add_them_to_a_list(page, server, rt):
    from playwright.sync_api import expect

    lists.create(rt, slug="news", name="News", postal_address="1 Main St")
    lists.create(rt, slug="offers", name="Offers", postal_address="1 Main St")
    for i in range(4):
        subscribers.create(
            rt,
            email=f"p{i}@example.org",
            name=f"Person {i}",
            lists=["news"],
            status="confirmed",
            consent="fair",
            origin=ORIGIN,
        )
    page.goto(f"{server}/admin/subscribers")
    boxes = page.locator("#subscriber-table tbody input[name=ids]")
    expect(boxes).to_have_count(4)
    page.locator("input[data-check-all]").check()
    for i in range(4):
        expect(boxes.nth(i)).to_be_checked()
    boxes.nth(3).uncheck()  # all but one
    expect(page.locator("input[data-check-all]")).not_to_be_checked()
    page.select_option("select[name=to_list]", "offers")
    page.fill("input[name=consent]", "asked at the fair")
    screenshot(page, "people/01-bulk")
    page.click("#bulk-add")
    expect(page.locator(".notice")).to_contain_text("Added 3 of 3 to offers.")
    assert len(_on_list(rt, "offers")) == 3
    # nothing ticked: a clear message, nothing changed
    page.select_option("select[name=from_list]", "offers")
    page.click("#bulk-unsubscribe")
    expect(page.locator(".message")).to_contain_text("Choose at least one subscriber")
    assert len(_on_list(rt, "offers")) == 3
    assert not [p for p in page.problems if "422" not in p]


def test_import_with_german_headers_and_a_field_made_while_mapping(page, server, rt, tmp_path):
    from playwright.sync_api import expect

    lists.create(rt, slug="news", name="News", postal_address="1 Main St", opt_in="single")
    csv_path = tmp_path / "leute.csv"
    csv_path.write_text(
        "Vorname;Nachname;E-Mail;Firma\n"
        "Ada;Lovelace;ada@example.org;Analytical Engines\n"
        "Alan;Turing;alan@example.org;Bletchley Park\n",
        encoding="utf-8",
    )
    page.goto(f"{server}/admin/imports")
    page.set_input_files("#upload-form input[type=file]", str(csv_path))
    page.select_option("#upload-form select[name=list]", "news")
    page.click("button:has-text('Upload')")
    expect(page.locator("h1")).to_contain_text("Map the columns")
    expect(page.locator("select[name=map_0]")).to_have_value("first_name")
    expect(page.locator("select[name=map_1]")).to_have_value("last_name")
    expect(page.locator("select[name=map_2]")).to_have_value("email")
    expect(page.locator("select[name=map_3]")).to_have_value("ignore")
    expect(page.locator("select[name=new_field_column]")).to_have_value("3")
    expect(page.locator("input[name=new_field_key]")).to_have_value("company")
    screenshot(page, "people/02-mapping")
    page.click("#create-field")
    expect(page.locator(".notice")).to_contain_text("Field company created")
    expect(page.locator("select[name=map_3]")).to_have_value("fields.company")
    expect(page.locator("select[name=map_0]")).to_have_value("first_name")
    page.fill("textarea[name=consent]", "Trade fair sign-up sheet")
    page.click("button:has-text('Start import')")
    expect(page.locator("#import-status")).to_have_text("done", timeout=60000)
    assert _on_list(rt, "news") == {"ada@example.org", "alan@example.org"}
    with rt.db.session() as s:
        ada = s.scalar(select(Subscriber).where(Subscriber.email == "ada@example.org"))
    assert ada.name == "Ada Lovelace" and ada.fields == {"company": "Analytical Engines"}
    assert page.problems == []


def test_an_empty_condition_row_is_no_error(page, server, rt):
    from playwright.sync_api import expect

    lists.create(rt, slug="news", name="News", postal_address="1 Main St")
    subscribers.create(
        rt, email="a@example.org", lists=["news"], status="confirmed", consent="x", origin=ORIGIN
    )
    page.goto(f"{server}/admin/segments/new")
    page.fill("input[name=name]", "Started")
    page.check("input[name=lists][value=news]")
    expect(page.locator("#live-count")).to_have_text("1")
    page.click("button:has-text('+ Condition')")
    row = page.locator(".rule-row").first
    expect(row).to_have_class("rule-row incomplete")
    expect(row.locator(".rule-note")).to_be_visible()
    expect(page.locator("#live-count")).to_have_text("1")
    expect(page.locator("#rules-error")).to_be_hidden()
    row.locator("input").first.fill("nobody-here")
    expect(page.locator("#live-count")).to_have_text("0")
    expect(row.locator(".rule-note")).to_be_hidden()
    row.locator("input").first.fill("")
    expect(page.locator("#live-count")).to_have_text("1")
    page.click("button:has-text('Save segment')")
    expect(page.locator(".notice", has_text="Segment saved")).to_be_visible()
    expect(
        page.locator(".notice", has_text="1 condition without a value was left out")
    ).to_be_visible()
    assert page.problems == []


def test_a_subscriber_with_long_values_fits_1280_pixels(page, server, rt):
    lists.create(rt, slug="news", name="News " + "very-long-list-name-" * 8, postal_address="x")
    fielddefs.create_field(rt, key="notes", label="Notes " + "label" * 30, type="text")
    fielddefs.create_field(rt, key="website", label="Website", type="text")
    email = "a" * 60 + "@" + ".".join(["l" * 55] * 3) + ".example.org"
    sid = subscribers.create(
        rt,
        email=email,
        name="N" * 200,
        lists=["news"],
        status="confirmed",
        consent="consent basis " + "x" * 400,
        fields={"notes": "y" * 900, "website": "https://example.org/" + "path/" * 150},
        consents={"profiling": True, "tracking": True},
        origin=Origin(source="s" * 60, actor="test", user_agent="UA/" + "z" * 400),
    )
    activity.ingest(
        rt,
        {
            "email": email,
            "type": "viewed_" + "q" * 50,
            "properties": {"url": "https://example.org/" + "w" * 600, "k" * 60: "v" * 300},
        },
    )
    page.goto(f"{server}/admin/subscribers/{sid}")
    screenshot(page, "people/03-detail-1280")
    width = page.evaluate("document.documentElement.scrollWidth")
    wide = page.evaluate(
        """[...document.querySelectorAll('main *, .content *')]
        .filter(e => e.getBoundingClientRect().right > 1280)
        .slice(0, 5).map(e => e.tagName + '.' + e.className + ' ' + e.getBoundingClientRect().right)"""
    )
    assert width <= 1280, f"the page is {width} px wide: {wide}"
    scrolled = page.evaluate(
        "[...document.querySelectorAll('.panel')].filter(p => p.scrollWidth > p.clientWidth)"
        ".map(p => p.className + ' ' + p.scrollWidth + '>' + p.clientWidth + ' ' + (p.querySelector('table')||{}).offsetWidth)"
    )
    assert scrolled == []  # no panel hides what does not fit behind a scroll bar either
    assert page.problems == []
