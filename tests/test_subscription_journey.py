"""The subscriber's whole journey through the HTTP client, with real mail through a real sink."""

from __future__ import annotations

from sqlalchemy import func, select

from listmgr.models import ConsentEvent, Membership, Subscriber
from listmgr.services import lists
from tests.conftest import drain
from tests.helpers import link_with, path_of


def _membership(rt, email):
    with rt.db.session() as s:
        return s.scalar(
            select(Membership.status)
            .join(Subscriber, Subscriber.id == Membership.subscriber_id)
            .where(Subscriber.email == email)
        )


def _events(rt, email):
    with rt.db.session() as s:
        return list(
            s.scalars(
                select(ConsentEvent.kind)
                .join(Subscriber, Subscriber.id == ConsentEvent.subscriber_id)
                .where(Subscriber.email == email)
                .order_by(ConsentEvent.id)
            )
        )


def test_full_journey(rt, client, sink):
    lists.create(rt, slug="news", name="News", consent_wording="Send me the news, monthly.")
    page = client.get("/subscribe/news")
    assert page.status_code == 200 and b'name="email"' in page.data

    resp = client.post(
        "/subscribe/news",
        data={
            "email": "Ada@Example.ORG",
            "name": "Ada",
            "consent_text": "Send me the news, monthly.",
        },
        headers={"User-Agent": "JourneyBrowser/1.0"},
    )
    assert resp.status_code == 200 and b"confirm" in resp.data
    drain(rt)
    [mail] = sink.wait_for(1)
    assert mail.rcpt_tos == ["ada@example.org"]
    msg = mail.message
    assert msg["Auto-Submitted"] == "auto-generated"
    confirm_path = path_of(link_with(msg, "/confirm/"))
    assert _membership(rt, "ada@example.org") == "pending"

    # GET shows a button and changes nothing (link scanners).
    page = client.get(confirm_path)
    assert page.status_code == 200 and b"<button" in page.data
    assert _membership(rt, "ada@example.org") == "pending"

    resp = client.post(confirm_path)
    assert resp.status_code == 200 and b"subscribed" in resp.data
    assert _membership(rt, "ada@example.org") == "confirmed"
    with rt.db.session() as s:
        ev = s.scalar(select(ConsentEvent).where(ConsentEvent.kind == "confirm"))
        sub_ev = s.scalar(select(ConsentEvent).where(ConsentEvent.kind == "subscribe"))
    assert ev is not None and ev.wording == "Send me the news, monthly."
    assert sub_ev.ip == "127.0.0.1" and sub_ev.user_agent == "JourneyBrowser/1.0"
    assert ev.detail["subscribe_ip"] == "127.0.0.1"

    # One-click unsubscribe, URL-encoded body; no cookie, no CSRF, no redirect.
    token = rt.tokens.unsubscribe(*_ids(rt, "ada@example.org", "news"))
    client.cookie_jar.clear() if hasattr(client, "cookie_jar") else None
    resp = client.post(
        f"/u/{token}",
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert resp.status_code == 200
    assert _membership(rt, "ada@example.org") == "unsubscribed"
    events_after_first = _events(rt, "ada@example.org")
    # Repeating it is harmless, and the multipart encoding works too.
    resp = client.post(
        f"/u/{token}", data={"List-Unsubscribe": "One-Click"}, content_type="multipart/form-data"
    )
    assert resp.status_code == 200
    assert _membership(rt, "ada@example.org") == "unsubscribed"
    assert _events(rt, "ada@example.org") == events_after_first
    assert events_after_first == ["subscribe", "confirm", "unsubscribe"]

    # Resubscribing needs a new confirmation.
    resp = client.post("/subscribe/news", data={"email": "ada@example.org"})
    assert resp.status_code == 200
    drain(rt)
    assert _membership(rt, "ada@example.org") == "pending"


def _ids(rt, email, slug):
    from listmgr.models import MailingList

    with rt.db.session() as s:
        sid = s.scalar(select(Subscriber.id).where(Subscriber.email == email))
        lid = s.scalar(select(MailingList.id).where(MailingList.slug == slug))
    return sid, lid


def test_unsubscribe_multipart_first(rt, client):
    lists.create(rt, slug="news", name="News")
    from listmgr.services import subscribers

    sid = subscribers.create(rt, email="bo@example.org", lists=["news"], consent="test")
    token = rt.tokens.unsubscribe(sid, _ids(rt, "bo@example.org", "news")[1])
    page = client.get(f"/u/{token}")
    assert page.status_code == 200 and b"Unsubscribe from all lists" in page.data
    assert _membership(rt, "bo@example.org") == "confirmed"
    resp = client.post(
        f"/u/{token}", data={"List-Unsubscribe": "One-Click"}, content_type="multipart/form-data"
    )
    assert resp.status_code == 200 and resp.location is None
    assert _membership(rt, "bo@example.org") == "unsubscribed"


def test_same_answer_known_or_unknown(rt, client, sink):
    lists.create(rt, slug="news", name="News")
    from listmgr.services import subscribers

    subscribers.create(rt, email="known@example.org", lists=["news"], consent="test")
    known = client.post("/subscribe/news", data={"email": "known@example.org"})
    unknown = client.post("/subscribe/news", data={"email": "unknown@example.org"})
    assert known.status_code == unknown.status_code == 200
    assert known.data == unknown.data
    drain(rt)
    sink.wait_for(2)
    subjects = {m.rcpt_tos[0]: m.message["Subject"] for m in sink.messages}
    assert "already subscribed" in subjects["known@example.org"]
    assert "confirm" in subjects["unknown@example.org"]
    with rt.db.session() as s:
        assert s.scalar(select(func.count(Subscriber.id))) == 2


def test_one_confirmation_per_window(rt, client, sink):
    lists.create(rt, slug="news", name="News")
    for _ in range(3):
        assert client.post("/subscribe/news", data={"email": "x@example.org"}).status_code == 200
    drain(rt)
    assert len(sink.to("x@example.org")) == 1


def test_json_endpoint(rt, client, sink):
    lists.create(rt, slug="news", name="News")
    resp = client.post(
        "/subscribe/news",
        json={"email": "j@example.org", "name": "J"},
        headers={"Origin": "https://elsewhere.example"},
    )
    assert resp.status_code == 202 and resp.json["status"] == "ok"
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    bad = client.post("/subscribe/news", json={"email": "not-an-address"})
    assert bad.status_code == 422 and bad.json["error"]["field"] == "email"


def test_embedded_form_posts_without_csrf(rt, client):
    lists.create(rt, slug="news", name="News", consent_wording="Yes please.")
    snippet = client.get("/subscribe/news/embed")
    assert snippet.status_code == 200
    assert b'action="http://listmgr.test/subscribe/news"' in snippet.data
    assert b"<script" not in snippet.data
    resp = client.post(
        "/subscribe/news",
        data={"email": "e@example.org", "embed": "1", "consent_text": "Yes please."},
        headers={"Origin": "https://partner.example", "Referer": "https://partner.example/page"},
    )
    assert resp.status_code == 200
    with rt.db.session() as s:
        ev = s.scalar(select(ConsentEvent).where(ConsentEvent.kind == "subscribe"))
    assert ev.source == "embed" and ev.wording == "Yes please."


def test_preference_center(rt, client, sink):
    lists.create(rt, slug="news", name="News")
    lists.create(rt, slug="events", name="Events")
    from listmgr.services import subscribers

    sid = subscribers.create(rt, email="p@example.org", lists=["news"], consent="test")
    token = rt.tokens.manage(sid)
    page = client.get(f"/p/{token}")
    assert page.status_code == 200 and b"News" in page.data and b"Events" in page.data
    resp = client.post(f"/p/{token}", data={"action": "save", "lists": ["events"]})
    assert resp.status_code == 200
    drain(rt)
    with rt.db.session() as s:
        rows = dict(
            s.execute(
                select(Membership.list_id, Membership.status).where(Membership.subscriber_id == sid)
            ).all()
        )
    assert sorted(rows.values()) == ["pending", "unsubscribed"]
    assert len(sink.wait_for(1)) == 1  # confirmation for joining "events"
    resp = client.post(f"/p/{token}", data={"action": "unsubscribe_all"})
    assert resp.status_code == 200
    with rt.db.session() as s:
        statuses = set(s.scalars(select(Membership.status).where(Membership.subscriber_id == sid)))
    assert statuses == {"unsubscribed"}


def test_simultaneous_sign_ups_of_one_new_address(rt, app):
    from concurrent.futures import ThreadPoolExecutor

    lists.create(rt, slug="news", name="News")

    def sign_up(_: int) -> int:
        return (
            app.test_client()
            .post("/subscribe/news", data={"email": "race@example.org"})
            .status_code
        )

    with ThreadPoolExecutor(5) as pool:  # within the per-address rate limit of 5
        codes = list(pool.map(sign_up, range(5)))
    assert codes == [200] * 5
    with rt.db.session() as s:
        assert s.scalar(select(func.count(Subscriber.id))) == 1
        assert s.scalar(select(func.count(Membership.id))) == 1
