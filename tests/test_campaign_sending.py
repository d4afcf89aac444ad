"""While a campaign sends: an unsubscribe stops the next message at once; pause, resume and
cancel stop and continue where they were; progress is readable throughout."""

from __future__ import annotations

import time

from sqlalchemy import select

from listmgr import boot, runtime
from listmgr.models import Delivery, Subscriber
from listmgr.services import campaigns
from tests.campaign_support import (
    campaign,
    campaign_mail,
    deliveries,
    make_list,
    person,
    recipients,
    wait_status,
)
from tests.conftest import drain, settings_for


def _wait(predicate, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def _audience(rt, n: int) -> dict[str, int]:
    make_list(rt, "news")
    for i in range(n):
        person(rt, f"p{i:03d}@example.org", ["news"])
    with rt.db.session() as s:
        return {sub.email: int(sub.id) for sub in s.scalars(select(Subscriber))}


def test_one_click_unsubscribe_mid_campaign_stops_the_next_message(make_runtime, sink):
    from listmgr.app import create_app

    rt = make_runtime(send_rate=25)
    client = create_app(rt=rt, migrate=False).test_client()
    ids = _audience(rt, 40)
    cid = campaign(rt)
    campaigns.start(rt, cid)
    _wait(lambda: sum(recipients(sink, cid).values()) >= 8)
    # The last recipients are already claimed by the running batch: only the per-message
    # check can stop their mail now.
    with rt.db.session() as s:
        claimed = list(
            s.scalars(
                select(Delivery.subscriber_id)
                .where(Delivery.campaign_id == cid, Delivery.status == "claimed")
                .order_by(Delivery.id.desc())
                .limit(2)
            )
        )
    assert claimed, "the batch should still be in progress"
    email = next(e for e, i in ids.items() if i == claimed[0])
    lid = deliveries(rt, cid)[email].list_id
    token = rt.tokens.unsubscribe(ids[email], lid, cid)
    assert recipients(sink, cid)[email] == 0
    resp = client.post(
        f"/u/{token}",
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert resp.status_code == 200
    received_at_unsubscribe = recipients(sink, cid)[email]
    drain(rt)
    wait_status(rt, cid)
    assert received_at_unsubscribe == 0 and recipients(sink, cid)[email] == 0
    got = recipients(sink, cid)
    assert set(got) == set(ids) - {email} and set(got.values()) == {1}
    stats = campaigns.stats(rt, cid)
    assert (stats.sent, stats.skipped, stats.unsubscribed, stats.remaining) == (39, 1, 1, 0)
    row = deliveries(rt, cid)[email]
    assert row.status == "skipped" and "consent" in row.error


def test_pause_resume_and_progress(make_runtime, sink):
    rt = make_runtime(send_rate=40)
    ids = _audience(rt, 60)
    cid = campaign(rt)
    campaigns.start(rt, cid)
    _wait(lambda: sum(recipients(sink, cid).values()) >= 5)
    campaigns.pause(rt, cid)
    # The running job stops after the message in flight and gives its claim back.
    _wait(lambda: campaigns.stats(rt, cid).in_progress == 0)
    stats = campaigns.stats(rt, cid)
    assert campaigns.get(rt, cid).status == "paused"
    assert stats.sent == sum(recipients(sink, cid).values()) and 0 < stats.sent < 60
    assert stats.remaining == 60 - stats.sent
    drain(rt)
    assert campaigns.stats(rt, cid).sent == stats.sent == sum(recipients(sink, cid).values())
    campaigns.resume(rt, cid)
    drain(rt)
    wait_status(rt, cid)
    got = recipients(sink, cid)
    assert set(got) == set(ids) and set(got.values()) == {1}
    assert campaigns.stats(rt, cid).remaining == 0


def test_cancel_stops_for_good(make_runtime, sink):
    rt = make_runtime(send_rate=40)
    _audience(rt, 40)
    cid = campaign(rt)
    campaigns.start(rt, cid)
    _wait(lambda: sum(recipients(sink, cid).values()) >= 3)
    campaigns.cancel(rt, cid)
    drain(rt)
    _wait(lambda: campaigns.stats(rt, cid).in_progress == 0)
    stats = campaigns.stats(rt, cid)
    assert campaigns.get(rt, cid).status == "cancelled"
    assert stats.sent == sum(recipients(sink, cid).values()) and stats.remaining > 0
    rt.enqueue("send_batch", cid)  # a stray wake-up sends nothing
    drain(rt)
    assert campaigns.stats(rt, cid).sent == stats.sent


def test_rate_limit_waits_before_the_consent_check(make_runtime, sink):
    """At one message every 2 s, the next recipient's check happens 2 s after the previous mail:
    an unsubscribe in between must stop it (the check must not run before the wait)."""
    from listmgr.app import create_app

    rt = make_runtime(send_rate=0.5)
    client = create_app(rt=rt, migrate=False).test_client()
    ids = _audience(rt, 3)
    cid = campaign(rt)
    campaigns.start(rt, cid)
    first = _wait(lambda: list(recipients(sink, cid)))[0]
    rows = deliveries(rt, cid)
    following = min((e for e in ids if e != first), key=lambda e: rows[e].id)
    token = rt.tokens.unsubscribe(ids[following], rows[following].list_id, cid)
    assert (
        client.post(
            f"/u/{token}",
            data="List-Unsubscribe=One-Click",
            content_type="application/x-www-form-urlencoded",
        ).status_code
        == 200
    )
    drain(rt)
    wait_status(rt, cid)
    assert following not in recipients(sink, cid)
    assert deliveries(rt, cid)[following].status == "skipped"


def test_campaigns_sending_at_once_share_the_connections(database_url, sink, make_runtime):
    """Two campaigns started together go out side by side, not one after the other: while the
    SMTP server holds every message, one of each campaign is in flight at the same moment."""
    starter = runtime.build(settings_for(database_url, sink))
    boot.attach_queue(starter)  # enqueue only: both campaigns are sending before any job runs
    _audience(starter, 30)
    first, second = campaign(starter), campaign(starter, name="Second")
    campaigns.start(starter, first)
    campaigns.start(starter, second)
    starter.queue.close()

    def campaign_of(message) -> int:
        return int(message.message["Message-ID"].split(".")[0][1:])

    sink.hold()
    try:
        rt = make_runtime(send_connections=2)
        rt.enqueue("send_batch", first)
        rt.enqueue("send_batch", second)
        held = sink.wait_held(lambda held: {campaign_of(m) for m in held} == {first, second})
        assert len(held) == 2  # two connections, one for each campaign
    finally:
        sink.release()
    drain(rt)
    assert wait_status(rt, first) == wait_status(rt, second) == "sent"
    order = [campaign_of(m) for m in campaign_mail(sink)]
    assert sorted(order) == [first] * 30 + [second] * 30
