"""classify() never raises and always answers with a valid kind: random bytes, damaged copies of
real messages (truncated, bytes flipped, headers dropped, spliced), and pathological shapes."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from listmgr.mail.inbound import KINDS, Classification, Envelope, classify
from listmgr.tokens import Tokens

CORPUS = Path(os.environ.get("LISTMGR_CORPUS") or Path(__file__).parents[2] / "shared" / "corpus")
OWN = Path(__file__).parent / "data" / "inbound"


def _sample_files() -> list[Path]:
    files = sorted(OWN.glob("*.eml"))
    manifest = CORPUS / "manifest.json"
    if manifest.is_file():
        entries = json.loads(manifest.read_text(encoding="utf-8"))
        files += [CORPUS / e["path"] for e in entries[::6]]  # every sixth: all kinds, all sources
    return files


SAMPLES = [p.read_bytes() for p in _sample_files()]
TOKENS = Tokens("fuzz-secret")


def check(result: Classification) -> None:
    assert isinstance(result, Classification)
    assert result.kind in KINDS
    assert result.permanent is None or result.kind == "bounce"
    assert 0.0 <= result.confidence <= 1.0
    assert all(isinstance(r, str) for r in result.recipients)
    json.dumps(result.evidence)


def run(raw: bytes) -> None:
    check(classify(raw))
    check(
        classify(
            raw,
            Envelope("", ("bounces+x.y@news.example.org",)),
            tokens=TOKENS,
            mail_domain="news.example.org",
        )
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000))
def test_random_bytes(raw: bytes) -> None:
    run(raw)


@settings(max_examples=100, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from(
            list(
                'From:To:Subject: \r\n>-=_;<>@"boundary=multipart/'
                "mixedreport-type=delivery-status\tAction:failed5.1.1"
            )
        ),
        max_size=2000,
    )
)
def test_header_and_mime_soup(text: str) -> None:
    run(text.encode("utf-8"))


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    raw = draw(st.sampled_from(SAMPLES))
    op = draw(st.sampled_from(["truncate", "flip", "drop-headers", "splice", "insert"]))
    if op == "truncate":
        return raw[: draw(st.integers(0, len(raw)))]
    if op == "flip":
        data = bytearray(raw)
        for _ in range(draw(st.integers(1, 40))):
            if data:
                i = draw(st.integers(0, len(data) - 1))
                data[i] = draw(st.integers(0, 255))
        return bytes(data)
    if op == "drop-headers":
        head, sep, body = (
            raw.partition(b"\n\n") if b"\r\n\r\n" not in raw else raw.partition(b"\r\n\r\n")
        )
        lines = head.splitlines(keepends=True)
        keep = [line for line in lines if not draw(st.booleans())]
        return b"".join(keep) + sep + body
    if op == "splice":
        other = draw(st.sampled_from(SAMPLES))
        return raw[: draw(st.integers(0, len(raw)))] + other[draw(st.integers(0, len(other))) :]
    at = draw(st.integers(0, len(raw)))
    return raw[:at] + draw(st.binary(min_size=1, max_size=200)) + raw[at:]


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated())
def test_mutated_real_messages(raw: bytes) -> None:
    run(raw)


def nested_multipart(depth: int) -> bytes:
    head = b"From: a@example.net\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
    parts = [head]
    for i in range(depth):
        parts.append(f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n'.encode())
    parts.append(b"Content-Type: text/plain\r\n\r\nplease unsubscribe me\r\n")
    for i in reversed(range(depth)):
        parts.append(f"--b{i}--\r\n".encode())
    return b"".join(parts)


PATHOLOGICAL = {
    "empty": b"",
    "nul": b"\x00" * 1000,
    "only-headers": b"From: x@example.net\r\nSubject: unsubscribe",
    "nested-multipart": nested_multipart(400),
    "nested-rfc822": (b"From: a@example.net\r\nContent-Type: message/rfc822\r\n\r\n" * 300)
    + b"Subject: x\r\n\r\nbody",
    "long-header": b"Subject: " + b"unsubscribe " * 50_000 + b"\r\n\r\nx",
    "big-body": b"From: a@example.net\r\nSubject: hi\r\n\r\n" + b"a" * 3_000_000,
    "many-parts": b'From: a@example.net\r\nContent-Type: multipart/mixed; boundary="x"\r\n\r\n'
    + b"--x\r\nContent-Type: text/plain\r\n\r\nhello\r\n" * 5000
    + b"--x--\r\n",
    "quote-storm": b"From: a@example.net\r\nSubject: Re: x\r\n\r\n" + b"> " * 40_000,
    "header-storm": b"From: a@example.net\r\nSubject: Re: x\r\n\r\n"
    + b"From: x\nSent: y\nTo: z\n" * 3000,
    "wrote-storm": b"From: a@example.net\r\nSubject: Re: x\r\n\r\n"
    + b"On a day someone wrote " * 5000,
    "html-storm": b"From: a@example.net\r\nContent-Type: text/html\r\n\r\n"
    + b"<div><blockquote>" * 20_000,
    "dsn-storm": b"From: MAILER-DAEMON@x\r\nContent-Type: multipart/report; report-type=delivery-status;"
    b' boundary="b"\r\n\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n'
    + b"Final-Recipient: rfc822; a@b.c\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n" * 5000
    + b"--b--\r\n",
    "json-storm": b"{" * 100_000,
    "bad-charset": b"From: a@example.net\r\nContent-Type: text/plain; charset=x-no-such-charset\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n",
    "bad-encoded-words": b"From: =?utf-8?B?####?= <a@example.net>\r\nSubject: =?x-bad?Q?=FF=FE?=\r\n\r\nx",
}


def test_pathological_inputs_answer_quickly() -> None:
    # CPU time of this thread, not wall time: other processes on a loaded machine (parallel
    # test workers) cannot slow it down, while a quadratic pattern still costs its seconds.
    for name, raw in PATHOLOGICAL.items():
        start = time.thread_time()
        run(raw)
        took = time.thread_time() - start
        assert took < 10, f"{name} took {took:.1f} s of CPU"


def test_not_bytes_is_other() -> None:
    check(classify(None))
    check(classify(12345))
    check(classify("From: a@example.net\r\nSubject: unsubscribe\r\n\r\n"))
