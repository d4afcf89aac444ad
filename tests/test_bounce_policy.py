"""The bounce policy (RFC 3463 classes, RFC 5321 reply codes): one verdict for the campaign
sender's SMTP replies and for the inbound classifier's delivery reports."""

from __future__ import annotations

import pytest

from listmgr.mail.bounces import HARD, SOFT, reply_verdict, status_verdict, statuses_verdict


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        ("5.1.1", HARD),
        ("5.1.10", HARD),
        ("5.7.1", HARD),
        ("5.4.4", HARD),
        ("5.0.0", HARD),
        ("5.2.1", HARD),
        ("5.2.2", SOFT),  # mailbox full: a persistent transient failure (RFC 3463 3.3)
        ("4.2.2", SOFT),
        ("4.7.1", SOFT),
        ("4.4.1", SOFT),
        ("2.0.0", None),
        ("", None),
        ("Status: 5.1.1 (bad destination mailbox address)", HARD),
    ],
)
def test_status_codes(status: str, verdict: str | None) -> None:
    assert status_verdict(status) == verdict


def test_several_statuses_hard_wins() -> None:
    assert statuses_verdict(["4.4.1", "5.1.1"]) == HARD
    assert statuses_verdict(["2.0.0", "4.4.1", "5.2.2"]) == SOFT
    assert statuses_verdict(["2.0.0"]) is None
    assert statuses_verdict([]) is None


@pytest.mark.parametrize(
    ("code", "text", "verdict"),
    [
        (550, "550 5.1.1 <bad@example.org>: no such user", HARD),
        (550, "5.7.1 message refused by policy", HARD),
        (553, "5.1.3 bad address syntax", HARD),
        (552, "552 5.2.2 mailbox full", SOFT),
        (550, "550 4.2.2 mailbox full", SOFT),  # the enhanced code is the finer word
        (452, "452 4.2.2 mailbox full", SOFT),
        (451, "greylisted", SOFT),
        (550, "no such user", HARD),
        (551, "user not local", HARD),
        (554, "transaction failed", HARD),
        (552, "exceeded storage allocation", SOFT),  # RFC 5321 4.5.3.1.10: read as 452
        (421, "closing", SOFT),
        (250, "ok", None),
        (None, "connection lost", None),
    ],
)
def test_smtp_replies(code: int | None, text: str, verdict: str | None) -> None:
    assert reply_verdict(code, text) == verdict
