"""The inbound classifier on hand-written messages in real clients' formats (tests/data/inbound).

Each file name starts with the expected kind: ``unsubscribe--…``, ``other--…`` and so on.
Files hold ``{{UNSUB_TOKEN}}``, ``{{BOUNCE_TOKEN}}``, ``{{BOUNCE_TOKEN_CONFIRM}}`` and
``{{MANAGE_TOKEN}}`` placeholders; real signed tokens are put in at run time, so no token is
committed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from listmgr.mail.inbound import KINDS, Classification, Envelope, classify
from listmgr.tokens import Tokens

DATA = Path(__file__).parent / "data" / "inbound"
SECRET = "test-secret"
DOMAIN = "news.example.org"
SUBSCRIBER, LIST, CAMPAIGN = 42, 7, 3

# Files whose ids (subscriber, list, campaign) and bounce verdict are checked too.
EXPECTED_IDS: dict[str, tuple[int | None, int | None, int | None]] = {
    "unsubscribe--mailto-token.eml": (SUBSCRIBER, LIST, CAMPAIGN),
    "unsubscribe--apple-mail-token.eml": (SUBSCRIBER, LIST, CAMPAIGN),
    "bounce--postfix-dsn-confirmation-verp.eml": (SUBSCRIBER, LIST, None),
    "bounce--exim-text-envelope-verp.eml": (SUBSCRIBER, LIST, CAMPAIGN),
    "bounce--gmail-delay-auto-submitted.eml": (SUBSCRIBER, LIST, CAMPAIGN),
    "bounce--office365-ndr-undeliverable.eml": (SUBSCRIBER, LIST, CAMPAIGN),
    "complaint--arf-wrapping-campaign.eml": (SUBSCRIBER, LIST, CAMPAIGN),
    "complaint--hotmail-jmrp-campaign.eml": (SUBSCRIBER, LIST, CAMPAIGN),
    "bounce--postfix-smtputf8-global-dsn.eml": (SUBSCRIBER, LIST, CAMPAIGN),
}
EXPECTED_PERMANENT = {
    "bounce--postfix-dsn-confirmation-verp.eml": True,
    "bounce--exim-text-envelope-verp.eml": True,
    "bounce--gmail-delay-auto-submitted.eml": False,
    "bounce--office365-ndr-undeliverable.eml": True,
    "bounce--postfix-smtputf8-global-dsn.eml": True,
}
EXPECTED_RECIPIENTS = {
    "bounce--postfix-dsn-confirmation-verp.eml": "nosuchuser@example.net",
    "bounce--exim-text-envelope-verp.eml": "anna.old@example.net",
    "bounce--gmail-delay-auto-submitted.eml": "anna@example.org",
    "bounce--office365-ndr-undeliverable.eml": "maria@contoso.example",
    "complaint--hotmail-jmrp-campaign.eml": "someone@hotmail.com",
    "unsubscribe--en-gmail-top-posted.eml": "anna.berg@example.net",
    "unsubscribe--de-outlook-body.eml": "hans.mueller@example.de",
    "unsubscribe--apple-mail-token.eml": "anna.berg@icloud.com",
    "bounce--postfix-smtputf8-global-dsn.eml": "jürgen@müller.example",
}
# The envelope an MTA would hand over (LMTP/pipe): the VERP address is only there.
ENVELOPES = {
    "bounce--exim-text-envelope-verp.eml": "bounces+{{BOUNCE_TOKEN}}@news.example.org",
}


@pytest.fixture(scope="module")
def tokens() -> Tokens:
    return Tokens(SECRET)


def fill(text: str, tokens: Tokens) -> str:
    return (
        text.replace("{{UNSUB_TOKEN}}", tokens.unsubscribe(SUBSCRIBER, LIST, CAMPAIGN))
        .replace("{{BOUNCE_TOKEN_CONFIRM}}", tokens.bounce(SUBSCRIBER, None, LIST))
        .replace("{{BOUNCE_TOKEN}}", tokens.bounce(SUBSCRIBER, CAMPAIGN, LIST))
        .replace("{{MANAGE_TOKEN}}", tokens.manage(SUBSCRIBER))
    )


def load(name: str, tokens: Tokens) -> tuple[bytes, Envelope | None]:
    raw = fill((DATA / name).read_bytes().decode("utf-8"), tokens).encode("utf-8")
    env = None
    if name in ENVELOPES:
        env = Envelope(sender="", recipients=(fill(ENVELOPES[name], tokens),))
    return raw, env


FILES = sorted(p.name for p in DATA.glob("*.eml"))


def test_fixture_set_covers_every_kind_and_language() -> None:
    kinds = {name.split("--")[0] for name in FILES}
    assert kinds == set(KINDS)
    for lang in ("en", "de", "fr", "es", "it", "nl", "pt", "sv", "pl"):
        assert any(n.startswith(f"unsubscribe--{lang}-") and "subject-only" in n for n in FILES), (
            lang
        )
        assert any(
            n.startswith(f"unsubscribe--{lang}-") and "subject-only" not in n for n in FILES
        ), lang


@pytest.mark.parametrize("name", FILES)
def test_fixture(name: str, tokens: Tokens) -> None:
    raw, env = load(name, tokens)
    result = classify(raw, env, tokens=tokens, mail_domain=DOMAIN)
    expected_kind = name.split("--")[0]
    assert isinstance(result, Classification)
    assert result.kind == expected_kind, (name, result.kind, result.evidence)
    json.dumps(result.evidence)  # always serialisable
    assert 0.0 <= result.confidence <= 1.0
    if name in EXPECTED_IDS:
        ids = (result.subscriber_id, result.list_id, result.campaign_id)
        assert ids == EXPECTED_IDS[name], (name, ids, result.evidence)
    elif expected_kind == "unsubscribe":
        # Human replies unsubscribe the sender's address; a quoted token never decides who.
        assert result.subscriber_id is None
    if name in EXPECTED_PERMANENT:
        assert result.permanent is EXPECTED_PERMANENT[name], (name, result.evidence)
    if expected_kind != "bounce":
        assert result.permanent is None
    if name in EXPECTED_RECIPIENTS:
        assert EXPECTED_RECIPIENTS[name] in result.recipients, (name, result.recipients)
    if expected_kind == "unsubscribe":
        assert len(result.recipients) == 1 and result.recipients[0] == result.recipients[0].lower()


@pytest.mark.parametrize("name", [n for n in FILES if n in EXPECTED_IDS])
def test_without_tokens_kinds_stay_right_and_ids_stay_empty(name: str, tokens: Tokens) -> None:
    raw, env = load(name, tokens)
    result = classify(raw, env, mail_domain=DOMAIN)
    assert result.kind == name.split("--")[0]
    assert (result.subscriber_id, result.list_id, result.campaign_id) == (None, None, None)


def test_tokens_of_another_secret_give_no_ids(tokens: Tokens) -> None:
    raw, env = load("complaint--arf-wrapping-campaign.eml", tokens)
    result = classify(raw, env, tokens=Tokens("another-secret"), mail_domain=DOMAIN)
    assert result.kind == "complaint"
    assert result.subscriber_id is None
    assert result.evidence["token_verified"] is False


def test_forged_unsubscribe_address_falls_back_to_the_sender(tokens: Tokens) -> None:
    raw = (
        b"From: Eve <eve@example.net>\r\nTo: unsubscribe+1-2-3.forgedsignature@news.example.org\r\n"
        b"Subject: unsubscribe\r\n\r\n\r\n"
    )
    result = classify(raw, tokens=tokens, mail_domain=DOMAIN)
    assert result.kind == "unsubscribe"  # the subject still asks, for the sender only
    assert result.subscriber_id is None
    assert result.recipients == ("eve@example.net",)
    assert result.evidence["rule"] == "reply-subject"


def test_unsubscribe_address_of_another_domain_is_not_ours(tokens: Tokens) -> None:
    tok = tokens.unsubscribe(SUBSCRIBER, LIST)
    raw = (
        f"From: a@example.net\r\nTo: unsubscribe+{tok}@elsewhere.example\r\nSubject: hello\r\n\r\n"
        "hi\r\n"
    ).encode()
    assert classify(raw, tokens=tokens, mail_domain=DOMAIN).kind == "other"
    # Without a configured domain any domain is accepted.
    assert classify(raw, tokens=tokens).subscriber_id == SUBSCRIBER


def test_envelope_recipient_token(tokens: Tokens) -> None:
    tok = tokens.unsubscribe(SUBSCRIBER, LIST, CAMPAIGN)
    raw = b"From: Anna <anna@example.net>\r\nTo: news@news.example.org\r\nSubject: x\r\n\r\nhi\r\n"
    env = Envelope("anna@example.net", (f"unsubscribe+{tok}@news.example.org",))
    result = classify(raw, env, tokens=tokens, mail_domain=DOMAIN)
    assert (result.kind, result.subscriber_id, result.list_id, result.campaign_id) == (
        "unsubscribe",
        SUBSCRIBER,
        LIST,
        CAMPAIGN,
    )
    assert result.confidence == 1.0


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Unsubscribe", "unsubscribe"),
        ("UNSUBSCRIBE", "unsubscribe"),
        ("unsubscribe me pls", "unsubscribe"),
        ("Hi,\nThanks, but please unsubscribe me.", "unsubscribe"),
        ("Hello\n\nI never signed up. Remove me.", "unsubscribe"),
        ("I clicked the link to unsubscribe but it doesn't work, please remove me", "unsubscribe"),
        ("I don't want these emails anymore, please unsubscribe me", "unsubscribe"),
        ("Opt out", "unsubscribe"),
        ("STOP", "unsubscribe"),
        ("Bitte von der Liste streichen.", "unsubscribe"),
        ("Merci de ne plus m'envoyer de mails", "unsubscribe"),
        ("Je ne veux plus recevoir vos mails, désabonnez-moi", "unsubscribe"),
        ("Borrar mi correo de la lista por favor", "unsubscribe"),
        ("Vorrei disiscrivermi", "unsubscribe"),
        ("Haal mij van de lijst aub", "unsubscribe"),
        ("Por favor, retirem o meu email da lista", "unsubscribe"),
        ("Jag vill avsluta prenumerationen", "unsubscribe"),
        ("Proszę mnie wypisać z newslettera", "unsubscribe"),
        ("please remove me from your list", "unsubscribe"),
        ("I'd like to unsubscribe, thanks", "unsubscribe"),
        ("Stop sending me these emails", "unsubscribe"),
        ("Bitte austragen.", "unsubscribe"),
        ("Ich möchte den Newsletter nicht mehr erhalten.", "unsubscribe"),
        ("Je ne souhaite plus recevoir vos messages.", "unsubscribe"),
        ("No quiero recibir más correos.", "unsubscribe"),
        ("Non voglio più ricevere queste email.", "unsubscribe"),
        ("Ik wil geen mails meer.", "unsubscribe"),
        ("Por favor, remova-me da lista.", "unsubscribe"),
        ("Ta bort mig från listan.", "unsubscribe"),
        ("Nie chcę już otrzymywać tych wiadomości.", "unsubscribe"),
        ("Please don't unsubscribe me.", "other"),
        ("Please do not remove me from the list", "other"),
        ("I do not want to unsubscribe, just update my address.", "other"),
        ("Bitte nicht abmelden!", "other"),
        ("Ich möchte mich nicht abmelden.", "other"),
        ("Ne pas me désinscrire svp.", "other"),
        ("Non cancellatemi, grazie.", "other"),
        ("Meld me niet af.", "other"),
        ("Não me descadastrem.", "other"),
        ("Ta inte bort mig.", "other"),
        ("Nie wypisujcie mnie.", "other"),
        ("Thanks for the newsletter!", "other"),
        ("Thanks! I will not unsubscribe, love it", "other"),
        ("Unsubscribe? No way, keep them coming!", "other"),
        ("Why did you unsubscribe me?", "other"),
        ("Have you removed me from the list? I no longer get mails.", "other"),
        ("I never asked to be removed", "other"),
        ("> Unsubscribe", "other"),
        ("Hi\n\n-------- Message d'origine --------\nDe : Acme\nUnsubscribe me", "other"),
        ("Hi\n\nVon: Acme News\nGesendet: Dienstag\nAn: x\nBetreff: y\n\nBitte abmelden", "other"),
        ("ok\n\n----- Forwarded Message -----\nunsubscribe", "other"),
        ("nice\n\n*From:* Acme\n*Sent:* Tuesday\nremove me", "other"),
        ("Great stuff\n\nThanks,\nJohn\n\nTo unsubscribe from our updates reply STOP", "other"),
        ("Cool\n-- \nunsubscribe me", "other"),
        ("Cool\n\nSent from my iPhone\nunsubscribe me", "other"),
        (
            "On second thought, please unsubscribe me\nOn Tue, Mar 4, 2025 at 10:02 AM Acme <\n"
            "news@news.example.org> wrote:\n> hi",
            "unsubscribe",
        ),
        (
            "Nice\n\nOn Tue, Mar 4, 2025 at 10:02 AM Acme <\nnews@news.example.org> wrote:\n"
            "> unsubscribe me",
            "other",
        ),
        ("Where is the unsubscribe link? Never mind, found it, all good.", "other"),
    ],
)
def test_reply_phrases(text: str, expected: str) -> None:
    raw = (
        "From: Person <person@example.net>\r\nTo: news@news.example.org\r\n"
        "Subject: Re: Spring offers\r\nIn-Reply-To: <x@news.example.org>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n" + text.replace("\n", "\r\n") + "\r\n\r\n"
        "On Tue, 4 Mar 2025 at 10:02, Acme <news@news.example.org> wrote:\r\n"
        "> Unsubscribe: https://news.example.org/u/abc\r\n"
    ).encode("utf-8")
    assert classify(raw).kind == expected, text


def test_mailing_list_traffic_never_unsubscribes() -> None:
    raw = (
        b"From: someone@example.net\r\nTo: list@lists.example.org\r\nList-Id: <x.lists.example.org>\r\n"
        b"Subject: unsubscribe\r\n\r\nunsubscribe\r\n"
    )
    assert classify(raw).kind == "other"


def test_bounce_with_auto_submitted_is_a_bounce(tokens: Tokens) -> None:
    raw, env = load("bounce--gmail-delay-auto-submitted.eml", tokens)
    assert b"Auto-Submitted: auto-replied" in raw
    assert classify(raw, env).kind == "bounce"


def test_ses_bounce_json_body(tokens: Tokens) -> None:
    verp = tokens.bounce(SUBSCRIBER, CAMPAIGN, LIST)
    body = json.dumps(
        {
            "Type": "Notification",
            "Message": json.dumps(
                {
                    "notificationType": "Bounce",
                    "bounce": {
                        "bounceType": "Permanent",
                        "bounceSubType": "General",
                        "bouncedRecipients": [
                            {"emailAddress": "Gone@Example.net", "status": "5.1.1"}
                        ],
                    },
                    "mail": {
                        "source": f"bounces+{verp}@news.example.org",
                        "destination": ["gone@example.net"],
                    },
                }
            ),
        }
    ).encode()
    result = classify(body, tokens=tokens, mail_domain=DOMAIN)
    assert (result.kind, result.permanent, result.recipients) == (
        "bounce",
        True,
        ("gone@example.net",),
    )
    assert (result.subscriber_id, result.list_id, result.campaign_id) == (
        SUBSCRIBER,
        LIST,
        CAMPAIGN,
    )


def _ses_bounce(address: str) -> str:
    return json.dumps(
        {
            "notificationType": "Bounce",
            "bounce": {"bounceType": "Permanent", "bouncedRecipients": [{"emailAddress": address}]},
            "mail": {"source": "news@news.example.org"},
        }
    )


def _qp(text: str) -> str:
    """Quoted-printable with a soft line break inside every word of 8 letters or more."""
    return re.sub(r"(\w{4})(\w{4,})", r"\1=\r\n\2", text.replace("=", "=3D"))


@pytest.mark.parametrize(
    "body",
    [
        "Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}",
        "Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{qp}",
        'Content-Type: multipart/alternative; boundary="b"\r\n\r\n--b\r\n'
        "Content-Type: text/html\r\n\r\n<p>Forwarded</p>\r\n--b\r\n"
        "Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--b--\r\n",
        "Content-Type: text/html\r\n\r\n<html><body><pre>{html}</pre></body></html>",
    ],
)
def test_ses_notification_forwarded_by_mail_in_any_encoding(body: str) -> None:
    """A notification relayed by a forwarding address (not SES's own sender) is read from
    its decoded text, whatever the transfer encoding or the part that carries it."""
    import base64
    import html

    text = _ses_bounce("Far.Away@Example.com")
    raw = (
        "From: forwarder@relay.example.net\r\nTo: bounces@news.example.org\r\n"
        "Subject: Fwd: AWS Notification Message\r\nMIME-Version: 1.0\r\n"
        + body.format(
            b64=base64.encodebytes(text.encode()).decode().replace("\n", "\r\n"),
            qp=_qp(text),
            html=html.escape(text),
        )
    ).encode()
    result = classify(raw)
    assert (result.kind, result.permanent, result.recipients) == (
        "bounce",
        True,
        ("far.away@example.com",),
    )
    assert result.evidence["rule"] == "ses-bounce"


@pytest.mark.parametrize(
    "raw", [b"", b"\x00\xff" * 10, b"From: x\r\n\r\n", b"garbage without headers"]
)
def test_garbage_is_other(raw: bytes) -> None:
    result = classify(raw)
    assert result.kind == "other"


@pytest.mark.parametrize(
    "subject,expected",
    [
        ("unsubscribe", "unsubscribe"),
        ("Re: Unsubscribe", "unsubscribe"),
        ("Please remove me from your list", "unsubscribe"),
        ("=?UTF-8?Q?D=C3=A9sabonnement?=", "unsubscribe"),
        ("Fwd: unsubscribe", "other"),  # a forward is someone else's
        ("Re: How to unsubscribe from junk mail", "other"),  # our own subject, replied to
        ("Don't unsubscribe me", "other"),
    ],
)
def test_subjects(subject: str, expected: str) -> None:
    raw = (
        f"From: p@example.net\r\nTo: news@news.example.org\r\nSubject: {subject}\r\n\r\n\r\n"
    ).encode()
    assert classify(raw).kind == expected, subject


def test_mdn_failure_is_a_bounce_and_read_receipt_an_autoreply() -> None:
    raw = (
        b"From: postmaster@example.net\r\nTo: news@news.example.org\r\n"
        b"Subject: Rejected: Spring offers\r\nContent-Type: multipart/report; "
        b"report-type=disposition-notification; boundary=b\r\n\r\n--b\r\n"
        b"Content-Type: text/plain\r\n\r\nYour message was rejected: quota exceeded\r\n--b\r\n"
        b"Content-Type: message/disposition-notification\r\n\r\n"
        b"Final-Recipient: rfc822; full@example.net\r\n"
        b"Disposition: automatic-action/MDN-sent-automatically; deleted\r\n--b--\r\n"
    )
    result = classify(raw)
    assert result.kind == "bounce"
    receipt = raw.replace(b"deleted", b"displayed").replace(b"rejected: quota exceeded", b"read")
    assert classify(receipt).kind == "autoreply"


# HTML-only replies: the quoted original sits after (or inside) a client's marker.
HTML_QUOTES = {
    "hotmail": '<div>{own}<br><hr id="stopSpelling">Date: Tue, 4 Mar 2025<br>From: news@news.example.org'
    "<br>Subject: Spring<br><div>{quoted}</div></div>",
    "outlook-web": '<div>{own}</div><div id="appendonsend"></div><hr><div id="divRplyFwdMsg"><b>From:</b>'
    " Acme</div><div>{quoted}</div>",
    "windows-mail": '<div>{own}</div><div style="padding-top: 5px; border-top-style: solid;"><b>From:</b>'
    " Acme<br><b>Sent:</b> Tuesday</div><div>{quoted}</div>",
    "thunderbird": '<p>{own}</p><div class="moz-cite-prefix">On 04/03/2025 10:02, Acme wrote:<br></div>'
    '<blockquote type="cite">{quoted}</blockquote>',
    "protonmail": '<div>{own}</div><div class="protonmail_quote">On Tuesday, Acme wrote:<blockquote>'
    "{quoted}</blockquote></div>",
    "new-outlook": '<div>{own}</div><div id="mail-editor-reference-message-container"><b>From: </b>Acme'
    "<div>{quoted}</div></div>",
}


@pytest.mark.parametrize("client", sorted(HTML_QUOTES))
def test_html_only_quote_markers(client: str) -> None:
    def mail(own: str, quoted: str) -> bytes:
        html = (
            "<html><body>" + HTML_QUOTES[client].format(own=own, quoted=quoted) + "</body></html>"
        )
        return (
            "From: P <p@example.net>\r\nSubject: Re: Spring\r\nIn-Reply-To: <a@b>\r\n"
            "Content-Type: text/html; charset=utf-8\r\n\r\n" + html
        ).encode()

    assert (
        classify(mail("Please unsubscribe me.", "Hello from Acme. Unsubscribe")).kind
        == "unsubscribe"
    )
    assert (
        classify(mail("Thanks, nice offer.", "Please unsubscribe me / Unsubscribe")).kind == "other"
    )
