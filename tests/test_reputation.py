"""Reputation figures from what really happened: campaigns sent to an SMTP sink, bounce and
complaint mail fed through inbound, one-click posts and unsubscribe mail; rates per list and
receiving domain over 7 and 30 days, and how long each unsubscribe took."""

from __future__ import annotations

from datetime import timedelta
from email.utils import parseaddr

import pytest
from sqlalchemy import select

from listmgr.models import ConsentEvent, MailingList, utcnow
from listmgr.services import campaigns, delivery, inbound, subscriptions
from listmgr.services import reputation as rep
from tests.campaign_support import campaign, campaign_mail, make_list, person, wait_status
from tests.conftest import drain
from tests.helpers import links, path_of
from tests.inbound_support import arf, dsn, reply

DAY = 86400


@pytest.fixture
def client(rt):
    from listmgr.app import create_app

    return create_app(rt=rt, migrate=False).test_client()


def _list_id(rt, slug: str) -> int:
    with rt.db.session() as s:
        return int(s.scalar(select(MailingList.id).where(MailingList.slug == slug)))


def _send(rt, sink, name: str, lists: list[str]) -> dict[str, object]:
    """Send a campaign for real; the mail each recipient got, by address."""
    cid = campaign(rt, name=name, lists=lists)
    campaigns.start(rt, cid)
    drain(rt)
    wait_status(rt, cid)
    return {m.rcpt_tos[0]: m for m in campaign_mail(sink, cid)}


def _one_click_url(message) -> str:
    return path_of(str(message.message["List-Unsubscribe"]).split(",")[0].strip(" <>"))


def test_rates_per_list_and_domain_over_7_and_30_days(rt, sink, client, monkeypatch):
    make_list(rt, "news")
    make_list(rt, "deals")
    for i in range(4):
        person(rt, f"a{i}@gmail.example.com", ["news"])
    for i in range(2):
        person(rt, f"b{i}@yahoo.example.net", ["news"])
    for i in range(3):
        person(rt, f"c{i}@gmail.example.com", ["deals"])

    # "news" went out ten days ago (the sender's clock says so), "deals" today.
    real = utcnow
    monkeypatch.setattr(delivery, "utcnow", lambda: real() - timedelta(days=10))
    old = _send(rt, sink, "Old news", ["news"])
    monkeypatch.setattr(delivery, "utcnow", real)
    new = _send(rt, sink, "Fresh deals", ["deals"])
    assert len(old) == 6 and len(new) == 3

    # A hard bounce and a complaint about the old campaign, a one-click unsubscribe from the
    # new one: each through the way it really arrives.
    bounced = old["a0@gmail.example.com"]
    inbound.store(rt, dsn(verp=bounced.mail_from, failed="a0@gmail.example.com"))
    complained = old["b0@yahoo.example.net"]
    lu = str(complained.message["List-Unsubscribe"])
    inbound.store(rt, arf(original_list_unsubscribe=lu, complainer="b0@yahoo.example.net"))
    drain(rt)
    resp = client.post(
        _one_click_url(new["c0@gmail.example.com"]),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert resp.status_code == 200

    news, deals = _list_id(rt, "news"), _list_id(rt, "deals")
    r30 = rep.rates(rt, days=30, list_id=news)
    assert (r30.handed_over, r30.hard_bounces, r30.complaints) == (6, 1, 1)
    assert r30.unsubscribes == 1  # the complaint ended b0's subscription too
    assert r30.complaint_rate == pytest.approx(1 / 6)
    assert rep.rates(rt, days=7, list_id=news).handed_over == 0
    d7 = rep.rates(rt, days=7, list_id=deals)
    assert (d7.handed_over, d7.hard_bounces, d7.complaints, d7.unsubscribes) == (3, 0, 0, 1)
    yahoo = rep.rates(rt, days=30, domain="yahoo.example.net")
    assert (yahoo.handed_over, yahoo.complaints) == (2, 1)
    assert rep.rates(rt, days=7, domain="YAHOO.example.net").handed_over == 0

    report = rep.report(rt)
    assert report.overall[30].handed_over == 9 and report.overall[7].handed_over == 3
    by_list = {row.key: row for row in report.lists}
    assert by_list["news"].rates[30] == r30 and by_list["news"].rates[7].handed_over == 0
    assert by_list["deals"].rates[7] == d7
    by_domain = {row.key: row for row in report.domains}
    assert [row.key for row in report.domains] == [
        "gmail.example.com",
        "yahoo.example.net",
    ]  # by volume
    assert by_domain["gmail.example.com"].rates[30] == rep.rates(
        rt, days=30, domain="gmail.example.com"
    )
    assert by_domain["gmail.example.com"].rates[7].handed_over == 3
    assert by_domain["yahoo.example.net"].rates[30] == yahoo
    assert rep.level("complaint", r30.complaint_rate) == "above_0.3%"
    assert rep.level("bounce", r30.bounce_rate) == "above_5%"
    assert rep.level("complaint", d7.complaint_rate) == "ok"
    assert rep.level("complaint", None) == "none"

    # The daily series: the old campaign's day holds its mail, bounce and complaint.
    days = {d.day: d for d in report.daily}
    assert len(report.daily) == 30
    ten_days_ago = days[(real() - timedelta(days=10)).date().isoformat()]
    assert (ten_days_ago.handed_over, ten_days_ago.hard_bounces, ten_days_ago.complaints) == (
        6,
        1,
        1,
    )
    assert days[real().date().isoformat()].handed_over == 3

    # The one-click unsubscribe took effect at once; the new campaign's list shows it.
    times = rep.unsubscribe_times(rt, days=7)
    assert times["one-click"].count == 1 and times["all"].count == 1
    assert times["one-click"].max_seconds is not None and times["one-click"].max_seconds < 60
    assert times["all"].within_limit is True
    assert by_list["deals"].times[7].count == 1 and by_list["news"].times[7].count == 0
    # ... and 40 days on, nothing of it is in either window.
    later = rep.report(rt, now=real() + timedelta(days=40))
    assert later.overall[30].handed_over == 0 and later.times[30]["all"].count == 0


def test_time_to_effect_of_mailed_unsubscribes(rt, sink, client, monkeypatch):
    """A mail to the unsubscribe address processed three days after it arrived is over the
    two-day limit; the page's link and the preference center take effect at once."""
    make_list(rt, "news")
    for name in ("ann", "ben", "cat"):
        person(rt, f"{name}@example.org", ["news"])
    mails = _send(rt, sink, "News", ["news"])

    # ann writes to the unsubscribe address of her mail; our worker gets to it 3 days later.
    mailto = str(mails["ann@example.org"].message["List-Unsubscribe"]).split(",")[1]
    address = parseaddr(mailto.strip(" <>").removeprefix("mailto:").split("?")[0])[1]
    real = utcnow
    monkeypatch.setattr(subscriptions, "utcnow", lambda: real() + timedelta(days=3))
    inbound.store(
        rt,
        reply(sender="ann@example.org", to=address, subject="unsubscribe", body="", msgid="u1"),
    )
    drain(rt)
    monkeypatch.setattr(subscriptions, "utcnow", real)
    # ben presses the button on the unsubscribe page, cat uses the one-click header.
    page = _one_click_url(mails["ben@example.org"])
    assert client.get(page).status_code == 200
    assert client.post(page, data={}).status_code == 200
    one_click = _one_click_url(mails["cat@example.org"])
    client.post(
        one_click,
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )

    with rt.db.session() as s:
        events = {
            e.source: e
            for e in s.scalars(select(ConsentEvent).where(ConsentEvent.kind == "unsubscribe"))
        }
    assert set(events) == {"inbound-unsubscribe", "page", "one-click"}
    assert all(e.requested_at is not None for e in events.values())
    mailed = events["inbound-unsubscribe"]
    assert (mailed.at - mailed.requested_at) >= timedelta(days=3)

    times = rep.unsubscribe_times(rt, days=7, now=real() + timedelta(days=3))
    assert times["inbound-unsubscribe"].count == 1
    assert times["inbound-unsubscribe"].median_seconds == pytest.approx(3 * DAY, abs=120)
    assert times["inbound-unsubscribe"].within_limit is False
    assert times["page"].count == 1 and times["page"].max_seconds < 60
    assert times["one-click"].count == 1 and times["one-click"].within_limit is True
    assert times["all"].count == 3
    assert times["all"].max_seconds == pytest.approx(3 * DAY, abs=120)
    assert times["all"].median_seconds < 60  # two of three were at once
    assert times["all"].within_limit is False
    assert times["reply-confirmed"].count == 0
    # per receiving domain and per list, the same numbers
    assert rep.unsubscribe_times(rt, days=7, domain="example.org")["all"].count == 3
    assert rep.unsubscribe_times(rt, days=7, domain="other.org")["all"].count == 0
    news = _list_id(rt, "news")
    assert rep.unsubscribe_times(rt, days=7, list_id=news)["all"].count == 3


def test_no_mail_means_no_rates(rt):
    report = rep.report(rt)
    assert report.overall[7].handed_over == 0 and report.overall[7].complaint_rate is None
    assert report.lists == [] and report.domains == []
    assert report.times[30]["all"].within_limit is None
    assert all(d.handed_over == 0 for d in report.daily)


def test_reply_confirmed_by_link_is_shown_but_not_judged(rt, sink, client, monkeypatch):
    """An "unsubscribe" reply without proof gets a confirmation link; the time it took counts
    from the reply's arrival, includes the person's own delay, and is kept out of the verdict."""
    make_list(rt, "news")
    person(rt, "dora@example.org", ["news"])
    inbound.store(
        rt,
        reply(
            sender="dora@example.org",
            to="news@lists.example.test",
            subject="unsubscribe",
            body="Please unsubscribe me.",
            msgid="no-proof",
        ),
    )
    drain(rt)
    asked = sink.wait_for(1)[0].message
    link = path_of(next(u for u in links(asked) if "/u/request/" in u).rstrip(")"))
    real = utcnow
    monkeypatch.setattr(subscriptions, "utcnow", lambda: real() + timedelta(days=5))
    assert client.post(link).status_code == 200

    times = rep.unsubscribe_times(rt, days=7, now=real() + timedelta(days=5))
    assert times["reply-confirmed"].count == 1
    assert times["reply-confirmed"].max_seconds == pytest.approx(5 * DAY, abs=120)
    assert times["all"].count == 0 and times["all"].within_limit is None
