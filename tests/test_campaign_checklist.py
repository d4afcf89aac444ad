"""The campaign checklist through real campaigns in the database: the message as it would be
sent, the audience and its engagement, the lists' rates from real delivery rows; blockers refuse
sending and scheduling and leave the campaign as it was."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select

from listmgr.errors import Blocked
from listmgr.mail import checklist as cl
from listmgr.models import Campaign, Delivery, Engagement, MailingList, Subscriber, utcnow
from listmgr.services import campaign_checklist, campaigns
from tests.campaign_support import campaign, dkim_pem, make_list, past_deliveries, person

GOOD = '<p>Hello {{ subscriber.name }}</p><img src="https://example.org/a.png" alt="A">'


def level(found: cl.Checklist, code: str) -> str:
    (check,) = [c for c in found.checks if c.code == code]
    return check.level


def message_of(found: cl.Checklist, code: str) -> str:
    return next(c.message for c in found.checks if c.code == code)


def _ids(rt, model, **where) -> list[int]:
    with rt.db.session() as s:
        query = select(model.id)
        for k, v in where.items():
            query = query.where(getattr(model, k) == v)
        return list(s.scalars(query))


def _list_id(rt, slug: str) -> int:
    with rt.db.session() as s:
        return int(s.scalar(select(MailingList.id).where(MailingList.slug == slug)) or 0)


def _snapshot(rt, cid: int) -> tuple:
    with rt.db.session() as s:
        row = s.get(Campaign, cid)
        deliveries = s.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.campaign_id == cid)
        )
        return (row.status, row.scheduled_at, row.started_at, row.audience, deliveries)


@pytest.fixture
def news(rt):
    make_list(rt, "news")
    for i in range(3):
        person(rt, f"p{i}@example.org", ["news"], name=f"P{i}")
    return rt


def test_a_good_campaign_has_no_blockers_and_the_message_is_read_as_sent(news):
    rt = news
    cid = campaign(rt, subject="Spring news", preheader="What is new this spring", body=GOOD)
    found = campaign_checklist.for_campaign(rt, cid)
    assert found.blockers == (), found.checks
    assert level(found, "subject") == cl.OK and level(found, "preheader") == cl.OK
    assert level(found, "image_alt") == cl.OK and level(found, "text_part") == cl.OK
    assert level(found, "audience") == cl.OK
    # no DKIM key configured in the tests: a warning, never a blocker
    assert level(found, "dkim") == cl.WARNING
    # nobody allows tracking: engagement unknown; no mail yet: nothing to say about the list
    assert "unknown" in message_of(found, "engagement").lower()
    assert message_of(found, "list_rates").startswith("News: no campaign mail")
    # development: the app's own http:// links are expected
    assert level(found, "links") == cl.OK
    campaigns.start(rt, cid, actor="tests")  # warnings never block
    assert _snapshot(rt, cid)[0] in ("sending", "sent")


def test_an_empty_audience_is_a_warning(news):
    rt = news
    make_list(rt, "empty")
    cid = campaign(rt, lists=["empty"], preheader="Hi", body=GOOD)
    found = campaign_checklist.for_campaign(rt, cid)
    assert level(found, "audience") == cl.WARNING and found.blockers == ()


def test_a_blocker_refuses_sending_and_scheduling_and_changes_nothing(news):
    rt = news
    cid = campaign(rt, preheader="Hi", body=GOOD)
    past_deliveries(rt, list_slug="news", count=200, complained=2)  # 1 %: over the limit
    found = campaign_checklist.for_campaign(rt, cid)
    assert level(found, "complaint_rate") == cl.BLOCKER
    before = _snapshot(rt, cid)
    with pytest.raises(Blocked) as err:
        campaigns.start(rt, cid, actor="tests")
    assert "News" in err.value.message
    assert err.value.detail["checklist"]["blockers"] == 1
    assert _snapshot(rt, cid) == before
    with pytest.raises(Blocked):
        campaigns.schedule(rt, cid, at=utcnow() + timedelta(days=1), actor="tests")
    assert _snapshot(rt, cid) == before
    # unscheduling is always allowed; test sends still go (they are for checking)
    campaigns.schedule(rt, cid, at=None, actor="tests")
    results = campaigns.send_test(rt, cid, to=["me@example.org"], actor="tests")
    assert results[0]["sent"], results


def test_starting_checks_the_blockers_without_counting_the_audience(news):
    """The audience checks only warn: the start does not count the audience before it
    materializes it (a count bounded like a live one refused a ten-million list)."""
    rt = news
    cid = campaign(rt, preheader="Hi", body=GOOD)
    counts: list[str] = []

    def seen(_conn, _cursor, statement, *_args):
        if re.match(r"\s*SELECT count\(\*\)", statement, re.I) and "FROM subscriber" in statement:
            counts.append(statement)

    event.listen(rt.db.engine, "before_cursor_execute", seen)
    try:
        audience = campaigns.start(rt, cid, actor="tests")
    finally:
        event.remove(rt.db.engine, "before_cursor_execute", seen)
    assert audience > 0
    assert counts == []
    # the composer's checklist still counts it and warns about an empty one
    assert level(campaign_checklist.for_campaign(rt, cid), "audience") == cl.OK


def test_a_scheduled_campaign_that_became_blocked_goes_back_to_draft(news):
    rt = news
    cid = campaign(rt, preheader="Hi", body=GOOD)
    campaigns.schedule(rt, cid, at=utcnow() + timedelta(minutes=5), actor="tests")
    # the list's complaints pass the limit before the time comes
    past_deliveries(rt, list_slug="news", count=200, complained=2)
    with rt.db.session() as s:
        s.get(Campaign, cid).scheduled_at = utcnow() - timedelta(seconds=1)
    assert campaigns.start_due(rt) == 0
    status, scheduled_at, started_at, audience, deliveries = _snapshot(rt, cid)
    assert status == "draft" and started_at is None and deliveries == 0


def test_list_rates_come_from_real_delivery_rows(news):
    rt = news
    make_list(rt, "offers")
    person(rt, "o@example.org", ["offers"])
    cid = campaign(rt, lists=["news", "offers"], preheader="Hi", body=GOOD)
    # news: 1 complaint in 500 (0.2 %: over the good level, under the limit), 30 hard bounces
    # (6 %); offers: 2 complaints in 200 (1 %); old mail (40 days ago) is not counted
    past_deliveries(rt, list_slug="news", count=500, bounced=30, complained=1)
    past_deliveries(rt, list_slug="offers", count=200, complained=2, campaign_id=998)
    past_deliveries(
        rt,
        list_slug="news",
        count=300,
        complained=300,
        campaign_id=997,
        when=utcnow() - timedelta(days=40),
    )
    found = campaign_checklist.for_campaign(rt, cid)
    complaints = {
        c.message.split(":")[0]: c.level for c in found.checks if c.code == "complaint_rate"
    }
    assert complaints == {"News": cl.WARNING, "Offers": cl.BLOCKER}
    assert level(found, "bounce_rate") == cl.WARNING
    assert "6.00 %" in message_of(found, "bounce_rate")
    assert "0.20 %" in next(c.message for c in found.checks if c.message.startswith("News: 0.20"))
    before = _snapshot(rt, cid)
    with pytest.raises(Blocked) as err:
        campaigns.start(rt, cid, actor="tests")
    assert "Offers" in err.value.message and "News" not in err.value.message
    assert _snapshot(rt, cid) == before
    # the same campaign to news alone: warnings only, it may go
    campaigns.update(rt, cid, actor="tests", lists=["news"])
    assert campaign_checklist.for_campaign(rt, cid).blockers == ()


def test_never_engaged_audience_counts_only_people_who_allow_tracking(rt):
    make_list(rt, "news")
    tracked = [
        person(rt, f"t{i}@example.org", ["news"], consents={"tracking": True}) for i in range(10)
    ]
    untracked = [person(rt, f"u{i}@example.org", ["news"]) for i in range(6)]
    cid = campaign(rt, preheader="Hi", body=GOOD)
    assert "unknown" not in message_of(campaign_checklist.for_campaign(rt, cid), "engagement")
    # three earlier campaigns to everyone; nobody engaged: 100 % of the tracked never did
    for n in range(3):
        past_deliveries(
            rt, list_slug="news", count=16, subscriber_ids=tracked + untracked, campaign_id=900 + n
        )
    found = campaign_checklist.for_campaign(rt, cid)
    assert level(found, "engagement") == cl.WARNING
    assert message_of(found, "engagement").startswith("100 %")
    # five of the ten open or click (a machine's open does not count): 50 %, not "mostly"
    with rt.db.session() as s:
        for i in range(6):
            kind = "click" if i == 0 else "open"
            s.add(Engagement(campaign_id=900, subscriber_id=tracked[i], kind=kind, machine=i == 5))
    found = campaign_checklist.for_campaign(rt, cid)
    assert level(found, "engagement") == cl.OK and message_of(found, "engagement").startswith(
        "50 %"
    )
    # someone sent two campaigns is not "never engaged" yet (5 of 11); after a third, 6 of 11
    newer = person(rt, "new@example.org", ["news"], consents={"tracking": True})
    for n in range(2):
        past_deliveries(rt, list_slug="news", count=1, subscriber_ids=[newer], campaign_id=910 + n)
    assert level(campaign_checklist.for_campaign(rt, cid), "engagement") == cl.OK
    past_deliveries(rt, list_slug="news", count=1, subscriber_ids=[newer], campaign_id=912)
    found = campaign_checklist.for_campaign(rt, cid)
    assert level(found, "engagement") == cl.WARNING and message_of(found, "engagement").startswith(
        "55 %"
    )


def test_tracking_switched_off_means_engagement_unknown(make_runtime):
    rt = make_runtime(tracking=False)
    make_list(rt, "news")
    person(rt, "t@example.org", ["news"], consents={"tracking": True})
    cid = campaign(rt, preheader="Hi", body=GOOD)
    assert "unknown" in message_of(campaign_checklist.for_campaign(rt, cid), "engagement").lower()


def test_dkim_alignment_follows_the_configured_key(make_runtime, tmp_path):
    key = tmp_path / "dkim.pem"
    key.write_bytes(dkim_pem("ed25519"))
    rt = make_runtime(dkim_domain="example.org", dkim_selector="s1", dkim_private_key_path=str(key))
    make_list(rt, "news")
    person(rt, "p@example.org", ["news"])
    aligned = campaign(rt, from_email="news@mail.example.org", preheader="Hi", body=GOOD)
    other = campaign(rt, from_email="news@elsewhere.com", preheader="Hi", body=GOOD)
    assert level(campaign_checklist.for_campaign(rt, aligned), "dkim") == cl.OK
    found = campaign_checklist.for_campaign(rt, other)
    assert level(found, "dkim") == cl.WARNING and "elsewhere.com" in message_of(found, "dkim")


def test_production_refuses_local_links_and_warns_about_http(make_runtime):
    rt = make_runtime(env="production")
    make_list(rt, "news")
    person(rt, "p@example.org", ["news"])
    body = GOOD + '<p><a href="http://127.0.0.1:5000/offer">offer</a></p>'
    cid = campaign(rt, preheader="Hi", body=body)
    found = campaign_checklist.for_campaign(rt, cid)
    assert level(found, "local_links") == cl.BLOCKER
    assert "http://127.0.0.1:5000/offer" in message_of(found, "local_links")
    # the test settings' base URL is http://: the footer's own links are plain http
    assert level(found, "http_links") == cl.WARNING
    with pytest.raises(Blocked):
        campaigns.start(rt, cid, actor="tests")
    campaigns.update(rt, cid, actor="tests", body=GOOD)
    assert campaign_checklist.for_campaign(rt, cid).blockers == ()


def test_values_not_saved_yet(news):
    rt = news
    base = {"name": "x", "body": GOOD, "lists": ["news"], "preheader": "Hi"}
    found = campaign_checklist.for_values(rt, {**base, "subject": ""})
    assert level(found, "subject") == cl.BLOCKER  # "(no subject yet)" stands in for the preview
    found = campaign_checklist.for_values(rt, {**base, "subject": "Grüße " * 20})
    assert level(found, "subject") == cl.WARNING and "119 characters" in message_of(
        found, "subject"
    )
    found = campaign_checklist.for_values(
        rt, {**base, "subject": "Hi", "body": '<img src="https://e.org/x.png">'}
    )
    assert level(found, "image_alt") == cl.WARNING
    # no list chosen yet: nobody to send to
    found = campaign_checklist.for_values(rt, {**base, "subject": "Hi", "lists": []})
    assert level(found, "audience") == cl.WARNING
    # no preheader: the inbox shows the layout's first line
    found = campaign_checklist.for_values(rt, {**base, "subject": "Hi", "preheader": ""})
    assert "View this email in your browser" in message_of(found, "preheader")
    # nothing is stored
    assert _ids(rt, Campaign) == []
    assert _ids(rt, Subscriber)  # the people are still there


def test_the_live_composer_reads_rates_at_most_once_a_minute(news, monkeypatch):
    rt = news
    values = {"name": "x", "subject": "Hi", "body": GOOD, "lists": ["news"], "preheader": "Hi"}
    assert level(campaign_checklist.for_values(rt, values), "list_rates") == cl.OK
    past_deliveries(rt, list_slug="news", count=200, complained=2)
    # within the minute the composer shows the rates as read before ...
    assert level(campaign_checklist.for_values(rt, values), "list_rates") == cl.OK
    # ... while sending always reads them now
    cid = campaign(rt, preheader="Hi", body=GOOD)
    assert level(campaign_checklist.for_campaign(rt, cid), "complaint_rate") == cl.BLOCKER
    with pytest.raises(Blocked):
        campaigns.start(rt, cid, actor="tests")
    real = time.monotonic
    monkeypatch.setattr(time, "monotonic", lambda: real() + campaign_checklist.LIVE_SECONDS + 1)
    assert level(campaign_checklist.for_values(rt, values), "complaint_rate") == cl.BLOCKER
