"""What every benchmark shares: scratch names, ports and Redis databases of its own for each run
(so that several benchmarks, or two copies of one, can run side by side), clean-up, and the
summary file that bench/all.py collects.

Per run:
- PostgreSQL scratch databases are named `PREFIX_BENCH_PID_RANDOM` (PREFIX from
  LISTMGR_BENCH_DB_PREFIX, default `lmbench`) and dropped afterwards;
- ports are chosen by the kernel (bind to port 0);
- Redis: the broker keys of listmgr all start with `broker_namespace` (Dramatiq's queues and the
  shared send-rate keys), so each run gets a namespace of its own; the web's rate limiter
  (Flask-Limiter) has no such prefix, so each run also claims a Redis database of its own: an
  empty one among LISTMGR_BENCH_REDIS_DBS (default `1-15`), taken with `SET NX` on a claim key
  and given back (its keys deleted) at the end. A claim whose process is gone is taken over.
  `--redis-url` names a database outright instead (it is still cleaned of this run's keys).
- the inbound corpus is `../shared/corpus` beside the checkout, or LISTMGR_CORPUS.

Summary (`--summary FILE`): {"bench": NAME, "rows": [{"figure", "value", "unit", "goal",
"ratio"}]}; goal is a text such as ">= 1000" or "<= 50" (in the row's unit) or null, ratio is
value / goal for ">=" goals and goal / value for "<=" goals (so 1.0 or more meets the goal),
or null.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get(
    "LISTMGR_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_SERVER = os.environ.get("LISTMGR_BENCH_REDIS", "redis://127.0.0.1:6379")
CLAIM_KEY = "lmbench:claim"
CLAIM_SECONDS = 6 * 3600


def corpus_dir() -> Path:
    """The shared inbound corpus: LISTMGR_CORPUS, else ../shared/corpus beside the checkout."""
    return Path(os.environ.get("LISTMGR_CORPUS") or ROOT.parent / "shared" / "corpus")


def run_tag(bench: str) -> str:
    """A name no other run uses at the same time: prefix, benchmark, process id, randomness."""
    prefix = os.environ.get("LISTMGR_BENCH_DB_PREFIX", "lmbench")
    return f"{prefix}_{bench}_{os.getpid()}_{secrets.token_hex(3)}"


def free_port() -> int:
    """A TCP port the kernel just gave out on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def exit_on_sigterm() -> None:
    """SIGTERM (bench/all.py giving up, Ctrl-C in a pipe) runs the clean-up in `finally`."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def stop(proc: Any, grace: float = 30, sig: int = signal.SIGTERM) -> None:
    """Stop a process this run started: `sig`, then SIGKILL after `grace` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(grace)
    except Exception:  # subprocess.TimeoutExpired
        proc.kill()
        proc.wait()


# -- PostgreSQL ----------------------------------------------------------------------------------
class ScratchDatabase:
    """A PostgreSQL database of this run beside `base` (created now, dropped by drop())."""

    def __init__(self, bench: str, base: str = PG_URL) -> None:
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        self.name = run_tag(bench)
        server = make_url(base)
        self._admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with self._admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{self.name}"'))
        self.url = server.set(database=self.name).render_as_string(hide_password=False)

    def drop(self) -> None:
        from sqlalchemy import text

        with self._admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self._admin.dispose()


# -- Redis ---------------------------------------------------------------------------------------
def _candidates() -> list[int]:
    spec = os.environ.get("LISTMGR_BENCH_REDIS_DBS", "1-15")
    out: list[int] = []
    for part in spec.split(","):
        low, _, high = part.strip().partition("-")
        out += list(range(int(low), int(high or low) + 1))
    return out


def _alive(claim: str) -> bool:
    host, pid = claim.split()[:2]
    if host != socket.gethostname():
        return True  # another machine's run: not ours to judge
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


@dataclass
class RedisSpace:
    """This run's place in Redis: a database URL and a broker namespace."""

    url: str
    namespace: str
    claimed: bool
    _client: Any = field(default=None, repr=False)

    @classmethod
    def claim(cls, bench: str, url: str | None = None) -> RedisSpace:
        import redis

        namespace = run_tag(bench).replace("_", "-")
        if url:
            return cls(url, namespace, False, redis.Redis.from_url(url))
        value = f"{socket.gethostname()} {os.getpid()} {namespace}"
        for db in _candidates():
            client = redis.Redis.from_url(f"{REDIS_SERVER}/{db}")
            held = client.get(CLAIM_KEY)
            if held is not None and not _alive(held.decode()):
                _clean(client, held.decode().split()[2])
                client.delete(CLAIM_KEY)
            if client.set(CLAIM_KEY, value, nx=True, ex=CLAIM_SECONDS):
                if client.dbsize() == 1:  # empty but for our claim: nobody else uses it
                    return cls(f"{REDIS_SERVER}/{db}", namespace, True, client)
                client.delete(CLAIM_KEY)
            client.close()
        raise SystemExit(
            "no free Redis database among LISTMGR_BENCH_REDIS_DBS="
            f"{os.environ.get('LISTMGR_BENCH_REDIS_DBS', '1-15')}; pass --redis-url"
        )

    def release(self) -> None:
        _clean(self._client, self.namespace)
        if self.claimed:
            self._client.delete(CLAIM_KEY)
        self._client.close()


def _clean(client: Any, namespace: str) -> None:
    """Delete the keys of one run: its broker namespace and the rate limiter's."""
    for pattern in (f"{namespace}*", "LIMITS*"):
        batch = list(client.scan_iter(match=pattern, count=1000))
        for i in range(0, len(batch), 1000):
            client.delete(*batch[i : i + 1000])


# -- arguments and summary -----------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser, *, redis: bool = False) -> None:
    parser.add_argument("--summary", type=Path, help="write the figures as JSON to this file")
    if redis:
        parser.add_argument(
            "--redis-url",
            default=os.environ.get("LISTMGR_BENCH_BROKER_URL"),
            help="Redis database for this run (default: an empty one claimed for the run)",
        )


@dataclass
class Row:
    figure: str
    value: float
    unit: str
    goal: str | None = None
    ratio: float | None = None


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


class Summary:
    """The figures of one run, written as JSON for bench/all.py."""

    def __init__(self, bench: str) -> None:
        self.bench = bench
        self.rows: list[Row] = []

    def add(
        self,
        figure: str,
        value: float,
        unit: str,
        *,
        at_least: float | None = None,
        at_most: float | None = None,
    ) -> float | None:
        """One figure; with a goal (at_least or at_most) its ratio (>= 1 meets it)."""
        goal: str | None = None
        ratio: float | None = None
        if at_least is not None:
            goal, ratio = f">= {_number(at_least)}", value / at_least if at_least else None
        elif at_most is not None:
            goal, ratio = f"<= {_number(at_most)}", at_most / value if value else None
        self.rows.append(Row(figure, float(value), unit, goal, ratio))
        return ratio

    def write(self, path: Path | None) -> None:
        if path is None:
            return
        data = {"bench": self.bench, "rows": [asdict(r) for r in self.rows]}
        path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
