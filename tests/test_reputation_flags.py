"""Flagged subscribers: soft-bouncing addresses, role addresses and the never engaged; the
suppress action and re-permission (mail, keep link, sweep of those who did not answer)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from listmgr import role_addresses
from listmgr.models import (
    ConsentEvent,
    Membership,
    Repermission,
    Subscriber,
    Suppression,
    utcnow,
)
from listmgr.services import campaigns, flags, inbound, recovery, repermission
from tests.campaign_support import campaign, campaign_mail, make_list, person, wait_status
from tests.conftest import drain
from tests.helpers import link_with, links, path_of
from tests.inbound_support import dsn

HUMAN_UA = "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.0"
APPLE_PROXY_UA = "Mozilla/5.0"  # Apple's mail privacy proxy: a machine open


@pytest.mark.parametrize(
    "email, role",
    [
        ("abuse@example.org", True),
        ("Abuse@Example.org", True),
        ("postmaster+x@example.org", True),
        ("POSTMASTER+bounces@example.org", True),
        ("no-reply@example.org", True),
        ("noreply@example.org", True),
        ("mailer-daemon@example.org", True),
        ("abuser@example.org", False),
        ("info@example.org", False),
        ("sales@example.org", False),
        ("ann.abuse@example.org", False),
        ("reply@example.org", False),
        ("", False),
    ],
)
def test_role_addresses(email, role):
    assert role_addresses.is_role(email) is role


def _ids(rt) -> dict[str, int]:
    with rt.db.session() as s:
        return {sub.email: int(sub.id) for sub in s.scalars(select(Subscriber))}


def _flagged(rt, flag: str, **kw) -> set[str]:
    items, total = flags.members(rt, flag, **kw)
    assert total == len(items)
    return {f.email for f in items}


def _statuses(rt, email: str) -> list[str]:
    with rt.db.session() as s:
        return sorted(
            s.scalars(
                select(Membership.status)
                .join(Subscriber, Subscriber.id == Membership.subscriber_id)
                .where(Subscriber.email == email)
            )
        )


def _send(rt, sink, name: str = "News", lists: list[str] | None = None) -> int:
    body = '<p>Hello!</p><p><a href="https://shop.example.org/new">See what is new</a></p>'
    cid = campaign(rt, name=name, lists=lists or ["news"], body=body)
    campaigns.start(rt, cid)
    drain(rt)
    wait_status(rt, cid)
    return cid


def test_soft_bouncing_and_role_addresses_are_flagged(rt):
    make_list(rt, "news")
    make_list(rt, "deals")
    for email in (
        "Abuse@Example.org",
        "postmaster+x@example.org",
        "no-reply@example.org",
        "abuser@example.org",
        "soft@example.org",
        "once@example.org",
    ):
        person(rt, email, ["news"])
    person(rt, "hostmaster@example.org", ["deals"])
    person(rt, "webmaster@example.org", ["news"], status="pending")  # not confirmed: not flagged
    ids = _ids(rt)

    # Two delayed-delivery notices for soft@ (the third would suppress it), one for once@.
    for i, who in enumerate(("soft", "soft", "once")):
        verp = f"bounces+{rt.tokens.bounce(ids[who + '@example.org'])}@lists.example.test"
        inbound.store(
            rt, dsn(verp=verp, failed=f"{who}@example.org", status=f"4.2.{i}", action="delayed")
        )
    drain(rt)
    with rt.db.session() as s:
        assert s.get(Subscriber, ids["soft@example.org"]).soft_bounces == 2

    assert _flagged(rt, "soft_bounce") == {"soft@example.org"}
    assert _flagged(rt, "role") == {
        "abuse@example.org",
        "postmaster+x@example.org",
        "no-reply@example.org",
        "hostmaster@example.org",
    }
    news = _list_id(rt, "news")
    assert "hostmaster@example.org" not in _flagged(rt, "role", list_id=news)
    summary = flags.summary(rt)
    assert summary.counts == {"soft_bounce": 1, "role": 4, "never_engaged": 0}

    # Suppressed people are no longer flagged (the suppression list already stops their mail).
    n = flags.suppress_flagged(rt, "role", actor="owner@staff.example.org", list_id=news)
    assert n == 3
    with rt.db.session() as s:
        reasons = dict(s.execute(select(Suppression.email, Suppression.reason)).all())
        suppressed_events = s.scalars(
            select(ConsentEvent).where(ConsentEvent.kind == "suppressed")
        ).all()
    assert reasons == {
        "abuse@example.org": "flagged",
        "postmaster+x@example.org": "flagged",
        "no-reply@example.org": "flagged",
    }
    assert {e.actor for e in suppressed_events} == {"owner@staff.example.org"}
    assert {e.detail["flag"] for e in suppressed_events} == {"role"}
    assert _flagged(rt, "role") == {"hostmaster@example.org"}
    # An id that is not flagged is left alone, whatever the caller says.
    assert flags.suppress_flagged(rt, "role", actor="x", ids=[ids["abuser@example.org"]]) == 0
    with rt.db.session() as s:
        assert (
            s.scalar(select(Suppression).where(Suppression.email == "abuser@example.org")) is None
        )


def _list_id(rt, slug: str) -> int:
    from listmgr.models import MailingList

    with rt.db.session() as s:
        return int(s.scalar(select(MailingList.id).where(MailingList.slug == slug)))


def test_never_engaged_after_n_campaigns(make_runtime, sink):
    from listmgr.app import create_app

    rt = make_runtime(
        flag_never_engaged_campaigns=2, machine_open_seconds=0, scanner_click_seconds=0
    )
    client = create_app(rt=rt, migrate=False).test_client()
    make_list(rt, "news")
    for name in ("silent", "reader", "proxied", "clicker"):
        person(rt, f"{name}@example.org", ["news"], consents={"tracking": True})
    person(rt, "private@example.org", ["news"])  # does not allow tracking
    ids = _ids(rt)

    first = _send(rt, sink, "One")
    assert flags.summary(rt).counts["never_engaged"] == 0  # one campaign is not enough
    mails = {m.rcpt_tos[0]: m for m in campaign_mail(sink, first)}
    # reader opens the mail; Apple's proxy fetches proxied's pixel (a machine's open)
    for name, ua in (("reader", HUMAN_UA), ("proxied", APPLE_PROXY_UA)):
        token = rt.tokens.open(first, ids[f"{name}@example.org"])
        assert client.get(f"/o/{token}.gif", headers={"User-Agent": ua}).status_code == 200
    # clicker clicks a link in the mail
    # (the first tracked link is the hidden trap only scanners follow: take the real one)
    tracked = [u for u in links(mails["clicker@example.org"].message) if "/t/" in u]
    click = path_of(tracked[-1].rstrip(")"))
    assert client.get(click, headers={"User-Agent": HUMAN_UA}).status_code in (302, 303)
    _send(rt, sink, "Two")

    assert _flagged(rt, "never_engaged") == {"silent@example.org", "proxied@example.org"}
    summary = flags.summary(rt)
    assert summary.untracked == 1  # private@: cannot be judged
    assert summary.tracking_on is True

    # With tracking off nobody can be judged at all.
    off = make_runtime(tracking=False)
    assert flags.members(off, "never_engaged")[1] == 0
    assert flags.summary(off).tracking_on is False


def test_repermission_mail_keep_link_and_sweep(rt, sink, monkeypatch):
    from listmgr.app import create_app

    client = create_app(rt=rt, migrate=False).test_client()
    make_list(rt, "news")
    make_list(rt, "deals")
    for email in ("abuse@example.org", "noreply@example.org", "postmaster@example.org"):
        person(rt, email, ["news", "deals"])

    news = _list_id(rt, "news")
    asked = repermission.ask(rt, "role", actor="admin@staff.example.org", list_id=news)
    assert asked == 3
    drain(rt)
    got = {m.rcpt_tos[0]: m for m in sink.wait_for(3)}
    assert set(got) == {"abuse@example.org", "noreply@example.org", "postmaster@example.org"}
    mail = got["abuse@example.org"].message
    assert "keep" in str(mail["Subject"]).lower() or "still" in str(mail["Subject"]).lower()
    assert mail["List-Unsubscribe"]  # mail about a list: leaving stays one click away
    keep = path_of(link_with(mail, "/keep/"))
    # Asked people are not flagged again while the request waits.
    assert flags.summary(rt).counts["role"] == 0 and flags.summary(rt).waiting == 3
    assert repermission.ask(rt, "role", actor="x", list_id=news) == 0

    # GET (a link scanner) changes nothing; the button does.
    page = client.get(keep)
    assert page.status_code == 200 and 'id="keep"' in page.text
    with rt.db.session() as s:
        assert s.scalar(select(Repermission.confirmed_at).limit(1)) is None
    done = client.post(keep)
    assert done.status_code == 200 and 'id="kept"' in done.text
    assert client.post(keep).status_code == 200  # again: harmless
    with rt.db.session() as s:
        fresh = s.scalars(
            select(ConsentEvent).where(
                ConsentEvent.kind == "confirm", ConsentEvent.source == "repermission"
            )
        ).all()
    assert [(e.list_id, e.detail["flag"]) for e in fresh] == [(news, "role")]
    # A tampered link is refused.
    assert client.post(keep[:-2] + ("xx" if not keep.endswith("xx") else "yy")).status_code == 400

    # The deadline passes: the periodic sweep unsubscribes the two who did not answer from the
    # list they were asked about (not from the other), with the reason recorded.
    monkeypatch.setattr(
        repermission,
        "utcnow",
        lambda: utcnow() + timedelta(days=rt.settings.repermission_days, hours=-1),
    )
    assert recovery.sweep(rt)["repermission_ended"] == 0  # not yet past the deadline
    monkeypatch.setattr(
        repermission,
        "utcnow",
        lambda: utcnow() + timedelta(days=rt.settings.repermission_days, hours=1),
    )
    assert recovery.sweep(rt)["repermission_ended"] == 2
    assert recovery.sweep(rt)["repermission_ended"] == 0  # done once
    assert _statuses(rt, "abuse@example.org") == ["confirmed", "confirmed"]
    for email in ("noreply@example.org", "postmaster@example.org"):
        assert _statuses(rt, email) == ["confirmed", "unsubscribed"]
    with rt.db.session() as s:
        ended = s.scalars(
            select(ConsentEvent).where(ConsentEvent.source == repermission.EXPIRED_SOURCE)
        ).all()
    assert len(ended) == 2 and {e.list_id for e in ended} == {news}
    assert all("re-permission" in e.detail["reason"] for e in ended)
    # Too late: pressing the button now changes nothing.
    late = path_of(link_with(got["noreply@example.org"].message, "/keep/"))
    answer = client.post(late)
    assert answer.status_code == 200 and 'id="ended"' in answer.text
    assert _statuses(rt, "noreply@example.org") == ["confirmed", "unsubscribed"]
    # The one who confirmed is not flagged for the same reason again.
    assert _flagged(rt, "role", list_id=news) == set()
    assert "abuse@example.org" not in _flagged(rt, "role")


def test_erasing_someone_asked_to_confirm_removes_the_request(rt, sink):
    from listmgr.services import privacy
    from listmgr.services.subscriptions import Origin

    make_list(rt, "news")
    person(rt, "abuse@example.org", ["news"])
    assert repermission.ask(rt, "role", actor="admin@staff.example.org") == 1
    drain(rt)
    with rt.db.session() as s:
        sid = s.scalar(select(Subscriber.id).where(Subscriber.email == "abuse@example.org"))
    privacy.erase_subscriber(rt, sid, origin=Origin(source="admin", actor="owner"))
    with rt.db.session() as s:
        assert s.scalars(select(Repermission)).all() == []
        assert s.get(Subscriber, sid) is None
