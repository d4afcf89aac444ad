"""Classify one inbound message: bounce, complaint, auto-reply, unsubscribe request, or other.

Pure: no database, no web, no network. `classify()` never raises; whatever it is given, it
answers with a `Classification` (kind "other" when nothing fits, or when the input is garbage).

Order of the rules (the first that fits wins):
 1. Amazon SES notifications (SNS JSON): Bounce, Complaint, Delivery (= other).
 2. RFC 5965 feedback reports (ARF)                       -> complaint
 3. RFC 3464 delivery status (incl. global)               -> bounce, or other for success reports
 4. non-ARF provider complaints (Hotmail/Outlook JMRP...)  -> complaint
 5. mail to unsubscribe+TOKEN@MAIL_DOMAIN; Apple Mail's X-Apple-Unsubscribe -> unsubscribe
 6. non-standard bounces: flufl.bounce, then mailer-daemon heuristics -> bounce
    (a bounce stays a bounce even when it carries Auto-Submitted)
 7. RFC 3834 auto-replies and vacation subjects           -> autoreply
 8. a human reply whose subject or first own lines ask to unsubscribe -> unsubscribe
 9. everything else                                       -> other

Subscriber/list/campaign ids come from our signed tokens only (VERP bounces+TOKEN@, the
List-Unsubscribe of an embedded original, unsubscribe+TOKEN@), never from a guessed address.
Without a `Tokens` instance tokens are not verified and ids stay None.
"""
from __future__ import annotations

import email
import email.policy
import json
import logging
import re
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import Message
from email.utils import parseaddr
from typing import TYPE_CHECKING, Any, Iterator

from listmgr.mail import unsubscribe_phrases as phrases

if TYPE_CHECKING:  # pragma: no cover
    from listmgr.tokens import Tokens

__all__ = ["Envelope", "Classification", "classify", "KINDS"]

KINDS = ("bounce", "complaint", "autoreply", "unsubscribe", "other")
TEXT_LIMIT = 200_000          # characters of a body we look at
REPLY_LIMIT = 12_000          # characters handed to the reply parser
REPLY_LINE_LIMIT = 300        # characters of one line handed to the reply parser
MAX_PARTS = 200               # MIME parts looked at
MAX_DEPTH = 20                # MIME nesting looked into
FLUFL_LIMIT = 1_000_000       # bytes of a message handed to flufl.bounce's detectors
REPLY_LINES = 8               # "first lines" of a reply that may ask to unsubscribe

logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)  # it logs every detector run


@dataclass(frozen=True)
class Envelope:
    """SMTP envelope, when the entry point knows it (LMTP/SMTP listener, MTA pipe)."""

    sender: str = ""
    recipients: tuple[str, ...] = ()


@dataclass(frozen=True)
class Classification:
    kind: str                         # one of KINDS
    permanent: bool | None = None     # bounces: hard (True) / soft (False)
    recipients: tuple[str, ...] = ()  # failed / complained-about / unsubscribing addresses
    subscriber_id: int | None = None
    list_id: int | None = None
    campaign_id: int | None = None
    evidence: dict = field(default_factory=dict)
    confidence: float = 0.5


def classify(raw: bytes, envelope: Envelope | None = None, *, tokens: "Tokens | None" = None,
             mail_domain: str = "") -> Classification:
    """Classify raw RFC 5322 bytes. Never raises."""
    try:
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        if not isinstance(raw, (bytes, bytearray, memoryview)):
            return Classification("other", evidence={"rule": "not-bytes"}, confidence=0.0)
        ctx = _Context(bytes(raw), envelope or Envelope(), tokens, (mail_domain or "").lower())
        for rule in _RULES:
            result = rule(ctx)
            if result is not None:
                return result
        return ctx.result("other", rule="no-rule", confidence=0.5)
    except Exception as exc:  # noqa: BLE001 - classification must never fail
        return Classification("other", evidence={"rule": "error", "error": repr(exc)[:300]},
                              confidence=0.0)


# ----------------------------------------------------------------------------- helpers

ADDR_RE = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[^\W_](?:[\w-]*[^\W_])?(?:\.[^\W_](?:[\w-]*[^\W_])?)+")
TOKEN_ADDR_RE = re.compile(r"\b(bounces|unsubscribe)\+([A-Za-z0-9_.\-]+)@([A-Za-z0-9.\-]+)",
                           re.IGNORECASE)
TOKEN_URL_RE = re.compile(r"/u/([A-Za-z0-9_.\-]+)")
STATUS_RE = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
SMTP_CODE_RE = re.compile(r"(?:^|[\s:(\[\"'])([45])\d\d(?=[\s\-:)\]])", re.MULTILINE)
DAEMON_LOCAL_RE = re.compile(
    r"^(?:mailer[-_.]?daemon|mail[-_.]?daemon|postmaster|post_master|poostmaster|double-bounce"
    r"|mdaemon|mail[-_.]?delivery(?:[-_.]?system)?|nobody|mail[-_.]?administrator|ndr|bounce[sd]?"
    r"|mail[-_.]?system|returned[-_.]?mail|mailer|sysadmin|owner-[\w.-]+|[\w.-]+-(?:admin|owner))$",
    re.IGNORECASE)
DAEMON_STRICT_RE = re.compile(r"^(?:mailer[-_.]?daemon|mail[-_.]?daemon|postmaster|double-bounce)$",
                              re.IGNORECASE)
DAEMON_NAME_RE = re.compile(
    r"mailer[- ]?daemon|mail delivery (?:system|subsystem)|mail deliver system|postmaster"
    r"|mail administrator|system administrator|ndr administrator|mail system|delivery subsystem",
    re.IGNORECASE)
BOUNCE_SUBJECT_RE = re.compile(
    r"undeliver|undelivered|not (?:be )?delivered|delivery (?:status notification|failure|failed"
    r"|problem|error|report|notification|has failed|delayed|warning)|returned mail|return(?:ed)? to sender"
    r"|mail delivery failed|failure notice|non[- ]?delivery|nondeliverable|mail system error"
    r"|mail (?:failure|error)|delivery status|could not send|error sending|bounce notification"
    r"|delayed mail|warning: could not|message not delivered|unzustellbar|nicht zustellbar"
    r"|non remis|non recapitabile|onbestelbaar|olevererbar|nao entregue|no entregado"
    r"|are not member|loop alert|mail could not be delivered|delivery notification"
    r"|smtp server: errors from",
    re.IGNORECASE)
FAILURE_TEXT_RE = re.compile(
    r"could ?n[o']t be delivered|was not delivered|undeliverable|delivery (?:has )?failed"
    r"|delivery to the following recipient|permanent(?:ly)? (?:error|failure|fatal)|fatal error"
    r"|user unknown|unknown user|no such (?:user|mailbox|recipient|address)|mailbox (?:is )?(?:full"
    r"|unavailable|not found|disabled)|does not exist|doesn'?t exist|recipient address rejected"
    r"|unable to deliver|returned to sender|could not deliver|delivery attempts? (?:will continue"
    r"|failed)|has not yet been delivered|message (?:was )?rejected|invalid (?:recipient|address|user)"
    r"|over ?quota|quota exceeded|host unknown|error (?:occurred )?(?:delivering|sending)"
    r"|not (?:a )?member|mailbox full|relay(?:ing)? denied|couldn'?t be delivered"
    r"|(?:was|been|were|is|has) rejected|rejected (?:by|your|the|for|address|recipient)"
    r"|transcript of session follows|duplicated message-id",
    re.IGNORECASE)
TEMPORARY_TEXT_RE = re.compile(
    r"delay|deferred|will (?:continue to )?(?:be )?retr|still (?:be(?:ing)? )?(?:retr|tr)|temporar"
    r"|try again later|has not yet been delivered|could not send mail for past|warning"
    r"|mailbox (?:is )?full|over ?quota|quota exceeded|insufficient (?:disk )?space",
    re.IGNORECASE)
AUTOREPLY_SUBJECT_RE = re.compile(  # run on normalized subjects (no accents)
    r"out of (?:the )?office|automatic reply|auto[- ]?reply|auto[- ]?respon|autorespons"
    r"|automatische (?:antwort|nachricht)|abwesenheitsnotiz|reponse automatique"
    r"|respuesta automatica|fuera de (?:la )?oficina|risposta automatica|fuori (?:sede|ufficio)"
    r"|automatisch antwoord|buiten kantoor|resposta automatica|fora do escritorio"
    r"|automatiskt svar|ej pa kontoret|autoodpowiedz|odpowiedz automatyczna"
    r"|away from (?:the office|my desk|email)|is out of the office")
AUTOREPLY_SUBJECT_START_RE = re.compile(  # only when the subject starts with them
    r"^(?:vacation|on vacation|on holiday|away until|away|on leave|abwesend|abwesenheit|urlaub"
    r"|absence|absent|absente|vacances|en conges|ausente|vacaciones|assente|vacanze|ferie"
    r"|afwezig|vakantie|ferias|frånvaro|franvaro|semester|nieobecnosc|urlop)\b")
HARD_TEXT_RE = re.compile(
    r"user unknown|unknown user|no such (?:user|mailbox|recipient|address|domain)|does ?n[o']t exist"
    r"|invalid (?:recipient|address|user|mailbox)|recipient (?:address )?rejected|address rejected"
    r"|host unknown|unknown host|domain not found|not found|account (?:is )?(?:disabled|closed"
    r"|deleted|inactive)|mailbox (?:unavailable|disabled|not found)|unrouteable|permanent",
    re.IGNORECASE)
AUTOREPLY_HEADERS = ("x-autoreply", "x-autorespond", "x-autoresponder", "x-auto-reply",
                     "x-autogenerated", "x-mail-autoreply", "x-autoreply-from")
AUTOREPLY_PRECEDENCE = ("auto_reply", "auto-reply", "autoreply")


def _text(value: Any) -> str:
    """A str with any undecodable bytes turned into U+FFFD."""
    try:
        s = str(value)
    except Exception:  # noqa: BLE001
        return ""
    try:
        return s.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeError:
        return s.encode("utf-8", "replace").decode("utf-8", "replace")


def _header(msg: Message | None, name: str) -> str:
    """Decoded, unfolded value of a header ('' when absent or undecodable)."""
    if msg is None:
        return ""
    try:
        value = msg.get(name)
    except Exception:  # noqa: BLE001
        return ""
    if value is None:
        return ""
    value = _text(value)
    try:
        value = str(make_header(decode_header(value)))
    except Exception:  # noqa: BLE001
        pass
    return " ".join(value.split())


def _headers(msg: Message | None, name: str) -> list[str]:
    if msg is None:
        return []
    try:
        return [" ".join(_text(v).split()) for v in (msg.get_all(name) or [])]
    except Exception:  # noqa: BLE001
        return []


def _addresses(text: str) -> list[str]:
    """Addresses in a header value or text, lower-cased, in order, without duplicates."""
    out: list[str] = []
    for a in ADDR_RE.findall(text or ""):
        a = a.lower().strip(".")
        if a not in out:
            out.append(a)
    return out


def _sender(msg: Message, envelope: Envelope) -> str:
    for name in ("From", "Sender", "Reply-To"):
        value = _header(msg, name)
        if value:
            try:
                addr = parseaddr(value)[1]
            except Exception:  # noqa: BLE001
                addr = ""
            found = _addresses(addr) or _addresses(value)
            if found:
                return found[0]
    return (_addresses(envelope.sender) or [""])[0]


def _decode_part(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001
        payload = None
    if payload is None:
        p = part.get_payload()
        return _text(p) if isinstance(p, str) else ""
    charset = "utf-8"
    try:
        charset = part.get_content_charset() or "utf-8"
    except Exception:  # noqa: BLE001
        pass
    try:
        return payload[:TEXT_LIMIT * 2].decode(charset, "replace")
    except (LookupError, UnicodeError, ValueError):
        return payload[:TEXT_LIMIT * 2].decode("utf-8", "replace")


def _ctype(part: Message) -> str:
    try:
        return part.get_content_type().lower()
    except Exception:  # noqa: BLE001
        return "text/plain"


def _walk(msg: Message, into_messages: bool = False) -> Iterator[Message]:
    """The parts of a message, depth first, at most MAX_PARTS of them and MAX_DEPTH deep;
    embedded messages are not entered unless asked."""
    stack: list[tuple[Message, int]] = [(msg, 0)]
    seen = 0
    while stack and seen < MAX_PARTS:
        part, depth = stack.pop()
        seen += 1
        yield part
        payload = part.get_payload()
        if not isinstance(payload, list) or depth >= MAX_DEPTH:
            continue
        if _ctype(part).startswith("message/") and not into_messages:
            continue
        stack.extend((sub, depth + 1) for sub in reversed(payload) if isinstance(sub, Message))


def _is_attachment(part: Message) -> bool:
    return "attachment" in _header(part, "Content-Disposition").lower()


def _block_fields(part: Message) -> list[dict[str, str]]:
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
                        chunks.append(_decode_part(sub))  # 8-bit (global) reports are UTF-8
            text = "\n\n".join(chunks)
        else:
            text = _decode_part(part)
    except Exception:  # noqa: BLE001
        return []
    blocks: list[dict[str, str]] = []
    for chunk in re.split(r"\r?\n[ \t]*\r?\n", text[:TEXT_LIMIT]):
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


EMBEDDED_TYPES = ("message/rfc822", "message/global", "message/rfc822-headers",
                  "message/global-headers", "text/rfc822-headers", "text/rfc822")


def _embedded(msg: Message) -> Message | None:
    """The original message (or its headers) a report or bounce carries."""
    for part in _walk(msg, into_messages=True):
        if _ctype(part) in EMBEDDED_TYPES:
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
            return email.message_from_string(_decode_part(part)[:TEXT_LIMIT])
    return None


# ----------------------------------------------------------------------------- context

class _Context:
    """One message being classified, with lazily computed views of it."""

    def __init__(self, raw: bytes, envelope: Envelope, tokens: "Tokens | None",
                 mail_domain: str) -> None:
        self.raw = raw
        self.envelope = envelope
        self.tokens = tokens
        self.mail_domain = mail_domain
        self.msg: Message = email.message_from_bytes(raw, policy=email.policy.compat32)
        self.subject = _header(self.msg, "Subject")
        self.sender = _sender(self.msg, envelope)
        self._text: str | None = None
        self._original: Any = False

    # -- views ------------------------------------------------------------------------------
    @property
    def notification_text(self) -> str:
        """Text of the message's own parts (not of an embedded original)."""
        if self._text is None:
            chunks: list[str] = []
            size = 0
            for part in _walk(self.msg):
                ct = _ctype(part)
                if ct.startswith("text/") and ct not in ("text/rfc822-headers",) and not (
                        _is_attachment(part) and ct != "text/plain"):
                    body = _decode_part(part)
                    if ct == "text/html":
                        body = _html_to_text(body, strip_quotes=False)
                    chunks.append(body)
                elif ct.startswith("multipart/") and isinstance(part.get_payload(), str):
                    chunks.append(_decode_part(part))  # a multipart without usable boundary
                else:
                    continue
                size += len(chunks[-1])
                if size > TEXT_LIMIT:
                    break
            self._text = "\n".join(chunks)[:TEXT_LIMIT]
        return self._text

    @property
    def original(self) -> Message | None:
        if self._original is False:
            try:
                self._original = _embedded(self.msg)
            except Exception:  # noqa: BLE001
                self._original = None
        return self._original

    def recipient_addresses(self) -> list[str]:
        """Where this message was delivered: envelope first, then the usual headers."""
        out = list(self.envelope.recipients)
        for name in ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To", "Cc",
                     "X-Original-Recipient", "X-Failed-Recipients-To"):
            out.extend(_headers(self.msg, name))
        return out

    def auto_submitted(self) -> str:
        value = _header(self.msg, "Auto-Submitted").lower().split(";")[0].strip()
        return "" if value in ("", "no") else value

    def null_sender(self) -> bool:
        """The message came from the null reverse path (<>), as bounces and many auto-replies."""
        return _header(self.msg, "Return-Path").replace(" ", "") == "<>" or \
            self.envelope.sender.strip() == "<>"

    def looks_like_daemon(self) -> bool:
        local = self.sender.split("@")[0]
        from_value = _header(self.msg, "From")
        return_path = (_addresses(_header(self.msg, "Return-Path")) or [""])[0].split("@")[0]
        return bool(DAEMON_LOCAL_RE.match(local) or DAEMON_NAME_RE.search(from_value)
                    or "<>" in from_value.replace(" ", "") or (
                        return_path and DAEMON_STRICT_RE.match(return_path)))

    # -- tokens -----------------------------------------------------------------------------
    def find_tokens(self, kind: str, texts: list[str]) -> list[str]:
        """Syntactically found kind+TOKEN@domain tokens (domain must be ours when known)."""
        found = []
        for text in texts:
            for prefix, tok, domain in TOKEN_ADDR_RE.findall(text or ""):
                if prefix.lower() != kind:
                    continue
                if self.mail_domain and domain.lower().rstrip(".") != self.mail_domain:
                    continue
                if tok not in found:
                    found.append(tok)
        return found

    def read_tokens(self, bounce_tokens: list[str], unsub_tokens: list[str],
                    evidence: dict) -> tuple[int | None, int | None, int | None]:
        """(subscriber, list, campaign) from the first token that verifies."""
        if not bounce_tokens and not unsub_tokens:
            return None, None, None
        evidence["token_found"] = True
        if self.tokens is None:
            evidence["token_verified"] = None
            return None, None, None
        for tok in bounce_tokens:
            try:
                sid, cid, lid = self.tokens.read_bounce(tok)
                evidence["token_verified"] = "bounce"
                return sid, lid, cid
            except Exception:  # noqa: BLE001 - TokenInvalid and anything odd
                continue
        for tok in unsub_tokens:
            try:
                t = self.tokens.read_unsubscribe(tok)
                evidence["token_verified"] = "unsubscribe"
                return t.subscriber_id, t.list_id, t.campaign_id
            except Exception:  # noqa: BLE001
                continue
        evidence["token_verified"] = False
        return None, None, None

    def original_tokens(self, original: Message | None,
                        extra_mail_from: list[str] = ()) -> tuple[list[str], list[str]]:
        """VERP and unsubscribe tokens named by an embedded original message."""
        unsub: list[str] = []
        verp = self.find_tokens("bounces", list(extra_mail_from))
        if original is not None:
            for value in _headers(original, "List-Unsubscribe"):
                for tok in TOKEN_URL_RE.findall(value) + self.find_tokens("unsubscribe", [value]):
                    if tok not in unsub:
                        unsub.append(tok)
            verp += [t for t in self.find_tokens(
                "bounces", _headers(original, "Return-Path") + _headers(original, "Sender")
                + _headers(original, "Errors-To")) if t not in verp]
        return verp, unsub

    # -- result -----------------------------------------------------------------------------
    def result(self, kind: str, *, rule: str, permanent: bool | None = None,
               recipients: list[str] | tuple[str, ...] = (), ids: tuple = (None, None, None),
               confidence: float = 0.5, **evidence: Any) -> Classification:
        evidence = {"rule": rule, **evidence}
        auth = _headers(self.msg, "Authentication-Results")
        if auth:
            evidence.setdefault("authentication_results", auth[:5])
        seen = {h: _header(self.msg, h) for h in ("From", "Subject", "Auto-Submitted",
                                                   "Return-Path", "Precedence")
                if _header(self.msg, h)}
        evidence.setdefault("headers", seen)
        evidence.setdefault("from", self.sender)
        recips = tuple(dict.fromkeys(r.lower() for r in recipients if r))
        return Classification(kind, permanent if kind == "bounce" else None, recips,
                              ids[0], ids[1], ids[2], _jsonable(evidence), confidence)


def _jsonable(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return {"rule": str(value.get("rule", "?")) if isinstance(value, dict) else "?"}


# ----------------------------------------------------------------------------- rules

def _rule_ses(ctx: _Context) -> Classification | None:
    """Amazon SES event published through SNS (as mail or as a bare JSON body)."""
    text = ctx.raw.decode("utf-8", "replace") if ctx.raw.lstrip()[:1] == b"{" else ""
    if not text:
        if "amazonaws.com" not in ctx.sender and "notificationType" not in ctx.notification_text \
                and "eventType" not in ctx.notification_text:
            return None
        text = ctx.notification_text
    data = _ses_json(text)
    if not data:
        return None
    ntype = str(data.get("notificationType") or data.get("eventType") or "")
    mail = data.get("mail") if isinstance(data.get("mail"), dict) else {}
    headers = [f"{h.get('name')}: {h.get('value')}" for h in mail.get("headers") or []
               if isinstance(h, dict)]
    lu = [h.split(":", 1)[1] for h in headers if h.lower().startswith("list-unsubscribe:")]
    verp = ctx.find_tokens("bounces", [str(mail.get("source", ""))]
                           + [h for h in headers if h.lower().startswith("return-path:")])
    unsub = [t for v in lu for t in TOKEN_URL_RE.findall(v) + ctx.find_tokens("unsubscribe", [v])]
    ev: dict = {"ses_type": ntype}
    if ntype == "Bounce":
        b = data.get("bounce") or {}
        recips = [str(r.get("emailAddress", "")) for r in b.get("bouncedRecipients") or []
                  if isinstance(r, dict)]
        ids = ctx.read_tokens(verp, unsub, ev)
        return ctx.result("bounce", rule="ses-bounce", permanent=b.get("bounceType") == "Permanent",
                          recipients=_addresses(" ".join(recips)), ids=ids, confidence=0.99,
                          bounce_type=b.get("bounceType"), bounce_subtype=b.get("bounceSubType"),
                          status=[r.get("status") for r in b.get("bouncedRecipients") or []
                                  if isinstance(r, dict)], **ev)
    if ntype == "Complaint":
        c = data.get("complaint") or {}
        recips = [str(r.get("emailAddress", "")) for r in c.get("complainedRecipients") or []
                  if isinstance(r, dict)]
        ids = ctx.read_tokens(verp, unsub, ev)
        return ctx.result("complaint", rule="ses-complaint", recipients=_addresses(" ".join(recips)),
                          ids=ids, confidence=0.99,
                          feedback_type=c.get("complaintFeedbackType"), **ev)
    if ntype in ("Delivery", "Send", "Open", "Click", "Reject", "DeliveryDelay", "Rendering Failure"):
        if ntype == "DeliveryDelay":
            d = data.get("deliveryDelay") or {}
            recips = [str(r.get("emailAddress", "")) for r in d.get("delayedRecipients") or []
                      if isinstance(r, dict)]
            ids = ctx.read_tokens(verp, unsub, ev)
            return ctx.result("bounce", rule="ses-delay", permanent=False, ids=ids,
                              recipients=_addresses(" ".join(recips)), confidence=0.9, **ev)
        return ctx.result("other", rule="ses-" + ntype.lower(), confidence=0.95, **ev)
    return None


def _ses_json(text: str) -> dict | None:
    if "notificationType" not in text and "eventType" not in text:
        return None
    text = re.sub(r"!\r?\n ", "", text[:TEXT_LIMIT])  # SNS mail folds long lines as "!\n "
    decoder = json.JSONDecoder()
    for m in list(re.finditer(r"\{", text))[:3]:
        try:
            data, _ = decoder.raw_decode(text, m.start())
        except ValueError:
            continue
        if isinstance(data, dict) and isinstance(data.get("Message"), str):
            try:
                data = json.loads(data["Message"])
            except ValueError:
                continue
        if isinstance(data, dict) and ("notificationType" in data or "eventType" in data):
            return data
        break
    return None


def _rule_arf(ctx: _Context) -> Classification | None:
    """RFC 5965 feedback report."""
    report = None
    for part in _walk(ctx.msg, into_messages=False):
        if _ctype(part) == "message/feedback-report":
            report = part
            break
    if report is None:
        try:
            is_arf = (_ctype(ctx.msg) == "multipart/report"
                      and (ctx.msg.get_param("report-type") or "").lower() == "feedback-report")
        except Exception:  # noqa: BLE001
            is_arf = False
        if not is_arf:
            return None
    fields: dict[str, str] = {}
    for block in (_block_fields(report) if report is not None else []):
        for k, v in block.items():
            fields.setdefault(k, v)
    original = ctx.original
    verp, unsub = ctx.original_tokens(original, [fields.get("original-mail-from", "")])
    ev: dict = {"feedback_type": fields.get("feedback-type", "").lower() or None,
                "user_agent": fields.get("user-agent"), "report": {
                    k: fields[k] for k in ("source-ip", "reported-domain", "reporting-mta",
                                           "arrival-date", "authentication-results") if k in fields}}
    ids = ctx.read_tokens(verp, unsub, ev)
    recips = _addresses(fields.get("original-rcpt-to", "") + " " + fields.get("removal-recipient", ""))
    if not recips and original is not None:
        recips = _addresses(_header(original, "To"))
    return ctx.result("complaint", rule="arf", recipients=recips, ids=ids, confidence=0.99, **ev)


def _rule_dsn(ctx: _Context) -> Classification | None:
    """RFC 3464 delivery status notification (also message/global-delivery-status)."""
    parts = [p for p in _walk(ctx.msg) if _ctype(p) in ("message/delivery-status",
                                                          "message/global-delivery-status")]
    if not parts:
        return None
    failed: list[tuple[str, bool]] = []
    delivered: list[str] = []
    statuses, actions, diagnostics = [], [], []
    for part in parts:
        for block in _block_fields(part):
            if not any(k in block for k in ("final-recipient", "original-recipient", "action",
                                            "status")):
                continue
            addrs = _addresses(block.get("original-recipient", "").split(";")[-1]
                               + " " + block.get("final-recipient", "").split(";")[-1]
                               + " " + block.get("x-actual-recipient", "").split(";")[-1])
            action = block.get("action", "").lower().strip()
            status = STATUS_RE.search(block.get("status", ""))
            diag = block.get("diagnostic-code", "")
            if not status:
                status = STATUS_RE.search(diag)
            if not ("final-recipient" in block or "original-recipient" in block):
                if not (action or status):
                    continue
            statuses.append(status.group(0) if status else None)
            actions.append(action or None)
            if diag:
                diagnostics.append(diag[:300])
            cls = status.group(1) if status else ""
            if action.startswith(("delivered", "deliverable", "relayed", "expanded")) or (
                    not action and cls == "2"):
                delivered.extend(addrs)
                continue
            if action.startswith("delayed"):
                permanent = False
            elif cls == "4":
                permanent = False
            elif cls == "5" or action.startswith(("fail", "error")):
                permanent = True
            else:
                continue
            failed.extend((a, permanent) for a in (addrs or [""]))
    if not failed:
        if delivered:
            return ctx.result("other", rule="dsn-delivered", recipients=delivered, confidence=0.9,
                              status=statuses, action=actions)
        return None  # a report we cannot read: let the other bounce rules look at it
    return _bounce_result(ctx, "dsn", [a for a, _ in failed if a],
                          any(p for _, p in failed), 0.98,
                          status=statuses, action=actions, diagnostic=diagnostics[:5])


def _bounce_result(ctx: _Context, rule: str, recipients: list[str], permanent: bool,
                   confidence: float, **evidence: Any) -> Classification:
    """A bounce, with ids from our VERP address first, then from the embedded original."""
    ev: dict = dict(evidence)
    verp = ctx.find_tokens("bounces", ctx.recipient_addresses())
    o_verp, o_unsub = ctx.original_tokens(ctx.original)
    ids = ctx.read_tokens(verp + o_verp, o_unsub, ev)
    if verp:
        ev["verp"] = True
    recipients = recipients + _addresses(" ".join(_headers(ctx.msg, "X-Failed-Recipients")))
    return ctx.result("bounce", rule=rule, permanent=permanent, recipients=recipients, ids=ids,
                      confidence=confidence, **ev)


def _rule_provider_complaint(ctx: _Context) -> Classification | None:
    """Complaints that are not ARF: Hotmail/Outlook.com JMRP and similar abuse desks."""
    original = ctx.original
    if original is None:
        return None
    local, _, domain = ctx.sender.partition("@")
    subject = ctx.subject.lower()
    hotmail = domain in ("hotmail.com", "outlook.com", "live.com", "msn.com") and (
        local == "staff" or "complaint" in subject)
    jmrp = bool(_header(original, "X-HmXmrOriginalRecipient"))
    generic = bool(re.search(r"\b(?:complaint|abuse report|spam report|feedback loop|fbl report)\b",
                             subject)) and bool(re.match(
                                 r"^(?:staff|abuse|fbl|feedback\w*|complaints?|scomp|spam\w*)$",
                                 local))
    if not (hotmail or jmrp or generic):
        return None
    verp, unsub = ctx.original_tokens(original)
    ev: dict = {"provider": domain}
    ids = ctx.read_tokens(verp, unsub, ev)
    recips = _addresses(_header(original, "X-HmXmrOriginalRecipient")) or \
        _addresses(_header(original, "To"))
    return ctx.result("complaint", rule="provider-complaint", recipients=recips, ids=ids,
                      confidence=0.9 if hotmail or jmrp else 0.75, **ev)


def _rule_unsubscribe_address(ctx: _Context) -> Classification | None:
    """Mail to our unsubscribe+TOKEN@MAIL_DOMAIN (the List-Unsubscribe mailto)."""
    toks = ctx.find_tokens("unsubscribe", ctx.recipient_addresses())
    if not toks:
        return None
    ev: dict = {"token_source": "recipient address"}
    ids = ctx.read_tokens([], toks, ev)
    if ctx.tokens is not None and ids[0] is None:
        return None  # a forged or damaged token: the reply rules still look at the mail
    return ctx.result("unsubscribe", rule="unsubscribe-address", ids=ids,
                      recipients=[ctx.sender] if ctx.sender else [],
                      confidence=1.0 if ids[0] is not None else 0.9, **ev)


def _rule_apple_unsubscribe(ctx: _Context) -> Classification | None:
    """Apple Mail's one-tap unsubscribe sends a mail with X-Apple-Unsubscribe: true."""
    if _header(ctx.msg, "X-Apple-Unsubscribe").lower() != "true":
        return None
    return ctx.result("unsubscribe", rule="apple-unsubscribe",
                      recipients=[ctx.sender] if ctx.sender else [], confidence=0.95)


def _rule_bounce(ctx: _Context) -> Classification | None:
    """Non-standard bounces: flufl.bounce's detectors, then mailer-daemon heuristics."""
    daemon = ctx.looks_like_daemon()
    subject = phrases.normalize(ctx.subject)
    bounce_subject = bool(BOUNCE_SUBJECT_RE.search(subject))
    reply = _is_human_reply(ctx)
    failed_header = bool(_headers(ctx.msg, "X-Failed-Recipients"))
    mdn_failure = _mdn_failure(ctx)
    autoreply = bool(_autoreply_signal(ctx))
    text = ctx.notification_text
    failure = FAILURE_TEXT_RE.search(text[:50000])
    report = _ctype(ctx.msg) == "multipart/report"
    automated = daemon or ctx.null_sender() or failed_header or mdn_failure or report
    forwarded = phrases.strip_subject_prefixes(ctx.subject)[2]
    if reply and not daemon:
        return None
    if autoreply and not (daemon or bounce_subject or failed_header):
        return None
    temporary, permanent = _flufl(ctx.msg if len(ctx.raw) <= FLUFL_LIMIT else
                                  email.message_from_bytes(ctx.raw[:FLUFL_LIMIT]))
    if temporary or permanent:
        if not (automated or bounce_subject or ctx.original is not None):
            return None
        return _bounce_result(ctx, "flufl", sorted(permanent | temporary), bool(permanent), 0.9,
                              detector="flufl.bounce")
    # Without a detector's word the sender must look automated, or the failure notice must
    # carry the original: a person writing "my parcel could not be delivered" is no bounce.
    if not (automated or (failure and (ctx.original is not None or (bounce_subject and forwarded)))):
        return None
    if not (failure or mdn_failure or failed_header or bounce_subject):
        return None
    notice = _notification_head(text)
    statuses = [m.group(0) for m in STATUS_RE.finditer(notice)][:10]
    codes = [m.group(1) for m in SMTP_CODE_RE.finditer(notice)]
    temporary_text = TEMPORARY_TEXT_RE.search(subject + "\n" + notice[:8000])
    if any(s.startswith("5") and s != "5.2.2" for s in statuses):  # 5.2.2 mailbox full: soft
        hard = True
    elif any(s.startswith("4") for s in statuses) or temporary_text:
        hard = False
    else:
        hard = "5" in codes or bool(HARD_TEXT_RE.search(notice[:8000]))
    recips = _bounce_recipients(ctx, notice)
    return _bounce_result(ctx, "bounce-heuristic", recips, hard, 0.8 if daemon else 0.7,
                          status=statuses, matched=failure.group(0) if failure else None,
                          daemon_sender=daemon)


def _flufl(msg: Message) -> tuple[frozenset, frozenset]:
    try:
        from flufl.bounce import all_failures
        temporary, permanent = all_failures(msg)
    except Exception:  # noqa: BLE001 - its heuristics trip over odd mail
        return frozenset(), frozenset()
    dec = lambda s: frozenset(  # noqa: E731
        a for a in (_addresses(b.decode("ascii", "replace") if isinstance(b, bytes) else str(b))
                    for b in s) for a in a)
    return dec(temporary), dec(permanent)


def _mdn_failure(ctx: _Context) -> bool:
    """A disposition notification that reports the message was refused or deleted unread."""
    for part in _walk(ctx.msg):
        if _ctype(part) == "message/disposition-notification":
            for block in _block_fields(part):
                disp = block.get("disposition", "").lower()
                if re.search(r"deleted|failed|denied|error|rejected", disp):
                    return True
    return False


_ORIGINAL_START = re.compile(
    r"^\s*(?:-+\s*)?(?:original message|this is a copy of|below this line|message headers follow"
    r"|the original message|headers of the original|original mail as follows|returned message"
    r"|unsent message below|the message you sent|(?:received|return-path|dkim-signature"
    r"|delivered-to|x-original-to):)", re.IGNORECASE | re.MULTILINE)


def _notification_head(text: str) -> str:
    """The explanatory part of a bounce, before the copy of the original starts."""
    m = _ORIGINAL_START.search(text, 40 if len(text) > 40 else 0)
    return text[:m.start()] if m and m.start() > 0 else text[:20000]


_ADDR = ADDR_RE.pattern
RCPT_CONTEXT_RE = re.compile(
    r"\b(?:rcpt to|recipient(?: address)?|recipients?|final-recipient|original-recipient"
    r"|delivered to|deliver(?:ing|y)? (?:your (?:mail|message) )?to|addressed to|failed|to)"
    r"\s*[:;]?\s*(?:rfc822\s*;)?\s*<?(?<![\w.+-])(" + _ADDR + ")"
    r"|^[ \t]*<?(" + _ADDR + r")>?[ \t]*(?:[:.]|\.\.\.|$)", re.IGNORECASE | re.MULTILINE)
ID_LINE_RE = re.compile(r"^[>\s]*(?:message-id|in-reply-to|references|received|x-[\w-]+)\s*:",
                        re.IGNORECASE)
NOT_A_RECIPIENT_RE = re.compile(r"^(?:mailer[-_.]?daemon|mail[-_.]?daemon|double-bounce|[0-9a-f.-]{16,}"
                                r"|[0-9.]+)$", re.IGNORECASE)


def _bounce_recipients(ctx: _Context, notice: str) -> list[str]:
    """Failed addresses named by a bounce's own text (the addresses in recipient context
    first), never our own, the bounce's own, or an id that looks like an address."""
    original = ctx.original
    own = set(_addresses(" ".join(
        _headers(ctx.msg, "From") + _headers(ctx.msg, "To") + _headers(ctx.msg, "Return-Path")
        + _headers(ctx.msg, "Reply-To") + list(ctx.envelope.recipients) + [ctx.envelope.sender]
        + _headers(original, "From") + _headers(original, "Return-Path")
        + _headers(original, "Sender"))))
    text = "\n".join(line for line in notice.splitlines() if not ID_LINE_RE.match(line))

    def keep(addresses: list[str]) -> list[str]:
        out = []
        for a in addresses:
            a = a.lower().strip(".")
            local, _, domain = a.partition("@")
            if a in own or a in out or NOT_A_RECIPIENT_RE.match(local) or TOKEN_ADDR_RE.match(a) \
                    or (ctx.mail_domain and domain == ctx.mail_domain):
                continue
            out.append(a)
        return out

    found = keep([m.group(1) or m.group(2) for m in RCPT_CONTEXT_RE.finditer(text)])
    if not found:
        found = keep(_addresses(text))
    if not found and original is not None:
        found = keep(_addresses(_header(original, "To")))
    return found[:10]


def _autoreply_signal(ctx: _Context) -> str:
    """The header or subject that marks an automatic reply, or ''."""
    value = ctx.auto_submitted()
    if value:
        return f"Auto-Submitted: {value}"
    for name in AUTOREPLY_HEADERS:
        v = _header(ctx.msg, name)
        if v and v.lower() not in ("no", "false", "0"):
            return f"{name}: {v}"
    for name in ("Precedence", "X-Precedence"):
        precedence = _header(ctx.msg, name).lower()
        if precedence in AUTOREPLY_PRECEDENCE:
            return f"{name}: {precedence}"
    if any(_ctype(p) == "message/disposition-notification" for p in _walk(ctx.msg)):
        return "disposition-notification"  # a read receipt (RFC 8098)
    if _header(ctx.msg, "X-Auto-Response-Suppress") and _header(
            ctx.msg, "X-MS-Exchange-Inbox-Rules-Loop"):
        return "X-MS-Exchange-Inbox-Rules-Loop"
    subject = phrases.normalize(ctx.subject).strip()
    _, is_reply, _ = phrases.strip_subject_prefixes(subject)
    m = AUTOREPLY_SUBJECT_RE.search(subject)
    if m and (not is_reply or m.start() == 0):
        return f"Subject: {m.group(0)}"
    m = AUTOREPLY_SUBJECT_START_RE.match(subject)
    if m:
        return f"Subject: {m.group(0)}"
    return ""


def _rule_autoreply(ctx: _Context) -> Classification | None:
    signal = _autoreply_signal(ctx)
    if not signal:
        return None
    return ctx.result("autoreply", rule="autoreply", confidence=0.95 if ":" in signal.split()[0]
                      and not signal.startswith("Subject") else 0.8, signal=signal)


def _is_human_reply(ctx: _Context) -> bool:
    return bool(_header(ctx.msg, "In-Reply-To") or _header(ctx.msg, "References")) and bool(
        re.match(r"^\s*(?:re|aw|sv|antw|odp|res|r)\s*:", ctx.subject, re.IGNORECASE))


NOREPLY_RE = re.compile(r"^(?:no-?reply|do-?not-?reply|donotreply|notifications?|alerts?)\b",
                        re.IGNORECASE)


def _is_bulk(ctx: _Context) -> bool:
    """Mailing-list or bulk mail: never a person's own unsubscribe request."""
    precedence = _header(ctx.msg, "Precedence").lower()
    return bool(_header(ctx.msg, "List-Id") or _header(ctx.msg, "List-Unsubscribe")
                or precedence in ("bulk", "list", "junk"))


def _rule_reply_unsubscribe(ctx: _Context) -> Classification | None:
    """A person's reply whose subject or first own lines ask to unsubscribe."""
    if _is_bulk(ctx) or ctx.looks_like_daemon() or not ctx.sender or NOREPLY_RE.match(
            ctx.sender.split("@")[0]):
        return None
    ev: dict = {}
    subject, is_reply, is_forward = phrases.strip_subject_prefixes(ctx.subject)
    hit = None
    nsubject = phrases.normalize(subject)
    if not is_forward and not phrases.find_negation(nsubject):
        if phrases.is_exact(subject):
            hit = ("subject", "exact", nsubject)
        elif not is_reply and len(nsubject) <= 100:
            found = phrases.find_request(nsubject)
            if found:
                hit = ("subject", found[0], found[1])
    lines = _reply_lines(ctx.msg)
    body = phrases.normalize("\n".join(lines))
    negation = phrases.find_negation(body)
    if negation:
        return ctx.result("other", rule="reply-negated", negation=negation[1], language=negation[0],
                          lines=lines[:REPLY_LINES], confidence=0.6)
    if hit is None:
        for line in lines:
            if phrases.is_exact(line):
                hit = ("body", "exact", phrases.normalize(line).strip())
                break
        else:
            found = phrases.find_request(body)
            if found:
                hit = ("body", found[0], found[1])
    if hit is None:
        return None
    quoted = _quoted_token_ids(ctx)
    if quoted:
        ev["quoted_token"] = quoted
    return ctx.result("unsubscribe", rule="reply-" + hit[0], recipients=[ctx.sender],
                      confidence=0.85 if hit[1] == "exact" else 0.8,
                      language=None if hit[1] == "exact" else hit[1], phrase=hit[2],
                      lines=lines[:REPLY_LINES], **ev)


def _quoted_token_ids(ctx: _Context) -> dict | None:
    """Ids of an unsubscribe token quoted from our own footer (evidence only: quotes can be
    forwarded, so the sender's address, not this token, decides who is unsubscribed)."""
    if ctx.tokens is None:
        return None
    text = ctx.notification_text
    for tok in TOKEN_URL_RE.findall(text)[:5] + ctx.find_tokens("unsubscribe", [text])[:5]:
        try:
            t = ctx.tokens.read_unsubscribe(tok.rstrip("."))
        except Exception:  # noqa: BLE001
            continue
        return {"subscriber": t.subscriber_id, "list": t.list_id, "campaign": t.campaign_id}
    return None


_RULES = (_rule_ses, _rule_arf, _rule_dsn, _rule_provider_complaint, _rule_unsubscribe_address,
          _rule_apple_unsubscribe, _rule_bounce, _rule_autoreply, _rule_reply_unsubscribe)


# ----------------------------------------------------------------------------- replies

URL_RE = re.compile(r"https?://|www\.|mailto:", re.IGNORECASE)


def _reply_lines(msg: Message) -> list[str]:
    """The first lines the sender wrote: no quotes, attributions, forwards or signatures."""
    text = _compact(_reply_body(msg)[:TEXT_LIMIT])
    if not text.strip():
        return []
    try:
        from mailparser_reply import EmailReplyParser
        parsed = EmailReplyParser(languages=["en", "de", "fr", "es", "it", "nl", "pl", "sv"]
                                  ).read(text)
        if parsed.replies:
            # The first fragment is a prefix of the text. When the text starts with a quote
            # header the fragment keeps that header, so our own rules still see it for what
            # it is (the parser's .body would drop it and pass the quoted original off as
            # the reply).
            latest = parsed.replies[0]
            kept = latest.content
            # Its signature guess also fires on "Thanks, but please unsubscribe me": only a
            # sign-off line of its own, a "--" line or "Sent from my ..." counts.
            first = phrases.normalize(latest.signatures.strip().split("\n")[0].strip())
            if latest.signatures and latest.signatures in kept and (
                    phrases.SIGNOFF_RE.match(first) or phrases.SIGNATURE_RE.match(first)
                    or re.match(r"^[-_]{2,}\s*$", first)):
                kept = kept[:kept.index(latest.signatures)]
            if kept.strip():
                text = kept
    except Exception:  # noqa: BLE001 - fall back on our own rules alone
        pass
    return _own_lines(text)


def _compact(text: str) -> str:
    """Bound the text handed to the reply parser (its patterns are slow on long input): runs of
    quoted lines become one, lines and the whole are cut to size."""
    out: list[str] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        quoted = line.lstrip().startswith(">")
        if quoted and out and out[-1].lstrip().startswith(">"):
            continue
        out.append(line[:REPLY_LINE_LIMIT])
        if len(out) >= 400:
            break
    return "\n".join(out)[:REPLY_LIMIT]


def _own_lines(text: str) -> list[str]:
    raw_lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    out: list[str] = []
    i = 0
    while i < len(raw_lines) and len(out) < REPLY_LINES:
        line = raw_lines[i].strip()
        norm = phrases.normalize(line)
        i += 1
        if not line:
            continue
        if line.startswith((">", "|")):
            continue
        if phrases.SIGNATURE_RE.match(norm) or phrases.SEPARATOR_RE.match(norm):
            break
        if phrases.ATTRIBUTION_RE.match(norm):
            continue
        if phrases.ATTRIBUTION_START_RE.match(norm) and re.search(r"\d", norm):
            # an attribution wrapped over up to three lines ("On Tue, 4 Mar 2025 at 10:02, A <"
            # / "a@example.org> wrote:"); its first line always carries the date
            joined = norm
            for k in range(i, min(i + 2, len(raw_lines))):
                joined += " " + phrases.normalize(raw_lines[k].strip())
                if phrases.ATTRIBUTION_RE.match(joined):
                    i = k + 1
                    break
            else:
                joined = ""
            if joined:
                continue
        if phrases.HEADER_LINE_RE.match(norm):
            nxt = [phrases.normalize(x.strip()) for x in raw_lines[i:i + 4] if x.strip()]
            if any(phrases.HEADER_LINE_RE.match(x) for x in nxt[:3]):
                break
        if phrases.FOOTER_RE.search(norm) or (out and phrases.SIGNOFF_RE.match(norm)):
            break
        if URL_RE.search(norm):
            continue
        out.append(line[:500])
    return out


def _reply_body(msg: Message) -> str:
    """Text of a reply: its first text/plain part, else its HTML without quoted blocks."""
    html = ""
    for part in _walk(msg):
        if _is_attachment(part):
            continue
        ct = _ctype(part)
        if ct == "text/plain":
            body = _decode_part(part)
            if body.strip():
                return body
        elif ct == "text/html" and not html:
            html = _decode_part(part)
    return _html_to_text(html, strip_quotes=True) if html else ""


_QUOTE_XPATH = (
    "//blockquote | //*[contains(concat(' ', normalize-space(@class), ' '), ' gmail_quote ')]"
    " | //*[contains(@class, 'gmail_quote_container')] | //*[contains(@class, 'moz-cite-prefix')]"
    " | //*[contains(@class, 'yahoo_quoted')] | //*[contains(@class, 'protonmail_quote')]"
    " | //*[contains(@class, 'gmail_signature')] | //*[contains(@class, 'moz-signature')]"
    " | //*[@id='Signature'] | //*[contains(@class, 'zmail_extra')] | //div[@name='quote']"
    " | //*[contains(@class, '_quote')] | //*[contains(@class, 'quoted')]")
_CUT_XPATH = (
    "//*[@id='appendonsend'] | //*[@id='divRplyFwdMsg'] | //hr[@id='stopSpelling']"
    " | //*[@id='mail-editor-reference-message-container'] | //hr[@id='zwchr']"
    " | //*[contains(@class, 'OutlookMessageHeader')]"
    " | //div[contains(translate(@style, 'E', 'e'), 'border-top:solid #e1e1e1')]"
    " | //div[contains(translate(@style, 'B', 'b'), 'border-top:solid #b5c4df')]"
    # a ruled box starting with bold "From:"-style labels (Windows Mail, Outlook variants)
    " | //div[contains(@style, 'border-top')][.//b[substring(normalize-space(.),"
    " string-length(normalize-space(.))) = ':']]")


def _html_to_text(html: str, strip_quotes: bool) -> str:
    """Plain text of an HTML body (inscriptis); quoted blocks removed when asked."""
    html = html[:TEXT_LIMIT]
    if not html.strip():
        return ""
    try:
        import lxml.html
        from inscriptis import get_text
        doc = lxml.html.document_fromstring(html)
        for bad in doc.xpath("//script | //style | //head"):
            bad.drop_tree()
        if strip_quotes:
            for el in doc.xpath(_CUT_XPATH)[:1]:
                _cut_from(el)
            for el in doc.xpath(_QUOTE_XPATH):
                if el.getparent() is not None:
                    el.drop_tree()
        return get_text(lxml.html.tostring(doc, encoding="unicode"))
    except Exception:  # noqa: BLE001 - fall back on tag stripping
        text = re.sub(r"(?is)<(script|style|blockquote)\b.*?</\1>", " ", html)
        text = re.sub(r"(?i)<br\s*/?>|</p>|</div>", "\n", text)
        return re.sub(r"<[^>]+>", " ", text)


def _cut_from(el: Any) -> None:
    """Drop an element and everything after it in document order (text tails included)."""
    node = el
    while node is not None and node.getparent() is not None:
        for sib in list(node.itersiblings()):
            sib.tail = None
            sib.drop_tree()
        node.tail = None
        node = node.getparent()
    el.drop_tree()
