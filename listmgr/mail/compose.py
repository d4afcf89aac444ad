"""Plain data -> RFC 5322 bytes: headers, text+HTML parts, footer. Pure; no I/O.

Messages are assembled by hand from prepared parts (the standard library's EmailMessage costs
over a millisecond per message): shared parts are encoded once, per-recipient parts filled in.
"""

from __future__ import annotations

import base64
import email.quoprimime
import uuid
from dataclasses import dataclass, field
from email.header import Header
from email.utils import formataddr, formatdate

from listmgr.errors import ValidationError

CRLF = "\r\n"


class HeaderInjection(ValidationError):
    code = "header_injection"


def clean_header(value: str, name: str = "header") -> str:
    """A header value, refused when it holds CR, LF or other control characters."""
    if any(c in value for c in "\r\n\x00\x0b\x0c\x85\u2028\u2029"):
        raise HeaderInjection(f"{name} must not contain line breaks", field=name)
    return value


def encode_header(value: str, name: str = "Subject") -> str:
    """RFC 2047-encode a header value when it is not plain ASCII; fold long values."""
    clean_header(value, name)
    if value.isascii() and len(value) + len(name) + 2 <= 78:
        return value
    return Header(value, "utf-8" if not value.isascii() else "us-ascii", header_name=name).encode(
        linesep=CRLF
    )


def address(name: str, email: str) -> str:
    """A From/To/Reply-To value: display name encoded when needed, no injection."""
    clean_header(name, "name")
    clean_header(email, "email")
    if not name:
        return email
    return formataddr((name, email), charset="utf-8")


def encode_text_part(body: str, subtype: str) -> bytes:
    """A text/<subtype> MIME part, quoted-printable UTF-8, CRLF line ends."""
    normalized = body.replace("\r\n", "\n").replace("\r", "\n")
    if normalized.isascii() and all(len(line) <= 900 for line in normalized.split("\n")):
        encoded = normalized.replace("\n", CRLF)
        cte = "7bit"
    else:
        latin = normalized.encode("utf-8").decode("latin-1")
        encoded = email.quoprimime.body_encode(latin, maxlinelen=76, eol=CRLF)
        cte = "quoted-printable"
    head = (
        f'Content-Type: text/{subtype}; charset="utf-8"{CRLF}'
        f"Content-Transfer-Encoding: {cte}{CRLF}{CRLF}"
    )
    return (head + encoded + CRLF).encode("ascii")


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


def unsubscribe_headers(url: str, mailto: str) -> list[tuple[str, str]]:
    """RFC 2369 List-Unsubscribe with https and mailto, plus RFC 8058 one-click."""
    clean_header(url, "unsubscribe url")
    clean_header(mailto, "unsubscribe mailto")
    value = f"<{url}>"
    if mailto:
        value += f", <mailto:{mailto}?subject=unsubscribe>"
    return [("List-Unsubscribe", value), ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")]


def headers_for(mail: Mail) -> list[tuple[str, str]]:
    """Every header of a message, in order, each value already encoded and checked."""
    hdrs: list[tuple[str, str]] = [
        ("From", address(mail.from_name, mail.from_email)),
        ("To", address(mail.to_name, mail.to_email)),
        ("Subject", encode_header(mail.subject)),
        ("Date", formatdate(usegmt=True)),
        ("Message-ID", message_id(mail.mail_domain)),
        ("MIME-Version", "1.0"),
    ]
    if mail.reply_to:
        hdrs.append(("Reply-To", address("", mail.reply_to)))
    if mail.list_id:
        hdrs.append(("List-Id", encode_header(mail.list_id, "List-Id")))
    if mail.unsubscribe_url:
        hdrs.extend(unsubscribe_headers(mail.unsubscribe_url, mail.unsubscribe_mailto))
    if mail.auto_submitted:
        hdrs.append(("Auto-Submitted", clean_header(mail.auto_submitted)))
    if mail.precedence:
        hdrs.append(("Precedence", clean_header(mail.precedence)))
    for name, value in mail.extra_headers:
        hdrs.append((clean_header(name, "header name"), encode_header(value, name)))
    return hdrs


def assemble(
    headers: list[tuple[str, str]],
    parts: list[bytes],
    boundary: str | None = None,
    subtype: str = "alternative",
) -> bytes:
    """Join encoded headers and ready MIME parts into one multipart message."""
    boundary = boundary or "=_lm_" + uuid.uuid4().hex
    head = "".join(f"{name}: {value}{CRLF}" for name, value in headers)
    head += f'Content-Type: multipart/{subtype}; boundary="{boundary}"{CRLF}{CRLF}'
    delimiter = f"--{boundary}{CRLF}".encode("ascii")
    out = [head.encode("ascii"), b"This is a multi-part message in MIME format." + b"\r\n"]
    for part in parts:
        out.append(delimiter)
        out.append(part)
    out.append(f"--{boundary}--{CRLF}".encode("ascii"))
    return b"".join(out)


def build(mail: Mail) -> bytes:
    """The complete message as bytes: multipart/alternative with text then HTML."""
    return assemble(
        headers_for(mail),
        [encode_text_part(mail.text, "plain"), encode_text_part(mail.html, "html")],
    )


def b64_part(data: bytes, content_type: str) -> bytes:
    """A base64 MIME part (for attachments such as a data export)."""
    body = base64.encodebytes(data).decode("ascii").replace("\n", CRLF)
    return (
        f"Content-Type: {content_type}{CRLF}Content-Transfer-Encoding: base64{CRLF}{CRLF}{body}"
    ).encode("ascii")
