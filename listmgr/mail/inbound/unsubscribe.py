"""Unsubscribe requests: mail to our unsubscribe+TOKEN@ address, Apple Mail's one-tap
unsubscribe, and a person's reply asking for it in words (negations respected)."""

from __future__ import annotations

import re

from listmgr.mail.inbound import phrases
from listmgr.mail.inbound.classification import Classification
from listmgr.mail.inbound.context import Context
from listmgr.mail.inbound.replies import REPLY_LINES, reply_lines
from listmgr.mail.inbound.tokens import find_tokens, quoted_token_ids, read_tokens

NOREPLY_RE = re.compile(
    r"^(?:no-?reply|do-?not-?reply|donotreply|notifications?|alerts?)\b", re.IGNORECASE
)


def rule_unsubscribe_address(ctx: Context) -> Classification | None:
    """Mail to our unsubscribe+TOKEN@MAIL_DOMAIN (the List-Unsubscribe mailto)."""
    toks = find_tokens(ctx, "unsubscribe", ctx.recipient_addresses())
    if not toks:
        return None
    ev: dict = {"token_source": "recipient address"}
    ids = read_tokens(ctx, [], toks, ev)
    if ctx.tokens is not None and ids[0] is None:
        return None  # a forged or damaged token: the reply rules still look at the mail
    return ctx.result(
        "unsubscribe",
        rule="unsubscribe-address",
        ids=ids,
        recipients=[ctx.sender] if ctx.sender else [],
        confidence=1.0 if ids[0] is not None else 0.9,
        **ev,
    )


def rule_apple_unsubscribe(ctx: Context) -> Classification | None:
    """Apple Mail's one-tap unsubscribe sends a mail with X-Apple-Unsubscribe: true."""
    if ctx.header("X-Apple-Unsubscribe").lower() != "true":
        return None
    return ctx.result(
        "unsubscribe",
        rule="apple-unsubscribe",
        recipients=[ctx.sender] if ctx.sender else [],
        confidence=0.95,
    )


def _is_bulk(ctx: Context) -> bool:
    """Mailing-list or bulk mail: never a person's own unsubscribe request."""
    precedence = ctx.header("Precedence").lower()
    return bool(
        ctx.header("List-Id")
        or ctx.header("List-Unsubscribe")
        or precedence in ("bulk", "list", "junk")
    )


def rule_reply_unsubscribe(ctx: Context) -> Classification | None:
    """A person's reply whose subject or first own lines ask to unsubscribe."""
    if (
        _is_bulk(ctx)
        or ctx.looks_like_daemon()
        or not ctx.sender
        or NOREPLY_RE.match(ctx.sender.split("@")[0])
    ):
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
    lines = reply_lines(ctx.parts)
    body = phrases.normalize("\n".join(lines))
    negation = phrases.find_negation(body)
    if negation:
        return ctx.result(
            "other",
            rule="reply-negated",
            negation=negation[1],
            language=negation[0],
            lines=lines[:REPLY_LINES],
            confidence=0.6,
        )
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
    quoted = quoted_token_ids(ctx)
    if quoted:
        ev["quoted_token"] = quoted
    return ctx.result(
        "unsubscribe",
        rule="reply-" + hit[0],
        recipients=[ctx.sender],
        confidence=0.85 if hit[1] == "exact" else 0.8,
        language=None if hit[1] == "exact" else hit[1],
        phrase=hit[2],
        lines=lines[:REPLY_LINES],
        **ev,
    )
