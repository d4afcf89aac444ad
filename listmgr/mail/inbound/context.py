"""One message being classified: parsed once, with lazy views the rules share, and the
builder of the `Classification` every rule answers with."""

from __future__ import annotations

import email
import email.policy
import json
import re
from collections.abc import Iterator
from email.message import Message
from typing import TYPE_CHECKING, Any

from listmgr.mail.inbound.classification import Classification, Envelope
from listmgr.mail.inbound.htmltext import html_to_text
from listmgr.mail.inbound.message import (
    TEXT_LIMIT,
    addresses,
    decode_part,
    embedded,
    header,
    headers,
    is_attachment,
    parse,
    sender_address,
    typed_walk,
)

if TYPE_CHECKING:  # pragma: no cover
    from listmgr.tokens import Tokens


DAEMON_LOCAL_RE = re.compile(
    r"^(?:mailer[-_.]?daemon|mail[-_.]?daemon|postmaster|post_master|poostmaster|double-bounce"
    r"|mdaemon|mail[-_.]?delivery(?:[-_.]?system)?|nobody|mail[-_.]?administrator|ndr|bounce[sd]?"
    r"|mail[-_.]?system|returned[-_.]?mail|mailer|sysadmin|owner-[\w.-]+|[\w.-]+-(?:admin|owner))$",
    re.IGNORECASE,
)

DAEMON_STRICT_RE = re.compile(
    r"^(?:mailer[-_.]?daemon|mail[-_.]?daemon|postmaster|double-bounce)$", re.IGNORECASE
)

DAEMON_NAME_RE = re.compile(
    r"mailer[- ]?daemon|mail delivery (?:system|subsystem)|mail deliver system|postmaster"
    r"|mail administrator|system administrator|ndr administrator|mail system|delivery subsystem",
    re.IGNORECASE,
)


class Context:
    """One message being classified, with lazily computed views of it."""

    def __init__(
        self,
        raw: bytes,
        envelope: Envelope,
        tokens: Tokens | None,
        mail_domain: str,
        authserv_id: str = "",
    ) -> None:
        self.raw = raw
        self.authserv_id = authserv_id  # the operator's MTA in Authentication-Results
        self.envelope = envelope
        self.tokens = tokens
        self.mail_domain = mail_domain
        # At most MAX_PARTS parts are parsed: a message of 100,000 parts classifies as fast as
        # one of 200 (what lies past them is not looked at anyway, see walk()).
        self.msg, self.cut = parse(raw, policy=email.policy.compat32)
        # Every rule asks for the same few headers and parts: each is looked up once.
        self._header: dict[str, str] = {}
        self._headers: dict[str, list[str]] = {}
        self._parts: list[tuple[Message, str]] | None = None
        self.subject = self.header("Subject")
        self.sender = sender_address(self.msg, envelope)
        self._text: str | None = None
        self._bodies: dict[int, str] = {}  # decoded text parts, by id of the part
        self._original: Any = False

    # -- views ------------------------------------------------------------------------------
    def header(self, name: str) -> str:
        """The message's header `name`, decoded (`message.header`)."""
        value = self._header.get(name)
        if value is None:
            value = self._header[name] = header(self.msg, name)
        return value

    def headers(self, name: str) -> list[str]:
        """Every value of the message's header `name`, unfolded (`message.headers`)."""
        values = self._headers.get(name)
        if values is None:
            values = self._headers[name] = headers(self.msg, name)
        return list(values)

    @property
    def parts(self) -> list[tuple[Message, str]]:
        """The message's own parts with their content types (`message.typed_walk`)."""
        if self._parts is None:
            self._parts = list(typed_walk(self.msg))
        return self._parts

    @property
    def content_type(self) -> str:
        """The message's own content type (`message.ctype`)."""
        return self.parts[0][1]

    def _text_parts(self) -> Iterator[tuple[Message, str]]:
        """The parts the notification text is made of: the own text parts (not a copy of
        headers, nor an attachment but in plain text), and a multipart without usable
        boundary."""
        for part, ct in self.parts:
            if (
                ct.startswith("text/")
                and ct != "text/rfc822-headers"
                and not (is_attachment(part) and ct != "text/plain")
            ) or (ct.startswith("multipart/") and isinstance(part.get_payload(), str)):
                yield part, ct

    def _decoded(self, part: Message) -> str:
        body = self._bodies.get(id(part))
        if body is None:
            body = self._bodies[id(part)] = decode_part(part)
        return body

    def mentions(self, *words: str) -> bool:
        """Whether the notification's text parts, decoded but HTML still as its source, hold
        one of `words`: true wherever the notification text holds one, unless markup splits
        it. Cheaper than the text when the message has HTML."""
        return any(w in self._decoded(part) for part, _ in self._text_parts() for w in words)

    @property
    def notification_text(self) -> str:
        """Text of the message's own parts (not of an embedded original)."""
        if self._text is None:
            chunks: list[str] = []
            size = 0
            for part, ct in self._text_parts():
                body = self._decoded(part)
                chunks.append(html_to_text(body, strip_quotes=False) if ct == "text/html" else body)
                size += len(chunks[-1])
                if size > TEXT_LIMIT:
                    break
            self._text = "\n".join(chunks)[:TEXT_LIMIT]
        return self._text

    @property
    def original(self) -> Message | None:
        if self._original is False:
            try:
                self._original = embedded(self.msg)
            except Exception:
                self._original = None
        return self._original

    def recipient_addresses(self) -> list[str]:
        """Where this message was delivered: envelope first, then the usual headers."""
        out = list(self.envelope.recipients)
        for name in (
            "Delivered-To",
            "X-Original-To",
            "Envelope-To",
            "X-Envelope-To",
            "To",
            "Cc",
            "X-Original-Recipient",
            "X-Failed-Recipients-To",
        ):
            out.extend(self.headers(name))
        return out

    def auto_submitted(self) -> str:
        value = self.header("Auto-Submitted").lower().split(";")[0].strip()
        return "" if value in ("", "no") else value

    def null_sender(self) -> bool:
        """The message came from the null reverse path (<>), as bounces and many auto-replies."""
        return (
            self.header("Return-Path").replace(" ", "") == "<>"
            or self.envelope.sender.strip() == "<>"
        )

    def looks_like_daemon(self) -> bool:
        local = self.sender.split("@")[0]
        from_value = self.header("From")
        return_path = (addresses(self.header("Return-Path")) or [""])[0].split("@")[0]
        return bool(
            DAEMON_LOCAL_RE.match(local)
            or DAEMON_NAME_RE.search(from_value)
            or "<>" in from_value.replace(" ", "")
            or (return_path and DAEMON_STRICT_RE.match(return_path))
        )

    # -- result -----------------------------------------------------------------------------
    def result(
        self,
        kind: str,
        *,
        rule: str,
        permanent: bool | None = None,
        recipients: list[str] | tuple[str, ...] = (),
        ids: tuple = (None, None, None),
        confidence: float = 0.5,
        **evidence: Any,
    ) -> Classification:
        evidence = {"rule": rule, **evidence}
        auth = self.headers("Authentication-Results")
        if auth:
            evidence.setdefault("authentication_results", auth[:5])
        seen = {
            h: self.header(h)
            for h in ("From", "Subject", "Auto-Submitted", "Return-Path", "Precedence")
            if self.header(h)
        }
        evidence.setdefault("headers", seen)
        evidence.setdefault("from", self.sender)
        recips = tuple(dict.fromkeys(r.lower() for r in recipients if r))
        return Classification(
            kind,
            permanent if kind == "bounce" else None,
            recips,
            ids[0],
            ids[1],
            ids[2],
            _jsonable(evidence),
            confidence,
        )


def _jsonable(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return {"rule": str(value.get("rule", "?")) if isinstance(value, dict) else "?"}
