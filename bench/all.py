"""Run every benchmark at one size and print one table of figures, goals and ratios.

    python bench/all.py [--size small|medium|large|SCALE] [--only NAME,...] [--skip NAME,...]
                        [--logs DIR] [--timeout SECONDS] [--summary FILE]

Each benchmark runs as a subprocess of its own, one after the other (side by side they would
measure each other), with its sizes scaled: large (scale 1) is each benchmark's own default
(1,000,000 subscribers for the web and segments, 100,000 recipients for send, ...), medium is
0.2 of it and small 0.02 (with floors that keep every figure meaningful); a number is a scale
of its own. Each writes its figures with `--summary FILE` (see bench/benchkit.py); a benchmark
that does not take --summary still runs and is reported as "no summary". Its whole output is
kept in --logs (default a new folder under /tmp), printed in part when it fails.

ratio: the figure against its goal, 1.00 or more meets it (value / goal for an "at least" goal,
goal / value for an "at most" one).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIZES = {"small": 0.02, "medium": 0.2, "large": 1.0}


def _n(value: float, floor: int) -> str:
    return str(max(floor, int(value)))


# name -> (script, arguments for a scale)
BENCHES: dict[str, tuple[str, Callable[[float], list[str]]]] = {
    "send": (
        "send.py",
        lambda s: (
            ["--recipients", _n(100_000 * s, 5_000)]
            + (["--big", _n(1_000_000 * s, 0)] if s >= 1 else [])
        ),
    ),
    "web": (
        "web.py",
        lambda s: [
            "--subscribers",
            _n(1_000_000 * s, 20_000),
            "--seconds",
            "15" if s >= 1 else "8" if s >= 0.2 else "5",
        ],
    ),
    "inbound": (
        "inbound.py",
        lambda s: [
            "--rounds",
            "3" if s >= 0.2 else "1",
            "--hook-count",
            _n(10_000 * s, 1_000),
            "--parts",
            _n(100_000 * s, 10_000),
        ],
    ),
    "profiles": ("profiles.py", lambda s: ["--subscribers", _n(50_000 * s, 5_000)]),
    "import": ("import.py", lambda s: ["--db", "both", "--rows", _n(1_000_000 * s, 20_000)]),
    "segments": (
        "segments.py",
        lambda s: [
            "--db",
            "both",
            "--subscribers",
            _n(1_000_000 * s, 20_000),
            "--events",
            _n(500_000 * s, 10_000),
        ],
    ),
}


def scale_of(size: str) -> float:
    if size in SIZES:
        return SIZES[size]
    try:
        value = float(size)
    except ValueError:
        raise SystemExit(f"--size: small, medium, large or a number, not {size!r}") from None
    if value <= 0:
        raise SystemExit("--size: a scale above 0")
    return value


def takes_summary(script: Path) -> bool:
    """Whether the benchmark knows --summary (its --help says so)."""
    out = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120
    )
    return "--summary" in out.stdout


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit != "x" and float(value).is_integer():
        text = f"{value:,.0f}"
    elif unit == "x" or abs(value) < 10:
        text = f"{value:,.2f}"
    elif abs(value) < 100:
        text = f"{value:,.1f}"
    else:
        text = f"{value:,.0f}"
    return f"{text} {unit}".strip() if unit and unit != "x" else text


def met(row: dict) -> str:
    """yes / NO from the ratio, else from the goal's text (">= 0.6", "<= 50")."""
    ratio = row.get("ratio")
    if ratio is not None:
        return "yes" if ratio >= 1 else "NO"
    found = re.match(r"\s*(>=|<=|≥|≤)\s*([\d.,]+)", str(row.get("goal") or ""))
    if not found:
        return ""
    goal = float(found.group(2).replace(",", ""))
    at_least = found.group(1) in (">=", "≥")
    value = float(row["value"])
    return "yes" if (value >= goal if at_least else value <= goal) else "NO"


def table(results: list[dict]) -> str:
    header = ("bench", "figure", "value", "goal", "ratio", "met")
    lines: list[tuple[str, ...]] = []
    for res in results:
        if res["status"] != "ok":
            lines.append((res["bench"], res["status"], "", "", "", ""))
            continue
        for row in res["rows"]:
            goal = row.get("goal")
            lines.append(
                (
                    res["bench"],
                    str(row["figure"]),
                    fmt(row["value"], row.get("unit", "")),
                    f"{goal} {row.get('unit', '')}".strip() if goal else "-",
                    fmt(row.get("ratio")),
                    met(row),
                )
            )
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    out = []
    for n, line in enumerate([header, *lines]):
        cells = [
            cell.rjust(w) if i in (2, 4) else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def run_one(
    name: str, script: Path, args: list[str], logs: Path, timeout: float
) -> dict[str, object]:
    summary = logs / f"{name}.json"
    summary.unlink(missing_ok=True)
    command = [sys.executable, str(script), *args]
    knows = takes_summary(script)
    if knows:
        command += ["--summary", str(summary)]
    log = logs / f"{name}.log"
    print(f"{name}: {' '.join(command[1:])}", flush=True)
    started = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()  # the benchmark cleans up on SIGTERM
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            code = None
    took = time.perf_counter() - started
    result: dict[str, object] = {"bench": name, "seconds": round(took, 1), "rows": []}
    if code != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        why = "timed out" if code is None else f"failed (exit {code})"
        print(f"{name}: {why} after {took:.0f} s; log {log}:", flush=True)
        print("\n".join(f"    {line}" for line in tail), flush=True)
        result["status"] = why
    elif not knows or not summary.is_file():
        result["status"] = "no summary"
    else:
        result["status"] = "ok"
        result["rows"] = json.loads(summary.read_text())["rows"]
    print(f"{name}: {result['status']} in {took:.0f} s", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small", help="small, medium, large or a scale")
    parser.add_argument("--only", default="", help="comma-separated benchmarks to run")
    parser.add_argument("--skip", default="", help="comma-separated benchmarks to leave out")
    parser.add_argument("--logs", type=Path, help="folder for each benchmark's output")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per benchmark")
    parser.add_argument("--summary", type=Path, help="write every summary as JSON here")
    args = parser.parse_args()
    scale = scale_of(args.size)
    only = {n for n in args.only.split(",") if n}
    skip = {n for n in args.skip.split(",") if n}
    unknown = (only | skip) - set(BENCHES)
    if unknown:
        raise SystemExit(f"unknown benchmarks {sorted(unknown)}; known: {sorted(BENCHES)}")
    logs = args.logs or Path(tempfile.mkdtemp(prefix="lmbench-all-"))
    logs.mkdir(parents=True, exist_ok=True)
    print(f"size {args.size} (scale {scale:g}); logs in {logs}", flush=True)
    load = os.getloadavg()
    results = []
    for name, (script, make) in BENCHES.items():
        if (only and name not in only) or name in skip:
            continue
        results.append(run_one(name, HERE / script, make(scale), logs, args.timeout))
    after = os.getloadavg()
    print()
    print(table(results))
    print(
        f"\nload average (1, 5, 15 min) before {', '.join(f'{x:.1f}' for x in load)}, "
        f"after {', '.join(f'{x:.1f}' for x in after)} on {os.cpu_count()} cores; "
        "compare figures of one run (ratios), not across machines or loads"
    )
    if args.summary:
        args.summary.write_text(json.dumps({"size": args.size, "results": results}, indent=1))
    return 0 if all(r["status"] in ("ok", "no summary") for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
