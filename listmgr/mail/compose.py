"""Transactional mail, one message at a time: plain data -> RFC 5322 bytes through the
standard library's EmailMessage (policy SMTP: CRLF line ends, headers folded and RFC 2047
encoded). Pure; no I/O. Campaigns have their own measured encoder (campaign.py), which shares
the header checks below.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formataddr, formatdate

from listmgr.addresses import ascii_address
from listmgr.errors import ValidationError

# Raw headers (List-*) go out as given: refolding would turn a long URL into encoded words.
POLICY = SMTP.clone(refold_source="none")
BODY_LINE_LIMIT = 900  # longer lines, or non-ASCII text, go quoted-printable


class HeaderInjection(ValidationError):
    code = "header_injection"


def clean_header(value: str, name: str = "header") -> str:
    """A header value, refused when it holds CR, LF or other control characters."""
    if any(c in value for c in "\r\n\x00\x0b\x0c\x85\u2028\u2029"):
        raise HeaderInjection(f"{name} must not contain line breaks", field=name)
    return value


def address(name: str, email: str) -> str:
    """A From/To/Reply-To value: display name encoded when needed, no injection."""
    clean_header(name, "name")
    clean_header(email, "email")
    if not name:
        return email
    return formataddr((name, email), charset="utf-8")


def message_id(domain: str) -> str:
    return f"<{uuid.uuid4().hex}@{domain}>"


@dataclass(frozen=True)
class Mail:
    """One message to compose. Header values are checked for CR/LF on composition."""

    from_name: str
    from_email: str
    to_email: str
    subject: str
    text: str
    html: str
    mail_domain: str
    to_name: str = ""
    reply_to: str = ""
    list_id: str = ""  # "List Name <slug.mail_domain>"
    unsubscribe_url: str = ""  # one-click https URL
    unsubscribe_mailto: str = ""  # unsubscribe+TOKEN@domain
    auto_submitted: str = ""  # "auto-generated" for transactional mail
    precedence: str = ""
    extra_headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)


def list_id_header(list_name: str, slug: str, mail_domain: str) -> str:
    """RFC 2919 List-Id: a phrase and <slug.domain>."""
    clean_header(list_name, "list name")
    phrase = list_name.replace('"', "'")
    return f'"{phrase}" <{slug}.{mail_domain}>' if phrase else f"<{slug}.{mail_domain}>"


def _list_headers(mail: Mail) -> list[tuple[str, str]]:
    """List-Id (RFC 2919), List-Unsubscribe with https and mailto (RFC 2369) and one-click
    (RFC 8058): ASCII, sent as they are (checked for line breaks first)."""
    out: list[tuple[str, str]] = []
    if mail.list_id:
        value = mail.list_id
        if not value.isascii():
            value = Header(value, "utf-8", header_name="List-Id").encode(linesep="\r\n")
        out.append(("List-Id", value))
    if mail.unsubscribe_url:
        value = f"<{mail.unsubscribe_url}>"
        if mail.unsubscribe_mailto:
            value += f", <mailto:{mail.unsubscribe_mailto}?subject=unsubscribe>"
        out.append(("List-Unsubscribe", value))
        out.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    return out


def _check(mail: Mail) -> None:
    """Refuse line breaks and control characters in every header value, naming the field."""
    for name in (
        "from_name",
        "from_email",
        "to_name",
        "to_email",
        "subject",
        "reply_to",
        "list_id",
        "unsubscribe_url",
        "unsubscribe_mailto",
        "auto_submitted",
        "precedence",
    ):
        clean_header(getattr(mail, name), name)
    for name, value in mail.extra_headers:
        clean_header(name, "header name")
        clean_header(value, name)


def _text_part(text: str) -> tuple[str, str]:
    """The text with LF line ends and its transfer encoding (7bit when it can be)."""
    normalized = text.replace("\r\n", "\n").replace("\r", "\n")
    plain = normalized.isascii() and all(
        len(line) <= BODY_LINE_LIMIT for line in normalized.split("\n")
    )
    return normalized, "7bit" if plain else "quoted-printable"


def build(mail: Mail) -> bytes:
    """The complete message as bytes: multipart/alternative with text then HTML, or plain
    text alone when there is no HTML."""
    _check(mail)
    msg = EmailMessage(policy=POLICY)
    msg["From"] = Address(mail.from_name, addr_spec=ascii_address(mail.from_email))
    msg["To"] = Address(mail.to_name, addr_spec=ascii_address(mail.to_email))
    msg["Subject"] = mail.subject
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = message_id(mail.mail_domain)
    if mail.reply_to:
        msg["Reply-To"] = Address(addr_spec=ascii_address(mail.reply_to))
    for name, value in _list_headers(mail):
        msg.set_raw(name, value)
    if mail.auto_submitted:
        msg["Auto-Submitted"] = mail.auto_submitted
    if mail.precedence:
        msg["Precedence"] = mail.precedence
    for name, value in mail.extra_headers:
        msg[name] = value
    text, cte = _text_part(mail.text)
    msg.set_content(text, cte=cte)
    if mail.html:
        html, cte = _text_part(mail.html)
        msg.add_alternative(html, subtype="html", cte=cte)
    for part in msg.iter_parts():
        del part["MIME-Version"]  # the message says it once
    return msg.as_bytes()
