"""Inbound benchmark: classify the whole shared corpus in one process.

    python bench/inbound.py [--corpus DIR] [--rounds N]

Prints messages per second and the slowest file with its time. Each stage is one function
taking the loaded corpus and returning a result line, listed in STAGES; another stage (for
example posting the corpus to the HTTP hook) is one more function in that list.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from listmgr.mail.inbound import classify  # noqa: E402

DEFAULT_CORPUS = Path(os.environ.get("LISTMGR_CORPUS")
                      or Path(__file__).resolve().parents[2] / "shared" / "corpus")


@dataclass(frozen=True)
class Message:
    path: str
    raw: bytes


def load_corpus(corpus: Path) -> list[Message]:
    """Every file the manifest lists, read into memory (reading is not measured)."""
    entries = json.loads((corpus / "manifest.json").read_text(encoding="utf-8"))
    return [Message(e["path"], (corpus / e["path"]).read_bytes()) for e in entries]


def bench_classify(messages: list[Message], rounds: int = 1) -> str:
    """Classify every message `rounds` times; messages/s and the slowest single file."""
    slowest, slowest_path = 0.0, ""
    start = time.perf_counter()
    for _ in range(rounds):
        for m in messages:
            t0 = time.perf_counter()
            classify(m.raw)
            took = time.perf_counter() - t0
            if took > slowest:
                slowest, slowest_path = took, m.path
    total = time.perf_counter() - start
    count = len(messages) * rounds
    return (f"classify: {count} messages in {total:.2f} s = {count / total:.0f} messages/s; "
            f"slowest {slowest_path} {slowest * 1000:.1f} ms")


STAGES: list[Callable[..., str]] = [bench_classify]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if not (args.corpus / "manifest.json").is_file():
        print(f"no corpus at {args.corpus} (use --corpus or LISTMGR_CORPUS)", file=sys.stderr)
        return 2
    messages = load_corpus(args.corpus)
    size = sum(len(m.raw) for m in messages)
    print(f"corpus: {len(messages)} files, {size / 1e6:.1f} MB")
    classify(messages[0].raw)  # warm up imports and regex compilation
    for stage in STAGES:
        print(stage(messages, rounds=args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
