"""Hosts for the multi-host tests: Linux network namespaces joined by a bridge, each with its
own working directory, sharing nothing but the network. A database host runs its own
PostgreSQL and Redis; web hosts run `listmgr web`, worker hosts `listmgr worker`, and an SMTP
sink host records what it receives. The test process itself sits on the bridge (x.x.x.1)."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


def unavailable() -> str:
    """Why these tests cannot run here, or "" when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None or shutil.which("redis-server") is None or not PG_BIN:
        return "needs ip (iproute2), redis-server and the PostgreSQL server binaries"
    return ""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def wait_for(predicate: Any, timeout: float, what: str, why: Any = None) -> Any:
    """The predicate's first true value; `why()` says more when it never comes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}" + (f": {why()}" if why else ""))


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class Host:
    """One namespace: a name, an address on the bridge, a directory of its own."""

    name: str
    ns: str
    ip: str
    workdir: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(self, args: list[str], env: dict[str, str], log: str, *, user: str = "") -> Any:
        """Start a process inside this host; its output goes to workdir/log."""
        prefix = ["ip", "netns", "exec", self.ns] + (["runuser", "-u", user, "--"] if user else [])
        out = (self.workdir / log).open("ab")
        proc = subprocess.Popen(
            [*prefix, *args], cwd=self.workdir, env=env, stdout=out, stderr=subprocess.STDOUT
        )
        out.close()
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> str:
        path = self.workdir / name
        return path.read_text(errors="replace") if path.exists() else ""

    def pids(self) -> list[int]:
        out = subprocess.run(["ip", "netns", "pids", self.ns], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def vanish(self) -> None:
        """The host disappears: every process in it is killed at once, without warning."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for proc in self.procs:
            proc.wait(10)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.vanish()


class Network:
    """A bridge and the hosts on it; `close()` removes every trace."""

    def __init__(self) -> None:
        self.tag = secrets.token_hex(2)
        self.subnet = f"10.{200 + secrets.randbelow(50)}.{secrets.randbelow(250)}"
        self.bridge = f"lmb{self.tag}"
        self.base = Path(tempfile.mkdtemp(prefix=f"listmgr-hosts-{self.tag}-"))
        self.base.chmod(0o755)  # the database host's PostgreSQL runs as its own user
        self.hosts: list[Host] = []
        _ip("link", "add", "name", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    @property
    def gateway(self) -> str:
        return f"{self.subnet}.1"

    def host(self, name: str) -> Host:
        n = len(self.hosts) + 2
        ns, outer, inner = f"lm{self.tag}{name}", f"lv{self.tag}{n}", f"lp{self.tag}{n}"
        _ip("netns", "add", ns)
        _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", ns)
        _ip("link", "set", outer, "master", self.bridge, "up")
        _ip("-n", ns, "addr", "add", f"{self.subnet}.{n}/24", "dev", inner)
        _ip("-n", ns, "link", "set", inner, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        workdir = self.base / name
        workdir.mkdir()
        workdir.chmod(0o777)
        host = Host(name, ns, f"{self.subnet}.{n}", workdir)
        self.hosts.append(host)
        return host

    def close(self) -> None:
        for host in self.hosts:
            host.stop()
            subprocess.run(["ip", "netns", "del", host.ns], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)


class DatabaseHost:
    """PostgreSQL and Redis of their own, listening on the host's bridge address only."""

    def __init__(self, host: Host) -> None:
        self.host = host
        data = host.workdir / "pgdata"
        data.mkdir()
        shutil.chown(data, "postgres", "postgres")
        subprocess.run(
            [
                *("runuser", "-u", "postgres", "--", f"{PG_BIN[-1]}/initdb", "-D", str(data)),
                *("-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"),
            ],
            check=True,
            capture_output=True,
        )
        with (data / "pg_hba.conf").open("a") as hba:
            hba.write("host all all 0.0.0.0/0 trust\n")
        env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8"}
        host.spawn(
            [
                *(f"{PG_BIN[-1]}/postgres", "-D", str(data), "-h", host.ip, "-k", str(data)),
                *("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "max_connections=300"),
                *("-c", "full_page_writes=off"),
            ],
            env,
            "postgres.log",
            user="postgres",
        )
        host.spawn(
            [
                *("redis-server", "--bind", host.ip, "--port", "6379", "--save", ""),
                *("--appendonly", "no", "--protected-mode", "no"),
            ],
            env,
            "redis.log",
        )
        wait_for(lambda: reachable(host.ip, 5432), 60, "PostgreSQL on the database host")
        wait_for(lambda: reachable(host.ip, 6379), 30, "Redis on the database host")

    def database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        url = f"postgresql://postgres@{self.host.ip}:5432/postgres"
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f'CREATE DATABASE "{name}"')
                break
            except psycopg.OperationalError:  # still starting up
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        return f"postgresql+psycopg://postgres@{self.host.ip}:5432/{name}"

    @property
    def redis(self) -> str:
        return f"redis://{self.host.ip}:6379"


class SinkHost:
    """An SMTP server recording every recipient with the address of the host that sent it."""

    PORT = 2525

    def __init__(self, host: Host) -> None:
        self.host = host
        self.file = host.workdir / "received.jsonl"
        self.file.touch()
        host.spawn(
            [
                sys.executable,
                str(HERE / "multihost_sink.py"),
                host.ip,
                str(self.PORT),
                str(self.file),
            ],
            dict(os.environ),
            "sink.log",
        )
        wait_for(lambda: "sink running" in host.log("sink.log"), 30, "the SMTP sink")

    @property
    def url(self) -> str:
        return f"smtp://{self.host.ip}:{self.PORT}"

    def forget(self) -> None:
        """From now on, count only what arrives after this (a new installation reuses ids)."""
        self.start = self.file.stat().st_size

    def received(self, campaign_id: int | None = None) -> list[dict[str, str]]:
        prefix = f"<{campaign_id}." if campaign_id is not None else ""
        with self.file.open("rb") as f:
            f.seek(getattr(self, "start", 0))
            lines = f.read().decode().splitlines()
        items = [json.loads(line) for line in lines if line.endswith("}")]
        return [i for i in items if str(i["message_id"] or "").startswith(prefix)]

    def recipients(self, campaign_id: int) -> Counter[str]:
        return Counter(i["rcpt"] for i in self.received(campaign_id))


def listmgr_env(
    database_url: str, db: DatabaseHost, sink: SinkHost, workdir: Path, **extra: str
) -> dict[str, str]:
    """The environment of a listmgr process on one host: only network addresses are shared."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("LISTMGR_") or k == "LISTMGR_CORPUS"
    }
    env.update(
        LISTMGR_DATABASE_URL=database_url,
        LISTMGR_BROKER_URL=f"{db.redis}/0",
        LISTMGR_RATELIMIT_STORAGE_URL=f"{db.redis}/1",
        LISTMGR_SMTP_URL=sink.url,
        LISTMGR_SECRET_KEY="multi-host-test-secret-0123456789abcdef",
        LISTMGR_BASE_URL="http://listmgr.test",
        LISTMGR_MAIL_DOMAIN="lists.example.test",
        LISTMGR_INBOUND_SECRET="inbound-test-secret",
        LISTMGR_DEFAULT_FROM_EMAIL="news@lists.example.test",
        LISTMGR_DEFAULT_POSTAL_ADDRESS="Example Org, 1 Test Street, Testville",
        LISTMGR_VAR_DIR=str(workdir / "var"),
        HOME=str(workdir),
        TMPDIR=str(workdir),
    )
    env.update(extra)
    return env
