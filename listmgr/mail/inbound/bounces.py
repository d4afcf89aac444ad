"""Bounces without a readable delivery-status report: flufl.bounce's detectors, then
mailer-daemon heuristics (who sent it, what the subject and the notice say). Also the
bounce result the report rules share; hard or soft is listmgr.mail.bounces's verdict."""

from __future__ import annotations

import re
from collections.abc import Iterable
from email.message import Message
from typing import Any

from listmgr.mail.bounces import HARD, SOFT, STATUS_RE, statuses_verdict
from listmgr.mail.inbound import phrases
from listmgr.mail.inbound.autoreply import autoreply_signal
from listmgr.mail.inbound.classification import Classification
from listmgr.mail.inbound.context import Context
from listmgr.mail.inbound.detectors import all_failures
from listmgr.mail.inbound.message import (
    ADDR_RE,
    addresses,
    block_fields,
    header,
    headers,
    parse,
)
from listmgr.mail.inbound.tokens import TOKEN_ADDR_RE, find_tokens, original_tokens, read_tokens

FLUFL_LIMIT = 1_000_000  # bytes of a message handed to flufl.bounce's detectors


SMTP_CODE_RE = re.compile(r"(?:^|[\s:(\[\"'])([45])\d\d(?=[\s\-:)\]])", re.MULTILINE)

BOUNCE_SUBJECT_RE = re.compile(
    r"undeliver|undelivered|not (?:be )?delivered|delivery (?:status notification|failure|failed"
    r"|problem|error|report|notification|has failed|delayed|warning)|returned mail|return(?:ed)? to sender"
    r"|mail delivery failed|failure notice|non[- ]?delivery|nondeliverable|mail system error"
    r"|mail (?:failure|error)|delivery status|could not send|error sending|bounce notification"
    r"|delayed mail|warning: could not|message not delivered|unzustellbar|nicht zustellbar"
    r"|non remis|non recapitabile|onbestelbaar|olevererbar|nao entregue|no entregado"
    r"|are not member|loop alert|mail could not be delivered|delivery notification"
    r"|smtp server: errors from",
    re.IGNORECASE,
)

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
    re.IGNORECASE,
)

TEMPORARY_TEXT_RE = re.compile(
    r"delay|deferred|will (?:continue to )?(?:be )?retr|still (?:be(?:ing)? )?(?:retr|tr)|temporar"
    r"|try again later|has not yet been delivered|could not send mail for past|warning"
    r"|mailbox (?:is )?full|over ?quota|quota exceeded|insufficient (?:disk )?space",
    re.IGNORECASE,
)

HARD_TEXT_RE = re.compile(
    r"user unknown|unknown user|no such (?:user|mailbox|recipient|address|domain)|does ?n[o']t exist"
    r"|invalid (?:recipient|address|user|mailbox)|recipient (?:address )?rejected|address rejected"
    r"|host unknown|unknown host|domain not found|not found|account (?:is )?(?:disabled|closed"
    r"|deleted|inactive)|mailbox (?:unavailable|disabled|not found)|unrouteable|permanent",
    re.IGNORECASE,
)


def bounce_result(
    ctx: Context,
    rule: str,
    recipients: list[str],
    permanent: bool,
    confidence: float,
    **evidence: Any,
) -> Classification:
    """A bounce, with ids from our VERP address first, then from the embedded original."""
    ev: dict = dict(evidence)
    verp = find_tokens(ctx, "bounces", ctx.recipient_addresses())
    o_verp, o_unsub = original_tokens(ctx)
    ids = read_tokens(ctx, verp + o_verp, o_unsub, ev)
    if verp:
        ev["verp"] = True
    recipients = recipients + addresses(" ".join(ctx.headers("X-Failed-Recipients")))
    return ctx.result(
        "bounce",
        rule=rule,
        permanent=permanent,
        recipients=recipients,
        ids=ids,
        confidence=confidence,
        **ev,
    )


REPLY_SUBJECT_RE = re.compile(r"^\s*(?:re|aw|sv|antw|odp|res|r)\s*:", re.IGNORECASE)
MDN_FAILED_RE = re.compile(r"deleted|failed|denied|error|rejected")


def _is_human_reply(ctx: Context) -> bool:
    return bool(ctx.header("In-Reply-To") or ctx.header("References")) and bool(
        REPLY_SUBJECT_RE.match(ctx.subject)
    )


def rule_bounce(ctx: Context) -> Classification | None:
    """Non-standard bounces: flufl.bounce's detectors, then mailer-daemon heuristics."""
    daemon = ctx.looks_like_daemon()
    subject = phrases.normalize(ctx.subject)
    bounce_subject = bool(BOUNCE_SUBJECT_RE.search(subject))
    reply = _is_human_reply(ctx)
    failed_header = bool(ctx.headers("X-Failed-Recipients"))
    mdn_failure = _mdn_failure(ctx)
    autoreply = bool(autoreply_signal(ctx))
    report = ctx.content_type == "multipart/report"
    automated = daemon or ctx.null_sender() or failed_header or mdn_failure or report
    forwarded = phrases.strip_subject_prefixes(ctx.subject)[2]
    if reply and not daemon:
        return None
    if autoreply and not (daemon or bounce_subject or failed_header):
        return None
    if not (automated or bounce_subject or ctx.original is not None):
        # Neither a detector's word nor the heuristics below make a bounce of a message that
        # does not look automated, has no bounce subject and carries no original.
        return None
    temporary, permanent = _flufl(
        ctx.msg if len(ctx.raw) <= FLUFL_LIMIT else parse(ctx.raw[:FLUFL_LIMIT])[0]
    )
    if temporary or permanent:
        return bounce_result(
            ctx,
            "flufl",
            sorted(permanent | temporary),
            bool(permanent),
            0.9,
            detector="flufl.bounce",
        )
    text = ctx.notification_text
    failure = FAILURE_TEXT_RE.search(text[:50000])
    # Without a detector's word the sender must look automated, or the failure notice must
    # carry the original: a person writing "my parcel could not be delivered" is no bounce.
    if not (
        automated or (failure and (ctx.original is not None or (bounce_subject and forwarded)))
    ):
        return None
    if not (failure or mdn_failure or failed_header or bounce_subject):
        return None
    notice = _notification_head(text)
    statuses = [m.group(0) for m in STATUS_RE.finditer(notice)][:10]
    codes = [m.group(1) for m in SMTP_CODE_RE.finditer(notice)]
    temporary_text = TEMPORARY_TEXT_RE.search(subject + "\n" + notice[:8000])
    verdict = statuses_verdict(statuses)
    if verdict == HARD:
        hard = True
    elif verdict == SOFT or temporary_text:
        hard = False
    else:
        hard = "5" in codes or bool(HARD_TEXT_RE.search(notice[:8000]))
    recips = _bounce_recipients(ctx, notice)
    return bounce_result(
        ctx,
        "bounce-heuristic",
        recips,
        hard,
        0.8 if daemon else 0.7,
        status=statuses,
        matched=failure.group(0) if failure else None,
        daemon_sender=daemon,
    )


def _flufl(msg: Message) -> tuple[frozenset, frozenset]:
    """(temporary, permanent) failed addresses found by flufl.bounce's detectors."""
    try:
        temporary, permanent = all_failures(msg)
    except Exception:
        return frozenset(), frozenset()

    def dec(found: Iterable[bytes | str]) -> frozenset:
        return frozenset(
            a
            for b in found
            for a in addresses(b.decode("ascii", "replace") if isinstance(b, bytes) else str(b))
        )

    return dec(temporary), dec(permanent)


def _mdn_failure(ctx: Context) -> bool:
    """A disposition notification that reports the message was refused or deleted unread."""
    for part, ct in ctx.parts:
        if ct == "message/disposition-notification":
            for block in block_fields(part):
                disp = block.get("disposition", "").lower()
                if MDN_FAILED_RE.search(disp):
                    return True
    return False


_ORIGINAL_START = re.compile(
    r"^\s*(?:-+\s*)?(?:original message|this is a copy of|below this line|message headers follow"
    r"|the original message|headers of the original|original mail as follows|returned message"
    r"|unsent message below|the message you sent|(?:received|return-path|dkim-signature"
    r"|delivered-to|x-original-to):)",
    re.IGNORECASE | re.MULTILINE,
)


def _notification_head(text: str) -> str:
    """The explanatory part of a bounce, before the copy of the original starts."""
    m = _ORIGINAL_START.search(text, 40 if len(text) > 40 else 0)
    return text[: m.start()] if m and m.start() > 0 else text[:20000]


_ADDR = ADDR_RE.pattern

RCPT_CONTEXT_RE = re.compile(
    r"\b(?:rcpt to|recipient(?: address)?|recipients?|final-recipient|original-recipient"
    r"|delivered to|deliver(?:ing|y)? (?:your (?:mail|message) )?to|addressed to|failed|to)"
    r"\s*[:;]?\s*(?:rfc822\s*;)?\s*<?(?<![\w.+-])(" + _ADDR + ")"
    r"|^[ \t]*<?(" + _ADDR + r")>?[ \t]*(?:[:.]|\.\.\.|$)",
    re.IGNORECASE | re.MULTILINE,
)

ID_LINE_RE = re.compile(
    r"^[>\s]*(?:message-id|in-reply-to|references|received|x-[\w-]+)\s*:", re.IGNORECASE
)

NOT_A_RECIPIENT_RE = re.compile(
    r"^(?:mailer[-_.]?daemon|mail[-_.]?daemon|double-bounce|[0-9a-f.-]{16,}"
    r"|[0-9.]+)$",
    re.IGNORECASE,
)


def _bounce_recipients(ctx: Context, notice: str) -> list[str]:
    """Failed addresses named by a bounce's own text (the addresses in recipient context
    first), never our own, the bounce's own, or an id that looks like an address."""
    original = ctx.original
    own = set(
        addresses(
            " ".join(
                ctx.headers("From")
                + ctx.headers("To")
                + ctx.headers("Return-Path")
                + ctx.headers("Reply-To")
                + list(ctx.envelope.recipients)
                + [ctx.envelope.sender]
                + headers(original, "From")
                + headers(original, "Return-Path")
                + headers(original, "Sender")
            )
        )
    )
    text = "\n".join(line for line in notice.splitlines() if not ID_LINE_RE.match(line))

    def keep(candidates: list[str]) -> list[str]:
        out = []
        for a in candidates:
            a = a.lower().strip(".")
            local, _, domain = a.partition("@")
            if (
                a in own
                or a in out
                or NOT_A_RECIPIENT_RE.match(local)
                or TOKEN_ADDR_RE.match(a)
                or (ctx.mail_domain and domain == ctx.mail_domain)
            ):
                continue
            out.append(a)
        return out

    found = keep([m.group(1) or m.group(2) for m in RCPT_CONTEXT_RE.finditer(text)])
    if not found:
        found = keep(addresses(text))
    if not found and original is not None:
        found = keep(addresses(header(original, "To")))
    return found[:10]
