"""The rules in the order they run, and `classify()` that runs them.

The first rule that fits wins:
 1. Amazon SES notifications (SNS JSON): Bounce, Complaint, Delivery (= other)   reports
 2. RFC 5965 feedback reports (ARF)                      -> complaint            reports
 3. RFC 3464 delivery status (incl. global)              -> bounce, or other for
                                                            success reports      reports
 4. non-ARF provider complaints (Hotmail/Outlook JMRP...) -> complaint           reports
 5. mail to unsubscribe+TOKEN@MAIL_DOMAIN; Apple Mail's X-Apple-Unsubscribe
                                                         -> unsubscribe          unsubscribe
 6. non-standard bounces: flufl.bounce, then mailer-daemon heuristics -> bounce  bounces
    (a bounce stays a bounce even when it carries Auto-Submitted)
 7. RFC 3834 auto-replies and vacation subjects          -> autoreply            autoreply
 8. a human reply whose subject or first own lines ask to unsubscribe
                                                         -> unsubscribe          unsubscribe
 9. everything else                                      -> other

Then `proof.attach` adds what ties a bounce, complaint or unsubscribe request to us; the
kind never depends on it, the action does (services/inbound.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from listmgr.mail.inbound import proof
from listmgr.mail.inbound.autoreply import rule_autoreply
from listmgr.mail.inbound.bounces import rule_bounce
from listmgr.mail.inbound.classification import Classification, Envelope
from listmgr.mail.inbound.context import Context
from listmgr.mail.inbound.reports import rule_arf, rule_dsn, rule_provider_complaint, rule_ses
from listmgr.mail.inbound.unsubscribe import (
    rule_apple_unsubscribe,
    rule_reply_unsubscribe,
    rule_unsubscribe_address,
)

if TYPE_CHECKING:  # pragma: no cover
    from listmgr.tokens import Tokens

RULES = (
    rule_ses,
    rule_arf,
    rule_dsn,
    rule_provider_complaint,
    rule_unsubscribe_address,
    rule_apple_unsubscribe,
    rule_bounce,
    rule_autoreply,
    rule_reply_unsubscribe,
)


def classify(
    raw: bytes,
    envelope: Envelope | None = None,
    *,
    tokens: Tokens | None = None,
    mail_domain: str = "",
    authserv_id: str = "",
) -> Classification:
    """Classify raw RFC 5322 bytes, with the proof tying it to us (see `proof`). Never raises.

    `authserv_id` names the operator's MTA in Authentication-Results ("" trusts none)."""
    try:
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        if not isinstance(raw, (bytes, bytearray, memoryview)):
            return Classification("other", evidence={"rule": "not-bytes"}, confidence=0.0)
        ctx = Context(
            bytes(raw),
            envelope or Envelope(),
            tokens,
            (mail_domain or "").lower(),
            authserv_id or "",
        )
        for rule in RULES:
            result = rule(ctx)
            if result is not None:
                return proof.attach(ctx, result)
        return ctx.result("other", rule="no-rule", confidence=0.5)
    except Exception as exc:
        return Classification(
            "other", evidence={"rule": "error", "error": repr(exc)[:300]}, confidence=0.0
        )
