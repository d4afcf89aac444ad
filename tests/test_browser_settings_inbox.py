"""Settings and inbox in headless Chromium against a running server: type an SMTP server into
the fields and test the connection (an aiosmtpd server answers), generate a DKIM key for a
domain the sender is not under and see the alignment warning, then answer an inbound message
from the inbox and see the answer arrive."""

from __future__ import annotations

from listmgr.services import accounts, inbound, settings_store
from tests.browser_support import (  # noqa: F401
    BROWSER_TEST,
    PASSWORD,
    artifact,
    click_confirmed,
    page,
    page_options,
    screenshot,
    server,
    sign_in,
)
from tests.conftest import drain, free_port, wait_until

QUESTION = (
    b"From: Pat Reader <pat@example.org>\r\n"
    b"To: news@lists.example.test\r\n"
    b"Subject: Can I get the March issue?\r\n"
    b"Message-ID: <march-question@example.org>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
    b"I missed it. Could you send it again?\r\n"
)

pytestmark = BROWSER_TEST


def test_smtp_fields_dkim_warning_and_a_reply_from_the_inbox(page, server, rt, sink):
    from playwright.sync_api import expect

    expect.set_options(timeout=20_000)
    accounts.create_user(rt, email="op@staff.example.org", password=PASSWORD, role="admin")
    settings_store.update(rt, {"smtp_url": f"smtp://127.0.0.1:{free_port()}"})  # nobody there
    sign_in(page, server, "op@staff.example.org")

    # SMTP: the typed server is tested, not the saved one
    page.goto(f"{server}/admin/settings")
    page.fill("#smtp-host-1", "127.0.0.1")
    page.fill("#smtp-port-1", str(sink.port))
    page.select_option("#smtp-tls-1", "none")
    page.click("#smtp-test")
    expect(page.locator("#smtp-check-results")).to_contain_text(
        f"127.0.0.1:{sink.port}: connected."
    )
    expect(page.locator("#smtp-port-1")).to_have_value(str(sink.port))
    page.locator("#smtp").screenshot(path=str(artifact("admin/settings-smtp.png")))
    page.fill("#set-default_from_email", "news@example.org")
    page.click("button:has-text('Save settings')")
    expect(page.locator("body")).to_contain_text("Saved:")
    expect(page.locator("#smtp-port-1")).to_have_value(str(sink.port))
    assert settings_store.effective(rt).smtp_url == f"smtp://127.0.0.1:{sink.port}"

    # DKIM for a domain the sender (news@example.org) is not under
    page.fill("input[name=dkim_selector]", "s2026")
    page.fill("input[name=dkim_domain]", "elsewhere.example")
    click_confirmed(page, "button:has-text('Generate a key')")
    expect(page.locator("#dkim-record")).to_contain_text("s2026._domainkey.elsewhere.example")
    expect(page.locator("#dkim-alignment")).to_contain_text("example.org")
    assert page.locator("input[name=dkim_selector]").count() == 1
    page.locator("#dkim").screenshot(path=str(artifact("admin/settings-dkim.png")))

    # The inbox: answer a question
    inbound.store(rt, QUESTION)
    drain(rt)
    page.goto(f"{server}/admin/inbound")
    expect(page.locator("#inbound-table")).to_contain_text("Not understood")
    page.click("text=Can I get the March issue?")
    page.fill("#reply-text", "Hello Pat,\nhere it is again.")
    screenshot(page, "admin/inbox-reply")
    page.click("button:has-text('Send reply')")
    expect(page.locator("body")).to_contain_text("Your answer to pat@example.org is on its way.")
    got = wait_until(lambda: sink.to("pat@example.org"), what="the reply")[0]
    assert got.message["Subject"] == "Re: Can I get the March issue?"
    assert got.message["In-Reply-To"] == "<march-question@example.org>"
    assert "here it is again." in got.message.get_content()
