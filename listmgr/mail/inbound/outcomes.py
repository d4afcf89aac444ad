"""What processing did to an inbound message, in plain words: the one mapping from the outcome
code stored with a message (evidence "outcome") to the sentence the inbox shows."""

from __future__ import annotations

WORDS = {
    "hard_bounce": "Bounce — the address doesn't exist; we stopped mailing it",
    "soft_bounce": "Bounce — a passing delivery problem (full mailbox, busy server); "
    "we keep mailing the address for now",
    "soft_bounce_limit": "Bounce — delivery failed again and again; we stopped mailing the address",
    "complaint": "Spam complaint — the person was taken off every list and won't be mailed again",
    "unsubscribed_list": "Unsubscribe — the person was taken off the list",
    "unsubscribed_all": "Unsubscribe — the person was taken off all lists",
    "already_unsubscribed": "Unsubscribe — the person was already off; nothing changed",
    "confirm_mailed": "Unsubscribe request we couldn't verify — we mailed the sender a link to "
    "confirm it; nothing changes until they click it",
    "confirm_waiting": "Unsubscribe request we couldn't verify — waiting for the sender to "
    "confirm by the link (no new link was mailed)",
    "confirmed_by_link": "Unsubscribe — the sender confirmed by the link; off all lists",
    "on_no_list": "Unsubscribe request — the address is on no list any more; nothing to do",
    "unproven": "Nothing changed — nothing in it shows it is about one of our subscribers",
    "nobody": "Nothing changed — it names nobody we mail",
    "autoreply": "Automatic reply (out of office or similar) — nothing to do",
    "kept": "Not understood — kept here for a person to read",
}
# Messages stored before outcome codes existed, and those not processed yet: by kind or status.
BY_KIND = {
    "bounce": "Bounce",
    "complaint": "Spam complaint",
    "autoreply": WORDS["autoreply"],
    "unsubscribe": "Unsubscribe request",
    "other": WORDS["kept"],
}
BY_STATUS = {
    "stored": "Not looked at yet — it waits for processing",
    "failed": "Could not be processed — kept here for a person to read",
}


def plain(code: str, *, kind: str, status: str, proof: str) -> str:
    """The sentence for a message's outcome (its code, else its kind, proof and status)."""
    if proof == "link":  # confirmed later, by the link an unproven request was answered with
        return WORDS["confirmed_by_link"]
    if code in WORDS:
        return WORDS[code]
    if status in BY_STATUS:
        return BY_STATUS[status]
    if proof == "none":
        return WORDS["unproven"]
    return BY_KIND.get(kind, "Processed")
