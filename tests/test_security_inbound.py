"""Forged inbound mail acts on nobody.

Eve is a subscriber herself: she holds her own tokens and the Message-ID of her own copy of the
campaign, knows how listmgr numbers things, and can write any header into the mail she sends to
the list's address. Whatever she forges - bounces, complaints, unsubscribe replies, in any
encoding and MIME shape - Victor's memberships, suppression entry and bounce count stay as they
were. Only proof tied to listmgr and to the same person acts: our tokens, a Message-ID we sent
to that person, or an aligned DMARC/DKIM pass written by the operator's own MTA.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from email import message_from_bytes
from email.policy import default as default_policy

import pytest
from sqlalchemy import select

from listmgr.models import InboundMessage, Membership, Outbox, Subscriber, Suppression
from listmgr.services import campaigns
from tests.admin_support import accounts_by_role, session_login  # noqa: F401 - a fixture
from tests.campaign_support import campaign, deliveries, make_list, person, wait_status
from tests.conftest import drain
from tests.helpers import path_of

AUTHSERV = "mx.lists.example.test"
DOMAIN = "lists.example.test"
HOOK = {"Authorization": "Bearer inbound-test-secret"}
VICTOR = "victor@example.com"
EVE = "eve@evil.example"
LISTADDR = f"news@{DOMAIN}"


@pytest.fixture
def rt(make_runtime):
    return make_runtime(inbound_authserv_id=AUTHSERV)


@dataclass
class World:
    campaign_id: int
    ids: dict[str, int]
    mail: dict[str, bytes]  # each person's copy of the campaign, as their mailbox got it
    verp: dict[str, str]  # each person's bounce address (the envelope sender)
    delivery_ids: dict[str, int]  # ledger rows: sequential, so Eve can guess Victor's

    def message_id(self, who: str) -> str:
        msg = message_from_bytes(self.mail[who], policy=default_policy)
        return str(msg["Message-ID"])

    def unsubscribe_token(self, who: str) -> str:
        msg = message_from_bytes(self.mail[who], policy=default_policy)
        return re.search(r"/u/([A-Za-z0-9_.\-]+)>", str(msg["List-Unsubscribe"])).group(1)


@pytest.fixture
def world(rt, sink):
    make_list(rt, "news")
    ids = {who: person(rt, who, ["news"]) for who in (VICTOR, EVE, "olga@example.org")}
    cid = campaign(rt)
    campaigns.start(rt, cid)
    wait_status(rt, cid)
    got = sink.wait_for(3)
    mail = {m.rcpt_tos[0]: m.data for m in got}
    verp = {m.rcpt_tos[0]: m.mail_from for m in got}
    sink.messages.clear()
    rows = {e: int(d.id) for e, d in deliveries(rt, cid).items()}
    return World(cid, ids, mail, verp, rows)


def send(client, raw: bytes | str, **query: str) -> int:
    data = raw.encode() if isinstance(raw, str) else raw
    resp = client.post("/hooks/inbound", data=data, headers=HOOK, query_string=query)
    assert resp.status_code == 202, resp.data
    return int(resp.json["id"])


def state(rt, email: str) -> tuple[list[str], str | None, int]:
    """(membership statuses, suppression reason, soft bounce count) of one address."""
    with rt.db.session() as s:
        sub = s.scalar(select(Subscriber).where(Subscriber.email == email))
        statuses = sorted(
            s.scalars(select(Membership.status).where(Membership.subscriber_id == sub.id))
        )
        reason = s.scalar(
            select(Suppression.reason).where(Suppression.email_hash == rt.email_hash(email))
        )
        return statuses, reason, sub.soft_bounces


UNTOUCHED = (["confirmed"], None, 0)


def row(rt, inbound_id: int) -> InboundMessage:
    with rt.db.session() as s:
        r = s.get(InboundMessage, inbound_id)
        s.expunge(r)
        return r


def crlf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\n", "\r\n")


# -- forged delivery status notifications ----------------------------------------------------------
def dsn(
    failed: str,
    *,
    to: str = LISTADDR,
    original: str = "",
    status: str = "5.1.1",
    report: str = "delivery-status",
    field_type: str = "rfc822",
) -> str:
    original = original or (
        f"From: News <{LISTADDR}>\nTo: {failed}\nSubject: Spring news\n"
        f"Message-ID: <spring-{failed}@{DOMAIN}>\n"
    )
    return crlf(f"""Return-Path: <>
From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: {to}
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
Message-ID: <forged-{failed}-{status}-{len(original)}-{to}@mx.example.net>
MIME-Version: 1.0
Content-Type: multipart/report; report-type={report}; boundary="B1"

--B1
Content-Type: text/plain

Your message could not be delivered to {failed}: user unknown.

--B1
Content-Type: message/{"global-" if report == "global" else ""}delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: {field_type}; {failed}
Action: failed
Status: {status}
Diagnostic-Code: smtp; 550 {status} User unknown

--B1
Content-Type: text/rfc822-headers

{original}
--B1--
""")


def guessed_message_id(world: World) -> str:
    """Victor's Message-ID as Eve guesses it from her own (same campaign, attempt and stamp,
    his delivery row, her own tag copied)."""
    cid, _, *rest = world.message_id(EVE).strip("<>").split("@")[0].split(".")
    return f"<{'.'.join([cid, str(world.delivery_ids[VICTOR]), *rest])}@{DOMAIN}>"


def old_style_message_id(world: World) -> str:
    """The same guess in the untagged form older versions used."""
    local = guessed_message_id(world).strip("<>").split("@")[0].split(".")
    return f"<{'.'.join(local[:4])}@{DOMAIN}>"


FORGED_BOUNCES = {
    "dsn-to-list-address": lambda w: dsn(VICTOR),
    "dsn-utf8-global": lambda w: dsn(VICTOR, report="global", field_type="utf-8"),
    "dsn-soft": lambda w: dsn(VICTOR, status="4.2.2"),
    "dsn-forged-verp": lambda w: dsn(
        VICTOR, to=f"bounces+{w.ids[VICTOR]}-1-1.AAAAAAAAAAAAAAAAAAAAAAAAAAA@{DOMAIN}"
    ),
    "dsn-guessed-message-id": lambda w: dsn(
        VICTOR,
        original=(
            f"From: News <{LISTADDR}>\nTo: {VICTOR}\nSubject: Spring news\n"
            f"Message-ID: {guessed_message_id(w)}\n"
        ),
    ),
    "dsn-untagged-message-id": lambda w: dsn(
        VICTOR, original=(f"To: {VICTOR}\nMessage-ID: {old_style_message_id(w)}\n")
    ),
    "mailer-daemon-text": lambda w: crlf(f"""From: MAILER-DAEMON@mx.example.net
To: {LISTADDR}
Subject: Mail delivery failed: returning message to sender
Message-ID: <text-bounce@mx.example.net>

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  {VICTOR}
    SMTP error from remote mail server after RCPT TO:<{VICTOR}>:
    550 5.1.1 User unknown
"""),
    "x-failed-recipients": lambda w: crlf(f"""From: Mail Delivery <postmaster@mx.example.net>
To: {LISTADDR}
Subject: Delivery Status Notification (Failure)
X-Failed-Recipients: {VICTOR}
Message-ID: <xfr@mx.example.net>

Delivery to the following recipient failed permanently:

     {VICTOR}
"""),
    "ses-json": lambda w: json.dumps(
        {
            "notificationType": "Bounce",
            "bounce": {
                "bounceType": "Permanent",
                "bouncedRecipients": [{"emailAddress": VICTOR, "status": "5.1.1"}],
            },
            "mail": {
                "source": LISTADDR,
                "messageId": "x",
                "commonHeaders": {"messageId": guessed_message_id(w)},
            },
        }
    ),
}


@pytest.mark.parametrize("variant", sorted(FORGED_BOUNCES))
def test_forged_bounce_changes_nobody(rt, client, world, variant):
    inbound_id = send(client, FORGED_BOUNCES[variant](world))
    drain(rt)
    assert state(rt, VICTOR) == UNTOUCHED
    stored = row(rt, inbound_id)
    assert stored.status == "processed" and stored.kind == "bounce"
    assert stored.proof == "none" and "no proof" in stored.action
    assert stored.subscriber_id is None


def test_forged_soft_bounces_never_reach_the_threshold(rt, client, world):
    for i in range(rt.settings.soft_bounce_threshold + 2):
        send(client, dsn(VICTOR, status=f"4.2.{i}"))
    drain(rt)
    assert state(rt, VICTOR) == UNTOUCHED


# -- forged complaints -----------------------------------------------------------------------------
def arf(complainer: str, original: str) -> str:
    return crlf(f"""From: Feedback Loop <fbl@isp.example.net>
To: {LISTADDR}
Subject: Abuse report
Message-ID: <arf-{complainer}-{len(original)}@isp.example.net>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="F1"

--F1
Content-Type: text/plain

This is an email abuse report.

--F1
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: ExampleFBL/1.0
Version: 1
Original-Rcpt-To: {complainer}
Removal-Recipient: {complainer}

--F1
Content-Type: message/rfc822

{original}
--F1--
""")


FORGED_COMPLAINTS = {
    "arf-plain": lambda w: arf(
        VICTOR, f"From: {LISTADDR}\nTo: {VICTOR}\nSubject: Spring news\n\nHello\n"
    ),
    "arf-guessed-message-id": lambda w: arf(
        VICTOR, (f"From: {LISTADDR}\nTo: {VICTOR}\nMessage-ID: {guessed_message_id(w)}\n\nHello\n")
    ),
    "arf-forged-list-unsubscribe": lambda w: arf(
        VICTOR,
        (
            f"From: {LISTADDR}\nTo: {VICTOR}\nList-Unsubscribe: <http://listmgr.test/u/"
            f"{w.ids[VICTOR]}-1-1.forgedforgedforgedforged>\n\nHello\n"
        ),
    ),
    "hotmail-jmrp": lambda w: crlf(f"""From: staff@hotmail.com
To: {LISTADDR}
Subject: complaint about message from 192.0.2.1
Message-ID: <jmrp@hotmail.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="J1"

--J1
Content-Type: text/plain

This is a complaint.

--J1
Content-Type: message/rfc822

X-HmXmrOriginalRecipient: <{VICTOR}>
From: {LISTADDR}
To: {VICTOR}
Subject: Spring news

Hello
--J1--
"""),
    "ses-json": lambda w: json.dumps(
        {
            "notificationType": "Complaint",
            "complaint": {"complainedRecipients": [{"emailAddress": VICTOR}]},
            "mail": {"source": LISTADDR},
        }
    ),
}


@pytest.mark.parametrize("variant", sorted(FORGED_COMPLAINTS))
def test_forged_complaint_changes_nobody(rt, client, world, variant):
    inbound_id = send(client, FORGED_COMPLAINTS[variant](world))
    drain(rt)
    assert state(rt, VICTOR) == UNTOUCHED
    stored = row(rt, inbound_id)
    assert stored.kind == "complaint" and stored.proof == "none"


# -- forged unsubscribe replies --------------------------------------------------------------------
def reply(
    *,
    sender: str = VICTOR,
    extra: str = "",
    subject: str = "unsubscribe",
    body: str = "Please unsubscribe me.",
    msgid: str = "r1",
    from_header: str = "",
) -> str:
    head = from_header or f"From: Victor <{sender}>"
    return crlf(f"""{extra}{head}
To: {LISTADDR}
Subject: {subject}
Message-ID: <{msgid}@mail.example.com>
Date: Wed, 25 Nov 2026 10:00:00 +0000
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

{body}
""")


FORGED_REPLIES = {
    "plain": lambda w: reply(),
    "body-only": lambda w: reply(
        subject="Re: Spring news", body="Unsubscribe me please", msgid="r2"
    ),
    "apple-one-tap-to-list-address": lambda w: reply(
        extra="X-Apple-Unsubscribe: true\n", body="", msgid="r3"
    ),
    # Eve's own Message-ID and token prove things about Eve, never about Victor.
    "in-reply-to-eve's-message": lambda w: reply(
        extra=f"In-Reply-To: {w.message_id(EVE)}\nReferences: {w.message_id(EVE)}\n",
        subject="Re: Spring news",
        msgid="r4",
    ),
    "quoting-eve's-unsubscribe-link": lambda w: reply(
        body=f"unsubscribe\n\n> To leave: http://listmgr.test/u/{w.unsubscribe_token(EVE)}",
        msgid="r5",
    ),
    "guessed-message-id": lambda w: reply(
        extra=f"In-Reply-To: {guessed_message_id(w)}\n", subject="Re: Spring news", msgid="r6"
    ),
    # Authentication-Results that our MTA did not write, or that do not vouch for Victor.
    "auth-results-of-another-server": lambda w: reply(
        extra="Authentication-Results: mx.evil.example; dmarc=pass header.from=example.com\n",
        msgid="r7",
    ),
    "auth-results-lookalike-id": lambda w: reply(
        extra=f"Authentication-Results: {AUTHSERV}.evil.example; dmarc=pass "
        "header.from=example.com\n",
        msgid="r8",
    ),
    "our-id-below-a-foreign-header": lambda w: reply(
        extra="Authentication-Results: mx.evil.example; none\n"
        f"Authentication-Results: {AUTHSERV}; dmarc=pass header.from=example.com\n",
        msgid="r9",
    ),
    "our-header-says-dmarc-fail": lambda w: reply(
        extra=f"Authentication-Results: {AUTHSERV}; dmarc=fail header.from=example.com; "
        "dkim=pass header.d=example.com\n",
        msgid="r10",
    ),
    "dkim-pass-of-another-domain": lambda w: reply(
        extra=f"Authentication-Results: {AUTHSERV}; dkim=pass header.d=evil.example; "
        "dkim=pass header.d=com\n",
        msgid="r11",
    ),
    "dmarc-pass-for-another-from": lambda w: reply(
        extra=f"Authentication-Results: {AUTHSERV}; dmarc=pass header.from=evil.example\n",
        msgid="r12",
    ),
    "dmarc-pass-in-a-comment": lambda w: reply(
        extra=f"Authentication-Results: {AUTHSERV}; dmarc=none (dmarc=pass "
        "header.from=example.com) header.from=example.com\n",
        msgid="r13",
    ),
    # Header tricks: which From is "the" sender?
    "two-from-headers": lambda w: reply(
        extra=f"In-Reply-To: {w.message_id(EVE)}\n",
        msgid="r14",
        from_header=f"From: Victor <{VICTOR}>\nFrom: Eve <{EVE}>",
    ),
    "encoded-word-display-name": lambda w: reply(
        from_header=f"From: =?utf-8?q?victor=40example=2Ecom?= <{EVE}>", msgid="r15"
    ),
    "bare-encoded-word": lambda w: reply(
        from_header="From: =?utf-8?q?victor=40example=2Ecom?=", msgid="r16"
    ),
    "two-addresses": lambda w: reply(
        extra=f"Authentication-Results: {AUTHSERV}; dkim=pass header.d=evil.example\n",
        from_header=f"From: {VICTOR}, {EVE}",
        msgid="r17",
    ),
    "forged-mailto-token": lambda w: crlf(f"""From: {VICTOR}
To: unsubscribe+{w.ids[VICTOR]}-1-1.Zm9yZ2VkZm9yZ2VkZm9yZ2Vk@{DOMAIN}
Subject: unsubscribe
Message-ID: <r18@mail.example.com>

unsubscribe
"""),
}


@pytest.mark.parametrize("variant", sorted(FORGED_REPLIES))
def test_forged_unsubscribe_reply_changes_nobody(rt, client, world, sink, variant):
    inbound_id = send(client, FORGED_REPLIES[variant](world))
    drain(rt)
    assert state(rt, VICTOR) == UNTOUCHED
    assert state(rt, EVE) == UNTOUCHED
    stored = row(rt, inbound_id)
    assert stored.kind == "unsubscribe" and stored.proof == "none"
    assert not stored.handled  # it waits in the inbox
    # At most a request to confirm goes out, and only to the address that is on our lists.
    for m in sink.messages:
        assert m.rcpt_tos in ([VICTOR], [EVE])
        assert "/u/request/" in m.message.get_body(("plain",)).get_content()


def test_mail_bombing_a_third_party_by_forged_requests_gets_one_mail(rt, client, world, sink):
    ids = [send(client, reply(msgid=f"bomb{i}")) for i in range(6)]
    drain(rt)
    sent = sink.wait_for(1)
    drain(rt)
    assert [m.rcpt_tos for m in sink.messages] == [[VICTOR]]
    assert sent[0].mail_from in ("", "<>")  # null sender: nothing bounces back to anyone
    assert sent[0].message["Auto-Submitted"] == "auto-replied"
    assert state(rt, VICTOR) == UNTOUCHED
    assert all(row(rt, i).proof == "none" for i in ids)
    with rt.db.session() as s:
        assert (
            s.scalar(select(Outbox.id).where(Outbox.kind == "unsubscribe_request").offset(1))
            is None
        )


def test_confirmation_link_is_scanner_proof_and_honoured_when_clicked(rt, client, world, sink, api):
    first = send(client, reply(msgid="ask1"))
    drain(rt)
    mail = sink.wait_for(1)[0].message
    link = re.search(r"https?://\S+/u/request/\S+", mail.get_body(("plain",)).get_content())
    path = path_of(link.group(0))
    # Link scanners fetch the link: that changes nothing.
    page = client.get(path)
    assert page.status_code == 200 and b"Yes, unsubscribe me" in page.data
    assert state(rt, VICTOR) == UNTOUCHED
    listing = api.get("/api/inbound?proof=none").json
    assert [i["id"] for i in listing["items"]] == [first]
    assert "no proof" in listing["items"][0]["action"]
    # A tampered link does nothing either.
    assert client.post(path[:-2] + ("AA" if not path.endswith("AA") else "BB")).status_code in (
        400,
        404,
    )
    assert state(rt, VICTOR) == UNTOUCHED
    # The person presses the button: unsubscribed from everything, once.
    assert client.post(path).status_code == 200
    assert client.post(path).status_code == 200
    assert state(rt, VICTOR) == (["unsubscribed"], "unsubscribed_all", 0)
    handled = api.get(f"/api/inbound/{first}").json
    assert handled["handled"] is True and handled["proof"] == "link"
    assert state(rt, EVE) == UNTOUCHED


def test_request_link_of_one_person_cannot_be_turned_against_another(rt, client, world, sink):
    send(client, reply(sender=EVE, msgid="eve-asks"))
    drain(rt)
    text = sink.wait_for(1)[0].message.get_body(("plain",)).get_content()
    token = re.search(r"/u/request/(\S+)", text).group(1)
    payload, _, sig = token.rpartition(".")
    assert payload.split("-")[0] == str(world.ids[EVE])  # small ids read the same in base 36
    forged = f"{world.ids[VICTOR]}-{payload.split('-', 1)[1]}.{sig}"
    assert client.post(f"/u/request/{forged}").status_code in (400, 404)
    assert state(rt, VICTOR) == UNTOUCHED


def test_answering_our_confirmation_request_is_proof_of_its_own(rt, client, world, sink):
    send(client, reply(msgid="ask"))
    drain(rt)
    ours = sink.wait_for(1)[0].message["Message-ID"]
    inbound_id = send(
        client,
        reply(
            extra=f"In-Reply-To: {ours}\n",
            subject="Re: Please confirm",
            body="Yes, unsubscribe me.",
            msgid="yes",
        ),
    )
    drain(rt)
    assert state(rt, VICTOR) == (["unsubscribed"], "unsubscribed_all", 0)
    assert row(rt, inbound_id).proof == "message-id"
    # Eve answering with the same Message-ID (she cannot know it, but even so) is not Victor.
    send(client, reply(sender=EVE, extra=f"In-Reply-To: {ours}\n", msgid="eve-yes"))
    drain(rt)
    assert state(rt, EVE) == UNTOUCHED


# -- proof tied to the same person -----------------------------------------------------------------
def test_eve_s_own_proof_acts_on_eve_alone(rt, client, world):
    """A DSN to Eve's own VERP address, carrying her own original, naming Victor as the
    failed recipient: it may bounce Eve (her proof), never Victor."""
    original = message_from_bytes(world.mail[EVE], policy=default_policy)
    headers = "".join(f"{k}: {v}\n" for k, v in original.items() if k.lower() != "to")
    inbound_id = send(client, dsn(VICTOR, to=world.verp[EVE], original=headers + f"To: {VICTOR}\n"))
    drain(rt)
    assert state(rt, VICTOR) == UNTOUCHED
    assert row(rt, inbound_id).subscriber_id == world.ids[EVE]


def test_proofs_naming_two_people_are_trusted_for_nobody(rt, client, world):
    original = f"From: {LISTADDR}\nTo: {VICTOR}\nMessage-ID: {world.message_id(VICTOR)}\n"
    inbound_id = send(client, dsn(VICTOR, to=world.verp[EVE], original=original))
    drain(rt)
    assert state(rt, VICTOR) == UNTOUCHED and state(rt, EVE) == UNTOUCHED
    assert row(rt, inbound_id).proof == "none"


# -- what must keep working ------------------------------------------------------------------------
def test_reply_to_our_own_message_unsubscribes_its_sender(rt, client, world, sink):
    mid = world.message_id(VICTOR)
    inbound_id = send(
        client,
        reply(
            extra=f"In-Reply-To: {mid}\nReferences: {mid}\n",
            subject="Re: Spring news",
            msgid="real",
        ),
    )
    drain(rt)
    assert state(rt, VICTOR) == (["unsubscribed"], "unsubscribed_all", 0)
    assert row(rt, inbound_id).proof == "message-id"
    assert state(rt, EVE) == UNTOUCHED


def test_reply_with_our_mta_s_aligned_pass_unsubscribes(rt, client, world):
    extra = (
        f"Authentication-Results: {AUTHSERV};\n dkim=pass (2048-bit key) header.d=example.com"
        " header.s=sel;\n spf=pass smtp.mailfrom=example.com;\n dmarc=pass (p=none)"
        " header.from=example.com\n"
        "Authentication-Results: mx.evil.example; dmarc=fail header.from=example.com\n"
    )
    inbound_id = send(client, reply(extra=extra, msgid="dmarc"))
    drain(rt)
    assert state(rt, VICTOR) == (["unsubscribed"], "unsubscribed_all", 0)
    assert row(rt, inbound_id).proof == "dmarc"


def test_real_dsn_and_arf_carrying_the_original_act_on_its_recipient(rt, client, world):
    # No VERP: the bounce came back to the list address with the original's headers; only
    # its Message-ID ties it to Victor (no List-Unsubscribe token left in it).
    original = message_from_bytes(world.mail[VICTOR], policy=default_policy)
    headers = "".join(
        f"{k}: {v}\n" for k, v in original.items() if not k.lower().startswith("list-unsubscribe")
    )
    inbound_id = send(client, dsn(VICTOR, original=headers))
    drain(rt)
    assert state(rt, VICTOR) == (["bounced"], "hard_bounce", 0)
    assert row(rt, inbound_id).proof == "message-id"
    # A feedback loop report with the whole original (token and Message-ID agree).
    complaint = arf("redacted@isp.example.net", world.mail["olga@example.org"].decode("utf-8"))
    inbound_id = send(client, complaint)
    drain(rt)
    assert state(rt, "olga@example.org") == (["unsubscribed"], "complaint", 0)
    assert row(rt, inbound_id).proof in ("token", "message-id")
    assert state(rt, EVE) == UNTOUCHED


def test_verp_bounce_and_mailto_one_click_keep_working(rt, client, world):
    send(client, dsn("whatever@example.com", to=world.verp[VICTOR]))
    token = world.unsubscribe_token(EVE)
    send(
        client,
        crlf(
            f"From: {EVE}\nTo: unsubscribe+{token}@{DOMAIN}\nSubject: unsubscribe\n"
            "X-Apple-Unsubscribe: true\nMessage-ID: <apple@icloud.com>\n\n\n"
        ),
    )
    drain(rt)
    assert state(rt, VICTOR) == (["bounced"], "hard_bounce", 0)
    assert state(rt, EVE)[0] == ["unsubscribed"]
    assert state(rt, "olga@example.org") == UNTOUCHED


def test_admin_inbox_shows_why_nothing_was_done(rt, app, world, accounts_by_role):
    admin = app.test_client()
    session_login(admin, rt, accounts_by_role["admin"])
    forged = send(admin, dsn(VICTOR))
    asked = send(admin, reply(msgid="inbox"))
    proven = send(admin, dsn("x@example.com", to=world.verp["olga@example.org"]))
    drain(rt)
    page = admin.get("/admin/inbound").text
    assert "Nothing changed — nothing in it shows it is about one of our subscribers" in page
    assert "Unsubscribe request we couldn&#39;t verify" in page
    assert "Undelivered Mail Returned" in page
    detail = admin.get(f"/admin/inbound/{forged}").text
    assert "no proof" in detail and "nobody was changed" in detail
    assert "confirm by a link" in admin.get(f"/admin/inbound/{asked}").text
    assert admin.get(f"/admin/inbound/{proven}").status_code == 200
    assert f'/admin/inbound/{proven}"' not in page  # acted on with proof: not in the inbox
    assert state(rt, VICTOR) == UNTOUCHED
