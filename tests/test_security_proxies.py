"""Client addresses behind proxies and the rate limits keyed on them: a visitor cannot pick the
address that limits or consent records see, and floods of links, hooks and test sends stop."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select

from listmgr.models import AuditLog, ConsentEvent
from listmgr.services import accounts, lists, subscribers
from tests.admin_support import PASSWORD, Account, session_login

PEER = "192.0.2.10"  # what the socket sees (the proxy, when there is one)
SPOOF = "198.51.100.66"  # what a visitor writes into X-Forwarded-For
RAW = (
    b"From: someone@example.net\r\nTo: news@lists.example.test\r\nSubject: Hi\r\n"
    b"Message-ID: <m-%d@example.net>\r\n\r\nHello\r\n"
)


def _app(make_runtime, **extra):
    from listmgr.app import create_app

    rt = make_runtime(**extra)
    return rt, create_app(rt=rt, migrate=False)


def _from(ip: str, xff: str | None = None) -> dict[str, object]:
    kw: dict[str, object] = {"environ_base": {"REMOTE_ADDR": ip}}
    if xff is not None:
        kw["headers"] = {"X-Forwarded-For": xff}
    return kw


def _people(rt, count: int, slug: str = "news") -> list[int]:
    lists.create(rt, slug=slug, name=slug.title())
    return [
        subscribers.create(
            rt, email=f"p{i}@example.org", lists=[slug], status="confirmed", consent="tests"
        )
        for i in range(count)
    ]


def _list_id(rt, slug: str = "news") -> int:
    from listmgr.models import MailingList

    with rt.db.session() as s:
        return int(s.scalar(select(MailingList.id).where(MailingList.slug == slug)))


def _consent_ips(rt, kind: str) -> list[str]:
    with rt.db.session() as s:
        return list(
            s.scalars(
                select(ConsentEvent.ip).where(ConsentEvent.kind == kind).order_by(ConsentEvent.id)
            )
        )


# -- one client address ----------------------------------------------------------------------
def test_one_client_address_function_in_the_code():
    """Every address that is stored or limited comes from one function: no view reads the
    socket peer by itself (it would be the proxy's address, or a forged header's)."""
    root = Path(__file__).resolve().parent.parent / "listmgr"
    defs, raw = [], []
    for path in root.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        defs += [f"{path.name}:{m}" for m in re.findall(r"def (client_ip|client_addr\w*)\(", text)]
        if "remote_addr" in text and path.name != "extensions.py":
            raw.append(path.name)
        if re.search(r"X-Forwarded-For|access_route", text, re.I) and path.name != "app.py":
            raw.append(f"{path.name} (reads forwarding headers itself)")
    assert len(defs) == 1, defs
    assert not raw, raw


def test_only_trusted_proxies_name_the_visitor(make_runtime):
    # Nobody vouches for the header: a new forged address per request changes nothing.
    rt, app = _app(make_runtime, subscribe_rate_limit_ip="2/hour")
    lists.create(rt, slug="news", name="News")
    client = app.test_client()
    codes = [
        client.post(
            "/subscribe/news", data={"email": f"x{i}@example.org"}, **_from(PEER, f"203.0.113.{i}")
        ).status_code
        for i in range(4)
    ]
    assert codes == [200, 200, 429, 429]
    assert set(_consent_ips(rt, "subscribe")) == {PEER}

    # Behind one trusted proxy, the address it appended is the visitor's.
    rt, app = _app(make_runtime, trusted_proxies=1, subscribe_rate_limit_ip="2/hour")
    lists.create(rt, slug="other", name="Other")
    client = app.test_client()
    # Two visitors behind the same proxy are limited apart ...
    for visitor in ("203.0.113.1", "203.0.113.2"):
        for i in range(2):
            ok = client.post(
                "/subscribe/other",
                data={"email": f"{visitor}-{i}@example.org"},
                **_from(PEER, visitor),
            )
            assert ok.status_code == 200
    # ... and a visitor who adds a forged entry in front is still seen as themselves.
    resp = client.post(
        "/subscribe/other", data={"email": "z@example.org"}, **_from(PEER, f"{SPOOF}, 203.0.113.1")
    )
    assert resp.status_code == 429
    ips = _consent_ips(rt, "subscribe")[2:]
    assert sorted(set(ips)) == ["203.0.113.1", "203.0.113.2"] and SPOOF not in ips
    assert PEER not in ips


def test_consent_and_audit_records_carry_the_visitor(make_runtime):
    rt, app = _app(make_runtime, trusted_proxies=1)
    [sid] = _people(rt, 1)
    client = app.test_client()
    token = rt.tokens.unsubscribe(sid, _list_id(rt))
    resp = client.post(
        f"/u/{token}",
        data={"List-Unsubscribe": "One-Click"},
        **_from(PEER, f"{SPOOF}, 203.0.113.9"),
    )
    assert resp.status_code == 200
    assert _consent_ips(rt, "unsubscribe") == ["203.0.113.9"]
    client.post(
        f"/p/{rt.tokens.manage(sid)}",
        data={"action": "unsubscribe_all"},
        **_from(PEER, "203.0.113.10"),
    )
    assert "203.0.113.10" in _consent_ips(rt, "unsubscribe_all") + _consent_ips(rt, "unsubscribe")
    page = client.get("/admin/login")
    token_field = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    client.post(
        "/admin/login",
        data={"email": "nobody@example.org", "password": "wrong", "csrf_token": token_field},
        **_from(PEER, "203.0.113.11"),
    )
    with rt.db.session() as s:
        ips = list(s.scalars(select(AuditLog.ip).where(AuditLog.action == "login_failed")))
    assert ips == ["203.0.113.11"]


# -- signed links: /u/, /p/, /confirm/ -------------------------------------------------------
def test_one_click_bursts_pass_while_guesses_stop_with_the_defaults(make_runtime):
    """A provider posts many one-click unsubscribes from one address: all of them work; the
    same address guessing tokens is stopped."""
    rt, app = _app(make_runtime)
    ids = _people(rt, 150)
    lid = _list_id(rt)
    client = app.test_client()
    for sid in ids:
        resp = client.post(
            f"/u/{rt.tokens.unsubscribe(sid, lid)}",
            data={"List-Unsubscribe": "One-Click"},
            **_from(PEER),
        )
        assert resp.status_code == 200, resp.status_code
        assert "Set-Cookie" not in resp.headers and resp.headers.get("Location") is None
    with rt.db.session() as s:
        assert (
            len(list(s.scalars(select(ConsentEvent.id).where(ConsentEvent.kind == "unsubscribe"))))
            == 150
        )
    codes = [
        client.post(
            f"/u/forged{i}.abc", data={"List-Unsubscribe": "One-Click"}, **_from(PEER)
        ).status_code
        for i in range(120)
    ]
    assert 429 in codes and codes.index(429) <= 100


@pytest.mark.parametrize("path", ["/u/{t}", "/p/{t}", "/confirm/{t}", "/p/{t}/export"])
def test_guessing_tokens_stops_with_the_defaults(make_runtime, path):
    rt, app = _app(make_runtime)
    client = app.test_client()
    method = client.post if path == "/u/{t}" else client.get
    codes = [method(path.format(t=f"forged{i}.abc"), **_from(PEER)).status_code for i in range(120)]
    assert 429 in codes and codes.index(429) <= 100, codes[:5]
    limited = method(path.format(t="forged-more.abc"), **_from(PEER))
    assert limited.status_code == 429 and "Too many" in limited.text  # a page for people
    # Another visitor is not limited by the first one's guesses.
    assert method(path.format(t="forged.abc"), **_from("192.0.2.99")).status_code != 429


def test_link_pages_are_limited_per_address(make_runtime):
    rt, app = _app(
        make_runtime, link_rate_limit_ip="5/minute", unsubscribe_rate_limit_ip="3/minute"
    )
    [sid] = _people(rt, 1)
    manage = rt.tokens.manage(sid)
    unsub = rt.tokens.unsubscribe(sid, _list_id(rt))
    client = app.test_client()
    codes = [
        client.get(p, **_from(PEER)).status_code
        for p in (
            f"/p/{manage}",
            f"/u/{unsub}",
            f"/p/{manage}/export",
            f"/p/{manage}",
            f"/p/{manage}",
            f"/p/{manage}",
        )
    ]
    assert codes[:5] == [200] * 5 and codes[5] == 429
    assert client.get(f"/p/{manage}", **_from("192.0.2.77")).status_code == 200
    posts = [
        client.post(
            f"/u/{unsub}", data={"List-Unsubscribe": "One-Click"}, **_from(PEER)
        ).status_code
        for _ in range(4)
    ]
    assert posts == [200, 200, 200, 429]


# -- the inbound hook --------------------------------------------------------------------------
def test_inbound_hook_counts_failed_authentications(make_runtime):
    rt, app = _app(make_runtime)
    client = app.test_client()
    secret = rt.settings.inbound_secret
    codes = [
        client.post(
            "/hooks/inbound",
            data=RAW % i,
            headers={"Authorization": f"Bearer guess-{i}"},
            environ_base={"REMOTE_ADDR": PEER},
        ).status_code
        for i in range(40)
    ]
    assert 429 in codes and set(codes[: codes.index(429)]) == {401}
    locked = client.post(
        "/hooks/inbound",
        data=RAW % 99,
        headers={"Authorization": f"Bearer {secret}"},
        environ_base={"REMOTE_ADDR": PEER},
    )
    assert locked.status_code == 429 and locked.json["error"]["code"] == "rate_limited"
    fine = client.post(
        "/hooks/inbound",
        data=RAW % 100,
        headers={"Authorization": f"Bearer {secret}"},
        environ_base={"REMOTE_ADDR": "192.0.2.50"},
    )
    assert fine.status_code == 202


def test_inbound_hook_is_limited_per_address(make_runtime):
    rt, app = _app(make_runtime, inbound_rate_limit_ip="3/minute")
    client = app.test_client()
    auth = {"Authorization": f"Bearer {rt.settings.inbound_secret}"}
    codes = [
        client.post(
            "/hooks/inbound", data=RAW % i, headers=auth, environ_base={"REMOTE_ADDR": PEER}
        ).status_code
        for i in range(4)
    ]
    assert codes == [202, 202, 202, 429]
    from listmgr.models import InboundMessage

    with rt.db.session() as s:
        assert len(list(s.scalars(select(InboundMessage.id)))) == 3


# -- test sends ---------------------------------------------------------------------------------
def test_test_sends_are_limited_per_user(make_runtime, sink):
    from tests.campaign_support import campaign, make_list

    rt, app = _app(make_runtime, test_send_rate_limit="3/hour")
    make_list(rt, "news")
    cid = campaign(rt)
    ed = accounts.create_user(rt, email="ed@staff.example.org", password=PASSWORD, role="editor")
    other = accounts.create_user(rt, email="al@staff.example.org", password=PASSWORD, role="editor")
    first, second = (
        accounts.create_token(rt, role="editor", user_id=ed, name=n) for n in ("a", "b")
    )
    client = app.test_client()

    def send(token: str, to: list[str]):
        return client.post(
            f"/api/campaigns/{cid}/test",
            json={"to": to},
            headers={"Authorization": f"Bearer {token}"},
        )

    assert send(first, ["a@example.org", "b@example.org"]).status_code == 200
    assert send(second, ["c@example.org"]).status_code == 200  # another token, same user
    over = send(second, ["d@example.org"])
    assert over.status_code == 429 and over.json["error"]["code"] == "rate_limited"
    assert send(first, ["e@example.org"]).status_code == 429
    assert len(sink.messages) == 3
    # The admin page shares the budget and answers with a page.
    session_login(client, rt, Account(ed, "ed@staff.example.org", "editor"))
    app.config["WTF_CSRF_ENABLED"] = False
    page = client.post(f"/admin/campaigns/{cid}/test", data={"to": "e@example.org"})
    assert page.status_code == 429 and "Too many" in page.text
    session_login(client, rt, Account(other, "al@staff.example.org", "editor"))
    assert (
        client.post(f"/admin/campaigns/{cid}/test", data={"to": "f@example.org"}).status_code == 302
    )
    # Each address counts: ten at once do not slip through as one request.
    many = "\n".join(f"g{i}@example.org" for i in range(10))
    assert client.post(f"/admin/campaigns/{cid}/test", data={"to": many}).status_code == 429
    assert len(sink.messages) == 4
