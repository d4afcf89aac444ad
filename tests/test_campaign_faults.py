"""SMTP faults: 4xx for a while, 421 closing, 5xx for some recipients, dropped connections.
Retries happen, 5xx rows fail (and count as bounces), nothing is lost, the campaign finishes,
and the only message that arrives twice is the one recorded as possibly duplicated."""

from __future__ import annotations

import logging
import threading
from collections import Counter

from sqlalchemy import select

from listmgr.models import Suppression
from listmgr.services import campaigns
from tests.campaign_support import (  # noqa: F401
    campaign,
    deliveries,
    fault_sink,
    make_list,
    person,
    recipients,
    wait_status,
)
from tests.conftest import Sink, drain, free_port, start_smtp, wait_until


def test_smtp_faults(make_runtime, fault_sink):
    sink = fault_sink
    rt = make_runtime(smtp_url=sink.url, retry_base_seconds=0.2)
    make_list(rt, "news")
    groups = {"ok": 12, "temp": 4, "bad": 3, "drop": 2, "dropafter": 1}
    for group, n in groups.items():
        for i in range(n):
            person(rt, f"{group}{i}@example.org", ["news"])
    lock = threading.Lock()
    rcpts: Counter[str] = Counter()
    datas: Counter[str] = Counter()
    total = Counter[str]()

    def on_rcpt(address: str) -> str | None:
        with lock:
            rcpts[address] += 1
            total["rcpt"] += 1
            n, seen = total["rcpt"], rcpts[address]
        if address.startswith("bad"):
            return f"550 5.1.1 <{address}>: no such user"
        if address.startswith("temp") and seen <= 2:
            return "451 4.7.1 greylisted, try again later"
        if 6 <= n <= 7:
            return "421 4.3.2 too busy, closing"
        return None

    def on_data(item):
        address = item.rcpt_tos[0]
        with lock:
            datas[address] += 1
            first = datas[address] == 1
        if address.startswith("dropafter") and first:
            return "after"
        if address.startswith("drop") and not address.startswith("dropafter") and first:
            return "before"
        return None

    sink.rcpt_hook = on_rcpt
    sink.drop_hook = on_data
    cid = campaign(rt)
    assert campaigns.start(rt, cid) == sum(groups.values())
    drain(rt, timeout_ms=60000)
    assert wait_status(rt, cid) == "sent"

    got = recipients(sink, cid)
    rows = deliveries(rt, cid)
    good = {e for e in rows if not e.startswith("bad")}
    assert set(got) == good  # nothing lost
    twice = {e for e, n in got.items() if n > 1}
    assert twice == {"dropafter0@example.org"}  # the one that may have gone out
    assert all(n <= 2 for n in got.values())
    assert {e for e, d in rows.items() if d.possibly_duplicate} >= twice
    assert all(rows[e].possibly_duplicate for e in rows if e.startswith("drop"))
    for email, row in rows.items():
        if email.startswith("bad"):
            assert row.status == "failed" and row.bounced and "550" in row.error
            assert row.attempts == 1  # 5xx: never retried
        else:
            assert row.status == "sent" and not row.bounced
        if email.startswith("temp"):
            assert row.attempts == 3 and rcpts[email] == 3  # two 451s, then accepted
    stats = campaigns.stats(rt, cid)
    assert (stats.sent, stats.failed, stats.bounced, stats.remaining) == (19, 3, 3, 0)
    assert stats.sent + stats.failed + stats.skipped == stats.audience
    with rt.db.session() as s:  # "no such user" is a hard bounce: never mailed again
        suppressed = set(s.scalars(select(Suppression.email)))
    assert suppressed == {f"bad{i}@example.org" for i in range(3)}


def test_retries_give_up_after_the_limit(make_runtime, fault_sink):
    sink = fault_sink
    rt = make_runtime(smtp_url=sink.url, retry_base_seconds=0.05, retry_max_attempts=3)
    make_list(rt, "news")
    person(rt, "never@example.org", ["news"])
    person(rt, "fine@example.org", ["news"])
    sink.rcpt_hook = lambda a: "452 4.2.2 mailbox full" if a.startswith("never") else None
    cid = campaign(rt)
    campaigns.start(rt, cid)
    drain(rt)
    wait_status(rt, cid)
    rows = deliveries(rt, cid)
    assert rows["never@example.org"].status == "failed"
    assert rows["never@example.org"].attempts == 3
    assert "gave up after 3 attempts" in rows["never@example.org"].error
    assert recipients(sink, cid) == {"fine@example.org": 1}


def test_a_server_that_is_down_costs_no_attempts(make_runtime, caplog):
    port = free_port()
    rt = make_runtime(smtp_url=f"smtp://127.0.0.1:{port}", retry_base_seconds=0.1)
    make_list(rt, "news")
    for i in range(5):
        person(rt, f"w{i}@example.org", ["news"])
    cid = campaign(rt)
    caplog.set_level(logging.WARNING, logger="listmgr.services.delivery")
    campaigns.start(rt, cid)

    def refused() -> int:
        return sum(
            f"campaign {cid}: cannot connect to" in r.getMessage() for r in list(caplog.records)
        )

    # Several jobs find nobody listening and come back later.
    wait_until(lambda: refused() >= 3, 60, "three refused connections")
    rows = deliveries(rt, cid)  # (a job may be holding them right now)
    assert {r.status for r in rows.values()} <= {"queued", "claimed"}
    assert {r.attempts for r in rows.values()} == {0}
    sink = Sink(port=port)
    controller = start_smtp(sink)
    try:
        drain(rt)
        wait_status(rt, cid)
        assert recipients(sink, cid) == {f"w{i}@example.org": 1 for i in range(5)}
    finally:
        controller.stop()


def test_a_refused_sender_fails_no_row(make_runtime, fault_sink):
    sink = fault_sink
    rt = make_runtime(smtp_url=sink.url, retry_base_seconds=0.1)
    make_list(rt, "news")
    for i in range(4):
        person(rt, f"m{i}@example.org", ["news"])
    refusals = iter(["550 5.7.1 sender not allowed"] * 3)
    sink.mail_hook = lambda address: next(refusals, None)
    cid = campaign(rt)
    campaigns.start(rt, cid)
    drain(rt)
    wait_status(rt, cid)
    rows = deliveries(rt, cid)
    assert recipients(sink, cid) == {f"m{i}@example.org": 1 for i in range(4)}
    assert {(r.status, r.attempts, r.bounced) for r in rows.values()} == {("sent", 1, False)}


def test_refused_recipients_follow_the_bounce_policy(make_runtime, fault_sink):
    """5.x.x refusals at RCPT suppress the address and record a hard bounce (a policy refusal
    too); 5.2.2 (mailbox full) fails the row without suppressing."""
    from listmgr.models import ConsentEvent, Membership, Subscriber

    sink = fault_sink
    rt = make_runtime(smtp_url=sink.url, retry_base_seconds=0.2)
    make_list(rt, "news")
    replies = {
        "unknown": "550 5.1.1 no such user",
        "policy": "550 5.7.1 refused by policy",
        "plain": "554 no such user here",
        "full": "552 5.2.2 mailbox full",
    }
    for name in [*replies, "fine"]:
        person(rt, f"{name}@example.org", ["news"])
    sink.rcpt_hook = lambda address: replies.get(address.partition("@")[0])
    cid = campaign(rt)
    campaigns.start(rt, cid)
    drain(rt)
    assert wait_status(rt, cid) == "sent"
    rows = deliveries(rt, cid)
    assert {e for e, r in rows.items() if r.status == "failed" and r.bounced} == {
        f"{n}@example.org" for n in replies
    }
    hard = {"unknown@example.org", "policy@example.org", "plain@example.org"}
    with rt.db.session() as s:
        assert set(s.scalars(select(Suppression.email))) == hard
        events = {
            s.get(Subscriber, e.subscriber_id).email: e
            for e in s.scalars(select(ConsentEvent).where(ConsentEvent.kind == "bounce_hard"))
        }
        assert set(events) == hard
        assert all(e.campaign_id == cid and "smtp" in e.detail for e in events.values())
        bounced = set(
            s.scalars(
                select(Subscriber.email)
                .join(Membership, Membership.subscriber_id == Subscriber.id)
                .where(Membership.status == "bounced")
            )
        )
    assert bounced == hard
