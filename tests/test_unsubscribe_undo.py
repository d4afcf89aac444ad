"""Undoing an unsubscribe: the page after leaving offers a signed, time-limited form that brings
back exactly the confirmed memberships just ended; the RFC 8058 one-click post is unchanged."""

from __future__ import annotations

import re
import time

from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select

from listmgr.models import ConsentEvent, MailingList, Membership, Subscriber, Suppression
from listmgr.services import lists, subscribers, subscriptions

EMAIL = "una@example.org"


def _setup(rt) -> tuple[int, dict[str, int]]:
    for slug in ("news", "deals", "old"):
        lists.create(rt, slug=slug, name=slug.title())
    sid = subscribers.create(rt, email=EMAIL, lists=["news", "deals", "old"], consent="test")
    with rt.db.session() as s:
        ids = {lst.slug: lst.id for lst in s.scalars(select(MailingList))}
    return sid, ids


def _statuses(rt, sid) -> dict[int, str]:
    with rt.db.session() as s:
        return dict(
            s.execute(
                select(Membership.list_id, Membership.status).where(Membership.subscriber_id == sid)
            ).all()
        )


def _undo_path(html: str) -> str:
    found = re.search(r'action="(/u/undo/[^"]+)"', html)
    assert found, "no undo form on the page"
    return found.group(1)


def _resubscribed(rt, sid) -> list[ConsentEvent]:
    with rt.db.session() as s:
        return list(
            s.scalars(
                select(ConsentEvent).where(
                    ConsentEvent.subscriber_id == sid, ConsentEvent.kind == "resubscribe"
                )
            )
        )


def test_undo_brings_back_the_one_list_just_left(rt, client):
    sid, ids = _setup(rt)
    with rt.db.session() as s:
        before = s.scalar(select(Membership).where(Membership.list_id == ids["news"]))
        confirmed_at = before.confirmed_at
    page = client.post(f"/u/{rt.tokens.unsubscribe(sid, ids['news'])}")
    assert page.status_code == 200 and "30 minutes" in page.text
    undo = _undo_path(page.text)
    assert _statuses(rt, sid)[ids["news"]] == "unsubscribed"
    assert client.get(undo).status_code == 405  # a GET (a scanner) changes nothing
    resp = client.post(undo)
    assert resp.status_code == 200 and "News" in resp.text
    assert set(_statuses(rt, sid).values()) == {"confirmed"}
    with rt.db.session() as s:
        back = s.scalar(select(Membership).where(Membership.list_id == ids["news"]))
        assert back.confirmed_at == confirmed_at and back.unsubscribed_at is None
    (event,) = _resubscribed(rt, sid)
    assert event.wording == "resubscribed by undo" and event.list_id == ids["news"]
    assert event.source == "undo"
    # the same form again changes nothing
    again = client.post(undo)
    assert again.status_code == 400 and "already undone" in again.text
    assert len(_resubscribed(rt, sid)) == 1


def test_undo_of_everything_restores_only_what_was_ended_and_lifts_its_suppression(rt, client):
    sid, ids = _setup(rt)
    with rt.db.session() as s:
        sub = s.get(Subscriber, sid)
        subscriptions.unsubscribe_subscriber(
            s, sub, list_id=ids["old"], origin=subscriptions.Origin(source="test")
        )
    page = client.post(f"/u/{rt.tokens.unsubscribe(sid, ids['news'])}", data={"all": "1"})
    with rt.db.session() as s:
        assert s.scalar(select(Suppression.reason)) == "unsubscribed_all"
    resp = client.post(_undo_path(page.text))
    assert resp.status_code == 200
    statuses = _statuses(rt, sid)
    assert statuses[ids["news"]] == statuses[ids["deals"]] == "confirmed"
    assert statuses[ids["old"]] == "unsubscribed"  # left earlier: stays left
    with rt.db.session() as s:
        assert s.scalar(select(Suppression)) is None


def test_one_click_post_is_unchanged_and_offers_no_undo(rt, client):
    sid, ids = _setup(rt)
    resp = client.post(
        f"/u/{rt.tokens.unsubscribe(sid, ids['news'])}",
        data={"List-Unsubscribe": "One-Click"},
    )
    assert resp.status_code == 200 and resp.location is None
    assert "Set-Cookie" not in resp.headers
    assert "/u/undo/" not in resp.text and "csrf" not in resp.text.lower()
    assert _statuses(rt, sid)[ids["news"]] == "unsubscribed"


def _aged(rt, token_parts, seconds: int) -> str:
    """A correctly signed undo token made `seconds` ago."""

    class Then(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - seconds

    maker = URLSafeTimedSerializer(rt.settings.secret_key, salt="unsubscribe-undo", signer=Then)
    return maker.dumps(token_parts)


def test_no_undo_after_the_window(rt, client):
    sid, ids = _setup(rt)
    page = client.post(f"/u/{rt.tokens.unsubscribe(sid, ids['news'])}")
    token = _undo_path(page.text).rsplit("/", 1)[1]
    tok = rt.tokens.read_unsubscribe_undo(token)
    parts = [tok.subscriber_id, list(tok.list_ids), tok.at, tok.everything]
    late = client.post(f"/u/undo/{_aged(rt, parts, 31 * 60)}")
    assert late.status_code == 400 and "too late" in late.text
    assert _statuses(rt, sid)[ids["news"]] == "unsubscribed"
    # within the window the very same undo still works
    assert client.post(f"/u/undo/{_aged(rt, parts, 29 * 60)}").status_code == 200


def test_no_undo_after_a_complaint_or_bounce(rt, client):
    sid, ids = _setup(rt)
    for reason in ("complaint", "hard_bounce"):
        page = client.post(f"/u/{rt.tokens.unsubscribe(sid, ids['news'])}", data={"all": "1"})
        undo = _undo_path(page.text)
        with rt.db.session() as s:
            subscriptions.suppress(s, s.get(Subscriber, sid), reason)
        resp = client.post(undo)
        assert resp.status_code == 400 and "can no longer be undone" in resp.text
        assert set(_statuses(rt, sid).values()) == {"unsubscribed"}
        with rt.db.session() as s:
            assert s.scalar(select(Suppression.reason)) == reason
            s.query(Suppression).delete()
            for m in s.scalars(select(Membership)):
                m.status = "confirmed"
    assert _resubscribed(rt, sid) == []


def test_a_later_change_ends_the_undo(rt, client):
    sid, ids = _setup(rt)
    first = _undo_path(client.post(f"/u/{rt.tokens.unsubscribe(sid, ids['news'])}").text)
    assert client.post(first).status_code == 200
    second = _undo_path(client.post(f"/u/{rt.tokens.unsubscribe(sid, ids['news'])}").text)
    assert client.post(first).status_code == 400  # the older undo names the older leaving
    assert client.post(second).status_code == 200


def test_bad_undo_tokens_are_refused(rt, client):
    sid, ids = _setup(rt)
    token = _undo_path(client.post(f"/u/{rt.tokens.unsubscribe(sid, ids['news'])}").text)
    token = token.rsplit("/", 1)[1]
    other = URLSafeTimedSerializer("another secret", salt="unsubscribe-undo").dumps(
        [sid, [ids["deals"]], "2026-01-01T00:00:00", False]
    )
    for bad in (
        "garbage",
        token[:-3] + ("aaa" if not token.endswith("aaa") else "bbb"),
        other,
        rt.tokens.manage(sid),
        rt.tokens.unsubscribe(sid, ids["news"]),
        URLSafeTimedSerializer(rt.settings.secret_key, salt="unsubscribe-undo").dumps(
            [sid, [], "x", True]
        ),
        "%00%ff",
    ):
        resp = client.post(f"/u/undo/{bad}")
        assert resp.status_code in (400, 404), (bad, resp.status_code)
    assert _statuses(rt, sid)[ids["news"]] == "unsubscribed"
    assert _resubscribed(rt, sid) == []


def test_preference_center_unsubscribe_all_offers_the_undo(rt, client):
    sid, ids = _setup(rt)
    page = client.post(f"/p/{rt.tokens.manage(sid)}", data={"action": "unsubscribe_all"})
    assert page.status_code == 200
    assert set(_statuses(rt, sid).values()) == {"unsubscribed"}
    assert client.post(_undo_path(page.text)).status_code == 200
    assert set(_statuses(rt, sid).values()) == {"confirmed"}
    with rt.db.session() as s:
        assert s.scalar(select(Suppression)) is None
    # a link from an ended link epoch still leaves, but offers no way back
    with rt.db.session() as s:
        s.get(Subscriber, sid).link_epoch = 1
    old = client.post(f"/p/{rt.tokens.manage(sid, 0)}", data={"action": "unsubscribe_all"})
    assert old.status_code == 200 and "/u/undo/" not in old.text
