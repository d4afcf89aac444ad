"""flufl.bounce's detectors as listmgr runs them (listmgr.mail.inbound.detectors) answer as
flufl.bounce itself does: on every message of the shared corpus and of the tests' own files,
and on bounces made to find the edges of the shortcut (a body not in ASCII, a start pattern
with alternatives, letters that match only when case is ignored)."""

from __future__ import annotations

import email
import json
import os
import re
from collections.abc import Callable
from email.message import Message
from email.policy import compat32
from pathlib import Path

import flufl.bounce
import pytest

from listmgr.mail.inbound import detectors

CORPUS = Path(os.environ.get("LISTMGR_CORPUS") or Path(__file__).parents[2] / "shared" / "corpus")
MANIFEST = CORPUS / "manifest.json"
OWN = sorted(Path(__file__).parent.rglob("*.eml"))


def _msg(raw: bytes) -> Message:
    return email.message_from_bytes(raw, policy=compat32)


def _answer(detect: Callable[[Message], tuple], msg: Message) -> tuple:
    """What `detect` found, or the exception it raised (flufl's detectors raise on some
    malformed bounces; listmgr then goes on without them)."""
    try:
        return tuple(frozenset(found) for found in detect(msg))
    except Exception as exc:
        return (type(exc), str(exc))


def _same(msg: Message) -> tuple:
    ours = _answer(detectors.all_failures, msg)
    assert ours == _answer(flufl.bounce.all_failures, msg)
    return ours


@pytest.mark.skipif(not MANIFEST.is_file(), reason=f"inbound corpus not found at {CORPUS}")
def test_every_corpus_message_gets_flufls_own_answer() -> None:
    entries = json.loads(MANIFEST.read_text(encoding="utf-8"))
    found = [_same(_msg((CORPUS / e["path"]).read_bytes())) for e in entries]
    assert sum(1 for answer in found if isinstance(answer[0], frozenset) and any(answer)) > 100


def test_every_message_file_of_the_tests_gets_flufls_own_answer() -> None:
    assert OWN
    for path in OWN:
        _same(_msg(path.read_bytes()))


def _bounce(body: str, charset: str = "utf-8") -> Message:
    raw = (
        "From: MAILER-DAEMON@mx.example.net\r\n"
        "To: bounces@lists.example.org\r\n"
        "Subject: Undelivered Mail\r\n"
        f"Content-Type: text/plain; charset={charset}\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n" + body
    )
    return _msg(raw.encode(charset))


@pytest.mark.parametrize(
    "body",
    [
        # an ASCII body: the start text found by a substring test, whatever its case
        "THIS MESSAGE WAS CREATED AUTOMATICALLY BY MAIL DELIVERY SOFTWARE.\r\n\r\n"
        "A message that you sent could not be delivered to one or more of its\r\n"
        "recipients. This is a permanent error. The following address(es) failed:\r\n\r\n"
        "  gone.person@example.com\r\n    mailbox unavailable\r\n",
        # not ASCII: the pattern itself searches the body
        "Ce message a été créé automatiquement.\r\n"
        "The following addresses had permanent fatal errors -----\r\n"
        "<parti@example.fr>\r\n\r\n-- The header and text --\r\n",
        # the long s (U+017F) matches "s" only when case is ignored: no substring test finds it
        "Thiſ message was created automatically by mail delivery software.\r\n\r\n"
        "  gone.person@example.com\r\n    mailbox unavailable\r\n",
        # a start pattern with alternatives (Del(i|e)very ...) is always searched
        "Delevery to the following recipients failed permanently:\r\n\r\n"
        "     nobody.here@example.com\r\n\r\nTechnical details of permanent failure:\r\n",
        # the start text split over two lines matches no line, in flufl as here
        "This message was created automatically\r\nby mail delivery software.\r\n\r\n"
        "  gone.person@example.com\r\n",
        # a warning (SimpleWarning): temporary failures
        "This is an advisory-only email. Please do not reply to it.\r\n\r\n"
        "Delivery to the following recipient has been delayed:\r\n\r\n"
        "     slow.reader@example.com\r\n\r\nMessage will be retried for 2 more day(s)\r\n",
        "Just a note from a person, nothing failed here.\r\n",
        "",
    ],
)
def test_made_up_bounces_get_flufls_own_answer(body: str) -> None:
    _same(_bounce(body))


def test_the_shortcut_still_finds_what_only_the_pattern_finds() -> None:
    """The long-s body is found by flufl (case ignored) and so here, through the pattern."""
    body = (
        "Thiſ message was created automatically by mail delivery software.\r\n\r\n"
        "A message that you sent could not be delivered to one or more of its\r\n"
        "recipients. The following address(es) failed:\r\n\r\n  gone.person@example.com\r\n"
    )
    temporary, permanent = _same(_bounce(body))
    assert permanent == {b"gone.person@example.com"} and not temporary


@pytest.mark.parametrize(
    ("pattern", "begins"),
    [
        ("Your message could not be delivered", "your message could not be delivered"),
        (r"^Your message\s*$", "your message"),
        (r"The following recipient\(s\) could not", "the following recipient"),
        ("Delivery has failed.", "delivery has failed"),
        ("Undeliverable?", "undeliverabl"),  # the e is optional
        ("Unknown users*", "unknown user"),
        ("Failuree+ notice", "failuree"),
        ("x{2} marks", ""),
        ("Del(i|e)very to", ""),  # alternatives: no single text begins every match
        ("Sent to:|Failed:", ""),
        ("abc", ""),  # too short to be worth it
        ("Échec de remise", ""),  # not ASCII: lowering is not what ignoring case does
    ],
)
def test_the_text_a_start_pattern_begins_with(pattern: str, begins: str) -> None:
    assert detectors.begins_with(pattern) == begins
    if begins:  # every match of the pattern, case ignored, starts with that text
        sample = re.sub(r"[\\^$?*+(){}|.]", "", pattern).upper() + "e"
        match = re.search(pattern, sample, re.IGNORECASE)
        assert match is None or match.group(0).lower().startswith(begins)


def test_detectors_run_in_flufls_order() -> None:
    from flufl.bounce._scan import _DETECTORS

    assert len(detectors.DETECTORS) == len(_DETECTORS) > 10
    for ours, theirs in zip(detectors.DETECTORS, _DETECTORS, strict=True):
        assert issubclass(ours, theirs)
