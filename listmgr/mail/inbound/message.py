"""Defensive views of a parsed message: decoded headers, addresses, parts, report fields,
the embedded original. Every helper answers something sensible for malformed mail."""

from __future__ import annotations

import contextlib
import email
import re
from collections.abc import Iterator
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import parseaddr
from typing import Any

from listmgr.mail.inbound.classification import Envelope

TEXT_LIMIT = 200_000  # characters of a body we look at
HEAD_LIMIT = 65_536  # bytes of a message its headers are read from (head())
MAX_PARTS = 200  # MIME parts looked at
MAX_DEPTH = 20  # MIME nesting looked into

ADDR_RE = re.compile(
    r"[\w.!#$%&'*+/=?^`{|}~-]+@[^\W_](?:[\w-]*[^\W_])?(?:\.[^\W_](?:[\w-]*[^\W_])?)+"
)


def _text(value: Any) -> str:
    """A str with any undecodable bytes turned into U+FFFD."""
    try:
        s = str(value)
    except Exception:
        return ""
    try:
        return s.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeError:
        return s.encode("utf-8", "replace").decode("utf-8", "replace")


def header(msg: Message | None, name: str) -> str:
    """Decoded, unfolded value of a header ('' when absent or undecodable)."""
    if msg is None:
        return ""
    try:
        value = msg.get(name)
    except Exception:
        return ""
    if value is None:
        return ""
    return decoded(value)


def decoded(value: Any) -> str:
    """A header value with encoded words decoded, unfolded."""
    value = _text(value)
    if "=?" in value:  # without it, decode_header finds no encoded word and changes nothing
        with contextlib.suppress(Exception):
            value = str(make_header(decode_header(value)))
    return " ".join(value.split())


def headers(msg: Message | None, name: str) -> list[str]:
    if msg is None:
        return []
    try:
        return [" ".join(_text(v).split()) for v in (msg.get_all(name) or [])]
    except Exception:
        return []


def addresses(text: str) -> list[str]:
    """Addresses in a header value or text, lower-cased, in order, without duplicates."""
    out: list[str] = []
    for a in ADDR_RE.findall(text or ""):
        a = a.lower().strip(".")
        if a not in out:
            out.append(a)
    return out


def sender_address(msg: Message, envelope: Envelope) -> str:
    for name in ("From", "Sender", "Reply-To"):
        value = header(msg, name)
        if value:
            try:
                # the address from the raw value: an encoded word is a display name, and
                # "=?utf-8?q?victim=40example.org?= <eve@evil.example>" is Eve
                addr = parseaddr(" ".join(_text(msg.get(name)).split()))[1]
                addr = addr if "=?" not in addr else ""
            except Exception:
                addr = ""
            found = addresses(addr) or addresses(value)
            if found:
                return found[0]
    return (addresses(envelope.sender) or [""])[0]


def decode_part(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if not isinstance(payload, bytes):  # None: a multipart (or a failed decode)
        p = part.get_payload()
        return _text(p) if isinstance(p, str) else ""
    charset = "utf-8"
    with contextlib.suppress(Exception):
        charset = part.get_content_charset() or "utf-8"
    try:
        return payload[: TEXT_LIMIT * 2].decode(charset, "replace")
    except (LookupError, UnicodeError, ValueError):
        return payload[: TEXT_LIMIT * 2].decode("utf-8", "replace")


def ctype(part: Message) -> str:
    try:
        return part.get_content_type().lower()
    except Exception:
        return "text/plain"


def walk(msg: Message, into_messages: bool = False) -> Iterator[Message]:
    """The parts of a message, depth first, at most MAX_PARTS of them and MAX_DEPTH deep;
    embedded messages are not entered unless asked."""
    for part, _ in typed_walk(msg, into_messages):
        yield part


def typed_walk(msg: Message, into_messages: bool = False) -> Iterator[tuple[Message, str]]:
    """The parts `walk` gives, each with its content type (`ctype`)."""
    stack: list[tuple[Message, int]] = [(msg, 0)]
    seen = 0
    while stack and seen < MAX_PARTS:
        part, depth = stack.pop()
        seen += 1
        ct = ctype(part)
        yield part, ct
        payload = part.get_payload()
        if not isinstance(payload, list) or depth >= MAX_DEPTH:
            continue
        if ct.startswith("message/") and not into_messages:
            continue
        stack.extend((sub, depth + 1) for sub in reversed(payload) if isinstance(sub, Message))


# A line starting "--" and something else than white space. The search starts with the
# newline, a literal the regex engine skips to quickly (a lookbehind would be tried at every byte).
_DELIMITER_LINE = re.compile(rb"\n--[^\s]")
_DELIMITER_FIRST = re.compile(rb"--[^\s]")


def bounded(raw: bytes, max_parts: int = MAX_PARTS) -> tuple[bytes, bool]:
    """The message cut just before the boundary line that could open part max_parts + 1, and
    whether anything was cut. Every MIME part after the first follows a line starting "--"
    (its boundary), so the cut message parses into at most max_parts parts however many the
    sender put in: the parser builds every part it meets, and 100,000 of them take seconds."""
    seen = 0
    if _DELIMITER_FIRST.match(raw):
        seen = 1
        if seen >= max_parts:
            return raw[:0], True
    for found in _DELIMITER_LINE.finditer(raw):
        seen += 1
        if seen >= max_parts:
            return raw[: found.start() + 1], True
    return raw, False


# A line ending followed by an empty line: the header block has ended by then.
_EMPTY_LINE = re.compile(rb"\n\n|\n\r|\r\r")


def head(raw: bytes) -> Message:
    """The headers of a raw message (within its first HEAD_LIMIT bytes), parsed with compat32.
    The header parser stops at the first empty line, so what follows it is not handed over:
    it would only be read into a payload nobody looks at."""
    end = _EMPTY_LINE.search(raw, 0, HEAD_LIMIT)
    return BytesHeaderParser(policy=compat32).parsebytes(
        raw[: end.end() if end else HEAD_LIMIT], headersonly=True
    )


def parse(
    raw: bytes, *, policy: Any = compat32, max_parts: int = MAX_PARTS
) -> tuple[Message, bool]:
    """The message parsed into at most max_parts parts, and whether parts were cut."""
    head, cut = bounded(raw, max_parts)
    return email.message_from_bytes(head, policy=policy), cut


def outline(msg: Message, max_parts: int = MAX_PARTS) -> list[dict[str, Any]]:
    """Type, file name and decoded size of each part (at most max_parts), for showing."""
    out: list[dict[str, Any]] = []
    stack: list[tuple[Message, int]] = [(msg, 0)]
    while stack and len(out) < max_parts:
        part, depth = stack.pop()
        payload = part.get_payload()
        multipart = isinstance(payload, list)
        try:
            filename = _text(part.get_filename() or "")[:200]
        except Exception:
            filename = ""
        out.append(
            {
                "type": ctype(part),
                "depth": depth,
                "filename": filename,
                "size": 0 if multipart else len(payload or ""),
            }
        )
        if isinstance(payload, list) and depth < MAX_DEPTH:
            stack.extend((sub, depth + 1) for sub in reversed(payload) if isinstance(sub, Message))
    return out


def structure(
    raw: bytes, *, policy: Any = compat32, max_parts: int = MAX_PARTS
) -> tuple[Message | None, list[dict[str, Any]], bool]:
    """For showing a message: the parsed message (None when unreadable), the outline of at
    most max_parts parts, and whether parts were cut."""
    try:
        msg, cut = parse(raw, policy=policy, max_parts=max_parts)
        return msg, outline(msg, max_parts), cut
    except Exception:
        return None, [], False


def body_text(msg: Message | None, kind: str) -> str | None:
    """The first text/<kind> part that is not an attachment, decoded (None when there is none)."""
    if msg is None:
        return None
    for part, ct in typed_walk(msg):
        if ct == f"text/{kind}" and not is_attachment(part):
            return decode_part(part)
    return None


def is_attachment(part: Message) -> bool:
    return "attachment" in header(part, "Content-Disposition").lower()


_BLANK_LINE = re.compile(r"\r?\n[ \t]*\r?\n")


def block_fields(part: Message) -> list[dict[str, str]]:
    """Field blocks of a message/delivery-status or message/feedback-report part."""
    text = ""
    try:
        payload = part.get_payload()
        if isinstance(payload, list):
            chunks = []
            for sub in payload:
                if isinstance(sub, Message):
                    chunks.append("\n".join(f"{k}: {_text(v)}" for k, v in sub.items()))
                    if isinstance(sub.get_payload(), str):
                        chunks.append(decode_part(sub))  # 8-bit (global) reports are UTF-8
            text = "\n\n".join(chunks)
        else:
            text = decode_part(part)
    except Exception:
        return []
    blocks: list[dict[str, str]] = []
    for chunk in _BLANK_LINE.split(text[:TEXT_LIMIT]):
        fields: dict[str, str] = {}
        last = ""
        for line in chunk.splitlines():
            if line[:1] in (" ", "\t") and last:
                fields[last] += " " + line.strip()
                continue
            name, sep, value = line.partition(":")
            if sep and name.strip() and " " not in name.strip():
                last = name.strip().lower()
                fields[last] = value.strip() if last not in fields else fields[last]
        if fields:
            blocks.append(fields)
    return blocks


EMBEDDED_TYPES = (
    "message/rfc822",
    "message/global",
    "message/rfc822-headers",
    "message/global-headers",
    "text/rfc822-headers",
    "text/rfc822",
)


def embedded(msg: Message) -> Message | None:
    """The original message (or its headers) a report or bounce carries."""
    for part, ct in typed_walk(msg, into_messages=True):
        if ct in EMBEDDED_TYPES:
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
            return email.message_from_string(decode_part(part)[:TEXT_LIMIT])
    return None
