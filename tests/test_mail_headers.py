"""Every header of the mails the subscription flow sends, parsed back with the email package."""

from __future__ import annotations

import re
from email import message_from_bytes
from email.policy import default as default_policy

import pytest

from listmgr.mail import compose
from listmgr.services import lists, subscribers
from tests.conftest import drain


def raw_headers(data: bytes) -> list[bytes]:
    head = data.split(b"\r\n\r\n", 1)[0]
    assert b"\n" not in head.replace(b"\r\n", b""), "bare LF in the header block"
    return head.split(b"\r\n")


def test_confirmation_and_notice_headers(rt, client, sink):
    lists.create(
        rt,
        slug="news",
        name="Ünïcode News",
        from_name="Ünï Sender",
        from_email="sender@example.org",
        reply_to="reply@example.org",
        postal_address="Örtliche Straße 1, 10115 Berlin",
    )
    subscribers.create(rt, email="known@example.org", name="Known", lists=["news"], consent="test")
    client.post("/subscribe/news", data={"email": "new@example.org", "name": "Néw Person"})
    client.post("/subscribe/news", data={"email": "known@example.org"})
    drain(rt)
    sink.wait_for(2)
    by_rcpt = {m.rcpt_tos[0]: m for m in sink.messages}
    ids = set()
    for _rcpt, received in by_rcpt.items():
        msg = received.message
        for line in raw_headers(received.data):
            assert b"\r" not in line and b"\n" not in line
        assert msg["Message-ID"] and re.fullmatch(
            r"<[0-9a-f]{32}@lists\.example\.test>", msg["Message-ID"]
        )
        ids.add(msg["Message-ID"])
        assert msg["Date"] and msg["MIME-Version"] == "1.0"
        assert msg["List-Id"] == '"Ünïcode News" <news.lists.example.test>'
        assert msg["From"].addresses[0].addr_spec == "sender@example.org"
        assert msg["From"].addresses[0].display_name == "Ünï Sender"
        assert msg["Reply-To"] == "reply@example.org"
        assert msg["Auto-Submitted"] == "auto-generated"
        assert msg.get_content_type() == "multipart/alternative"
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        assert "Örtliche Straße 1, 10115 Berlin" in text and "Örtliche Straße 1" in html
        # The envelope sender is a signed VERP address naming the subscriber.
        token = received.mail_from.split("+", 1)[1].split("@")[0]
        sid, campaign, lid = rt.tokens.read_bounce(token)
        assert campaign is None and lid is not None
        assert received.mail_from.endswith("@lists.example.test")
    assert len(ids) == 2
    confirm = by_rcpt["new@example.org"].message
    assert "List-Unsubscribe" not in confirm  # not subscribed yet: nothing to leave
    assert "/confirm/" in confirm.get_body(("plain",)).get_content()
    assert confirm["To"].addresses[0].display_name == "Néw Person"
    notice = by_rcpt["known@example.org"].message
    lu = notice["List-Unsubscribe"]
    m = re.fullmatch(
        r"<http://listmgr\.test/u/([^>]+)>, "
        r"<mailto:unsubscribe\+([^@]+)@lists\.example\.test\?subject=unsubscribe>",
        lu,
    )
    assert m and m.group(1) == m.group(2)
    assert notice["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    tok = rt.tokens.read_unsubscribe(m.group(1))
    assert tok.campaign_id is None
    for part in ("plain", "html"):
        assert f"/u/{m.group(1)}" in notice.get_body((part,)).get_content()
    assert len(f"unsubscribe+{m.group(1)}") <= 64  # fits an address local part


@pytest.mark.parametrize(
    "field",
    [
        "subject",
        "from_name",
        "to_name",
        "to_email",
        "list_id",
        "unsubscribe_url",
        "unsubscribe_mailto",
        "reply_to",
    ],
)
@pytest.mark.parametrize(
    "evil", ["a\r\nBcc: x@example.org", "a\nX: y", "a\rb", "a\x00b", "a\u2028b"]
)
def test_compose_refuses_line_breaks_in_any_header(field, evil):
    values = dict(
        from_name="N",
        from_email="f@example.org",
        to_email="t@example.org",
        subject="S",
        text="t",
        html="<p>h</p>",
        mail_domain="example.org",
        list_id="<l.example.org>",
        unsubscribe_url="https://x/u/t",
        reply_to="",
    )
    values[field] = evil
    with pytest.raises(compose.HeaderInjection):
        compose.build(compose.Mail(**values))


def test_long_unicode_subject_is_folded_and_round_trips():
    subject = "Grüße aus Köln — " * 12
    data = compose.build(
        compose.Mail(
            from_name="Ä",
            from_email="f@example.org",
            to_email="t@example.org",
            subject=subject,
            text="x" * 2000,
            html="<p>ü</p>" * 300,
            mail_domain="example.org",
        )
    )
    for line in raw_headers(data):
        assert len(line) <= 998
    msg = message_from_bytes(data, policy=default_policy)
    assert msg["Subject"] == subject
    # the body ends with a line break, CRLF on the wire (the parser keeps the CR)
    assert msg.get_body(("plain",)).get_content().rstrip("\r\n") == "x" * 2000
    assert msg.get_body(("html",)).get_content().rstrip("\r\n") == "<p>ü</p>" * 300


def test_list_headers_go_out_unencoded_and_names_round_trip():
    url = "https://lists.example.org/u/" + "T" * 150
    data = compose.build(
        compose.Mail(
            from_name='Zoë "Boss", Inc',
            from_email="f@example.org",
            to_email="t@example.org",
            to_name="Ann, the admin",
            subject="Hi",
            text="t",
            html="<p>h</p>",
            mail_domain="example.org",
            list_id=compose.list_id_header("News", "news", "example.org"),
            unsubscribe_url=url,
            unsubscribe_mailto="unsubscribe+tok@example.org",
        )
    )
    assert data.isascii()
    lines = raw_headers(data)
    unsubscribe = f"<{url}>, <mailto:unsubscribe+tok@example.org?subject=unsubscribe>"
    assert f"List-Unsubscribe: {unsubscribe}".encode() in lines
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in lines
    assert b'List-Id: "News" <news.example.org>' in lines
    msg = message_from_bytes(data, policy=default_policy)
    assert msg["From"].addresses[0].display_name == 'Zoë "Boss", Inc'
    assert msg["To"].addresses[0].display_name == "Ann, the admin"
    assert msg.get_body(("html",)).get_content().rstrip("\r\n") == "<p>h</p>"
