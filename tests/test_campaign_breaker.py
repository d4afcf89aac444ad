"""The circuit breaker, end to end: a receiving server that refuses a share of the recipients
(550) and real feedback reports (ARF) wrapping the very messages we sent pause a sending
campaign past its limit, once, with the reason on the API and the campaign page and one mail
to every active owner; nothing is lost or sent twice; a person's resume sends the rest and the
window starts again; below the limit or under the minimum nothing pauses."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter

import pytest
from sqlalchemy import func, select

from listmgr import boot, runtime
from listmgr.mail import transactional
from listmgr.models import AuditLog, InboundMessage, Outbox
from listmgr.services import accounts, breaker, campaigns, settings_store, users
from tests.admin_support import Account, session_login
from tests.campaign_support import campaign, deliveries, make_list, person, recipients, wait_status
from tests.conftest import (
    Received,
    drain,
    settings_for,
    wait_until,
)
from tests.worker_support import NEEDS_WORKER_PROCESSES, start_worker, stop_workers, worker_env

PASSWORD = "correct horse battery staple"
# Small numbers, so that a few dozen messages decide: 20 % bounces or 10 % complaints over
# the last 40 messages, judged from 10 on.
BREAKER = dict(
    breaker_bounce_rate=0.2,
    breaker_complaint_rate=0.1,
    breaker_window=40,
    breaker_min_deliveries=10,
    send_batch_size=10,
)
HOOK = {"Authorization": "Bearer inbound-test-secret"}
OWNERS = ("boss@staff.example.org", "deputy@staff.example.org")
NOT_TOLD = ("gone@staff.example.org", "editor@staff.example.org", "admin@staff.example.org")


@pytest.fixture
def rt(make_runtime, sink):
    return make_runtime(threads=3, **BREAKER)


def staff(rt) -> dict[str, Account]:
    """Two active owners, one disabled owner, an editor and an admin."""
    out = {}
    for email in (*OWNERS, *NOT_TOLD):
        role = email.split("@")[0] if email.split("@")[0] in ("editor", "admin") else "owner"
        uid = accounts.create_user(rt, email=email, password=PASSWORD, role=role)
        out[email] = Account(uid, email, role)
    users.update_user(rt, out["gone@staff.example.org"].id, active=False)
    return out


def refuse_bad(address: str) -> str | None:
    """The receiving server: no such user for every address starting with "bad"."""
    if address.startswith("bad"):
        return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
    return None


def people(rt, count: int, *, bad_every: int = 0) -> list[str]:
    make_list(rt, "news")
    emails = []
    for i in range(count):
        prefix = "bad" if bad_every and i % bad_every == 0 else "ok"
        emails.append(f"{prefix}{i:03d}@example.org")
        person(rt, emails[-1], ["news"])
    return emails


def breaker_mails(sink, email: str) -> list[Received]:
    return [m for m in sink.to(email) if "paused itself" in str(m.message["Subject"])]


def trips(rt, cid: int) -> int:
    with rt.db.session() as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(AuditLog)
                .where(AuditLog.action == "campaign.breaker", AuditLog.target_id == str(cid))
            )
            or 0
        )


def assert_told_once(rt, sink, cid: int, reason: str) -> None:
    """One mail to each active owner (none to anyone else), with the reason and the link."""
    wait_until(lambda: all(breaker_mails(sink, e) for e in OWNERS), what="the owners' mail")
    drain(rt)
    for email in OWNERS:
        (mail,) = breaker_mails(sink, email)
        msg = mail.message
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        assert "Spring news" in msg["Subject"] and reason in " ".join(msg["Subject"].split())
        assert reason in " ".join(text.split())
        assert f"http://listmgr.test/admin/campaigns/{cid}/stats" in text
        assert f'href="http://listmgr.test/admin/campaigns/{cid}/stats"' in html
    for email in NOT_TOLD:
        assert sink.to(email) == []
    with rt.db.session() as s:
        kinds = Counter(s.scalars(select(Outbox.to_email).where(Outbox.kind == breaker.MAIL)))
    assert kinds == Counter(OWNERS)
    assert trips(rt, cid) == 1


def assert_nothing_lost(rt, sink, cid: int) -> dict[str, str]:
    """Every row sent, failed (refused) or still queued; the sink has exactly the sent ones,
    once each. Returns each address's row status."""
    rows = {email: d.status for email, d in deliveries(rt, cid).items()}
    assert set(rows.values()) <= {"sent", "failed", "queued"}, Counter(rows.values())
    got = recipients(sink, cid)
    assert set(got) == {e for e, status in rows.items() if status == "sent"}
    assert max(got.values(), default=1) == 1
    return rows


def test_hard_bounces_pause_the_campaign_and_a_person_resumes_it(rt, sink, api, client):
    team = staff(rt)
    emails = people(rt, 60, bad_every=2)  # half the list is gone
    sink.rcpt_hook = refuse_bad
    cid = campaign(rt)
    assert campaigns.start(rt, cid) == 60
    assert wait_status(rt, cid, ("paused", "sent")) == "paused"
    drain(rt)

    got = api.get(f"/api/campaigns/{cid}").json
    reason = got["status_reason"]
    assert got["status"] == "paused"
    assert reason.startswith("paused by the circuit breaker: hard bounces "), reason
    assert "(limit 20 %)" in reason and "of the last " in reason
    rows = assert_nothing_lost(rt, sink, cid)
    handed = [e for e, status in rows.items() if status != "queued"]
    assert len(handed) >= BREAKER["breaker_min_deliveries"]
    assert Counter(rows.values())["queued"] > 0  # the rest waits
    assert {e for e, status in rows.items() if status == "failed"} == {
        e for e in handed if e.startswith("bad")
    }
    assert_told_once(rt, sink, cid, reason.removeprefix(breaker.PREFIX))

    session_login(client, rt, team["deputy@staff.example.org"])
    page = client.get(f"/admin/campaigns/{cid}/stats")
    assert page.status_code == 200 and 'id="status-reason"' in page.text
    assert "paused by the circuit breaker: hard bounces" in page.text

    # The owners look into it: the receiving server takes everyone now. An owner resumes;
    # the window starts again, so the bounces before the pause do not stop it at once.
    sink.rcpt_hook = None
    failed_before = {e for e, status in rows.items() if status == "failed"}
    assert api.post(f"/api/campaigns/{cid}/resume").status_code in (200, 202)
    assert api.get(f"/api/campaigns/{cid}").json["status_reason"] == ""
    assert wait_status(rt, cid, ("sent", "paused")) == "sent"
    drain(rt)
    rows = assert_nothing_lost(rt, sink, cid)
    assert set(recipients(sink, cid)) == set(emails) - failed_before
    assert trips(rt, cid) == 1 and all(len(breaker_mails(sink, e)) == 1 for e in OWNERS)


@pytest.mark.parametrize("case", ["below the limit", "under the minimum", "switched off"])
def test_no_pause(make_runtime, sink, case):
    extra = dict(BREAKER)
    count, bad_every = 60, 10  # 10 % bounces, under the 20 % limit
    if case == "under the minimum":
        count, bad_every = 9, 1  # every message refused, but fewer than the minimum
    if case == "switched off":
        extra["breaker_window"] = "off"
        bad_every = 2
    rt = make_runtime(**extra)
    staff(rt)
    people(rt, count, bad_every=bad_every)
    sink.rcpt_hook = refuse_bad
    cid = campaign(rt)
    campaigns.start(rt, cid)
    assert wait_status(rt, cid, ("paused", "sent")) == "sent"
    drain(rt)
    rows = assert_nothing_lost(rt, sink, cid)
    assert "queued" not in rows.values()
    assert campaigns.get(rt, cid).status_reason == ""
    assert trips(rt, cid) == 0 and all(breaker_mails(sink, e) == [] for e in OWNERS)


def arf_of(sent: Received) -> bytes:
    """A feedback report (RFC 5965) as a mailbox provider sends it: the message we sent, whole,
    with the person's complaint."""
    rcpt = sent.rcpt_tos[0]
    head = f"""From: Feedback Loop <fbl@isp.example.net>
To: fbl@lists.example.test
Subject: Email Feedback Report
Message-ID: <arf-{rcpt}@isp.example.net>
Date: Mon, 07 Dec 2026 02:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="F1"

--F1
Content-Type: text/plain; charset=us-ascii

This is an email abuse report for an email message received from IP 192.0.2.10.

--F1
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: ExampleFBL/1.0
Version: 1
Original-Mail-From: <{sent.mail_from}>
Original-Rcpt-To: <{rcpt}>
Source-IP: 192.0.2.10

--F1
Content-Type: message/rfc822
Content-Disposition: inline

"""
    return head.replace("\n", "\r\n").encode() + sent.data + b"\r\n--F1--\r\n"


def hold_after(sink, count: int) -> None:
    """The receiving server keeps the mail from the `count`-th campaign recipient on waiting
    (a campaign that is still sending while reports come back)."""
    seen = Counter[str]()
    lock = threading.Lock()

    def on_rcpt(address: str) -> str | None:
        if address.endswith("@example.org"):
            with lock:
                seen["rcpt"] += 1
                if seen["rcpt"] >= count:
                    sink.hold()
        return refuse_bad(address)

    sink.rcpt_hook = on_rcpt


def test_complaints_through_the_inbound_hook_pause_the_campaign(rt, sink, client):
    staff(rt)
    people(rt, 60)
    hold_after(sink, 17)
    cid = campaign(rt)
    campaigns.start(rt, cid)
    sink.wait_held(lambda held: len(held) >= 1)
    sent = sorted(
        (m for m in sink.messages if m.rcpt_tos[0].endswith("@example.org")),
        key=lambda m: m.rcpt_tos[0],
    )
    assert len(sent) >= 10
    wait_until(lambda: sum(status == "sent" for status in _statuses(rt, cid)) >= 10, what="records")

    def complain(mail: Received) -> None:
        resp = client.post("/hooks/inbound", data=arf_of(mail), headers=HOOK)
        assert resp.status_code == 202, resp.text
        wait_until(lambda: _processed(rt, resp.json["id"]), what="the report's processing")

    complain(sent[0])  # one in 10 or more: not over 10 %
    assert campaigns.get(rt, cid).status == "sending"
    complain(sent[1])
    assert campaigns.get(rt, cid).status == "paused"
    sink.release()  # what was in flight is answered and recorded; nothing more goes out
    drain(rt)
    info = campaigns.get(rt, cid)
    assert info.status == "paused"
    assert info.status_reason.startswith("paused by the circuit breaker: complaints "), info
    assert "(limit 10 %)" in info.status_reason
    rows = assert_nothing_lost(rt, sink, cid)
    assert Counter(rows.values())["queued"] > 0
    with rt.db.session() as s:
        kinds = list(s.scalars(select(InboundMessage.kind)))
    assert kinds == ["complaint", "complaint"]
    assert_told_once(rt, sink, cid, info.status_reason.removeprefix(breaker.PREFIX))


def _statuses(rt, cid: int) -> list[str]:
    return [d.status for d in deliveries(rt, cid).values()]


def _processed(rt, inbound_id: int) -> bool:
    with rt.db.session() as s:
        return s.get(InboundMessage, inbound_id).status == "processed"


def test_workers_judging_at_once_pause_it_once(rt, sink):
    """Several workers find the window over the limit at the same moment: one pauses the
    campaign and tells the owners; the others change nothing."""
    staff(rt)
    settings_store.update(rt, {"breaker_window": "0"})  # off while the bounces pile up
    people(rt, 60, bad_every=2)
    hold_after(sink, 30)
    cid = campaign(rt)
    campaigns.start(rt, cid)
    sink.wait_held(lambda held: len(held) >= 1)
    wait_until(lambda: sum(s != "queued" for s in _statuses(rt, cid)) >= 10, what="records")
    assert campaigns.get(rt, cid).status == "sending"

    # An owner turns the breaker on in the admin: every worker's next judgement sees it.
    changed = settings_store.update(rt, {"breaker_window": "40"})
    assert changed == ["breaker_window"]
    settings = settings_store.effective(rt)
    assert settings.breaker_window == 40
    start = threading.Barrier(8)
    results: list[bool] = []

    def judge() -> None:
        start.wait()
        results.append(breaker.check(rt, settings, cid).paused)

    threads = [threading.Thread(target=judge) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]
    sink.release()
    drain(rt)
    info = campaigns.get(rt, cid)
    assert info.status == "paused" and "hard bounces" in info.status_reason
    assert_nothing_lost(rt, sink, cid)
    assert_told_once(rt, sink, cid, info.status_reason.removeprefix(breaker.PREFIX))


def test_settings_in_the_admin_and_the_api(rt, api, client):
    team = staff(rt)
    session_login(client, rt, team["boss@staff.example.org"])
    page = client.get("/admin/settings")
    assert page.status_code == 200 and "Circuit breaker" in page.text
    for key in ("breaker_bounce_rate", "breaker_complaint_rate", "breaker_window"):
        assert f'name="{key}"' in page.text
    resp = api.patch("/api/settings", json={"values": {"breaker_bounce_rate": "0.03"}})
    assert resp.status_code == 200, resp.json
    assert settings_store.effective(rt).breaker_bounce_rate == 0.03
    bad = api.patch("/api/settings", json={"values": {"breaker_window": "-5"}})
    assert bad.status_code == 422 and bad.json["error"]["field"] == "breaker_window"
    session_login(client, rt, team["editor@staff.example.org"])
    assert client.get("/admin/settings").status_code == 403


def test_owners_mail_escapes_the_campaign_name():
    subject, text, html = transactional.render(
        breaker.MAIL,
        {
            "campaign_name": '<img src=x onerror="alert(1)">',
            "reason": "complaints 0.2 % of the last 1,000 messages (limit 0.1 %)",
            "campaign_url": "http://listmgr.test/admin/campaigns/7/stats",
            "from_name": "Acme & Co",
            "postal_address": "1 Street",
            "privacy_url": "",
            "list_name": "Acme",
        },
    )
    assert "<img" not in html and "&lt;img src=x" in html and "Acme &amp; Co" in html
    assert "complaints 0.2 %" in subject and "\n" not in subject
    assert "http://listmgr.test/admin/campaigns/7/stats" in text


def test_admin_settings_refuse_nonsense(rt):
    for key, bad in (
        ("breaker_bounce_rate", "5"),
        ("breaker_complaint_rate", "-0.1"),
        ("breaker_window", "1.5"),
        ("breaker_min_deliveries", "lots"),
    ):
        with pytest.raises(Exception) as err:
            settings_store.update(rt, {key: bad})
        assert getattr(err.value, "field", None) == key
    assert settings_store.update(rt, {"breaker_complaint_rate": "off"}) == [
        "breaker_complaint_rate"
    ]
    assert settings_store.effective(rt).breaker_complaint_rate == 0


@pytest.mark.slow
@NEEDS_WORKER_PROCESSES
def test_worker_processes_pause_it_once(database_url, sink, tmp_path):
    """Two `listmgr worker` processes send the campaign, each with several jobs: one of them
    trips the breaker, the owners get one mail each, and the rest stays queued."""
    namespace = f"breaker{uuid.uuid4().hex[:8]}"
    rt = runtime.build(settings_for(database_url, sink, broker_namespace=namespace))
    boot.attach_queue(rt)  # enqueue only: the worker processes do all the work
    staff(rt)
    people(rt, 400, bad_every=3)

    def slow_refuse(address: str) -> str | None:
        time.sleep(0.003)  # a real server's pace: both processes are mid-batch at the trip
        return refuse_bad(address)

    sink.rcpt_hook = slow_refuse
    env = worker_env(
        database_url,
        sink,
        namespace,
        tmp_path,
        SEND_BATCH_SIZE="10",
        SEND_CONNECTIONS="2",
        BREAKER_BOUNCE_RATE="0.2",
        BREAKER_WINDOW="100",
        BREAKER_MIN_DELIVERIES="30",
    )
    procs = [start_worker(env, tmp_path / f"{n}.log") for n in ("a", "b")]
    try:
        cid = campaign(rt)
        assert campaigns.start(rt, cid) == 400
        wait_until(lambda: campaigns.get(rt, cid).status != "sending", 120, "the pause")
        wait_until(lambda: all(breaker_mails(sink, e) for e in OWNERS), 60, "the owners' mail")
        wait_until(lambda: "claimed" not in _statuses(rt, cid), 60, "the jobs to stop")
        time.sleep(1)  # a second mail, if any job were to trip it again, would be here by now
    finally:
        stop_workers(procs)
        rt.queue.close()
        runtime.set_current(None)
    info = campaigns.get(rt, cid)
    assert info.status == "paused" and "hard bounces" in info.status_reason
    rows = assert_nothing_lost(rt, sink, cid)
    assert Counter(rows.values())["queued"] > 200
    for email in OWNERS:
        assert len(breaker_mails(sink, email)) == 1
    assert trips(rt, cid) == 1
