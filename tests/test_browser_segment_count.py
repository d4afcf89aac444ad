"""The segment editor's live count in headless Chromium: while a count is still on its way, a
newer one cancels its request (the page never waits for, nor shows, a stale count)."""

from __future__ import annotations

import json

import pytest

from listmgr.services import accounts, lists, subscribers
from listmgr.services.subscriptions import Origin
from tests.browser_support import (  # noqa: F401
    BROWSER_TEST,
    PASSWORD,
    page,
    page_options,
    server,
    sign_in,
)

pytestmark = [*BROWSER_TEST, pytest.mark.slow]


def test_a_newer_count_cancels_the_stale_one(page, server, rt):
    from playwright.sync_api import expect

    expect.set_options(timeout=20_000)
    accounts.create_user(rt, email="owner@staff.example.org", password=PASSWORD, role="owner")
    lists.create(rt, slug="news", name="News")
    for i, name in enumerate(["Ada", "Ada", "Bob"]):
        subscribers.create(
            rt,
            email=f"p{i}@example.org",
            name=name,
            lists=["news"],
            status="confirmed",
            consent="test",
            origin=Origin(source="test"),
        )
    held = []  # the first count of "Ada" is held back, as if the database were slow
    seen = []

    def route(r):
        body = json.loads(r.request.post_data or "{}")
        seen.append(body.get("rules"))
        if body.get("rules", {}).get("value") == "Ada" and not held:
            held.append(r)  # never answered: only the page can end it, by cancelling it
            return
        r.continue_()

    failed = []
    page.on("requestfailed", lambda req: failed.append((req.url, req.failure)))
    sign_in(page, server, "owner@staff.example.org")
    page.route("**/api/segments/count", route)
    page.goto(f"{server}/admin/segments/new")
    page.check("input[name=lists][value=news]")
    expect(page.locator("#live-count")).to_have_text("3")

    def type_rules(rules):  # as typed into the JSON box (an input event each time)
        page.evaluate(
            """(v) => { const t = document.querySelector('textarea[name=rules]');
                       t.value = v; t.dispatchEvent(new Event('input')); }""",
            json.dumps(rules),
        )

    ada = {"field": "name", "op": "eq", "value": "Ada"}
    type_rules(ada)
    page.wait_for_function(
        "() => document.querySelector('#live-count').classList.contains('stale')"
    )
    page.wait_for_timeout(100)
    assert len(held) == 1, seen
    type_rules({**ada, "value": "Bob"})
    expect(page.locator("#live-count")).to_have_text("1")
    expect(page.locator("#live-count")).not_to_have_class("stale")
    page.wait_for_timeout(300)  # the stale count is cancelled, never shown
    assert [f for f in failed if f[0].endswith("/api/segments/count")], failed
    expect(page.locator("#live-count")).to_have_text("1")
    assert not [p for p in page.problems if "segments/count" in p and "status" in p]
