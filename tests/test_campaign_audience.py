"""A campaign reaches exactly the consenting people of its lists and segment, once each."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from listmgr.models import Delivery, Subscriber, Suppression, utcnow
from listmgr.services import campaigns
from listmgr.services.subscriptions import Origin, unsubscribe
from tests.campaign_support import (
    campaign,
    campaign_mail,
    define_fields,
    deliveries,
    make_list,
    person,
    raw_profile,
    recipients,
    wait_status,
)
from tests.conftest import drain


def _people(rt):
    news = make_list(rt, "news")
    make_list(rt, "other")
    define_fields(rt)
    person(rt, "in@example.org", ["news"], fields={"city": "Berlin"})
    person(rt, "both@example.org", ["news", "other"], fields={"city": "Berlin"})
    person(rt, "outside@example.org", ["news"], fields={"city": "Paris"})
    person(rt, "pending@example.org", ["news"], status="pending", fields={"city": "Berlin"})
    person(rt, "left@example.org", ["news"], fields={"city": "Berlin"})
    person(rt, "suppressed@example.org", ["news"], fields={"city": "Berlin"})
    person(rt, "paused@example.org", ["news"], fields={"city": "Berlin"})
    person(rt, "elsewhere@example.org", ["other"], fields={"city": "Berlin"})
    person(rt, "woke@example.org", ["news"], fields={"city": "Berlin"})
    ids = {}
    with rt.db.session() as s:
        for sub in s.scalars(select(Subscriber)):
            ids[sub.email] = sub.id
    unsubscribe(rt, rt.tokens.unsubscribe(ids["left@example.org"], news), origin=Origin("test"))
    with rt.db.session() as s:
        s.add(
            Suppression(
                email_hash=rt.email_hash("suppressed@example.org"),
                email="suppressed@example.org",
                reason="complaint",
            )
        )
    raw_profile(rt, "paused@example.org", paused_until=utcnow() + timedelta(days=3))
    raw_profile(rt, "woke@example.org", paused_until=utcnow() - timedelta(days=1))
    return ids


def test_mixed_audience_gets_exactly_the_right_people(rt, sink):
    _people(rt)
    cid = campaign(rt, segment={"field": "city", "op": "eq", "value": "Berlin"})
    assert campaigns.audience(rt, cid) == 3
    assert campaigns.start(rt, cid, actor="tests") == 3
    drain(rt)
    assert wait_status(rt, cid) == "sent"
    assert recipients(sink) == {"in@example.org": 1, "both@example.org": 1, "woke@example.org": 1}
    stats = campaigns.stats(rt, cid)
    assert (stats.audience, stats.sent, stats.failed, stats.skipped, stats.remaining) == (
        3,
        3,
        0,
        0,
        0,
    )


def test_two_lists_one_message_each_and_the_token_names_a_list_they_are_on(rt, sink):
    _people(rt)
    cid = campaign(rt, lists=["news", "other"])
    campaigns.start(rt, cid)
    drain(rt)
    wait_status(rt, cid)
    expected = {
        "in@example.org",
        "both@example.org",
        "outside@example.org",
        "elsewhere@example.org",
        "woke@example.org",
    }
    assert recipients(sink) == {e: 1 for e in expected}
    for message in campaign_mail(sink, cid):
        header = message.message["List-Unsubscribe"]
        token = header.split("/u/")[1].split(">")[0]
        tok = rt.tokens.read_unsubscribe(token)
        assert tok.campaign_id == cid
        with rt.db.session() as s:
            email = s.get(Subscriber, tok.subscriber_id).email
            assert email == message.rcpt_tos[0]
        assert message.message["List-Id"].endswith(".lists.example.test>") and (
            "<news." in message.message["List-Id"] or "<other." in message.message["List-Id"]
        )


def test_consent_is_checked_again_when_the_batch_is_claimed(rt, sink):
    """Someone who leaves between the start and the claim is skipped and counted."""
    ids = _people(rt)
    cid = campaign(rt)
    # Start without waking the workers, then change consent, then wake them.
    queue, rt.queue = rt.queue, None
    try:
        audience = campaigns.start(rt, cid)
    finally:
        rt.queue = queue
    lid = deliveries(rt, cid)["in@example.org"].list_id
    unsubscribe(
        rt, rt.tokens.unsubscribe(ids["in@example.org"], lid, cid), origin=Origin("one-click")
    )
    with rt.db.session() as s:
        s.add(Suppression(email_hash=rt.email_hash("outside@example.org"), reason="manual"))
    rt.enqueue("send_batch", cid)
    drain(rt)
    wait_status(rt, cid)
    got = recipients(sink)
    assert "in@example.org" not in got and "outside@example.org" not in got
    assert sum(got.values()) == audience - 2
    stats = campaigns.stats(rt, cid)
    assert stats.skipped == 2 and stats.sent == audience - 2 and stats.unsubscribed == 1
    rows = deliveries(rt, cid)
    assert rows["in@example.org"].status == "skipped" and rows["in@example.org"].unsubscribed
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Delivery)) == audience
