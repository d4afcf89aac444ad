"""Retention: the sweep deletes exactly what is older than its period, from the service, the
worker's periodic sweep and `listmgr retention sweep`, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from click.testing import CliRunner
from sqlalchemy import select

from listmgr import runtime
from listmgr.cli import main
from listmgr.models import (
    ActivityEvent,
    AuditLog,
    ConsentEvent,
    Engagement,
    InboundMessage,
    MailingList,
    Membership,
    Outbox,
    Repermission,
    Subscriber,
    utcnow,
)
from listmgr.services import recovery, retention
from tests.conftest import SECRET

NOW = utcnow().replace(microsecond=0)


def _ago(days: float):
    return NOW - timedelta(days=days)


def _person(s, rt, email, *memberships, created_days=60.0):
    sub = Subscriber(email=email, email_hash=rt.email_hash(email), created_at=_ago(created_days))
    s.add(sub)
    s.flush()
    for list_id, status, days in memberships:
        s.add(
            Membership(
                subscriber_id=sub.id,
                list_id=list_id,
                status=status,
                created_at=_ago(days),
                updated_at=_ago(days),
            )
        )
    s.add(ConsentEvent(subscriber_id=sub.id, list_id=memberships[0][0], kind="subscribe"))
    return sub.id


def _inbound(s, days):
    raw = f"Subject: reply {days}\r\n\r\nthanks".encode()
    s.add(InboundMessage(sha256=hashlib.sha256(raw).hexdigest(), raw=raw, received_at=_ago(days)))


def _world(rt):
    """Rows on both sides of every period (defaults: 30, 365, 365, 90 and 730 days)."""
    with rt.db.session() as s:
        news, other = MailingList(slug="news", name="News"), MailingList(slug="other", name="Other")
        s.add_all([news, other])
        s.flush()
        ids = {
            "stale": _person(s, rt, "stale@example.org", (news.id, "pending", 31)),
            "fresh": _person(s, rt, "fresh@example.org", (news.id, "pending", 29)),
            "both": _person(
                s,
                rt,
                "both@example.org",
                (news.id, "confirmed", 400),
                (other.id, "pending", 40),
            ),
            "active": _person(s, rt, "active@example.org", (news.id, "pending", 31)),
            "once": _person(s, rt, "once@example.org", (other.id, "pending", 31)),
        }
        s.add(
            Outbox(
                kind="confirm",
                to_email="stale@example.org",
                subscriber_id=ids["stale"],
                status="sent",
            )
        )
        s.add(ActivityEvent(subscriber_id=ids["active"], type="viewed", at=_ago(2)))
        s.add(ConsentEvent(subscriber_id=ids["once"], list_id=news.id, kind="confirm"))
        for days in (366, 364):
            s.add(ActivityEvent(subscriber_id=ids["both"], type="viewed", at=_ago(days)))
            s.add(Engagement(subscriber_id=ids["both"], kind="open", at=_ago(days)))
        for days in (91, 89):
            _inbound(s, days)
        for days in (731, 729):
            s.add(AuditLog(action="subscriber.view", at=_ago(days)))
        # re-permission requests: ended 366 and 364 days ago, and one still open
        for ended in (366, 364):
            s.add(
                Repermission(
                    subscriber_id=ids["both"],
                    flag="role",
                    asked_at=_ago(ended + 14),
                    deadline=_ago(ended),
                    ended_at=_ago(ended),
                )
            )
        s.add(
            Repermission(
                subscriber_id=ids["both"], flag="role", asked_at=_ago(13), deadline=_ago(-1)
            )
        )
    return ids


def _left(rt):
    with rt.db.session() as s:
        return {
            "people": sorted(s.scalars(select(Subscriber.email))),
            "memberships": sorted(
                (e, st)
                for e, st in s.execute(
                    select(Subscriber.email, Membership.status).join(
                        Subscriber, Subscriber.id == Membership.subscriber_id
                    )
                )
            ),
            "activity": sorted(round((NOW - a).days) for a in s.scalars(select(ActivityEvent.at))),
            "engagement": [round((NOW - a).days) for a in s.scalars(select(Engagement.at))],
            "inbound": [(NOW - a).days for a in s.scalars(select(InboundMessage.received_at))],
            "audit": [
                (NOW - a).days
                for a in s.scalars(select(AuditLog.at).where(AuditLog.action == "subscriber.view"))
            ],
            "orphans": s.scalar(
                select(ConsentEvent.id).where(ConsentEvent.subscriber_id.is_(None))
            ),
            "outbox": list(s.scalars(select(Outbox.to_email))),
            "repermission": sorted(
                ((NOW - a).days if a else None for a in s.scalars(select(Repermission.ended_at))),
                key=lambda days: -1 if days is None else days,
            ),
        }


def test_the_sweep_deletes_exactly_what_is_older_than_each_period(rt):
    ids = _world(rt)
    counts = retention.sweep(rt, NOW)
    assert counts == {
        "unconfirmed": 3,  # stale, active and once; not fresh, not both's (confirmed elsewhere)
        "subscribers": 1,  # only stale: active has activity, once confirmed something once
        "activity": 1,
        "engagement": 1,
        "inbound": 1,
        "audit": 1,
        "repermission": 1,
        "ledgers": 0,  # no campaign (tests/test_ledger_archive.py)
        "ledger_rows": 0,
    }
    left = _left(rt)
    assert left["people"] == [
        "active@example.org",
        "both@example.org",
        "fresh@example.org",
        "once@example.org",
    ]
    assert left["memberships"] == [
        ("both@example.org", "confirmed"),
        ("both@example.org", "pending"),
        ("fresh@example.org", "pending"),
    ]
    assert left["activity"] == [2, 364] and left["engagement"] == [364]
    assert left["inbound"] == [89] and left["audit"] == [729]
    assert left["repermission"] == [None, 364]  # the open one stays until its deadline
    # The deleted sign-up leaves no trace: no orphaned consent record, no stored mail to it.
    assert left["orphans"] is None and left["outbox"] == []
    with rt.db.session() as s:
        assert s.get(Subscriber, ids["once"]) is not None
    assert retention.sweep(rt, NOW) == dict.fromkeys(retention.KINDS, 0)  # nothing more


def test_zero_keeps_everything(make_runtime):
    rt = make_runtime(
        retention_unconfirmed_days=0,
        retention_activity_days=0,
        retention_engagement_days=0,
        retention_inbound_days=0,
        retention_audit_days=0,
        retention_repermission_days=0,
        retention_delivery_days=0,
    )
    _world(rt)
    before = _left(rt)
    assert retention.sweep(rt, NOW + timedelta(days=10000)) == dict.fromkeys(retention.KINDS, 0)
    assert _left(rt) == before


def test_a_shorter_period_deletes_more(make_runtime):
    rt = make_runtime(retention_inbound_days=1, retention_activity_days=3)
    _world(rt)
    counts = retention.sweep(rt, NOW)
    assert counts["inbound"] == 2 and counts["activity"] == 2  # the 2-day-old one stays
    assert _left(rt)["activity"] == [2]


def test_the_workers_sweep_runs_it_at_most_hourly(rt):
    _world(rt)
    first = recovery.sweep(rt)
    assert first["retention_unconfirmed"] == 3 and first["retention_audit"] == 1
    assert first["retention_repermission"] == 1
    _inbound_now(rt)
    second = recovery.sweep(rt)
    assert not any(key.startswith("retention_") for key in second)


def _inbound_now(rt):
    with rt.db.session() as s:
        _inbound(s, 200)  # would be deleted, but the hour has not passed


def test_the_command_prints_the_counts(database_url, sink, tmp_path, rt):
    _world(rt)
    env = {
        "LISTMGR_DATABASE_URL": database_url,
        "LISTMGR_BROKER_URL": "",
        "LISTMGR_SECRET_KEY": SECRET,
        "LISTMGR_VAR_DIR": str(tmp_path),
        "LISTMGR_RETENTION_INBOUND_DAYS": "30",
    }
    result = CliRunner().invoke(main, ["retention", "sweep"], env=env, catch_exceptions=False)
    runtime.set_current(rt)
    assert result.exit_code == 0, result.output
    lines = {line.split(None, 1)[1]: int(line.split()[0]) for line in result.output.splitlines()}
    assert lines == {
        "unconfirmed sign-ups (pending memberships)": 3,
        "subscribers left with nothing": 1,
        "activity events": 1,
        "opens and clicks": 1,
        "inbound messages": 2,  # both are older than the 30 days given here
        "audit log entries": 1,
        "re-permission requests (kept or expired)": 1,
        "campaign ledgers past their period (their figures kept)": 0,
        "ledger rows deleted": 0,
    }
    bad = CliRunner().invoke(
        main,
        ["retention", "sweep"],
        env={**env, "LISTMGR_RETENTION_AUDIT_DAYS": "-5"},
        catch_exceptions=False,
    )
    runtime.set_current(rt)
    assert bad.exit_code != 0 and "retention_audit_days" in bad.output
    assert "at least 0" in bad.output
