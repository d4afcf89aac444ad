"""A campaign's ledger past retention_delivery_days: its figures are kept on the campaign, its
rows deleted, and every page, chart and API answer shows what it showed before; a sweep cut
short resumes; two sweeps at once keep the figures once; the setting is checked and named in
the privacy notice. On SQLite and PostgreSQL."""

from __future__ import annotations

import difflib
import re
import threading
from datetime import timedelta

from click.testing import CliRunner
from sqlalchemy import func, select, update

from listmgr import runtime
from listmgr.app import create_app
from listmgr.cli import main
from listmgr.models import Campaign, Delivery, Engagement, Subscriber, utcnow
from listmgr.services import abtests, accounts, campaigns, ledger_archive, retention
from tests.admin_support import PASSWORD, Account, session_login
from tests.campaign_support import campaign, make_list, person, wait_status
from tests.conftest import SECRET, drain, wait_until

DAYS = 30


def _signed_in(rt):
    """A browser session of an owner and their API token, on rt's application."""
    client = create_app(rt=rt).test_client()
    email = "owner@staff.example.org"
    uid = accounts.create_user(rt, email=email, password=PASSWORD, role="owner", name="Owner")
    session_login(client, rt, Account(uid, email, "owner"))
    token = accounts.create_token(rt, role="owner", name="tests")
    return client, token


def _rows(rt, cid: int) -> int:
    with rt.db.session() as s:
        return s.scalar(select(func.count()).where(Delivery.campaign_id == cid))


def _ended(rt, cid: int):
    with rt.db.session() as s:
        return s.scalar(select(Campaign.finished_at).where(Campaign.id == cid))


def _sent_ab_campaign(rt, n: int = 12) -> int:
    """An A/B test to n people (all but one allow tracking), decided and sent to everyone, with clicks,
    opens, a bounce, a complaint and an unsubscribe on its ledger."""
    for i in range(n):
        person(rt, f"p{i:03d}@example.org", ["news"], consents={"tracking": i > 0})
    cid = campaign(
        rt,
        name="Autumn news",
        subject="Subject A",
        ab_test={"alternatives": [{"subject": "Subject B"}], "test_percent": 50, "wait_minutes": 1},
    )
    campaigns.start(rt, cid)
    wait_until(lambda: campaigns.stats(rt, cid).sent == n // 2, what="the test share sent")
    drain(rt)
    with rt.db.session() as s:
        got = s.execute(
            select(Subscriber.id, Delivery.variant, Subscriber.consent_tracking)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .where(Delivery.campaign_id == cid, Delivery.status == "sent")
            .order_by(Subscriber.id)
        ).all()
        b_people = [sid for sid, v, tracked in got if v == 1 and tracked]
        a_people = [sid for sid, v, tracked in got if v == 0 and tracked]
        for sid in b_people[:2]:
            s.add(Engagement(campaign_id=cid, subscriber_id=sid, kind="click"))
        s.add(Engagement(campaign_id=cid, subscriber_id=a_people[0], kind="open"))
        for flag, sid in (("bounced", got[0][0]), ("complained", got[1][0])):
            s.execute(
                update(Delivery)
                .where(Delivery.campaign_id == cid, Delivery.subscriber_id == sid)
                .values({flag: True})
            )
        s.execute(
            update(Campaign)
            .where(Campaign.id == cid)
            .values(ab_decide_at=utcnow() - timedelta(seconds=1))
        )
    assert abtests.decide(rt, cid) == 1
    wait_status(rt, cid)
    drain(rt)
    return cid


def _everything_shown(signed_in, cid: int) -> dict:
    """What the API, the admin's stats page and charts and the dashboard show of a campaign."""
    client, token = signed_in
    stats = client.get(
        f"/api/campaigns/{cid}/stats", headers={"Authorization": f"Bearer {token}"}
    ).json
    page = client.get(f"/admin/campaigns/{cid}/stats").get_data(as_text=True)

    def chart(path: str) -> str:  # without the id the chart library makes up for each drawing
        return re.sub(r"chart-[0-9a-f-]{36}", "chart", client.get(path).get_data(as_text=True))

    return {
        "api": stats,
        "outcome": chart(f"/admin/charts/campaign/{cid}/outcome.svg"),
        "recent": chart("/admin/charts/campaigns.svg"),
        # the page, without its form's CSRF token (it holds the time it was made) and the
        # note that the ledger's rows were deleted (compared apart)
        "page": re.sub(
            r'name="csrf_token" value="[^"]*"|<p class="hint" id="ledger-deleted">.*?</p>',
            "",
            page[page.index("<main") :],
        ),
        "note": 'id="ledger-deleted"' in page,
    }


def _same(shown: dict, before: dict) -> None:
    """shown == before, with a readable difference of the pages when not."""
    lines = difflib.unified_diff(
        before["page"].splitlines(), shown["page"].splitlines(), lineterm="", n=1
    )
    assert shown["page"] == before["page"], "\n".join(lines)
    assert {**shown, "note": None} == {**before, "note": None}


def test_an_archived_ledger_shows_the_same_figures_everywhere(make_runtime, sink):
    rt = make_runtime(retention_delivery_days=DAYS)
    signed_in = _signed_in(rt)
    make_list(rt, "news")
    cid = _sent_ab_campaign(rt)
    recent = campaign(rt, name="Winter news", subject="Winter")
    campaigns.start(rt, recent)
    wait_status(rt, recent)
    drain(rt)
    before = _everything_shown(signed_in, cid)
    assert before["api"]["sent"] == 12 and before["api"]["bounced"] == 1
    assert [v["clicked"] for v in before["api"]["ab_test"]["variants"]] == [0, 2]
    assert before["api"]["engagement"]["tracked_recipients"] == 11
    assert before["api"]["engagement"]["unique_opens"] == 3  # a click counts as an open
    assert not before["note"]

    # A day before the end of the period nothing happens; the day after, the ledger goes.
    ended = _ended(rt, cid)
    early = retention.sweep(rt, ended + timedelta(days=DAYS - 1))
    assert (early["ledgers"], early["ledger_rows"]) == (0, 0) and _rows(rt, cid) == 12
    later = ended + timedelta(days=DAYS + 1)
    with rt.db.session() as s:  # the other campaign ended within the period at that time
        s.execute(update(Campaign).where(Campaign.id == recent).values(finished_at=later))
    counts = retention.sweep(rt, later)
    assert (counts["ledgers"], counts["ledger_rows"]) == (1, 12)
    assert _rows(rt, cid) == 0 and _rows(rt, recent) == 12
    after = _everything_shown(signed_in, cid)
    _same(after, before)
    assert after["note"]  # the page says the rows went and the figures were kept
    again = retention.sweep(rt, later)
    assert (again["ledgers"], again["ledger_rows"]) == (0, 0)
    # A reply or unsubscribe that arrives now finds no row; the kept figures stay as they were.
    _same(_everything_shown(signed_in, cid), before)


def test_a_sweep_cut_short_keeps_the_figures_and_the_next_one_deletes_the_rest(make_runtime, sink):
    rt = make_runtime(retention_delivery_days=DAYS)
    signed_in = _signed_in(rt)
    make_list(rt, "news")
    cid = _sent_ab_campaign(rt)
    before = _everything_shown(signed_in, cid)
    cutoff = _ended(rt, cid) + timedelta(seconds=1)
    done = ledger_archive.archive(rt, cutoff, seconds=0)
    assert (done.campaigns, done.rows, done.more) == (1, 0, True)
    assert _rows(rt, cid) == 12
    _same(_everything_shown(signed_in, cid), before)  # read from what was kept already
    done = ledger_archive.archive(rt, cutoff, batch=5)
    assert (done.campaigns, done.rows, done.more) == (0, 12, False)
    _same(_everything_shown(signed_in, cid), before)


def test_the_workers_sweep_comes_back_soon_while_rows_are_left(make_runtime, sink, monkeypatch):
    rt = make_runtime(retention_delivery_days=DAYS)
    make_list(rt, "news")
    person(rt, "one@example.org", ["news"])
    cid = campaign(rt)
    campaigns.start(rt, cid)
    wait_status(rt, cid)
    drain(rt)
    now = _ended(rt, cid) + timedelta(days=DAYS, seconds=1)
    monkeypatch.setattr(retention, "LEDGER_SECONDS", 0.0)
    counts = retention.sweep_due(rt, now)
    assert counts["ledgers"] == 1 and counts["ledger_rows_left"] == 1
    assert retention.sweep_due(rt, now + timedelta(seconds=30)) == {}
    monkeypatch.setattr(retention, "LEDGER_SECONDS", 60.0)
    counts = retention.sweep_due(rt, now + timedelta(seconds=retention.AGAIN_SECONDS))
    assert counts["ledger_rows"] == 1 and "ledger_rows_left" not in counts
    assert _rows(rt, cid) == 0
    # Nothing left: back to the hourly sweep.
    assert retention.sweep_due(rt, now + timedelta(seconds=2 * retention.AGAIN_SECONDS)) == {}


def test_rows_of_campaigns_side_by_side_in_the_ledger_go_with_their_own_campaign(
    make_runtime, sink
):
    """Deletion walks a campaign's ids in windows: rows of another campaign between its ids,
    and gaps wider than a window, change nothing of what is deleted."""
    rt = make_runtime(retention_delivery_days=DAYS)
    make_list(rt, "news")
    for i in range(9):
        person(rt, f"r{i}@example.org", ["news"])
    old, recent = campaign(rt, name="Old"), campaign(rt, name="Recent")
    for cid in (old, recent):
        campaigns.start(rt, cid)
        wait_status(rt, cid)
    drain(rt)
    ended = _ended(rt, old)
    with rt.db.session() as s:
        for cid, offset in ((old, 0), (recent, 1)):
            ids = s.scalars(select(Delivery.id).where(Delivery.campaign_id == cid)).all()
            for k, did in enumerate(sorted(ids)):  # old, recent, old, ... 5 ids apart
                s.execute(
                    update(Delivery)
                    .where(Delivery.id == did)
                    .values(id=1_000_000 + (2 * k + offset) * 5)
                )
        s.execute(
            update(Campaign)
            .where(Campaign.id == recent)
            .values(finished_at=ended + timedelta(days=2))
        )
    kept = campaigns.stats(rt, recent)
    done = ledger_archive.archive(rt, ended + timedelta(days=1), batch=3)
    assert (done.campaigns, done.rows, done.more) == (1, 9, False)
    assert _rows(rt, old) == 0 and _rows(rt, recent) == 9
    assert campaigns.stats(rt, recent) == kept


def test_two_sweeps_at_once_keep_the_figures_once(make_runtime, sink):
    rt = make_runtime(retention_delivery_days=DAYS)
    make_list(rt, "news")
    for i in range(30):
        person(rt, f"q{i}@example.org", ["news"])
    cid = campaign(rt)
    campaigns.start(rt, cid)
    wait_status(rt, cid)
    drain(rt)
    before = campaigns.stats(rt, cid)
    cutoff = _ended(rt, cid) + timedelta(seconds=1)
    results: list = []
    errors: list = []

    def sweep() -> None:
        try:
            results.append(ledger_archive.archive(rt, cutoff, batch=4))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(r.campaigns for r in results) == 1
    assert sum(r.rows for r in results) == 30 and _rows(rt, cid) == 0
    assert campaigns.stats(rt, cid) == before


def test_the_period_is_checked_and_named_in_the_notice(database_url, make_runtime, tmp_path, rt):
    env = {
        "LISTMGR_DATABASE_URL": database_url,
        "LISTMGR_BROKER_URL": "",
        "LISTMGR_SECRET_KEY": SECRET,
        "LISTMGR_VAR_DIR": str(tmp_path),
    }
    for bad in ("10", "-1", "soon"):
        result = CliRunner().invoke(
            main, ["retention", "sweep"], env={**env, "LISTMGR_RETENTION_DELIVERY_DAYS": bad}
        )
        runtime.set_current(rt)
        assert result.exit_code != 0
        assert "retention_delivery_days" in result.output, result.output
    assert (
        "at least 30 days"
        in CliRunner()
        .invoke(main, ["retention", "sweep"], env={**env, "LISTMGR_RETENTION_DELIVERY_DAYS": "29"})
        .output
    )
    runtime.set_current(rt)
    for days, words in ((0, "until you leave"), (30, "30 days"), (400, "400 days")):
        app_rt = make_runtime(retention_delivery_days=days)
        client = create_app(rt=app_rt).test_client()
        make_list(app_rt, f"l{days}")
        notice = client.get(f"/privacy/l{days}.json").json
        kept = {r["what"]: r["kept"] for r in notice["notice"]["retention"]}
        assert words in kept["Which of our mail we sent you and what became of it"]
        runtime.set_current(rt)
