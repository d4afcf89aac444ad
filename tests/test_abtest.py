"""A/B tests: the winner rule, the test share split over the variants, the winner sent to the
rest exactly once however many workers decide at the same time, and the comparison."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from listmgr.models import AuditLog, Campaign, Delivery, Engagement, Subscriber, utcnow
from listmgr.services import abtests, campaigns
from tests.campaign_support import (
    campaign,
    campaign_mail,
    header_lines,
    make_list,
    person,
    wait_status,
)
from tests.conftest import drain, settings_for, wait_until


def _subject(data: bytes) -> str:
    line = next(x for x in header_lines(data) if x.startswith(b"Subject: "))
    return line[len(b"Subject: ") :].decode()


def _audience(rt, n: int, tracking=lambda i: True) -> None:
    make_list(rt, "news")
    for i in range(n):
        person(rt, f"p{i:03d}@example.org", ["news"], consents={"tracking": tracking(i)})


def _ab(**kw):
    kw.setdefault("alternatives", [{"subject": "Subject B"}])
    kw.setdefault("test_percent", 50)
    kw.setdefault("wait_minutes", 60)
    return kw


def _engage(rt, cid: int, emails: list[str], kind: str = "click") -> None:
    with rt.db.session() as s:
        ids = dict(s.execute(select(Subscriber.email, Subscriber.id)).all())
        for email in emails:
            s.add(Engagement(campaign_id=cid, subscriber_id=ids[email], kind=kind))
            s.add(Engagement(campaign_id=cid, subscriber_id=ids[email], kind=kind))  # again


def _variants(rt, cid: int) -> dict[str, tuple[str, int | None]]:
    with rt.db.session() as s:
        rows = s.execute(
            select(Subscriber.email, Delivery.status, Delivery.variant)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.campaign_id == cid)
        ).all()
    return {email: (status, variant) for email, status, variant in rows}


def _due_now(rt, cid: int) -> None:
    with rt.db.session() as s:
        s.execute(
            update(Campaign)
            .where(Campaign.id == cid)
            .values(ab_decide_at=utcnow() - timedelta(seconds=1))
        )


# -- the rule --------------------------------------------------------------------------------
def test_the_winner_has_most_people_ties_go_to_the_earliest_and_no_data_to_a():
    assert abtests.choose({}, 2) == 0
    assert abtests.choose({1: 3, 0: 2}, 2) == 1
    assert abtests.choose({0: 2, 1: 2, 2: 2}, 3) == 0
    assert abtests.choose({1: 0, 2: 5, 3: 5}, 4) == 2
    assert abtests.choose({3: 1}, 4) == 3
    assert abtests.choose({0: 0, 1: 0}, 2) == 0


def test_the_test_share_is_the_percentage_in_total_at_least_one_per_variant():
    assert abtests.share_size(1000, 20, 2) == 200
    assert abtests.share_size(1000, 20, 4) == 200
    assert abtests.share_size(10, 10, 3) == 3
    assert abtests.share_size(2, 50, 4) == 2


# -- the whole send --------------------------------------------------------------------------
def test_the_test_share_gets_the_variants_and_the_rest_the_winner(make_runtime, sink):
    rt = make_runtime()
    _audience(rt, 40)
    cid = campaign(
        rt,
        subject="Subject A",
        ab_test=_ab(
            alternatives=[{"subject": "Subject B"}, {"subject": "Subject C"}], test_percent=30
        ),
    )
    assert campaigns.start(rt, cid) == 40
    wait_until(lambda: campaigns.stats(rt, cid).sent == 12, what="the test share sent")
    drain(rt)
    # The test share went out, 4 per variant, one message each; the rest waits.
    assert campaigns.get(rt, cid).status == "sending"
    got = Counter(_subject(m.data) for m in campaign_mail(sink, cid))
    assert got == {"Subject A": 4, "Subject B": 4, "Subject C": 4}
    rows = _variants(rt, cid)
    tested = {e for e, (status, _) in rows.items() if status == "sent"}
    assert len(tested) == 12 and Counter(st for st, _ in rows.values()) == {"sent": 12, "held": 28}
    by_mail = {m.rcpt_tos[0]: _subject(m.data) for m in campaign_mail(sink, cid)}
    assert all(by_mail[e] == "Subject " + "ABC"[rows[e][1]] for e in tested)
    assert campaigns.stats(rt, cid).remaining == 28
    # Nothing more before the wait is over, however often the workers wake.
    campaigns.requeue(rt)
    drain(rt)
    assert len(campaign_mail(sink, cid)) == 12
    # C gets two people clicking (twice each), B one; opens do not count for a click test.
    in_c = [e for e in tested if rows[e][1] == 2][:2]
    in_b = [e for e in tested if rows[e][1] == 1][:1]
    _engage(rt, cid, in_c)
    _engage(rt, cid, in_b)
    _engage(rt, cid, [e for e in tested if rows[e][1] == 0], kind="open")
    _due_now(rt, cid)
    campaigns.requeue(rt)  # what the periodic sweep does
    drain(rt)
    wait_status(rt, cid)
    mails = campaign_mail(sink, cid)
    assert Counter(r for m in mails for r in m.rcpt_tos) == {
        f"p{i:03d}@example.org": 1 for i in range(40)
    }
    rest = [m for m in mails if m.rcpt_tos[0] not in tested]
    assert len(rest) == 28 and {_subject(m.data) for m in rest} == {"Subject C"}
    info = campaigns.get(rt, cid)
    assert info.ab_result is not None and info.ab_result["winner"] == "C"
    compared = campaigns.ab_comparison(rt, cid)
    assert compared is not None and compared.winner == "C" and compared.decided_at
    a, b, c = compared.variants
    assert (a.sent, b.sent, c.sent) == (4, 4, 32)
    # A click counts as an open (images may be blocked), as on the campaign's own stats.
    assert (a.clicked, b.clicked, c.clicked) == (0, 1, 2) and (a.opened, b.opened) == (4, 1)
    assert (a.open_rate, b.click_rate, c.won, a.won) == (100.0, 25.0, True, False)


def test_no_clicks_at_all_sends_variant_a(make_runtime, sink):
    rt = make_runtime()
    _audience(rt, 10)
    cid = campaign(rt, subject="Subject A", ab_test=_ab(metric="opens", wait_minutes=0))
    campaigns.start(rt, cid)
    wait_until(lambda: campaigns.stats(rt, cid).sent >= 5, what="the test share sent")
    campaigns.requeue(rt)
    drain(rt)
    wait_status(rt, cid)
    got = Counter(_subject(m.data) for m in campaign_mail(sink, cid))
    assert got == {"Subject A": 8, "Subject B": 2}  # the test: 3 and 2; the rest: 5 of A
    assert campaigns.get(rt, cid).ab_result["winner"] == "A"
    assert Counter(v for _, v in _variants(rt, cid).values()) == {0: 8, 1: 2}


def test_a_content_test_sends_each_variant_its_own_body(make_runtime, sink):
    rt = make_runtime()
    _audience(rt, 6)
    cid = campaign(
        rt,
        subject="Plain",
        body="<p>Body of A</p>",
        ab_test=_ab(
            kind="content",
            test_percent=99,
            alternatives=[{"subject": "Fancy", "body": "<p>Body of B</p>"}],
        ),
    )
    campaigns.start(rt, cid)
    wait_until(lambda: campaigns.stats(rt, cid).sent == 5, what="the test share sent")
    for m in campaign_mail(sink, cid):
        text = m.data.decode()
        if _subject(m.data) == "Fancy":
            assert "Body of B" in text and "Body of A" not in text
        else:
            assert "Body of A" in text and "Body of B" not in text


# -- exactly once ----------------------------------------------------------------------------
@pytest.mark.parametrize("workers", [2, 8])
def test_racing_workers_decide_once(make_runtime, workers):
    rt = make_runtime(threads=0)  # nothing sends: only the decision is under test
    _audience(rt, 30)
    cid = campaign(rt, ab_test=_ab(alternatives=[{"subject": "B"}, {"subject": "C"}]))
    campaigns.start(rt, cid)
    rows = _variants(rt, cid)
    tested = [e for e, (status, _) in rows.items() if status == "queued"]
    _engage(rt, cid, [e for e in tested if rows[e][1] == 1])
    _due_now(rt, cid)
    start = threading.Barrier(workers)
    results: list[int | None] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            start.wait()
            results.append(abtests.decide(rt, cid))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results.count(1) == 1 and results.count(None) == workers - 1
    after = _variants(rt, cid)
    assert Counter(st for st, _ in after.values()) == {"queued": 30}
    assert {v for e, (_, v) in after.items() if e not in tested} == {1}
    assert all(after[e][1] == rows[e][1] for e in tested)  # the test share keeps its variant
    with rt.db.session() as s:
        decisions = s.scalars(select(AuditLog).where(AuditLog.action == "campaign.ab_winner")).all()
    assert len(decisions) == 1 and decisions[0].detail["winner"] == "B"
    assert abtests.decide(rt, cid) is None  # and later calls change nothing


RACER = """
import json, sys
from sqlalchemy import text
from listmgr import runtime
from listmgr.services import abtests
rt = runtime.build(json.loads(sys.argv[1]))
with rt.db.session() as s:
    s.execute(text("SELECT 1"))  # connected before the start
print("ready", flush=True)
sys.stdin.readline()
print(json.dumps(abtests.decide(rt, int(sys.argv[2]))), flush=True)
"""


def test_racing_worker_processes_decide_once(make_runtime, database_url):
    rt = make_runtime(threads=0)
    _audience(rt, 20)
    cid = campaign(rt, ab_test=_ab(alternatives=[{"subject": "B"}, {"subject": "C"}]))
    campaigns.start(rt, cid)
    rows = _variants(rt, cid)
    _engage(rt, cid, [e for e, (st, v) in rows.items() if st == "queued" and v == 2])
    _due_now(rt, cid)
    settings = json.dumps(settings_for(database_url, None, var_dir=str(rt.settings.var_dir)))
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, settings, str(cid)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for p in racers:
        assert p.stdout.readline().strip() == "ready"
    for p in racers:  # all at once
        p.stdin.write("go\n")
        p.stdin.flush()
    results = [json.loads(p.communicate(timeout=60)[0]) for p in racers]
    assert sorted(results, key=str) == [2, None, None, None]
    after = _variants(rt, cid)
    assert Counter(st for st, _ in after.values()) == {"queued": 20}
    assert (
        Counter(v for _, v in after.values())[2]
        == 10 + Counter(v for st, v in rows.values() if st == "queued")[2]
    )


def test_before_its_time_or_when_cancelled_nothing_is_decided(make_runtime):
    rt = make_runtime(threads=0)
    _audience(rt, 10)
    cid = campaign(rt, ab_test=_ab())
    campaigns.start(rt, cid)
    assert abtests.decide(rt, cid) is None
    campaigns.cancel(rt, cid)
    _due_now(rt, cid)
    assert abtests.decide(rt, cid) is None
    assert Counter(st for st, _ in _variants(rt, cid).values()) == {"queued": 5, "held": 5}


def test_a_paused_test_waits_for_its_resume(make_runtime):
    rt = make_runtime(threads=0)
    _audience(rt, 10)
    cid = campaign(rt, ab_test=_ab())
    campaigns.start(rt, cid)
    campaigns.pause(rt, cid)
    _due_now(rt, cid)
    assert abtests.decide(rt, cid) is None
    campaigns.resume(rt, cid)
    assert abtests.decide(rt, cid) == 0
    assert Counter(st for st, _ in _variants(rt, cid).values()) == {"queued": 10}


def test_an_audience_all_in_the_test_ends_without_a_winner(make_runtime, sink):
    rt = make_runtime()
    _audience(rt, 2)
    cid = campaign(rt, subject="Subject A", ab_test=_ab(test_percent=10))
    campaigns.start(rt, cid)
    wait_status(rt, cid)  # sent: nobody is held
    _due_now(rt, cid)
    campaigns.requeue(rt)
    drain(rt)
    got = Counter(_subject(m.data) for m in campaign_mail(sink, cid))
    assert got == {"Subject A": 1, "Subject B": 1}
    info = campaigns.get(rt, cid)
    assert info.status == "sent" and info.ab_result["winner"] is None


def test_machine_opens_and_scanner_clicks_do_not_pick_the_winner(make_runtime):
    rt = make_runtime(threads=0)
    _audience(rt, 12)
    cid = campaign(rt, ab_test=_ab())
    campaigns.start(rt, cid)
    rows = _variants(rt, cid)
    tested = {v: [e for e, (st, x) in rows.items() if st == "queued" and x == v] for v in (0, 1)}
    with rt.db.session() as s:
        ids = dict(s.execute(select(Subscriber.email, Subscriber.id)).all())
        for email in tested[1][:3]:  # a link scanner clicked in three of B's mails
            s.add(Engagement(campaign_id=cid, subscriber_id=ids[email], kind="click", machine=True))
        s.add(Engagement(campaign_id=cid, subscriber_id=ids[tested[1][0]], kind="open"))
        s.add(Engagement(campaign_id=cid, subscriber_id=ids[tested[0][0]], kind="click"))
    _due_now(rt, cid)
    assert abtests.decide(rt, cid) == 0
    compared = campaigns.ab_comparison(rt, cid)
    # A's person clicked (which counts as an open); B's open counts, its scanner clicks do not.
    assert [(v.clicked, v.opened) for v in compared.variants] == [(1, 1), (0, 1)]


def test_a_copy_keeps_the_test_settings_but_not_its_outcome(make_runtime):
    rt = make_runtime(threads=0)
    _audience(rt, 4)
    cid = campaign(rt, ab_test=_ab(metric="opens"))
    campaigns.start(rt, cid)
    twin = campaigns.get(rt, campaigns.copy(rt, cid))
    assert twin.ab_test == campaigns.get(rt, cid).ab_test and twin.ab_test["metric"] == "opens"
    assert twin.ab_result is None and twin.status == "draft"


def test_variant_rates_are_of_those_who_allow_tracking_and_a_click_is_an_open(make_runtime, sink):
    rt = make_runtime()
    _audience(rt, 16, tracking=lambda i: i % 2 == 0)  # half allow tracking
    cid = campaign(rt, subject="Subject A", ab_test=_ab(metric="opens", test_percent=99))
    campaigns.start(rt, cid)
    wait_until(lambda: campaigns.stats(rt, cid).sent == 15, what="the test share sent")
    drain(rt)
    with rt.db.session() as s:
        rows = s.execute(
            select(Subscriber.email, Subscriber.consent_tracking, Delivery.variant)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.campaign_id == cid, Delivery.status == "sent")
        ).all()
    tracked = Counter(v for _, allows, v in rows if allows)
    # One person in B who allows tracking clicks without loading images: no open recorded.
    clicker = next(e for e, allows, v in rows if allows and v == 1)
    _engage(rt, cid, [clicker])
    a, b = campaigns.ab_comparison(rt, cid).variants
    assert (a.tracked, b.tracked) == (tracked[0], tracked[1])
    assert (a.sent, b.sent) == (Counter(v for *_, v in rows)[0], Counter(v for *_, v in rows)[1])
    assert (b.opened, b.clicked) == (1, 1)
    assert b.open_rate == b.click_rate == round(100.0 / tracked[1], 1)
    # Winner by opens: B's click is an open, so B wins over A's nothing.
    _due_now(rt, cid)
    assert abtests.decide(rt, cid) == 1


def test_the_web_version_shows_each_person_their_variant_and_no_one_the_winner(rt, sink, client):
    _audience(rt, 6)
    cid = campaign(
        rt,
        subject="Plain",
        body="<p>Body of A</p>",
        ab_test=_ab(
            kind="content",
            test_percent=99,
            alternatives=[{"subject": "Fancy", "body": "<p>Body of B</p>"}],
        ),
    )
    campaigns.start(rt, cid)
    wait_until(lambda: campaigns.stats(rt, cid).sent == 5, what="the test share sent")
    drain(rt)
    seen = Counter()
    for m in campaign_mail(sink, cid):
        html = m.message.get_body(("html",)).get_content()
        web = re.search(r'href="http://listmgr\.test(/w/[^"]+)"', html).group(1)
        page = client.get(web)
        assert page.status_code == 200
        mine, other = ("B", "A") if _subject(m.data) == "Fancy" else ("A", "B")
        text = page.get_data(as_text=True)
        assert f"Body of {mine}" in text and f"Body of {other}" not in text
        seen[mine] += 1
    assert seen == {"A": 3, "B": 2}
    # For no one in particular (a mangled link, the archive): A until a winner, then it.
    ref = rt.tokens.campaign_ref(cid)
    assert "Body of A" in client.get(f"/w/c/{ref}").get_data(as_text=True)
    rows = _variants(rt, cid)
    _engage(rt, cid, [e for e, (_, v) in rows.items() if v == 1][:1])
    _due_now(rt, cid)
    assert abtests.decide(rt, cid) == 1
    text = client.get(f"/w/c/{ref}").get_data(as_text=True)
    assert "Body of B" in text and "Body of A" not in text
