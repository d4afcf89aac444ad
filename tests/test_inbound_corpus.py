"""The classifier against the whole shared corpus of real bounces, complaints, auto-replies and
replies (see the corpus README). The corpus stays outside the repository: it is found through
LISTMGR_CORPUS, by default ../shared/corpus next to the checkout."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from listmgr.mail.inbound import KINDS, Classification, classify

CORPUS = Path(os.environ.get("LISTMGR_CORPUS") or Path(__file__).parents[2] / "shared" / "corpus")
MANIFEST = CORPUS / "manifest.json"

pytestmark = pytest.mark.skipif(
    not MANIFEST.is_file(),
    reason=f"inbound corpus not found at {CORPUS} (set LISTMGR_CORPUS to its folder)",
)

NON_EMAIL = ("_reply_text",)  # talon's expected-output files: not messages at all


@dataclass(frozen=True)
class Case:
    path: str
    label: str
    result: Classification

    @property
    def expected(self) -> str:
        return "other" if self.label == "reply" else self.label


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    entries = json.loads(MANIFEST.read_text(encoding="utf-8"))
    out = []
    for entry in entries:
        raw = (CORPUS / entry["path"]).read_bytes()
        out.append(Case(entry["path"], entry["kind"], classify(raw)))
    return out


@pytest.fixture(scope="module")
def matrix(cases: list[Case]) -> str:
    labels = ["bounce", "complaint", "autoreply", "unsubscribe", "reply", "other"]
    counts = Counter((c.label, c.result.kind) for c in cases)
    width = max(len(k) for k in KINDS) + 2
    lines = ["label \\ got".ljust(14) + "".join(k.rjust(width) for k in KINDS) + "total".rjust(8)]
    for label in labels:
        row = [counts[(label, k)] for k in KINDS]
        lines.append(
            label.ljust(14) + "".join(str(n).rjust(width) for n in row) + str(sum(row)).rjust(8)
        )
    text = "\n".join(lines)
    print(f"\ninbound corpus confusion matrix ({len(cases)} files):\n{text}")
    return text


def wrong(cases: list[Case], label: str) -> list[str]:
    return [
        f"{c.path}: {c.result.kind} ({c.result.evidence.get('rule')})"
        for c in cases
        if c.label == label and c.result.kind != c.expected
    ]


def test_every_file_gets_a_valid_classification(cases: list[Case], matrix: str) -> None:
    assert len(cases) == len(json.loads(MANIFEST.read_text(encoding="utf-8")))
    for c in cases:
        assert c.result.kind in KINDS, (c.path, matrix)
        assert 0.0 <= c.result.confidence <= 1.0
        json.dumps(c.result.evidence)
        assert all(r == r.lower() for r in c.result.recipients), c.path
        assert (c.result.permanent is None) == (c.result.kind != "bounce"), c.path


def test_all_complaints_and_autoreplies(cases: list[Case], matrix: str) -> None:
    misses = wrong(cases, "complaint") + wrong(cases, "autoreply")
    assert not misses, f"{misses}\n{matrix}"


def test_bounces(cases: list[Case], matrix: str) -> None:
    bounces = [c for c in cases if c.label == "bounce"]
    misses = wrong(cases, "bounce")
    rate = 1 - len(misses) / len(bounces)
    assert rate >= 0.98, f"{rate:.1%} of bounces found; missed: {misses}\n{matrix}"


def test_apple_unsubscribe_and_nothing_else_unsubscribes(cases: list[Case], matrix: str) -> None:
    by_path = {c.path: c for c in cases}
    assert by_path["sisimai/arf-26.eml"].result.kind == "unsubscribe", matrix
    others = [c.path for c in cases if c.result.kind == "unsubscribe" and c.label != "unsubscribe"]
    assert not others, f"{others}\n{matrix}"


def test_replies_and_others_stay_other(cases: list[Case], matrix: str) -> None:
    misses = [
        m
        for label in ("reply", "other")
        for m in wrong(cases, label)
        if not m.split(":")[0].endswith(NON_EMAIL)
    ]
    assert not misses, f"{misses}\n{matrix}"
    for c in cases:
        if c.path.endswith(NON_EMAIL):
            assert c.result.kind != "unsubscribe", c.path


def test_flufl_addresses_and_verdicts(cases: list[Case], matrix: str) -> None:
    expected = json.loads((CORPUS / "flufl-bounce" / "expected.json").read_text(encoding="utf-8"))
    by_name = {c.path.split("/", 1)[1]: c for c in cases if c.path.startswith("flufl-bounce/")}
    addr_ok, verdict_ok, verdicts, addr_misses, verdict_misses = 0, 0, 0, [], []
    for name, want in expected.items():
        c = by_name[name]
        if {a.lower() for a in want["addresses"]} <= set(c.result.recipients):
            addr_ok += 1
        else:
            addr_misses.append(f"{name}: want {want['addresses']} got {c.result.recipients}")
        if want["addresses"] and c.label == "bounce":  # flufl's verdict only means something here
            verdicts += 1
            if (c.result.permanent is False) == want["temporary"]:
                verdict_ok += 1
            else:
                verdict_misses.append(
                    f"{name}: temporary={want['temporary']} got "
                    f"permanent={c.result.permanent} {c.result.evidence.get('status')}"
                )
    print(
        f"\nflufl-bounce: addresses {addr_ok}/{len(expected)}, "
        f"temporary/permanent {verdict_ok}/{verdicts}; misses: {addr_misses + verdict_misses}"
    )
    assert addr_ok / len(expected) >= 0.98, addr_misses
    assert verdict_ok / verdicts >= 0.98, verdict_misses
