"""The inbox: plain words for what happened, the matched subscriber, and answering a message."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from listmgr.errors import ValidationError
from listmgr.mail import answer
from listmgr.mail.inbound import outcomes
from listmgr.models import AuditLog, Outbox
from listmgr.services import inbound, lists, subscribers
from tests.admin_support import (  # noqa: F401
    PASSWORD,
    Account,
    accounts_by_role,
    csrf_from,
    session_login,
)
from tests.conftest import drain
from tests.inbound_support import dsn

QUESTION = b"""From: Ann Example <ann@example.com>
Reply-To: "Ann at work" <ann.work@example.org>
To: news@lists.example.test
Subject: Re: RE: Where is my order?
Message-ID: <q1@mail.example.com>
References: <first@lists.example.test> <second@mail.example.com>
Date: Wed, 25 Nov 2026 10:00:00 +0000
Content-Type: text/plain; charset=utf-8

Hello, I never got my parcel.
"""


def _store(rt, raw: bytes) -> int:
    mid = inbound.store(rt, raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")).id
    drain(rt)
    return mid


def _signed_in(client, rt, accounts_by_role, role="owner"):
    session_login(client, rt, accounts_by_role[role])
    return client


def _reply(client, mid: int, text: str, *, token: bool = True):
    data = {"text": text}
    if token:
        data["csrf_token"] = csrf_from(client.get("/admin/inbound").text)
    return client.post(f"/admin/inbound/{mid}/reply", data=data)


def _outbox(rt):
    with rt.db.session() as s:
        return list(s.scalars(select(Outbox).where(Outbox.kind == "inbound_reply")))


def test_every_outcome_has_plain_words_and_no_codes():
    for code, words in outcomes.WORDS.items():
        assert "_" not in words and ("_" not in code or code not in words)
        assert outcomes.plain(code, kind="bounce", status="processed", proof="") == words
    assert outcomes.plain("", kind="bounce", status="stored", proof="").startswith("Not looked")
    assert "confirmed by the link" in outcomes.plain(
        "confirm_mailed", kind="unsubscribe", status="processed", proof="link"
    )
    assert (
        outcomes.plain("bogus", kind="other", status="processed", proof="")
        == (outcomes.WORDS["kept"])
    )


def test_inbox_says_in_plain_words_what_happened_and_links_the_subscriber(
    rt, client, accounts_by_role
):
    lists.create(rt, slug="news", name="News")
    sid = subscribers.create(rt, email="gone@example.com", lists=["news"], consent="test")
    verp = f"bounces+{rt.tokens.bounce(sid, None, None)}@lists.example.test"
    _store(rt, dsn(verp=verp, failed="gone@example.com"))
    _store(rt, QUESTION)
    owner = _signed_in(client, rt, accounts_by_role)
    page = owner.get("/admin/inbound?view=all").text
    assert "Bounce — the address doesn&#39;t exist; we stopped mailing it" in page
    assert "Not understood — kept here for a person to read" in page
    assert f'href="/admin/subscribers/{sid}"' in page
    assert "hard bounce, suppressed" not in page  # the technical line is on the message page


def test_reply_reaches_the_sender_threaded_plain_and_audited(rt, client, sink, accounts_by_role):
    mid = _store(rt, QUESTION)
    owner = _signed_in(client, rt, accounts_by_role)
    page = owner.get(f"/admin/inbound/{mid}").text
    assert "ann.work@example.org" in page and "Re: Where is my order?" in page
    before = len(sink.messages)
    resp = _reply(owner, mid, "Hello Ann,\r\nit left today.\r\nBcc: victim@example.net")
    assert resp.status_code == 302
    drain(rt)
    got = sink.wait_for(before + 1)[-1]
    assert got.rcpt_tos == ["ann.work@example.org"]
    msg = got.message
    assert msg["Subject"] == "Re: Where is my order?"
    assert msg["In-Reply-To"] == "<q1@mail.example.com>"
    assert msg["References"].split() == [
        "<first@lists.example.test>",
        "<second@mail.example.com>",
        "<q1@mail.example.com>",
    ]
    assert msg.get_content_type() == "text/plain"
    assert msg["Auto-Submitted"] is None and msg["Bcc"] is None
    assert "it left today." in msg.get_content()
    with rt.db.session() as s:
        row = s.scalar(select(AuditLog).where(AuditLog.action == "inbound.reply"))
    assert row.target_id == str(mid) and row.detail["to"] == "ann.work@example.org"
    assert row.ip and row.actor == accounts_by_role["owner"].email


def test_subject_and_headers_of_hostile_messages_cannot_inject(rt, client, sink, accounts_by_role):
    hostile = (
        b"From: x@example.com\n"
        b"Subject: =?utf-8?q?Hi=0D=0ABcc:_victim@example.net?=\n"
        b"Message-ID: <ok@example.com>\r\n X-Evil: 1 <bad\r\n@x>\n"
        b"References: nothing here\n\nbody\n"
    )
    mid = _store(rt, hostile)
    owner = _signed_in(client, rt, accounts_by_role)
    assert _reply(owner, mid, "Thanks").status_code == 302
    drain(rt)
    got = sink.wait_for(1)[-1]
    assert got.rcpt_tos == ["x@example.com"]
    msg = got.message
    assert msg["Bcc"] is None and msg["X-Evil"] is None
    assert "\n" not in msg["Subject"] and msg["Subject"].startswith("Re: Hi")
    assert msg["In-Reply-To"] == "<ok@example.com>"


def test_reply_roles_csrf_and_bad_input(rt, client, accounts_by_role):
    mid = _store(rt, QUESTION)
    for role in ("analyst", "editor"):
        _signed_in(client, rt, accounts_by_role, role)
        token = csrf_from(client.get("/admin/").text)
        resp = client.post(f"/admin/inbound/{mid}/reply", data={"text": "x", "csrf_token": token})
        assert resp.status_code == 403
    admin = _signed_in(client, rt, accounts_by_role, "admin")
    assert _reply(admin, mid, "no token", token=False).status_code == 400
    empty = _reply(admin, mid, "  \r\n ")
    assert empty.status_code == 422 and "write the answer first" in empty.text
    assert _reply(admin, mid, "x" * 20_001).status_code == 422
    assert _reply(admin, 999_999, "hello").status_code == 404
    assert _outbox(rt) == []
    nobody = _store(rt, b"Subject: who?\nFrom: not an address\n\nhi\n")
    page = admin.get(f"/admin/inbound/{nobody}").text
    assert "names no sender address" in page
    assert _reply(admin, nobody, "hello").status_code == 422
    assert _outbox(rt) == []


@pytest.fixture
def limited_client(make_runtime):
    from listmgr.app import create_app

    rt = make_runtime(test_send_rate_limit="2/hour")
    app = create_app(rt=rt, migrate=False)
    app.config["TESTING"] = True
    return rt, app.test_client()


def test_replies_share_the_test_send_budget(limited_client):
    from listmgr.services import accounts

    rt, client = limited_client
    uid = accounts.create_user(rt, email="boss@staff.example.org", password=PASSWORD, role="owner")
    session_login(client, rt, Account(uid, "boss@staff.example.org", "owner"))
    mid = _store(rt, QUESTION)
    assert [_reply(client, mid, f"answer {i}").status_code for i in range(3)] == [302, 302, 429]
    assert len(_outbox(rt)) == 2


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("Hello", "Re: Hello"),
        ("Re: Hello", "Re: Hello"),
        ("RE: re:  AW: Hello", "Re: Hello"),
        ("Re[2]: Hello", "Re: Hello"),
        ("", "Re: your message"),
        ("Regarding the invoice", "Re: Regarding the invoice"),
    ],
)
def test_subject_gets_one_re(original, expected):
    assert answer.subject(original) == expected


def test_answer_picks_a_valid_sender_and_bounds_the_thread():
    refs = " ".join(f"<r{i}@example.org>" for i in range(30))
    raw = (
        "From: =?utf-8?q?J=C3=BCrgen?= <jurgen@example.org>\r\n"
        "Reply-To: not-an-address, Desk <desk@example.org>\r\n"
        f"References: {refs}\r\n"
        "Message-ID: <last@example.org>\r\n"
        "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\r\nhi\r\n"
    ).encode()
    got = answer.answer(raw)
    assert got.to == "desk@example.org" and got.subject == "Re: Grüße"
    chain = got.references.split()
    assert len(chain) == answer.MAX_REFERENCES
    assert chain[0] == "<r0@example.org>" and chain[-1] == "<last@example.org>"
    bare = answer.answer(b"From: a@example.org\r\nIn-Reply-To: <x@y> junk <z@w>\r\n\r\nhi")
    assert bare.in_reply_to == "" and bare.references == "<x@y>"
    with pytest.raises(ValidationError):
        answer.answer(b"From: <>\r\nReply-To: nobody\r\n\r\nhi")
