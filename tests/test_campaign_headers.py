"""Every campaign message parses, carries the compliance headers, a per-recipient VERP sender
and (when configured) a DKIM signature dkimpy verifies; profile data cannot inject headers."""

from __future__ import annotations

import re
from email import message_from_bytes
from email.policy import default as default_policy

import dkim
import pytest
from sqlalchemy import select

from listmgr.mail.dkim import load_key
from listmgr.models import Subscriber
from listmgr.services import campaigns, fielddefs
from tests.campaign_support import (
    campaign,
    campaign_mail,
    dkim_pem,
    header_lines,
    make_list,
    person,
    raw_profile,
    wait_status,
)
from tests.conftest import drain

EVIL = "Eve\r\nBcc: victim@example.org"


def _key_file(tmp_path, kind: str):
    pem = dkim_pem(kind)
    path = tmp_path / f"dkim-{kind}.pem"
    path.write_bytes(pem)
    record = load_key("lists.example.test", "s1", pem).dns_record().encode()
    return path, record


def _send(rt):
    make_list(rt, "news", postal_address="Example Org, 1 Test Street, Testville")
    fielddefs.create_field(rt, key="title", label="Title", type="text")
    person(rt, "eve@example.org", ["news"], name="Eve")
    person(rt, "zoe@example.org", ["news"], name="Zoë Ünicode")
    person(rt, "plain@example.org", ["news"])
    raw_profile(
        rt, "eve@example.org", name=EVIL, fields={"title": "Boss\r\nX-Evil: 1\nSubject: spam"}
    )
    cid = campaign(
        rt,
        subject="{{ subscriber.fields.title }} news for {{ subscriber.name }}",
        body="<p>Hi {{ subscriber.name }} ({{ subscriber.fields.title }})</p>",
    )
    campaigns.start(rt, cid)
    drain(rt)
    wait_status(rt, cid)
    return cid


def _ids(rt):
    with rt.db.session() as s:
        return {sub.email: sub.id for sub in s.scalars(select(Subscriber))}


@pytest.mark.parametrize("kind", ["none", "rsa", "ed25519"])
def test_headers_verp_dkim_and_no_injection(make_runtime, sink, tmp_path, kind):
    from listmgr.app import create_app

    extra = {}
    record = b""
    if kind != "none":
        path, record = _key_file(tmp_path, kind)
        extra = {
            "dkim_domain": "lists.example.test",
            "dkim_selector": "s1",
            "dkim_private_key_path": str(path),
        }
    rt = make_runtime(**extra)
    client = create_app(rt=rt, migrate=False).test_client()
    cid = _send(rt)
    mails = campaign_mail(sink, cid)
    assert sorted(m.rcpt_tos[0] for m in mails) == [
        "eve@example.org",
        "plain@example.org",
        "zoe@example.org",
    ]
    ids = _ids(rt)
    seen_ids = set()
    for mail in mails:
        # No raw line break inside any header: every line is a header or a folded continuation.
        for line in header_lines(mail.data):
            assert re.match(rb"^([A-Za-z0-9-]+: |[ \t])", line), line
        msg = message_from_bytes(mail.data, policy=default_policy)
        assert not msg.defects and all(not p.defects for p in msg.walk())
        assert msg["Bcc"] is None and msg["X-Evil"] is None
        assert len(msg.get_all("Subject")) == 1 and "\n" not in str(msg["Subject"])
        rcpt = mail.rcpt_tos[0]
        sid = ids[rcpt]
        assert msg["Message-ID"] not in seen_ids
        seen_ids.add(msg["Message-ID"])
        assert msg["List-Id"] == '"News" <news.lists.example.test>'
        assert msg["Precedence"] == "bulk"
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert msg["Feedback-ID"].startswith(f"{cid}:")
        unsub = msg["List-Unsubscribe"]
        m = re.fullmatch(
            r"<http://listmgr\.test/u/([\w.-]+)>, <mailto:unsubscribe\+([\w.-]+)"
            r"@lists\.example\.test\?subject=unsubscribe>",
            unsub,
        )
        assert m and m.group(1) == m.group(2), unsub
        token = rt.tokens.read_unsubscribe(m.group(1))
        assert (token.subscriber_id, token.campaign_id) == (sid, cid)
        verp = re.fullmatch(r"bounces\+([\w.-]+)@lists\.example\.test", mail.mail_from)
        assert verp, mail.mail_from
        assert rt.tokens.read_bounce(verp.group(1)) == (sid, cid, token.list_id)
        for part in ("plain", "html"):
            body = msg.get_body((part,)).get_content()
            assert "Example Org, 1 Test Street, Testville" in body
            assert f"/u/{m.group(1)}" in body and "/p/" in body
        if rcpt == "eve@example.org":
            assert (
                str(msg["Subject"]) == "Boss X-Evil: 1 Subject: spam news for Eve Bcc: "
                "victim@example.org"
            )
            assert msg["To"].addresses[0].addr_spec == "eve@example.org"
            assert "Eve Bcc" in msg["To"].addresses[0].display_name
        if rcpt == "zoe@example.org":
            assert str(msg["Subject"]) == "news for Zoë Ünicode"
            assert msg["To"].addresses[0].display_name == "Zoë Ünicode"
        if kind == "none":
            assert msg["DKIM-Signature"] is None
            continue
        assert header_lines(mail.data)[0].startswith(b"DKIM-Signature: ")
        assert dkim.verify(mail.data, dnsfunc=lambda name, timeout=5: record)
        tags = dict(
            t.strip().split("=", 1)
            for t in re.sub(r"\s+", "", msg["DKIM-Signature"]).split(";")
            if t
        )
        signed = tags["h"].split(":")
        assert tags["a"] == ("rsa-sha256" if kind == "rsa" else "ed25519-sha256")
        assert signed.count("list-unsubscribe") == 2 and signed.count("list-unsubscribe-post") == 2
        # Adding a second List-Unsubscribe breaks the signature (oversigned).
        tampered = mail.data.replace(
            b"\r\nList-Unsubscribe-Post:",
            b"\r\nList-Unsubscribe: <https://evil.example>\r\nList-Unsubscribe-Post:",
            1,
        )
        assert not dkim.verify(tampered, dnsfunc=lambda name, timeout=5: record)

    # The one-click URL from the header unsubscribes, attributed to the campaign.
    eve = next(m for m in mails if m.rcpt_tos == ["eve@example.org"]).message
    url = eve["List-Unsubscribe"].split("<")[1].split(">")[0]
    resp = client.post(
        url.replace("http://listmgr.test", ""),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert resp.status_code == 200
    assert campaigns.stats(rt, cid).unsubscribed == 1
