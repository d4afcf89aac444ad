"""Our own signed tokens in inbound mail: VERP bounces+TOKEN@, unsubscribe+TOKEN@ and the
/u/TOKEN links of List-Unsubscribe. Ids are only ever read from tokens that verify."""

from __future__ import annotations

import re
from collections.abc import Iterable

from listmgr.mail.inbound.context import Context
from listmgr.mail.inbound.message import headers

TOKEN_ADDR_RE = re.compile(
    r"\b(bounces|unsubscribe)\+([A-Za-z0-9_.\-]+)@([A-Za-z0-9.\-]+)", re.IGNORECASE
)
TOKEN_URL_RE = re.compile(r"/u/([A-Za-z0-9_.\-]+)")


def find_tokens(ctx: Context, kind: str, texts: list[str]) -> list[str]:
    """Syntactically found kind+TOKEN@domain tokens (domain must be ours when known)."""
    found = []
    for text in texts:
        for prefix, tok, domain in TOKEN_ADDR_RE.findall(text or ""):
            if prefix.lower() != kind:
                continue
            if ctx.mail_domain and domain.lower().rstrip(".") != ctx.mail_domain:
                continue
            if tok not in found:
                found.append(tok)
    return found


def read_tokens(
    ctx: Context, bounce_tokens: list[str], unsub_tokens: list[str], evidence: dict
) -> tuple[int | None, int | None, int | None]:
    """(subscriber, list, campaign) from the first token that verifies; every subscriber a
    verified token names goes to evidence["token_subscribers"] (proof must not disagree)."""
    if not bounce_tokens and not unsub_tokens:
        return None, None, None
    evidence["token_found"] = True
    if ctx.tokens is None:
        evidence["token_verified"] = None
        return None, None, None
    first: tuple[int | None, int | None, int | None] | None = None
    named: list[int] = []
    for kind, tok in [("bounce", t) for t in bounce_tokens[:10]] + [
        ("unsubscribe", t) for t in unsub_tokens[:10]
    ]:
        try:
            if kind == "bounce":
                sid, cid, lid = ctx.tokens.read_bounce(tok)
            else:
                t = ctx.tokens.read_unsubscribe(tok)
                sid, lid, cid = t.subscriber_id, t.list_id, t.campaign_id
        except Exception:
            continue
        if first is None:
            first = (sid, lid, cid)
            evidence["token_verified"] = kind
        if sid and sid not in named:  # 0: a test message, nobody
            named.append(sid)
    if first is None:
        evidence["token_verified"] = False
        return None, None, None
    evidence["token_subscribers"] = named
    return first


def original_tokens(
    ctx: Context, extra_mail_from: Iterable[str] = ()
) -> tuple[list[str], list[str]]:
    """VERP and unsubscribe tokens named by the embedded original message (and by the
    MAIL FROM a report quotes)."""
    unsub: list[str] = []
    verp = find_tokens(ctx, "bounces", list(extra_mail_from))
    original = ctx.original
    if original is not None:
        for value in headers(original, "List-Unsubscribe"):
            for tok in TOKEN_URL_RE.findall(value) + find_tokens(ctx, "unsubscribe", [value]):
                if tok not in unsub:
                    unsub.append(tok)
        verp += [
            t
            for t in find_tokens(
                ctx,
                "bounces",
                headers(original, "Return-Path")
                + headers(original, "Sender")
                + headers(original, "Errors-To"),
            )
            if t not in verp
        ]
    return verp, unsub


def quoted_token_ids(ctx: Context) -> dict | None:
    """Ids of an unsubscribe token quoted from our own footer (evidence only: quotes can be
    forwarded, so the sender's address, not this token, decides who is unsubscribed)."""
    if ctx.tokens is None:
        return None
    text = ctx.notification_text
    for tok in TOKEN_URL_RE.findall(text)[:5] + find_tokens(ctx, "unsubscribe", [text])[:5]:
        try:
            t = ctx.tokens.read_unsubscribe(tok.rstrip("."))
        except Exception:
            continue
        return {"subscriber": t.subscriber_id, "list": t.list_id, "campaign": t.campaign_id}
    return None
