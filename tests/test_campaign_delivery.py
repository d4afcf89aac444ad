"""Delivery paths: a saved segment, personalization with fields and interests, several SMTP
servers, the embedded dev outbox, and a template that fails for one recipient only."""

from __future__ import annotations

from datetime import timedelta
from email import message_from_bytes
from email.policy import default as default_policy

import pytest
from sqlalchemy import select

from listmgr import boot, runtime
from listmgr.models import DevMail, utcnow
from listmgr.services import campaigns, fielddefs, lists, segments
from listmgr.services.ledger import Ledger, Outcome, claim_token
from tests.campaign_support import (
    campaign,
    campaign_mail,
    define_fields,
    deliveries,
    make_list,
    person,
    recipients,
    wait_status,
)
from tests.conftest import PG_URL, Sink, drain, settings_for, start_sink


def test_saved_segment_and_personal_fields_and_interests(rt, sink):
    make_list(rt, "news")
    define_fields(rt)
    person(
        rt, "reader@example.org", ["news"], name="Rea", fields={"city": "Oslo"}, interests=["books"]
    )
    person(rt, "listener@example.org", ["news"], name="Lis", interests=["music"])
    sid = segments.create(
        rt, name="book people", lists=["news"], rules={"interests": "has_any", "value": ["books"]}
    )
    cid = campaign(
        rt,
        segment_id=sid,
        subject="For {{ subscriber.name }}",
        body="<p>{{ subscriber.fields.city|default('somewhere') }}"
        "{% if 'books' in subscriber.interests %} + books{% endif %}</p>",
    )
    assert campaigns.audience(rt, cid) == 1
    campaigns.start(rt, cid)
    drain(rt)
    wait_status(rt, cid)
    [mail] = campaign_mail(sink, cid)
    assert mail.rcpt_tos == ["reader@example.org"]
    msg = mail.message
    assert msg["Subject"] == "For Rea"
    assert "<p>Oslo + books</p>" in msg.get_body(("html",)).get_content()
    assert "Oslo + books" in msg.get_body(("plain",)).get_content()


def test_a_template_failing_for_one_recipient_fails_only_that_row(rt, sink):
    make_list(rt, "news")
    fielddefs.create_field(rt, key="n", label="N", type="number")
    fielddefs.create_field(rt, key="d", label="D", type="number")
    person(rt, "fine@example.org", ["news"], fields={"n": 6, "d": 3})
    person(rt, "zero@example.org", ["news"], fields={"n": 6, "d": 0})
    cid = campaign(rt, body="<p>{{ subscriber.fields.n / subscriber.fields.d }}</p>")
    campaigns.start(rt, cid)
    drain(rt)
    wait_status(rt, cid)
    assert recipients(sink, cid) == {"fine@example.org": 1}
    row = deliveries(rt, cid)["zero@example.org"]
    assert row.status == "failed" and "ZeroDivisionError" in row.error
    stats = campaigns.stats(rt, cid)
    assert (stats.sent, stats.failed, stats.remaining) == (1, 1, 0)


def test_several_smtp_servers_share_the_work(make_runtime, sink):
    other = Sink()
    controller = start_sink(other)
    try:
        rt = make_runtime(smtp_url=f"{sink.url} {other.url}", send_batch_size=5, send_connections=2)
        make_list(rt, "news")
        for i in range(40):
            person(rt, f"s{i}@example.org", ["news"])
        cid = campaign(rt)
        campaigns.start(rt, cid)
        drain(rt)
        wait_status(rt, cid)
        first, second = recipients(sink, cid), recipients(other, cid)
        outcomes = {(r.status, r.smtp_server, r.error) for r in deliveries(rt, cid).values()}
        assert first and second and not set(first) & set(second), outcomes
        assert sum(first.values()) + sum(second.values()) == 40
        servers = {row.smtp_server for row in deliveries(rt, cid).values()}
        assert servers == {f"127.0.0.1:{sink.port}", f"127.0.0.1:{other.port}"}
    finally:
        controller.stop()


def test_embedded_dev_outbox(make_runtime, sink):
    rt = make_runtime(smtp_url="")
    make_list(rt, "news")
    person(rt, "dev@example.org", ["news"])
    cid = campaign(rt)
    campaigns.start(rt, cid)
    drain(rt)
    wait_status(rt, cid)
    with rt.db.session() as s:
        rows = [r for r in s.scalars(select(DevMail)) if b"Feedback-ID" in r.raw]
    assert [r.rcpt_to for r in rows] == ["dev@example.org"]
    msg = message_from_bytes(rows[0].raw, policy=default_policy)
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert rows[0].mail_from.startswith("bounces+")
    assert recipients(sink, cid) == {}


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL only: the per-message statement is prepared")
def test_the_ledger_survives_its_prepared_statement_being_dropped(rt):
    # psycopg runs DEALLOCATE ALL when it rolls back a connection holding statements it
    # prepared itself, and the pool rolls back every connection it takes back.
    make_list(rt, "news")
    person(rt, "one@example.org", ["news"])
    person(rt, "two@example.org", ["news"])
    cid = campaign(rt)
    campaigns.start(rt, cid)  # rows materialized; nothing is sent until the queue is drained
    book = Ledger(rt.db)
    try:
        now = utcnow()
        rows, _ = book.claim(
            cid,
            [lists.get(rt, "news").id],
            "t",
            limit=10,
            now=now,
            lease_until=now + timedelta(minutes=5),
            interests=False,
        )
        first, second = rows
        gate = book.step(cid, "t", [Outcome(first.delivery_id, "sent")], [second], now)
        assert gate.recorded and gate.eligible == (True,)
        book.conn.execute("DEALLOCATE ALL")
        gate = book.step(cid, "t", [Outcome(second.delivery_id, "sent")], [], now)
        assert gate.recorded and gate.campaign_status == "sending"
    finally:
        book.close()
    assert {r.status for r in deliveries(rt, cid).values()} == {"sent"}


def test_a_dead_rounds_in_flight_rows_are_marked_and_everything_goes_back(database_url, sink):
    # A job with three connections recorded one round, gated the next and died: only that
    # round's three rows can have gone out; all of its unrecorded rows return to the queue.
    rt = runtime.build(settings_for(database_url, sink))
    boot.attach_queue(rt)  # enqueue only: no worker here takes the rows
    make_list(rt, "news")
    for i in range(8):
        person(rt, f"r{i}@example.org", ["news"])
    cid = campaign(rt)
    campaigns.start(rt, cid)  # rows materialized; nothing is sent until the queue is drained
    token = claim_token("host:1:dead", 3)
    book = Ledger(rt.db)
    try:
        now = utcnow()
        rows, _ = book.claim(
            cid,
            [lists.get(rt, "news").id],
            token,
            limit=8,
            now=now,
            lease_until=now - timedelta(seconds=1),
            interests=False,
        )
        assert len(rows) == 8
        assert book.step(cid, token, [], rows[:3], now).eligible == (True, True, True)
        gate = book.step(
            cid, token, [Outcome(r.delivery_id, "sent") for r in rows[:3]], rows[3:6], now
        )
        assert gate.recorded and gate.eligible == (True, True, True)
        assert book.reap(cid, utcnow()) == 5
    finally:
        book.close()
    by_id = {d.id: d for d in deliveries(rt, cid).values()}
    assert [by_id[r.delivery_id].status for r in rows] == ["sent"] * 3 + ["queued"] * 5
    assert [by_id[r.delivery_id].possibly_duplicate for r in rows] == [False] * 3 + [True] * 3 + [
        False
    ] * 2
    assert {by_id[r.delivery_id].claimed_by for r in rows[3:]} == {""}
    rt.queue.close()
    runtime.set_current(None)
