"""The bounce policy: what an SMTP reply code or an enhanced status code (RFC 3463) says about
the address. Pure; the inbound classifier and the campaign sender both ask it.

- X.2.2 (mailbox full) is transient whatever its class: RFC 3463 says so of X.2.2, and 552 on
  RCPT is to be read as 452 (RFC 5321 4.5.3.1.10).
- Otherwise class 5 (5.x.x, or a 5yz reply without an enhanced code) is permanent: a hard
  bounce; class 4 is transient: a soft bounce; class 2 is no bounce.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

Verdict = Literal["hard", "soft"]
HARD: Verdict = "hard"
SOFT: Verdict = "soft"

STATUS_RE = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


def status_verdict(status: str) -> Verdict | None:
    """`5.1.1` -> hard, `4.7.1` or `5.2.2` -> soft, `2.0.0` (or no status code) -> None."""
    m = STATUS_RE.search(status)
    if m is None or m.group(1) == "2":
        return None
    if m.group(1) == "4" or (int(m.group(2)), int(m.group(3))) == (2, 2):
        return SOFT
    return HARD


def statuses_verdict(statuses: Iterable[str]) -> Verdict | None:
    """Several status codes for one recipient: any hard one wins, then any soft one."""
    verdicts = {status_verdict(s) for s in statuses}
    return HARD if HARD in verdicts else SOFT if SOFT in verdicts else None


def reply_verdict(code: int | None, text: str = "") -> Verdict | None:
    """An SMTP reply (`550 5.1.1 no such user`): its enhanced status code when it has one
    (the text may carry it, the code or not), else its basic code; None for a success or a
    reply without a code (a dropped connection)."""
    if STATUS_RE.search(text):
        return status_verdict(text)
    if code is None or not 400 <= code < 600:
        return None
    if code < 500 or code == 552:
        return SOFT
    return HARD
