"""A campaign's content is checked and built once per version, and its segment rules compiled
once, on the way from start to the first message (the cache counts what it builds)."""

from __future__ import annotations

import uuid

from listmgr.services import campaigns
from listmgr.services.campaign_setup import COMPILED
from tests.campaign_support import (
    campaign,
    define_fields,
    make_list,
    person,
    recipients,
    wait_status,
)

RULES = {"field": "city", "op": "eq", "value": "Berlin"}


def _unique(text: str) -> str:
    """Content no other test in this process built (the cache lives as long as the process)."""
    return f"{text} {uuid.uuid4().hex}"


def test_content_and_rules_compile_once_per_version(rt, sink):
    define_fields(rt)
    make_list(rt, "news")
    person(rt, "berlin@example.org", ["news"], fields={"city": "Berlin"})
    person(rt, "paris@example.org", ["news"], fields={"city": "Paris"})
    builds = COMPILED.compiles
    cid = campaign(rt, segment=RULES, subject=_unique("News"))
    assert COMPILED.compiles == builds + 1  # checked when saved
    campaigns.update(rt, cid, subject=_unique("Hello {{ subscriber.name|default('you', true) }}"))
    assert COMPILED.compiles == builds + 2  # a new version
    campaigns.preview(rt, cid)
    campaigns.send_test(rt, cid, to=["me@example.org"])
    assert COMPILED.compiles == builds + 2  # preview and test take the saved build

    rules = COMPILED.rule_compiles
    campaigns.start(rt, cid, actor="tests")
    wait_status(rt, cid)
    assert recipients(sink, cid) == {"me@example.org": 1, "berlin@example.org": 1}
    assert COMPILED.compiles == builds + 2  # start and the sender reuse it
    assert COMPILED.rule_compiles == rules + 1  # checked and used by the one start


def test_a_changed_sample_context_is_checked_again(rt):
    """The version covers what the check rendered with (here the lists), not only the text."""
    make_list(rt, "news")
    make_list(rt, "other")
    cid = campaign(rt, subject=_unique("News"))
    builds = COMPILED.compiles
    campaigns.update(rt, cid, lists=["news", "other"])
    campaigns.update(rt, cid, lists=["news", "other"])  # the same again: no new version
    assert COMPILED.compiles == builds + 1


def test_the_cache_is_bounded():
    from listmgr.mail import content
    from listmgr.services.campaign_setup import CompileCache

    cache = CompileCache(size=2)
    source = content.Content(subject="Hi", body="<p>Hello</p>")
    for n in range(3):
        cache.built(n, source, {}, content.Limits(), f"v{n}")
    cache.built(2, source, {}, content.Limits(), "v2")
    assert cache.compiles == 3
    cache.built(0, source, {}, content.Limits(), "v0")  # dropped as the oldest: built again
    assert cache.compiles == 4
