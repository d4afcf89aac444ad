"""The domain check page in headless Chromium: reached from the navigation, another domain
checked through the form, a record to publish copied with its button."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from listmgr.mail.dkim import load_key
from listmgr.services import accounts
from tests.browser_support import (  # noqa: F401
    BROWSER_TEST,
    PASSWORD,
    artifact,
    page,
    page_options,
    server,
    sign_in,
)
from tests.dns_support import dns_server

pytestmark = BROWSER_TEST


@pytest.fixture
def rt(make_runtime, tmp_path):
    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (tmp_path / "dkim.pem").write_bytes(pem)
    zone = {
        "smtp.example.com": {"A": ["1.2.3.4"]},
        "lists.example.com": {"TXT": ["v=spf1 ip4:1.2.3.4 -all"], "MX": [(10, "mx.example.com")]},
        "s1._domainkey.example.com": {"TXT": [load_key("example.com", "s1", pem).dns_record()]},
        "_dmarc.example.com": {"TXT": ["v=DMARC1; p=reject; rua=mailto:d@example.com"]},
        "mx.example.com": {"A": ["5.6.7.8"]},
    }
    with dns_server(zone) as dns:
        yield make_runtime(
            default_from_email="news@example.com",
            mail_domain="lists.example.com",
            smtp_url="smtp://smtp.example.com:587",
            inbound_host="mx.example.com",
            dkim_domain="example.com",
            dkim_selector="s1",
            dkim_private_key_path=str(tmp_path / "dkim.pem"),
            dns_resolver=dns.address,
        )


def test_check_another_domain_and_copy_its_record(page, server, rt):
    from playwright.sync_api import expect

    expect.set_options(timeout=20_000)
    accounts.create_user(rt, email="op@staff.example.org", password=PASSWORD, role="admin")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in(page, server, "op@staff.example.org")
    page.goto(f"{server}/admin/")
    page.click("nav >> text=Domain check")
    expect(page.locator("#domain-status")).to_have_text("ok")
    expect(page.locator("#domain-findings")).to_contain_text("s1._domainkey.example.com")

    page.fill("#domain-input", "other.example")
    page.click("button:has-text('Check')")
    expect(page.locator("#domain-status")).to_have_text("error")
    row = page.locator("#domain-findings tr", has_text="has no DMARC record")
    box = row.locator("textarea")
    expect(box).to_have_value(
        '_dmarc.other.example. IN TXT "v=DMARC1; p=quarantine; '
        'rua=mailto:dmarc-reports@other.example"'
    )
    row.locator("button:has-text('Copy')").click()
    expect(row.locator("button", has_text="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == box.input_value()
    page.screenshot(path=str(artifact("admin/domain-check.png")), full_page=True)

    page.fill("#domain-input", "exa mple")
    page.click("button:has-text('Check')")
    expect(page.locator("#domain-error")).to_contain_text("not a domain name")
