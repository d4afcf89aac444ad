"""Proof that a bounce, complaint or unsubscribe request is tied to listmgr: our verified
tokens, Message-IDs of mail we sent (tagged campaign ids, transactional ids for the service
to look up), the one From address, and the operator's own Authentication-Results.

Pure: whom a Message-ID went to is looked up by the service, which also checks that the
proof names the same person the action would change."""

from __future__ import annotations

import email.policy
import re
from dataclasses import replace
from email.message import Message
from email.utils import getaddresses

from listmgr.mail.inbound.authresults import aligned_pass
from listmgr.mail.inbound.classification import Classification, Proof
from listmgr.mail.inbound.context import Context
from listmgr.mail.inbound.message import ADDR_RE, TEXT_LIMIT, decode_part, headers
from listmgr.mail.inbound.tokens import TOKEN_URL_RE, find_tokens

MSGID_RE = re.compile(r"<([^<>\s]{1,250})>")
OUTBOX_ID_RE = re.compile(r"<[0-9a-f]{32}@[A-Za-z0-9.-]{1,253}>")
QUOTED_MSGID_RE = re.compile(
    r"^[>\s]*message-id\s*:\s*(<[^<>\s]{1,250}>)", re.IGNORECASE | re.MULTILINE
)
MANAGE_URL_RE = re.compile(r"/p/([A-Za-z0-9_.\-]+)")
MAX_IDS = 30  # Message-IDs looked at in one message
MAX_TOKENS = 10  # quoted tokens verified in one message
REPLY_RULES = ("reply-subject", "reply-body", "apple-unsubscribe")


def sender_identity(msg: Message) -> str:
    """The From address when the message has exactly one From with exactly one address, and
    two parsers agree on it (display names and encoded words never count), else ""."""
    values = msg.get_all("From") or []
    if len(values) != 1:
        return ""
    raw = re.sub(r"\r?\n[ \t]", " ", str(values[0]))
    try:
        lax = [a for _, a in getaddresses([raw]) if a]
        strict = [a.addr_spec for a in email.policy.default.header_factory("From", raw).addresses]
    except Exception:
        return ""
    if len(lax) != 1 or len(strict) != 1 or lax[0].strip().lower() != strict[0].strip().lower():
        return ""
    address = lax[0].strip().lower()
    if not ADDR_RE.fullmatch(address):
        return ""
    return address


def _ids(values: list[str]) -> list[str]:
    out: list[str] = []
    for value in values:
        for found in MSGID_RE.findall(value or ""):
            mid = f"<{found}>"
            if mid not in out:
                out.append(mid)
            if len(out) >= MAX_IDS:
                return out
    return out


def _ours(ctx: Context, ids: list[str]) -> tuple[tuple[tuple[int, int], ...], tuple[str, ...]]:
    """(campaign, delivery) pairs of tagged campaign Message-IDs, and ids that may be outbox
    mail of ours (random, so only an exact match in the outbox counts)."""
    deliveries: list[tuple[int, int]] = []
    outbox: list[str] = []
    for mid in ids:
        pair = ctx.tokens.read_message_id(mid) if ctx.tokens is not None else None
        if pair is not None:
            if pair not in deliveries:
                deliveries.append(pair)
        elif OUTBOX_ID_RE.fullmatch(mid) and (
            not ctx.mail_domain or mid[:-1].rpartition("@")[2].lower() == ctx.mail_domain
        ):
            outbox.append(mid)
    return tuple(deliveries), tuple(outbox)


def _report_ids(ctx: Context, result: Classification) -> list[str]:
    """Message-IDs a bounce or complaint names: the embedded original's, the report's own
    In-Reply-To/References, those quoted in its text, and an SES notification's."""
    values = (
        headers(ctx.original, "Message-ID") + ctx.headers("In-Reply-To") + ctx.headers("References")
    )
    values += QUOTED_MSGID_RE.findall(ctx.notification_text[:TEXT_LIMIT])[:MAX_IDS]
    values += [str(v) for v in result.evidence.get("original_message_ids") or []][:MAX_IDS]
    return _ids(values)


def _quoted_subscribers(ctx: Context) -> tuple[int, ...]:
    """Subscribers named by our tokens in the text or HTML of a reply (links included)."""
    if ctx.tokens is None:
        return ()
    found: list[int] = []
    tried = 0
    for part, ct in ctx.parts:
        if not ct.startswith("text/"):
            continue
        body = decode_part(part)[:TEXT_LIMIT]
        candidates = (
            [("u", t) for t in TOKEN_URL_RE.findall(body)]
            + [("u", t) for t in find_tokens(ctx, "unsubscribe", [body])]
            + [("p", t) for t in MANAGE_URL_RE.findall(body)]
        )
        for kind, tok in candidates:
            if tried >= MAX_TOKENS:
                return tuple(found)
            tried += 1
            try:
                sid = (
                    ctx.tokens.read_unsubscribe(tok.rstrip(".")).subscriber_id
                    if kind == "u"
                    else ctx.tokens.read_manage(tok.rstrip(".")).subscriber_id
                )
            except Exception:
                continue
            if sid and sid not in found:
                found.append(sid)
    return tuple(found)


def attach(ctx: Context, result: Classification) -> Classification:
    """The classification with the proof its kind needs."""
    if result.kind not in ("bounce", "complaint", "unsubscribe"):
        return result
    rule = str(result.evidence.get("rule", ""))
    tokens = tuple(int(x) for x in result.evidence.get("token_subscribers") or [])
    if result.kind == "unsubscribe" and rule in REPLY_RULES:
        sender = sender_identity(ctx.msg)
        # References lists a thread oldest first: the message answered is at its end
        refs = MSGID_RE.findall(" ".join(ctx.headers("References")))[-MAX_IDS:]
        deliveries, outbox = _ours(
            ctx, _ids(ctx.headers("In-Reply-To") + [f"<{r}>" for r in reversed(refs)])
        )
        proof = Proof(
            token_subscribers=(),
            quoted_subscribers=_quoted_subscribers(ctx),
            deliveries=deliveries,
            outbox_ids=outbox,
            sender=sender,
            authenticated=aligned_pass(ctx.msg, ctx.authserv_id, sender),
        )
    elif result.kind == "unsubscribe":
        proof = Proof(token_subscribers=tokens, sender=sender_identity(ctx.msg))
    else:
        deliveries, outbox = _ours(ctx, _report_ids(ctx, result))
        proof = Proof(token_subscribers=tokens, deliveries=deliveries, outbox_ids=outbox)
    return replace(result, proof=proof)
