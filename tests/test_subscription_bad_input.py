"""Bad input gets a clear answer and changes nothing (rows asserted before and after)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from listmgr.models import ConsentEvent, Membership, Outbox, SQLModel, Subscriber
from listmgr.services import lists, subscribers
from listmgr.tokens import Tokens


def snapshot(rt) -> dict[str, int]:
    """Row counts and membership statuses: what must not change."""
    with rt.db.session() as s:
        counts = {
            t.name: s.scalar(select(func.count()).select_from(t))
            for t in SQLModel.metadata.sorted_tables
            if t.name not in ("audit_log", "worker_process")  # heartbeats come and go
        }
        counts["statuses"] = sorted(s.scalars(select(Membership.status)))
    return counts


@pytest.fixture
def news(rt):
    lists.create(rt, slug="news", name="News")
    lists.create(rt, slug="other", name="Other")
    return subscribers.create(rt, email="member@example.org", lists=["news"], consent="test")


@pytest.mark.parametrize(
    "address",
    [
        "",
        "   ",
        "plainaddress",
        "@example.org",
        "a@",
        "a@@example.org",
        "a b@example.org",
        "trailing.dot.@example.org",
        "a..b@example.org",
        "a@example..org",
        "a@-example.org",
        "ada@example.org\r\nBcc: victim@example.org",
        "ada@example.org\nX-Evil: 1",
        "a@exa mple.org",
        "x" * 65 + "@example.org",
        "a@" + "b" * 300 + ".org",
    ],
)
def test_invalid_addresses_form_and_json(rt, client, news, address):
    before = snapshot(rt)
    page = client.post("/subscribe/news", data={"email": address})
    assert page.status_code == 422
    assert b"email" in page.data.lower() and b"<form" in page.data
    resp = client.post("/subscribe/news", json={"email": address})
    assert resp.status_code == 422
    assert resp.json["error"]["field"] == "email" and resp.json["error"]["message"]
    assert snapshot(rt) == before


@pytest.mark.parametrize(
    "address,stored",
    [
        ("  Ada@Example.ORG ", "ada@example.org"),
        ("jörg@bücher.example", "jörg@bücher.example"),
        ("user+tag@example.org", "user+tag@example.org"),
        ("ADA@EXAMPLE.org", "ada@example.org"),
    ],
)
def test_odd_but_valid_addresses_are_normalized(rt, client, news, address, stored):
    assert client.post("/subscribe/news", data={"email": address}).status_code == 200
    with rt.db.session() as s:
        assert s.scalar(select(Subscriber.id).where(Subscriber.email == stored)) is not None


def test_name_with_line_break_is_refused(rt, client, news):
    before = snapshot(rt)
    resp = client.post(
        "/subscribe/news", json={"email": "n@example.org", "name": "Eve\r\nBcc: x@example.org"}
    )
    assert resp.status_code == 422 and resp.json["error"]["field"] == "name"
    assert snapshot(rt) == before


def test_missing_fields_and_unknown_list(rt, client, news):
    before = snapshot(rt)
    assert client.post("/subscribe/news", data={}).status_code == 422
    resp = client.post("/subscribe/news", json={})
    assert resp.status_code == 422 and resp.json["error"]["field"] == "email"
    resp = client.post("/subscribe/news", data="[1,2]", content_type="application/json")
    assert resp.status_code == 422
    resp = client.post("/subscribe/nope", json={"email": "a@example.org"})
    assert resp.status_code == 404 and resp.json["error"]["code"] == "not_found"
    assert client.get("/subscribe/nope").status_code == 404
    assert snapshot(rt) == before


def test_honeypot(rt, client, news):
    before = snapshot(rt)
    resp = client.post(
        "/subscribe/news", data={"email": "bot@example.org", "website": "http://spam.example"}
    )
    assert resp.status_code == 422 and b"empty" in resp.data
    assert snapshot(rt) == before


def test_oversized_body(rt, client, news):
    before = snapshot(rt)
    big = "x" * (rt.settings.max_form_bytes + 10)
    resp = client.post("/subscribe/news", data={"email": "big@example.org", "name": big})
    assert resp.status_code == 413
    resp = client.post("/subscribe/news", json={"email": "big@example.org", "name": big})
    assert resp.status_code == 413 and resp.json["error"]["code"] == "too_large"
    assert snapshot(rt) == before


def test_rate_limit_per_ip_and_per_address(make_runtime, news_free=None):
    from listmgr.app import create_app

    rt = make_runtime(subscribe_rate_limit_ip="4/hour", subscribe_rate_limit_email="2/hour")
    lists.create(rt, slug="news", name="News")
    client = create_app(rt=rt, migrate=False).test_client()
    assert client.post("/subscribe/news", data={"email": "r@example.org"}).status_code == 200
    assert client.post("/subscribe/news", data={"email": "r@example.org"}).status_code == 200
    before = snapshot(rt)
    resp = client.post("/subscribe/news", data={"email": "r@example.org"})
    assert resp.status_code == 429 and b"Too many" in resp.data
    assert snapshot(rt) == before
    assert client.post("/subscribe/news", data={"email": "s@example.org"}).status_code == 200
    assert client.post("/subscribe/news", data={"email": "t@example.org"}).status_code == 200
    resp = client.post("/subscribe/news", json={"email": "u@example.org"})
    assert resp.status_code == 429 and resp.json["error"]["code"] == "rate_limited"
    # Another IP is not limited by the first one's requests.
    ok = client.post(
        "/subscribe/news", data={"email": "v@example.org"}, environ_base={"REMOTE_ADDR": "10.0.0.9"}
    )
    assert ok.status_code == 200


def _tokens(rt, news):
    from listmgr.models import MailingList

    with rt.db.session() as s:
        lid = s.scalar(select(MailingList.id).where(MailingList.slug == "news"))
        other = s.scalar(select(MailingList.id).where(MailingList.slug == "other"))
    return lid, other


def _tamper(token: str) -> str:
    i = len(token) - 3
    return token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]


def test_bad_unsubscribe_tokens(rt, client, news):
    lid, other = _tokens(rt, news)
    good = rt.tokens.unsubscribe(news, lid)
    forged_list = good.replace(good.split(".")[0], good.split(".")[0][:-1] + "2", 1)
    candidates = [
        _tamper(good),
        good[:-5],
        good.split(".")[0],
        "garbage",
        "a" * 300,
        forged_list,  # list id changed, signature kept
        Tokens("another-secret").unsubscribe(news, lid),  # signed with another key
        rt.tokens.manage(news),  # a token for another purpose
        rt.tokens.confirm(news, lid),
    ]
    before = snapshot(rt)
    for bad in candidates:
        for method in ("get", "post"):
            resp = getattr(client, method)(
                f"/u/{bad}", data={"List-Unsubscribe": "One-Click"} if method == "post" else None
            )
            assert resp.status_code in (400, 404), (bad, resp.status_code)
            if resp.status_code == 400:
                assert b"not valid" in resp.data
    assert snapshot(rt) == before
    # The other list's membership is untouched by this list's valid token, too.
    assert client.post(f"/u/{good}").status_code == 200
    with rt.db.session() as s:
        assert (
            s.scalar(select(Membership.status).where(Membership.list_id == lid)) == "unsubscribed"
        )


def test_token_for_one_list_cannot_touch_another(rt, client, news):
    lid, other = _tokens(rt, news)
    subscribers.create(rt, email="both@example.org", lists=["news", "other"], consent="t")
    with rt.db.session() as s:
        sid = s.scalar(select(Subscriber.id).where(Subscriber.email == "both@example.org"))
    token = rt.tokens.unsubscribe(sid, lid)
    assert client.post(f"/u/{token}").status_code == 200
    with rt.db.session() as s:
        rows = dict(
            s.execute(
                select(Membership.list_id, Membership.status).where(Membership.subscriber_id == sid)
            ).all()
        )
    assert rows == {lid: "unsubscribed", other: "confirmed"}


def test_bad_confirm_tokens(rt, client, news, monkeypatch):
    lid, _ = _tokens(rt, news)
    client.post("/subscribe/other", data={"email": "pending@example.org"})
    with rt.db.session() as s:
        sid = s.scalar(select(Subscriber.id).where(Subscriber.email == "pending@example.org"))
    from listmgr.models import MailingList

    with rt.db.session() as s:
        other = s.scalar(select(MailingList.id).where(MailingList.slug == "other"))
    good = rt.tokens.confirm(sid, other)
    before = snapshot(rt)
    for bad in (
        _tamper(good),
        good[:-4],
        "nonsense",
        rt.tokens.unsubscribe(sid, other),
        Tokens("another-secret").confirm(sid, other),
    ):
        for method in ("get", "post"):
            resp = getattr(client, method)(f"/confirm/{bad}")
            assert resp.status_code == 400 and b"not valid" in resp.data
    # Expired: a token issued 8 days ago.
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() - 8 * 86400)
    old = rt.tokens.confirm(sid, other)
    monkeypatch.setattr(time, "time", real_time)
    for method in ("get", "post"):
        resp = getattr(client, method)(f"/confirm/{old}")
        assert resp.status_code == 400 and b"expired" in resp.data
        assert b"new confirmation link" in resp.data
    assert snapshot(rt) == before
    # The expired page offers a fresh link; it goes out (after the per-address window).
    with rt.db.session() as s:
        s.execute(Outbox.__table__.delete())
    assert client.post(f"/confirm/{old}/resend").status_code == 200
    with rt.db.session() as s:
        assert (
            s.scalar(
                select(func.count(Outbox.id)).where(
                    Outbox.to_email == "pending@example.org", Outbox.kind == "confirm"
                )
            )
            == 1
        )


def test_confirm_after_unsubscribe_is_refused(rt, client, news):
    client.post("/subscribe/other", data={"email": "late@example.org"})
    from listmgr.models import MailingList

    with rt.db.session() as s:
        sid = s.scalar(select(Subscriber.id).where(Subscriber.email == "late@example.org"))
        other = s.scalar(select(MailingList.id).where(MailingList.slug == "other"))
    confirm = rt.tokens.confirm(sid, other)
    assert client.post(f"/u/{rt.tokens.unsubscribe(sid, other)}").status_code == 200
    before = snapshot(rt)
    resp = client.post(f"/confirm/{confirm}")
    assert resp.status_code == 400
    assert snapshot(rt) == before


def test_events_not_written_for_rejected_input(rt, client, news):
    with rt.db.session() as s:
        before = s.scalar(select(func.count(ConsentEvent.id)))
    client.post("/subscribe/news", data={"email": "nope"})
    client.post("/subscribe/news", data={"email": "x@example.org", "website": "x"})
    with rt.db.session() as s:
        assert s.scalar(select(func.count(ConsentEvent.id))) == before


@pytest.mark.parametrize(
    "path",
    [
        "/subscribe/news%00x",
        "/archive/news%00x",
        "/archive/news%00x/1",
        "/privacy/news%00x",
        "/privacy/news%00x.json",
        "/subscribe/news%00x/embed",
        "/api/lists/news%00x",
    ],
)
def test_a_nul_in_a_path_is_a_missing_page_on_every_database(client, path):
    resp = client.get(path)
    assert resp.status_code == 404
