"""A person's answer to an inbound message: to whom it goes (Reply-To, else From), its subject
("Re: " once) and the threading headers (In-Reply-To, References; RFC 5322 3.6.4). Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import getaddresses

from listmgr.addresses import normalize_email
from listmgr.errors import ValidationError
from listmgr.mail.inbound import message
from listmgr.mail.inbound.message import decoded

MSG_ID = re.compile(r"<[!-;=?-~]{1,250}>")  # printable ASCII, no < > or spaces inside
MAX_REFERENCES = 20  # the oldest (first) one and the most recent ones are kept
RE = re.compile(r"^\s*(re|aw|sv|antw)\s*(\[\d+\])?\s*:\s*", re.IGNORECASE)
SUBJECT_LIMIT = 250


@dataclass(frozen=True)
class Answer:
    to: str
    subject: str
    in_reply_to: str
    references: str


def _ids(value: str) -> list[str]:
    return MSG_ID.findall(value or "")


def subject(original: str) -> str:
    """ "Re: " and the original subject, never "Re: Re: …" (nor "Re: AW: …")."""
    text = " ".join(original.split())
    while True:
        stripped = RE.sub("", text, count=1)
        if stripped == text:
            break
        text = stripped
    return f"Re: {text}"[:SUBJECT_LIMIT] if text else "Re: your message"


def answer(raw: bytes) -> Answer:
    """Whom to answer and how to thread the answer; refused when the message names nobody."""
    try:
        head = message.head(raw)
    except Exception:  # headers too broken to read
        raise ValidationError("the message has no readable headers", field="to") from None
    to = ""
    for name in ("Reply-To", "From"):
        for _, addr in getaddresses([str(v) for v in head.get_all(name) or []]):
            try:
                to = normalize_email(addr)
            except ValidationError:
                continue
            break
        if to:
            break
    if not to:
        raise ValidationError("the message has no sender address to answer", field="to")
    own = _ids(str(head.get("Message-ID", "") or ""))[:1]
    earlier = (
        _ids(str(head.get("References", "") or ""))
        or _ids(str(head.get("In-Reply-To", "") or ""))[:1]
    )
    chain = earlier + own
    if len(chain) > MAX_REFERENCES:
        chain = chain[:1] + chain[-(MAX_REFERENCES - 1) :]
    return Answer(
        to=to,
        subject=subject(decoded(head.get("Subject", "") or "")),
        in_reply_to=own[0] if own else "",
        references=" ".join(chain),
    )
