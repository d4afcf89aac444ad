"""A stored message with an erased person blotted out of every header and part, whatever their
transfer encoding or charset (pure)."""

from __future__ import annotations

import email
from email.message import EmailMessage
from email.policy import SMTP, default
from email.utils import formatdate, getaddresses

from listmgr.traces import ERASED, Traces

REMOVED = "[an attachment that named an erased person was removed]"
RENDERED = "[this message was reduced to its text: it named an erased person]"
# Headers that say who sent or received the message (the person's own mail is deleted, never
# redacted).
PARTIES = (
    "from",
    "sender",
    "reply-to",
    "return-path",
    "to",
    "cc",
    "bcc",
    "delivered-to",
    "x-original-to",
    "resent-from",
    "resent-to",
)


def parties(raw: bytes) -> list[str]:
    """The addresses of the message's top-level sender and recipient headers, lower case."""
    head = email.message_from_bytes(
        raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0], policy=default
    )
    values: list[str] = []
    for name in PARTIES:
        try:
            values += [str(v) for v in head.get_all(name) or ()]
        except Exception:  # a header too broken to read names nobody
            continue
    return [addr.strip().lower() for _, addr in getaddresses(values) if "@" in addr]


def redact(raw: bytes, traces: Traces) -> bytes:
    """The message with every trace of the person replaced by [erased]; when a part cannot be
    rewritten, a plain rendering of the message's text (itself redacted) takes its place."""
    near = traces.found_address(raw)
    try:
        out = _rewrite(raw, traces, near)
    except Exception:  # malformed MIME the library cannot write back
        out = None
    if out is None or traces.found(out, near=near):
        out = _rendering(raw, traces, near)
    return out


def _rewrite(raw: bytes, traces: Traces, near: bool) -> bytes | None:
    msg = email.message_from_bytes(raw, policy=default)
    for part in msg.walk():
        if not part.is_multipart():
            _part(part, traces, near)
        _headers(part, traces, near)
    return msg.as_bytes(policy=SMTP)


def _headers(part: EmailMessage, traces: Traces, near: bool) -> None:
    items = list(part.raw_items())
    if not any(
        traces.found(v, near=near) or traces.found(str(part.get(k, "")), near=near)
        for k, v in items
    ):
        return
    for name in {k for k, _ in items}:
        del part[name]
    for name, value in items:
        header = default.header_fetch_parse(name, value)
        if traces.found(value, near=near) or traces.found(str(header), near=near):
            part[name] = traces.scrub_text(" ".join(str(header).split()), near=near)
        else:
            part[name] = header


def _part(part: EmailMessage, traces: Traces, near: bool) -> None:
    payload = part.get_payload(decode=True)  # bytes, or None for a multipart
    data = payload if isinstance(payload, bytes) else b""
    if part.get_content_maintype() == "text":
        charset = part.get_content_charset() or "utf-8"
        try:
            text = data.decode(charset, "replace")
        except LookupError:
            text = data.decode("utf-8", "replace")
        if traces.found(text, near=near) or traces.found(data, near=near):
            part.set_content(
                traces.scrub_text(text, near=near),
                subtype=part.get_content_subtype(),
                charset="utf-8",
                disposition=part.get_content_disposition(),
                filename=part.get_filename(),
            )
    elif part.get_content_type() != "message/rfc822" and traces.found(data, near=near):
        part.set_content(REMOVED, disposition=part.get_content_disposition())


def _rendering(raw: bytes, traces: Traces, near: bool) -> bytes:
    """A plain message with the redacted text of each part, for mail that cannot be rewritten."""
    texts: list[str] = []
    subject = ""
    try:
        msg = email.message_from_bytes(raw, policy=default)
        subject = str(msg.get("subject", "") or "")
        for part in msg.walk():
            if part.get_content_maintype() == "text" and not part.is_multipart():
                try:
                    texts.append(str(part.get_content()))
                except Exception:
                    continue
    except Exception:
        texts = []
    out = EmailMessage()
    out["Subject"] = traces.scrub_text(" ".join(subject.split()), near=near) or ERASED
    out["Date"] = formatdate(usegmt=True)
    body = "\n\n".join([RENDERED] + [traces.scrub_text(t, near=near) for t in texts])
    out.set_content(body, cte="quoted-printable")
    data = out.as_bytes(policy=SMTP)
    if traces.found(data, near=near):  # never keep what could not be blotted out
        fallback = EmailMessage()
        fallback["Subject"] = ERASED
        fallback.set_content(RENDERED)
        data = fallback.as_bytes(policy=SMTP)
    return data
