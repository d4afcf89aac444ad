"""Inbound mail end to end: every entry point stores first, then the worker classifies and acts."""

from __future__ import annotations

import hashlib
import hmac
import os
import smtplib
import subprocess
import sys

import pytest
from sqlalchemy import func, select

from listmgr import inbound_server
from listmgr.models import ConsentEvent, InboundMessage, Membership, Suppression
from listmgr.services import lists, subscribers
from tests.conftest import SECRET, drain, free_port
from tests.inbound_support import arf, dsn, reply

SECRET_HDR = {"Authorization": "Bearer inbound-test-secret"}


@pytest.fixture
def rt(make_runtime):
    """The replies below carry `Authentication-Results: mx.lists.example.test; dkim=pass
    header.d=example.com`: written by our MTA, that is what proves a reply's sender."""
    return make_runtime(inbound_authserv_id="mx.lists.example.test")


@pytest.fixture
def people(rt):
    lists.create(rt, slug="news", name="News")
    lists.create(rt, slug="events", name="Events")
    ids = {}
    for name in ("ann", "ben", "cat", "dan"):
        ids[name] = subscribers.create(
            rt, email=f"{name}@example.com", lists=["news", "events"], consent="test"
        )
    from listmgr.models import MailingList

    with rt.db.session() as s:
        ids["news"] = s.scalar(select(MailingList.id).where(MailingList.slug == "news"))
        ids["events"] = s.scalar(select(MailingList.id).where(MailingList.slug == "events"))
    return ids


def statuses(rt, sid):
    with rt.db.session() as s:
        return sorted(s.scalars(select(Membership.status).where(Membership.subscriber_id == sid)))


def suppressed(rt, email):
    with rt.db.session() as s:
        return s.scalar(
            select(Suppression.reason).where(Suppression.email_hash == rt.email_hash(email))
        )


def test_http_hook_bounce_reply_and_complaint(rt, client, people, sink):
    verp = f"bounces+{rt.tokens.bounce(people['ann'], None, people['news'])}@lists.example.test"
    resp = client.post(
        "/hooks/inbound",
        data=dsn(verp=verp, failed="ann@example.com"),
        headers=SECRET_HDR,
        content_type="message/rfc822",
    )
    assert resp.status_code == 202 and resp.json["duplicate"] is False
    again = client.post(
        "/hooks/inbound",
        data=dsn(verp=verp, failed="ann@example.com"),
        headers=SECRET_HDR,
        content_type="message/rfc822",
    )
    assert again.status_code == 202 and again.json == {"id": resp.json["id"], "duplicate": True}

    body = "Please unsubscribe me.\n\nThanks\n\n> On Monday News wrote:\n> unsubscribe here"
    client.post(
        "/hooks/inbound",
        data=reply(
            sender="ben@example.com",
            to="news@lists.example.test",
            subject="Re: Our news",
            body=body,
            msgid="r1",
        ),
        headers=SECRET_HDR,
    )
    token = rt.tokens.unsubscribe(people["cat"], people["news"], None)
    lu = f"<http://listmgr.test/u/{token}>, <mailto:unsubscribe+{token}@lists.example.test>"
    client.post(
        "/hooks/inbound",
        data=arf(original_list_unsubscribe=lu, complainer="cat@example.com"),
        headers=SECRET_HDR,
    )
    # Our own footer quoted in a reply must never unsubscribe anyone.
    quoted = (
        "Thanks, great issue!\n\nOn Mon, News <news@lists.example.test> wrote:\n"
        "> To unsubscribe click here.\n> unsubscribe"
    )
    client.post(
        "/hooks/inbound",
        data=reply(
            sender="dan@example.com",
            to="news@lists.example.test",
            subject="Re: Our news",
            body=quoted,
            msgid="r2",
        ),
        headers=SECRET_HDR,
    )
    drain(rt)
    assert statuses(rt, people["ann"]) == ["bounced", "bounced"]
    assert suppressed(rt, "ann@example.com") == "hard_bounce"
    assert statuses(rt, people["ben"]) == ["unsubscribed", "unsubscribed"]
    assert statuses(rt, people["cat"]) == ["unsubscribed", "unsubscribed"]
    assert suppressed(rt, "cat@example.com") == "complaint"
    assert statuses(rt, people["dan"]) == ["confirmed", "confirmed"]
    with rt.db.session() as s:
        kinds = dict(s.execute(select(InboundMessage.id, InboundMessage.kind)).all())
        assert sorted(kinds.values()) == ["bounce", "complaint", "other", "unsubscribe"]
        linked = s.scalar(
            select(func.count(ConsentEvent.id)).where(ConsentEvent.inbound_id.is_not(None))
        )
        assert linked >= 5  # bounce + ben's two lists + cat's two lists
        ev = s.scalar(select(ConsentEvent).where(ConsentEvent.source == "inbound-unsubscribe"))
        assert "dkim=pass" in str(ev.detail.get("authentication_results"))
    # The unsubscribing human gets one confirmation, sent with a null sender and auto-replied.
    sent = sink.wait_for(1)
    assert [m.rcpt_tos for m in sent] == [["ben@example.com"]]
    assert sent[0].mail_from in ("", "<>")  # the null reverse-path
    assert sent[0].message["Auto-Submitted"] == "auto-replied"


def test_hook_rejects_bad_input(rt, client, people):
    msg = reply(sender="x@example.com", to="a@b.c", subject="hi", body="hello", msgid="x")
    assert client.post("/hooks/inbound", data=msg).status_code == 401
    assert (
        client.post(
            "/hooks/inbound", data=msg, headers={"Authorization": "Bearer wrong"}
        ).status_code
        == 401
    )
    assert client.post("/hooks/inbound", data=b"", headers=SECRET_HDR).status_code == 422
    big = b"Subject: x\r\n\r\n" + b"x" * (rt.settings.max_inbound_bytes + 1)
    resp = client.post("/hooks/inbound", data=big, headers=SECRET_HDR)
    assert resp.status_code == 413 and resp.json["error"]["code"] == "too_large"
    with rt.db.session() as s:
        assert s.scalar(select(func.count(InboundMessage.id))) == 0
    # HMAC signature instead of a bearer secret.
    sig = hmac.new(b"inbound-test-secret", msg, hashlib.sha256).hexdigest()
    ok = client.post("/hooks/inbound", data=msg, headers={"X-Listmgr-Signature": f"sha256={sig}"})
    assert ok.status_code == 202
    # Garbage and truncated MIME are stored and marked, never crash the worker.
    for junk in (
        os.urandom(3000),
        b'Content-Type: multipart/mixed; boundary="x"\r\n\r\n--x\r\n'
        b"Content-Type: message/rfc822\r\n\r\nFrom: trunc",
    ):
        assert client.post("/hooks/inbound", data=junk, headers=SECRET_HDR).status_code == 202
    drain(rt)
    with rt.db.session() as s:
        rows = list(s.execute(select(InboundMessage.status, InboundMessage.kind)))
    assert len(rows) == 3 and all(r == ("processed", "other") for r in rows)


def test_processing_twice_is_harmless(rt, people):
    from listmgr.services import inbound

    verp = f"bounces+{rt.tokens.bounce(people['ann'], None, None)}@lists.example.test"
    stored = inbound.store(
        rt, dsn(verp=verp, failed="ann@example.com", status="4.2.2", action="delayed")
    )
    drain(rt)
    inbound.process(rt, stored.id)
    inbound.process(rt, stored.id)
    from listmgr.models import Subscriber

    with rt.db.session() as s:
        assert s.get(Subscriber, people["ann"]).soft_bounces == 1
    assert statuses(rt, people["ann"]) == ["confirmed", "confirmed"]


def test_one_message_arriving_many_times_at_once_is_stored_once(rt, people):
    """An MTA retrying while the first delivery is still being stored: every copy gets the
    same id, one of them as new, and the message is processed once."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from listmgr.services import inbound

    verp = f"bounces+{rt.tokens.bounce(people['ben'], None, None)}@lists.example.test"
    raw = dsn(verp=verp, failed="ben@example.com", status="4.2.2", action="delayed")
    start = threading.Barrier(6)

    def deliver(_: int) -> inbound.Stored:
        start.wait()
        return inbound.store(rt, raw, envelope_to="bounces@lists.example.test")

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(deliver, range(6)))
    assert len({r.id for r in results}) == 1
    assert sorted(r.duplicate for r in results) == [False] + [True] * 5
    drain(rt)
    with rt.db.session() as s:
        rows = s.execute(select(InboundMessage.status, InboundMessage.envelope_to)).all()
        assert rows == [("processed", "bounces@lists.example.test")]
        from listmgr.models import Subscriber

        assert s.get(Subscriber, people["ben"]).soft_bounces == 1


def test_soft_bounces_reach_the_threshold(rt, people):
    from listmgr.services import inbound

    verp = f"bounces+{rt.tokens.bounce(people['ann'], None, None)}@lists.example.test"
    for i in range(rt.settings.soft_bounce_threshold):
        inbound.store(
            rt, dsn(verp=verp, failed="ann@example.com", status=f"4.2.{i}", action="delayed")
        )
    drain(rt)
    assert statuses(rt, people["ann"]) == ["bounced", "bounced"]
    assert suppressed(rt, "ann@example.com") == "hard_bounce"


def test_reclassify_by_hand(rt, api, people):
    from listmgr.services import inbound

    stored = inbound.store(
        rt,
        reply(
            sender="dan@example.com",
            to="news@lists.example.test",
            subject="Re: Our news",
            body="take me off this thing",
            msgid="h1",
        ),
    )
    drain(rt)
    item = api.get(f"/api/inbound/{stored.id}").json
    assert item["kind"] in ("other", "unsubscribe")
    resp = api.post(f"/api/inbound/{stored.id}/reclassify", json={"kind": "unsubscribe"})
    assert resp.status_code == 200 and resp.json["kind"] == "unsubscribe"
    assert statuses(rt, people["dan"]) == ["unsubscribed", "unsubscribed"]
    assert (
        api.post(f"/api/inbound/{stored.id}/reclassify", json={"kind": "spam"}).status_code == 422
    )
    assert api.get(f"/api/inbound/{stored.id}/raw").data.startswith(b"From: Someone")
    listing = api.get("/api/inbound?kind=unsubscribe").json
    assert listing["total"] == 1 and listing["items"][0]["handled"] is True


@pytest.mark.parametrize("lmtp", [True, False])
def test_inbound_server_stores_before_250(rt, people, lmtp):
    port = free_port()
    controller = inbound_server.start(rt, "127.0.0.1", port, lmtp=lmtp)
    try:
        client = smtplib.LMTP("127.0.0.1", port) if lmtp else smtplib.SMTP("127.0.0.1", port)
        msg = reply(
            sender="ben@example.com",
            to="news@lists.example.test",
            subject="unsubscribe",
            body="unsubscribe",
            msgid=f"l{lmtp}",
        )
        client.sendmail("ben@example.com", ["news@lists.example.test"], msg)
        with rt.db.session() as s:  # stored by the time 250 came back
            assert s.scalar(select(func.count(InboundMessage.id))) == 1
        with pytest.raises(smtplib.SMTPDataError):
            client.sendmail("x@example.com", ["news@lists.example.test"], b"\r\n")
        client.quit()
    finally:
        controller.stop()
    drain(rt)
    assert statuses(rt, people["ben"]) == ["unsubscribed", "unsubscribed"]


def test_cli_pipe_exit_codes(database_url, people):
    env = {
        **os.environ,
        "LISTMGR_DATABASE_URL": database_url,
        "LISTMGR_SECRET_KEY": SECRET,
        "LISTMGR_MAX_INBOUND_BYTES": "5000",
    }
    msg = reply(sender="ben@example.com", to="news@x", subject="hi", body="hello", msgid="p1")
    run = lambda data, *a: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "listmgr", "inbound", *a],
        input=data,
        env=env,
        capture_output=True,
        timeout=60,
    )
    ok = run(msg, "--sender", "ben@example.com", "--recipient", "news@x")
    assert ok.returncode == 0, ok.stderr
    assert run(b"").returncode == 65
    assert run(b"x" * 6000).returncode == 65
    bad_db = subprocess.run(
        [sys.executable, "-m", "listmgr", "inbound"],
        input=msg,
        env={**env, "LISTMGR_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"},
        capture_output=True,
        timeout=60,
    )
    assert bad_db.returncode == 75
    with rt_db(database_url) as s:
        row = s.scalar(select(InboundMessage))
        assert row.envelope_from == "ben@example.com" and row.envelope_to == "news@x"


def rt_db(database_url):
    from listmgr import runtime

    return runtime.build({"database_url": database_url, "secret_key": SECRET}).db.session()


def test_dsn_status_classes_follow_the_bounce_policy(rt, people):
    """5.x.x is a hard bounce, 4.x.x and 5.2.2 (mailbox full) count as soft ones."""
    from listmgr.models import Subscriber
    from listmgr.services import inbound

    def bounce(name: str, status: str, action: str = "failed") -> None:
        verp = f"bounces+{rt.tokens.bounce(people[name], None, None)}@lists.example.test"
        inbound.store(
            rt, dsn(verp=verp, failed=f"{name}@example.com", status=status, action=action)
        )

    bounce("ann", "5.2.2")
    bounce("ben", "4.4.7", action="delayed")
    bounce("cat", "5.7.1")
    drain(rt)
    with rt.db.session() as s:
        soft = {n: s.get(Subscriber, people[n]).soft_bounces for n in ("ann", "ben", "cat")}
        kinds = dict(
            s.execute(
                select(ConsentEvent.subscriber_id, ConsentEvent.kind).where(
                    ConsentEvent.kind.in_(("bounce_soft", "bounce_hard"))
                )
            ).all()
        )
    assert soft == {"ann": 1, "ben": 1, "cat": 0}
    assert kinds == {
        people["ann"]: "bounce_soft",
        people["ben"]: "bounce_soft",
        people["cat"]: "bounce_hard",
    }
    assert statuses(rt, people["ann"]) == ["confirmed", "confirmed"]
    assert statuses(rt, people["cat"]) == ["bounced", "bounced"]
    assert suppressed(rt, "cat@example.com") == "hard_bounce"
    assert suppressed(rt, "ann@example.com") is None
