"""Machine-readable reports: Amazon SES notifications, RFC 5965 feedback reports (ARF),
RFC 3464 delivery status notifications and the complaints of providers without ARF."""

from __future__ import annotations

import json
import re
from typing import Any

from listmgr.mail.bounces import HARD, SOFT, STATUS_RE, status_verdict
from listmgr.mail.inbound.bounces import bounce_result
from listmgr.mail.inbound.classification import Classification
from listmgr.mail.inbound.context import Context
from listmgr.mail.inbound.message import TEXT_LIMIT, addresses, block_fields, header
from listmgr.mail.inbound.tokens import TOKEN_URL_RE, find_tokens, original_tokens, read_tokens

SES_WORDS = ("notificationType", "eventType")  # one of them names an SES notification's kind


def rule_ses(ctx: Context) -> Classification | None:
    """Amazon SES event published through SNS (as mail or as a bare JSON body)."""
    text = ctx.raw.decode("utf-8", "replace") if ctx.raw.lstrip()[:1] == b"{" else ""
    if not text:
        if "amazonaws.com" not in ctx.sender and not ctx.mentions(*SES_WORDS):
            return None
        text = ctx.notification_text
    data = _ses_json(text)
    if not data:
        return None
    ntype = str(data.get("notificationType") or data.get("eventType") or "")
    mail_value = data.get("mail")
    mail: dict[str, Any] = mail_value if isinstance(mail_value, dict) else {}
    mail_headers = [
        f"{h.get('name')}: {h.get('value')}"
        for h in mail.get("headers") or []
        if isinstance(h, dict)
    ]
    lu = [h.split(":", 1)[1] for h in mail_headers if h.lower().startswith("list-unsubscribe:")]
    verp = find_tokens(
        ctx,
        "bounces",
        [str(mail.get("source", ""))]
        + [h for h in mail_headers if h.lower().startswith("return-path:")],
    )
    unsub = [t for v in lu for t in TOKEN_URL_RE.findall(v) + find_tokens(ctx, "unsubscribe", [v])]
    common_value = mail.get("commonHeaders")
    common: dict[str, Any] = common_value if isinstance(common_value, dict) else {}
    ev: dict = {
        "ses_type": ntype,
        "original_message_ids": [
            str(v)
            for v in [common.get("messageId")]
            + [h.split(":", 1)[1] for h in mail_headers if h.lower().startswith("message-id:")]
            if v
        ][:10],
    }
    if ntype == "Bounce":
        b = data.get("bounce") or {}
        recips = [
            str(r.get("emailAddress", ""))
            for r in b.get("bouncedRecipients") or []
            if isinstance(r, dict)
        ]
        ids = read_tokens(ctx, verp, unsub, ev)
        return ctx.result(
            "bounce",
            rule="ses-bounce",
            permanent=b.get("bounceType") == "Permanent",
            recipients=addresses(" ".join(recips)),
            ids=ids,
            confidence=0.99,
            bounce_type=b.get("bounceType"),
            bounce_subtype=b.get("bounceSubType"),
            status=[
                r.get("status") for r in b.get("bouncedRecipients") or [] if isinstance(r, dict)
            ],
            **ev,
        )
    if ntype == "Complaint":
        c = data.get("complaint") or {}
        recips = [
            str(r.get("emailAddress", ""))
            for r in c.get("complainedRecipients") or []
            if isinstance(r, dict)
        ]
        ids = read_tokens(ctx, verp, unsub, ev)
        return ctx.result(
            "complaint",
            rule="ses-complaint",
            recipients=addresses(" ".join(recips)),
            ids=ids,
            confidence=0.99,
            feedback_type=c.get("complaintFeedbackType"),
            **ev,
        )
    if ntype in (
        "Delivery",
        "Send",
        "Open",
        "Click",
        "Reject",
        "DeliveryDelay",
        "Rendering Failure",
    ):
        if ntype == "DeliveryDelay":
            d = data.get("deliveryDelay") or {}
            recips = [
                str(r.get("emailAddress", ""))
                for r in d.get("delayedRecipients") or []
                if isinstance(r, dict)
            ]
            ids = read_tokens(ctx, verp, unsub, ev)
            return ctx.result(
                "bounce",
                rule="ses-delay",
                permanent=False,
                ids=ids,
                recipients=addresses(" ".join(recips)),
                confidence=0.9,
                **ev,
            )
        return ctx.result("other", rule="ses-" + ntype.lower(), confidence=0.95, **ev)
    return None


def _ses_json(text: str) -> dict | None:
    if not any(word in text for word in SES_WORDS):
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


def rule_arf(ctx: Context) -> Classification | None:
    """RFC 5965 feedback report."""
    report = None
    for part, ct in ctx.parts:
        if ct == "message/feedback-report":
            report = part
            break
    if report is None:
        try:
            is_arf = (
                ctx.content_type == "multipart/report"
                and str(ctx.msg.get_param("report-type") or "").lower() == "feedback-report"
            )
        except Exception:
            is_arf = False
        if not is_arf:
            return None
    fields: dict[str, str] = {}
    for block in block_fields(report) if report is not None else []:
        for k, v in block.items():
            fields.setdefault(k, v)
    original = ctx.original
    verp, unsub = original_tokens(ctx, [fields.get("original-mail-from", "")])
    ev: dict = {
        "feedback_type": fields.get("feedback-type", "").lower() or None,
        "user_agent": fields.get("user-agent"),
        "report": {
            k: fields[k]
            for k in (
                "source-ip",
                "reported-domain",
                "reporting-mta",
                "arrival-date",
                "authentication-results",
            )
            if k in fields
        },
    }
    ids = read_tokens(ctx, verp, unsub, ev)
    recips = addresses(
        fields.get("original-rcpt-to", "") + " " + fields.get("removal-recipient", "")
    )
    if not recips and original is not None:
        recips = addresses(header(original, "To"))
    return ctx.result("complaint", rule="arf", recipients=recips, ids=ids, confidence=0.99, **ev)


def rule_dsn(ctx: Context) -> Classification | None:
    """RFC 3464 delivery status notification (also message/global-delivery-status)."""
    parts = [
        p
        for p, ct in ctx.parts
        if ct in ("message/delivery-status", "message/global-delivery-status")
    ]
    if not parts:
        return None
    failed: list[tuple[str, bool]] = []
    delivered: list[str] = []
    statuses, actions, diagnostics = [], [], []
    for part in parts:
        for block in block_fields(part):
            if not any(
                k in block for k in ("final-recipient", "original-recipient", "action", "status")
            ):
                continue
            addrs = addresses(
                block.get("original-recipient", "").split(";")[-1]
                + " "
                + block.get("final-recipient", "").split(";")[-1]
                + " "
                + block.get("x-actual-recipient", "").split(";")[-1]
            )
            action = block.get("action", "").lower().strip()
            status = STATUS_RE.search(block.get("status", ""))
            diag = block.get("diagnostic-code", "")
            if not status:
                status = STATUS_RE.search(diag)
            if not (
                "final-recipient" in block or "original-recipient" in block or action or status
            ):
                continue
            statuses.append(status.group(0) if status else None)
            actions.append(action or None)
            if diag:
                diagnostics.append(diag[:300])
            cls = status.group(1) if status else ""
            if action.startswith(("delivered", "deliverable", "relayed", "expanded")) or (
                not action and cls == "2"
            ):
                delivered.extend(addrs)
                continue
            verdict = status_verdict(status.group(0)) if status else None
            if action.startswith("delayed") or verdict == SOFT:
                permanent = False
            elif verdict == HARD or action.startswith(("fail", "error")):
                permanent = True
            else:
                continue
            failed.extend((a, permanent) for a in (addrs or [""]))
    if not failed:
        if delivered:
            return ctx.result(
                "other",
                rule="dsn-delivered",
                recipients=delivered,
                confidence=0.9,
                status=statuses,
                action=actions,
            )
        return None  # a report we cannot read: let the other bounce rules look at it
    return bounce_result(
        ctx,
        "dsn",
        [a for a, _ in failed if a],
        any(p for _, p in failed),
        0.98,
        status=statuses,
        action=actions,
        diagnostic=diagnostics[:5],
    )


COMPLAINT_SUBJECT_RE = re.compile(
    r"\b(?:complaint|abuse report|spam report|feedback loop|fbl report)\b"
)
COMPLAINT_DESK_RE = re.compile(r"^(?:staff|abuse|fbl|feedback\w*|complaints?|scomp|spam\w*)$")


def rule_provider_complaint(ctx: Context) -> Classification | None:
    """Complaints that are not ARF: Hotmail/Outlook.com JMRP and similar abuse desks."""
    original = ctx.original
    if original is None:
        return None
    local, _, domain = ctx.sender.partition("@")
    subject = ctx.subject.lower()
    hotmail = domain in ("hotmail.com", "outlook.com", "live.com", "msn.com") and (
        local == "staff" or "complaint" in subject
    )
    jmrp = bool(header(original, "X-HmXmrOriginalRecipient"))
    generic = bool(COMPLAINT_SUBJECT_RE.search(subject)) and bool(COMPLAINT_DESK_RE.match(local))
    if not (hotmail or jmrp or generic):
        return None
    verp, unsub = original_tokens(ctx)
    ev: dict = {"provider": domain}
    ids = read_tokens(ctx, verp, unsub, ev)
    recips = addresses(header(original, "X-HmXmrOriginalRecipient")) or addresses(
        header(original, "To")
    )
    return ctx.result(
        "complaint",
        rule="provider-complaint",
        recipients=recips,
        ids=ids,
        confidence=0.9 if hotmail or jmrp else 0.75,
        **ev,
    )
