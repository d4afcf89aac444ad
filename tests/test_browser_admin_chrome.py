"""The admin's own pages in headless Chromium against a running `listmgr serve`: the dashboard's
cards and growth chart agree after a hard bounce, a one-click unsubscribe and an erasure; typing
in the composer for a while and saving once leaves one audit entry with the client's address;
the favicon loads and the skip link is the first stop of the keyboard; an unsubscribe request
that proves nothing reads in plain words in the inbox and links the person it names."""

from __future__ import annotations

import re
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urljoin
from xml.etree import ElementTree

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from listmgr.mail.inbound.outcomes import WORDS
from listmgr.models import Membership
from listmgr.services import accounts
from tests.browser_support import (
    BROWSER_TEST,
    PASSWORD,
    browser_page,
    click_confirmed,
    screenshot,
    serve,
    sign_in,
)
from tests.campaign_support import campaign, make_list, person
from tests.conftest import BROKER_URL, SECRET, Sink, free_port, wait_until
from tests.inbound_support import dsn, reply

pytestmark = [*BROWSER_TEST, pytest.mark.slow]
OWNER = "owner@staff.example.org"
DOMAIN = "lists.example.test"
INBOUND_SECRET = "inbound-test-secret"
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(autouse=True)
def _patient_expect() -> None:
    expect.set_options(timeout=20_000)  # a loaded machine: waits end as soon as the page is right


@contextmanager
def served(database_url: str, sink: Sink, tmp_path: Path) -> Iterator[str]:
    """`listmgr serve` on this test's database (SQLite, or PostgreSQL and the broker when the
    tests run on them), sending to `sink`; yields its base URL."""
    env = {
        "LISTMGR_DATABASE_URL": database_url,
        "LISTMGR_BROKER_URL": BROKER_URL,
        "LISTMGR_BROKER_NAMESPACE": f"b{uuid.uuid4().hex[:10]}",
        "LISTMGR_SECRET_KEY": SECRET,
        "LISTMGR_SMTP_URL": sink.url,
        "LISTMGR_INBOUND_SECRET": INBOUND_SECRET,
        "LISTMGR_MAIL_DOMAIN": DOMAIN,
        "LISTMGR_DEFAULT_FROM_EMAIL": f"news@{DOMAIN}",
        "LISTMGR_VAR_DIR": str(tmp_path / "served-var"),
    }
    with serve(tmp_path, free_port(), **env) as base:
        yield base


def post(url: str, data: bytes, **headers: str) -> int:
    req = urllib.request.Request(url, data=data, headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return int(resp.status)


def to_hook(base: str, raw: bytes) -> None:
    """Hand a message to the public inbound hook, as the mail server's pipe does."""
    status = post(
        f"{base}/hooks/inbound",
        raw,
        Authorization=f"Bearer {INBOUND_SECRET}",
        **{"Content-Type": "message/rfc822"},
    )
    assert status == 202


def membership(rt, sid: int) -> str | None:
    with rt.db.session() as s:
        return s.scalar(select(Membership.status).where(Membership.subscriber_id == sid))


def growth_chart_latest(page, cache: str) -> dict[str, str]:
    """Each line of the dashboard's growth chart (by its legend) and its latest value, read from
    the SVG of the dashboard's <img> as the page fetches it with this cache mode ("no-store": as
    the server draws it now; "force-cache": as the browser holds it, which is what the <img>
    shows)."""
    text = page.evaluate(
        """async (cache) => {
          const img = document.querySelector('img.chart');
          const resp = await fetch(img.src, {cache: cache, credentials: 'same-origin'});
          return await resp.text();
        }""",
        cache,
    )
    svg = ElementTree.fromstring(text)

    def having(cls: str, root=svg):
        return [e for e in root.iter() if cls in (e.get("class") or "").split()]

    names = [e.findtext(f"{SVG}text") for e in having("legend")]
    overlay = next(e for e in having("overlay") if "plot" in (e.get("class") or "").split())
    latest = {}
    for i, serie in enumerate(having("series", overlay)):
        values = [d.text for d in having("value", serie)]
        if values:
            latest[names[i]] = values[-1]
    return latest


def test_dashboard_cards_and_chart_agree_after_bounce_unsubscribe_and_erasure(
    rt, sink, database_url, tmp_path
):
    accounts.create_user(rt, email=OWNER, password=PASSWORD, role="owner")
    make_list(rt, "news", name="News", from_email="news@example.org")
    ids = {f"p{i}@example.org": person(rt, f"p{i}@example.org", ["news"]) for i in range(5)}
    cid = campaign(rt, name="Spring news")
    with served(database_url, sink, tmp_path) as base, browser_page() as page:
        sign_in(page, base, OWNER)
        expect(page.locator("#stat-confirmed")).to_have_text("5")
        assert growth_chart_latest(page, "no-store") == {"News": "5"}

        # The marketer sends the campaign from the composer.
        page.goto(f"{base}/admin/campaigns/{cid}")
        click_confirmed(page, "#send-now")
        page.wait_for_url("**/stats")
        mails = {m.rcpt_tos[0]: m for m in sink.wait_for(5, timeout=60)}

        # p0's mailbox is gone: the receiving server's DSN comes back to p0's VERP address.
        bounced = "p0@example.org"
        to_hook(base, dsn(verp=mails[bounced].mail_from, failed=bounced))
        # p1 presses unsubscribe in the mail client (RFC 8058 one-click).
        header = str(mails["p1@example.org"].message["List-Unsubscribe"])
        one_click = re.search(r"<(https?://[^>]+)>", header).group(1)
        assert one_click.startswith(base)
        status = post(
            one_click,
            b"List-Unsubscribe=One-Click",
            **{"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert status == 200
        wait_until(lambda: membership(rt, ids[bounced]) != "confirmed", what="the bounce")
        assert membership(rt, ids["p1@example.org"]) == "unsubscribed"

        # p2 asks to be forgotten: the owner erases the person in the admin.
        page.goto(f"{base}/admin/subscribers/{ids['p2@example.org']}/erase")
        page.fill("input[name=confirm_email]", "p2@example.org")
        page.click("button:has-text('Erase for good')")
        expect(page.locator("body")).to_contain_text("personal data was erased")

        page.goto(f"{base}/admin/")
        expect(page.locator("#stat-confirmed")).to_have_text("2")
        screenshot(page, "admin/dashboard-after-leaving")
        assert growth_chart_latest(page, "no-store") == {"News": "2"}
        assert not page.problems, page.problems


def test_the_dashboard_chart_follows_a_change_made_elsewhere(rt, sink, database_url, tmp_path):
    accounts.create_user(rt, email=OWNER, password=PASSWORD, role="owner")
    make_list(rt, "news", name="News")
    ids = [person(rt, f"p{i}@example.org", ["news"]) for i in range(3)]
    with served(database_url, sink, tmp_path) as base, browser_page() as page:
        sign_in(page, base, OWNER)
        expect(page.locator("#stat-confirmed")).to_have_text("3")
        page.wait_for_load_state("load")
        assert growth_chart_latest(page, "force-cache") == {"News": "3"}
        # A colleague, signed in on another computer, erases a person meanwhile.
        colleague = page.context.browser.new_context().new_page()
        sign_in(colleague, base, OWNER)
        colleague.goto(f"{base}/admin/subscribers/{ids[0]}/erase")
        colleague.fill("input[name=confirm_email]", "p0@example.org")
        colleague.click("button:has-text('Erase for good')")
        expect(colleague.locator("body")).to_contain_text("personal data was erased")

        page.goto(f"{base}/admin/")
        expect(page.locator("#stat-confirmed")).to_have_text("2")
        page.wait_for_load_state("load")
        assert growth_chart_latest(page, "force-cache") == {"News": "2"}  # what the <img> shows


def test_typing_in_the_composer_then_one_save_is_one_audit_entry_with_the_ip(
    rt, sink, database_url, tmp_path
):
    accounts.create_user(rt, email=OWNER, password=PASSWORD, role="owner")
    make_list(rt, "news", name="News", from_email="news@example.org")
    person(rt, "ada@example.org", ["news"], name="Ada")
    cid = campaign(rt, name="Autumn news", subject="Autumn")
    with served(database_url, sink, tmp_path) as base, browser_page() as page:
        sign_in(page, base, OWNER)
        previews: list[str] = []
        page.on("request", lambda r: previews.append(r.url) if "preview" in r.url else None)
        page.goto(f"{base}/admin/campaigns/{cid}")
        frame = page.frame_locator("#preview-frame")
        subject = page.locator("input[name=subject]")
        subject.fill("")
        subject.press_sequentially("Leaves are falling, {{ subscriber.name }}", delay=40)
        expect(page.locator("#pv-subject")).to_have_text("Leaves are falling, Sample Person")
        body = page.locator("textarea[name=body]")
        body.fill("")
        body.press_sequentially("<h1>Hello {{ subscriber.name }}</h1><p>Apples!</p>", delay=40)
        expect(frame.locator("h1")).to_have_text("Hello Sample Person")
        expect(frame.locator("body")).to_contain_text("Apples!")
        assert len(previews) >= 4, previews  # the live preview ran while typing, nothing saved
        page.click("#save")
        expect(page.locator(".notice")).to_contain_text("saved")

        page.goto(f"{base}/admin/audit?target_type=campaign&target_id={cid}")
        rows = page.locator("#audit-table tbody tr")
        edits = rows.filter(has=page.locator("code", has_text=re.compile(r"^campaign\.edit$")))
        expect(edits).to_have_count(1)
        cells = edits.first.locator("td")
        expect(cells.nth(1)).to_have_text(OWNER)
        expect(cells.nth(3)).to_have_text(f"campaign {cid}")
        expect(cells.nth(4)).to_have_text("127.0.0.1")
        screenshot(page, "admin/audit-one-save")
        # Half-typed template code ("{{ subscr") previews as an error on the composer: a 422.
        assert not [p for p in page.problems if "preview.json" not in p and "of 422" not in p], (
            page.problems
        )


def _tab_to_the_skip_link(page) -> None:
    page.keyboard.press("Tab")
    focused = page.evaluate(
        "() => [document.activeElement.className, document.activeElement.textContent]"
    )
    assert focused == ["skip-link", "Skip to content"], focused
    expect(page.locator(".skip-link")).to_be_in_viewport()  # shown once focused


def test_favicon_loads_and_the_skip_link_comes_first(rt, sink, database_url, tmp_path):
    accounts.create_user(rt, email=OWNER, password=PASSWORD, role="owner")
    with served(database_url, sink, tmp_path) as base, browser_page() as page:
        sign_in(page, base, OWNER)
        page.goto(f"{base}/admin/lists")
        href = page.locator("link[rel=icon]").get_attribute("href")
        icon = page.request.get(urljoin(page.url, href))
        assert icon.status == 200, icon.status
        assert icon.headers["content-type"].startswith("image/"), icon.headers
        assert b"<svg" in icon.body()

        _tab_to_the_skip_link(page)
        page.keyboard.press("Enter")
        expect(page).to_have_url(re.compile(r"/admin/lists#main$"))
        # The next Tab goes on from the main content, past the navigation.
        page.keyboard.press("Tab")
        assert page.evaluate(
            "() => document.getElementById('main').contains(document.activeElement)"
        ), page.evaluate("() => document.activeElement.outerHTML.slice(0, 120)")
        assert not page.problems, page.problems


def test_activating_the_skip_link_focuses_the_main_content(rt, sink, database_url, tmp_path):
    accounts.create_user(rt, email=OWNER, password=PASSWORD, role="owner")
    with served(database_url, sink, tmp_path) as base, browser_page() as page:
        sign_in(page, base, OWNER)
        _tab_to_the_skip_link(page)
        page.keyboard.press("Enter")
        expect(page).to_have_url(re.compile(r"#main$"))
        focused = page.evaluate("() => document.activeElement.id")
        assert focused == "main", page.evaluate(
            "() => document.activeElement.outerHTML.slice(0, 80)"
        )


def test_an_unproven_unsubscribe_reply_reads_in_plain_words_and_links_the_person(
    rt, sink, database_url, tmp_path
):
    accounts.create_user(rt, email=OWNER, password=PASSWORD, role="owner")
    make_list(rt, "news", name="News")
    sid = person(rt, "victor@example.com", ["news"], name="Victor")
    with served(database_url, sink, tmp_path) as base, browser_page() as page:
        # A plain mail to the list address, with nothing in it that proves who sent it.
        to_hook(
            base,
            reply(
                sender="victor@example.com",
                to=f"news@{DOMAIN}",
                subject="unsubscribe",
                body="Please take me off.",
                msgid="victor-asks",
            ),
        )
        sink.wait_for(1, timeout=60)  # the link to confirm went to the address it names
        assert membership(rt, sid) == "confirmed"  # nothing changed without proof
        sign_in(page, base, OWNER)
        page.goto(f"{base}/admin/inbound")
        row = page.locator("#inbound-table tbody tr", has_text="unsubscribe")
        expect(row).to_have_count(1)
        expect(row.locator(".outcome")).to_have_text(WORDS["confirm_mailed"])
        expect(row).not_to_contain_text("confirm_mailed")
        screenshot(page, "admin/inbox-unproven-unsubscribe")
        row.get_by_role("link", name=f"subscriber #{sid}").click()
        page.wait_for_url(f"{base}/admin/subscribers/{sid}")
        expect(page.locator("main")).to_contain_text("victor@example.com")
        assert not page.problems, page.problems
