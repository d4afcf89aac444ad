"""A list's privacy notice, built from the configuration alone (never written by hand).

`compose` is the one place that says what the notice says: who is responsible, what is
collected and under which consent, for what, who else receives it, how long each kind is
kept (the same settings the retention sweep enforces) and how to use one's rights. Its result
is plain JSON; equal configuration gives an equal notice, so a digest tells when it changed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from listmgr.errors import ConfigError
from listmgr.mail.transport import parse_smtp_urls
from listmgr.settings import Settings

OUTBOX = "none, mail stays on this server"


@dataclass(frozen=True)
class ListFacts:
    """What the notice needs to know about one list besides the settings."""

    slug: str
    name: str
    postal_address: str  # the list's own; empty: the default
    field_labels: tuple[str, ...]  # the sign-up form's fields, in the form's order
    interest_labels: tuple[str, ...]


def kept(days: int) -> str:
    """A retention period in words."""
    if days <= 0:
        return "until you leave or ask us to erase your data"
    return "1 day" if days == 1 else f"{days} days"


UNREADABLE = "the SMTP servers of the configuration (their addresses cannot be read)"


def mail_servers(settings: Settings) -> list[str]:
    """The host names of the SMTP servers mail goes through, or what stands in for them."""
    if settings.embedded_outbox:
        return [OUTBOX]
    try:
        servers = parse_smtp_urls(settings.smtp_url)
    except ConfigError:  # never a part of a URL that might be a password
        return [UNREADABLE]
    return list(dict.fromkeys(server.host for server in servers))


def summary(settings: Settings, list_name: str) -> list[str]:
    """The short, layered notice under every sign-up form: who, what for, your rights."""
    return [
        f"{settings.organisation} sends you {list_name} to the address you give here "
        "(with what you fill in) and keeps proof of your consent.",
        ("Opens, clicks and activity are" if settings.tracking else "Activity is")
        + " recorded only if you allow it in your preferences; nothing is sold or used for "
        "anything else.",
        "You can see, correct, download or erase your data and leave at any time: "
        "every mail has the links.",
    ]


def _item(what: str, why: str, consent: str, kept_for: str) -> dict[str, str]:
    return {"what": what, "why": why, "consent": consent, "kept": kept_for}


def _collected(settings: Settings, facts: ListFacts) -> list[dict[str, str]]:
    joined = "your subscription (you sign up and confirm)"
    until = "as long as you are subscribed, until you ask us to erase it"
    items = [
        _item("Email address", f"to send you {facts.name}", joined, until),
        _item("Name (optional)", "to address you by name", joined, until),
    ]
    items += [
        _item(label, "what you tell us on the form", joined, until) for label in facts.field_labels
    ]
    if facts.interest_labels:
        items.append(
            _item(
                "Interests: " + ", ".join(facts.interest_labels),
                "to send you what you chose",
                joined,
                until,
            )
        )
    items.append(
        _item(
            "IP address and browser (user agent) at sign-up and confirmation",
            "proof of your consent",
            joined,
            "with the consent record, as long as your data is kept",
        )
    )
    items.append(
        _item(
            "Activity events (such as products viewed or documents downloaded)",
            "mail that fits your interests",
            "profiling: only if you allow it in your preferences",
            kept(settings.retention_activity_days),
        )
    )
    if settings.tracking:
        items.append(
            _item(
                "Opens of our mail and the links you click",
                "to learn what readers find useful",
                "tracking: only if you allow it in your preferences",
                kept(settings.retention_engagement_days),
            )
        )
    items.append(
        _item(
            "Which of our mail we sent you, when, and whether it was delivered, bounced or "
            "reported as spam",
            "to send each mail once and to stop mail that cannot be delivered",
            "needed to run the list",
            kept(settings.retention_delivery_days)
            + (" after the mailing ended" if settings.retention_delivery_days else ""),
        )
    )
    items.append(
        _item(
            "Your address on our do-not-mail list once you leave everything, your mail bounces, "
            "you complain or we stop mailing it (after an erasure only a one-way fingerprint)",
            "never to mail you again by mistake",
            "needed to respect your choice",
            "as long as we send mail",
        )
    )
    items.append(
        _item(
            "Mail you send us (replies, bounces, complaints)",
            "to answer you and to stop mail that cannot be delivered",
            "needed to run the list",
            kept(settings.retention_inbound_days),
        )
    )
    items.append(
        _item(
            "Requests to confirm you still want our mail (when we asked, by when, your answer)",
            "to stop mail that is no longer wanted",
            "needed to run the list",
            kept(settings.retention_repermission_days),
        )
    )
    return items


def compose(settings: Settings, facts: ListFacts) -> dict[str, Any]:
    """The whole notice of one list as JSON, from the settings in force and the list."""
    return {
        "list": {"slug": facts.slug, "name": facts.name},
        "summary": summary(settings, facts.name),
        "responsible": {
            "organisation": settings.organisation,
            "postal_address": facts.postal_address or settings.default_postal_address,
            "contact": settings.privacy_address,
        },
        "collected": _collected(settings, facts),
        "purposes": [
            f"Sending you {facts.name}, the mail you subscribed to.",
            "Confirming your sign-up and keeping proof of your consent.",
            "Handling bounces, replies and unsubscribe requests.",
            "Only with your consent: choosing mail by your activity (profiling)"
            + (" and measuring opens and clicks (tracking)." if settings.tracking else "."),
        ],
        "recipients": {
            "mail_servers": mail_servers(settings),
            "processors": list(settings.processors),
        },
        "retention": [
            {"what": "Sign-ups never confirmed", "kept": kept(settings.retention_unconfirmed_days)},
            {"what": "Activity events", "kept": kept(settings.retention_activity_days)},
            {"what": "Opens and clicks", "kept": kept(settings.retention_engagement_days)},
            {"what": "Mail you send us", "kept": kept(settings.retention_inbound_days)},
            {
                "what": "Which of our mail we sent you and what became of it",
                "kept": kept(settings.retention_delivery_days),
            },
            {"what": "Records of our staff's actions", "kept": kept(settings.retention_audit_days)},
            {
                "what": "Requests to confirm you still want our mail, once answered or expired",
                "kept": kept(settings.retention_repermission_days),
            },
        ],
        "rights": [
            {
                "right": "See and correct your data",
                "how": "open the preferences link at the bottom of every mail",
            },
            {
                "right": "Download (export) or erase your data",
                "how": "ask for a link on the preferences page; it is mailed to you",
            },
            {
                "right": "Leave",
                "how": "use the one-click unsubscribe link in every mail, or reply with "
                "the word \u201cunsubscribe\u201d",
            },
            {
                "right": "Ask us anything about your data",
                "how": f"write to {settings.privacy_address}",
            },
        ],
    }


def digest(content: dict[str, Any]) -> str:
    """A fingerprint of a notice's content (key order and spacing do not count)."""
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def as_text(content: dict[str, Any]) -> str:
    """A notice as plain text (the proof of consent shows it so)."""
    who = content["responsible"]
    lines = [
        f"Privacy notice: {content['list']['name']}",
        "",
        f"Responsible: {who['organisation']}, {who['postal_address']}; contact: {who['contact']}",
        "",
        "What we collect:",
    ]
    lines += [
        f"- {i['what']}: {i['why']}; needs {i['consent']}; kept {i['kept']}"
        for i in content["collected"]
    ]
    lines += ["", "Purposes:"] + [f"- {p}" for p in content["purposes"]]
    rec = content["recipients"]
    lines += ["", "Recipients:", "- Mail servers: " + ", ".join(rec["mail_servers"])]
    lines += [f"- {p}" for p in rec["processors"]]
    lines += ["", "How long:"] + [f"- {r['what']}: {r['kept']}" for r in content["retention"]]
    lines += ["", "Your rights:"] + [f"- {r['right']}: {r['how']}" for r in content["rights"]]
    return "\n".join(lines)
