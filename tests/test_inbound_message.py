"""The raw-message views the classifier and the store share: the header block read alone, and
a message of many parts cut before the parser meets them."""

from __future__ import annotations

from email.parser import BytesHeaderParser
from email.policy import compat32

import pytest

from listmgr.mail.inbound import message


def _full_head(raw: bytes) -> list[tuple[str, str]]:
    """The headers as the parser reads them from the first 64 KiB, body and all."""
    return BytesHeaderParser(policy=compat32).parsebytes(raw[:65536], headersonly=True).items()


@pytest.mark.parametrize(
    "raw",
    [
        b"Message-ID: <a@example.org>\r\nSubject: hi\r\n\r\nbody\r\nX-Not: a header\r\n",
        b"Message-ID: <a@example.org>\nSubject: folded\n  on two lines\n\nbody\n\nX-Not: b\n",
        b"Message-ID: <a@example.org>\rSubject: old Mac\r\rX-Not: c\r",
        b"Subject: no empty line at all\r\nMessage-ID: <a@example.org>\r\n",
        b"\r\nMessage-ID: <starts-with-an-empty-line@example.org>\r\n",
        b"Subject: no separator\r\nthis line starts the body\r\nMessage-ID: <b@example.org>\r\n",
        b"X-Long: " + b"x" * 70_000 + b"\r\nMessage-ID: <past-64k@example.org>\r\n\r\nbody",
        b"A: b\r\n" * 11_000 + b"Message-ID: <late@example.org>\r\n\r\nbody",
        b"Subject: \xe9t\xe9\r\n\r\n" + b"\xff" * 100,
    ],
)
def test_the_header_block_alone_reads_as_the_whole_message_would(raw: bytes) -> None:
    assert message.head(raw).items() == _full_head(raw)


def test_a_message_is_cut_before_the_part_past_the_limit() -> None:
    raw = b"--first\r\nA\r\n--second\r\nB\r\n--third\r\nC\r\n"
    assert message.bounded(raw, 3) == (raw[: raw.index(b"--third")], True)
    assert message.bounded(raw, 1) == (b"", True)  # the delimiter on the very first line
    assert message.bounded(raw, 4) == (raw, False)
    assert message.bounded(b"-- \r\n--\r\n---x\r\n", 1) == (b"-- \r\n--\r\n", True)
