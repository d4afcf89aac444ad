"""Real parts for tests: a fresh database (SQLite, or PostgreSQL when LISTMGR_TEST_DATABASE_URL
is set), an aiosmtpd sink on 127.0.0.1, and the broker (stub, or Redis when
LISTMGR_TEST_BROKER_URL is set) with a real Dramatiq worker."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from listmgr import boot, runtime, schema
from listmgr import db as dbmod
from listmgr.models import SQLModel

PG_URL = os.environ.get("LISTMGR_TEST_DATABASE_URL", "")
BROKER_URL = os.environ.get("LISTMGR_TEST_BROKER_URL", "")
SECRET = "test-secret-key-0123456789abcdef"
# Under pytest-xdist every worker is a process of its own ("gw0", "gw1", ...): each has its own
# databases, var directory, broker namespaces and ports, so that workers share no state.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
# The var directory of runtimes built without one of their own (this module is imported twice,
# as conftest and as tests.conftest, so the path is derived from the process, not stored).
VAR_DIR = Path(tempfile.gettempdir()) / f"listmgr-tests-{WORKER}-{os.getpid()}" / "var"


# Hypothesis: no per-example deadline and no too-slow health check by default. Both measure
# wall time, which a loaded machine (parallel test workers) stretches without any fault.
hypothesis.settings.register_profile(
    "listmgr-tests",
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.too_slow],
)
hypothesis.settings.load_profile("listmgr-tests")


# -- SMTP sink ----------------------------------------------------------------------------------
@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=default_policy)


@dataclass
class Sink:
    """An aiosmtpd server that keeps every message; optionally answers with faults."""

    host: str = "127.0.0.1"
    port: int = 0
    messages: list[Received] = field(default_factory=list)
    rcpt_hook: Callable[[str], str | None] | None = None  # return an SMTP reply to refuse
    pipelining: bool = True  # offer PIPELINING, as production servers do
    data_hook: Callable[[Received], str | None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    # While holding, each DATA waits unanswered (its message in `held`) until release(): a test
    # sees which messages are in flight at the same moment instead of guessing it from timing.
    holding: bool = False
    held: list[Received] = field(default_factory=list)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_hook is not None:
            answer = self.rcpt_hook(address)
            if answer:
                return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        item = Received(
            envelope.mail_from,
            list(envelope.rcpt_tos),
            envelope.original_content or envelope.content,
        )
        if self.holding:
            with self.lock:
                self.held.append(item)
            while self.holding:  # the other sessions go on meanwhile (one event loop)
                await asyncio.sleep(0.01)
            with self.lock:
                self.held.remove(item)
        if self.data_hook is not None:
            answer = self.data_hook(item)
            if answer:
                return answer
        with self.lock:
            self.messages.append(item)
        return "250 Message accepted"

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def to(self, address: str) -> list[Received]:
        with self.lock:
            return [m for m in self.messages if address in m.rcpt_tos]

    def hold(self) -> None:
        """From now on every message waits in DATA until release()."""
        self.holding = True

    def release(self) -> None:
        self.holding = False

    def wait_held(
        self, condition: Callable[[list[Received]], bool], timeout: float = 20
    ) -> list[Received]:
        """The messages held at once when `condition` first holds for them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                held = list(self.held)
            if condition(held):
                return held
            time.sleep(0.01)
        raise AssertionError(f"not reached while holding; held now: {len(self.held)} message(s)")

    def wait_for(self, count: int, timeout: float = 15) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.02)
        raise AssertionError(f"expected {count} messages, got {len(self.messages)}")


def wait_until(condition: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    """Poll until `condition()` is truthy (its value is returned); fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_smtp(handler: Sink, **kwargs: Any) -> Controller:
    """An aiosmtpd server for `handler` on 127.0.0.1:handler.port, started. It may take a loaded
    machine (parallel test workers) more than aiosmtpd's default second to be ready."""
    kwargs.setdefault("decode_data", False)
    kwargs.setdefault("ready_timeout", 30)
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port, **kwargs)
    controller.start()
    return controller


def start_sink(handler: Sink, **kwargs: Any) -> Controller:
    """start_smtp on a free port, trying another if someone took that one meanwhile."""
    for attempt in range(5):
        handler.port = free_port()
        try:
            return start_smtp(handler, **kwargs)
        except OSError:
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


@pytest.fixture
def sink() -> Iterator[Sink]:
    handler = Sink()
    controller = start_sink(handler, data_size_limit=50_000_000)
    yield handler
    controller.stop()


@pytest.fixture(scope="session", autouse=True)
def _var_dir() -> Iterator[None]:
    """Remove this process's default var directory at the end."""
    yield
    shutil.rmtree(VAR_DIR.parent, ignore_errors=True)


# -- database -------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def _database_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database: a SQLite file to copy, or a fresh PostgreSQL database."""
    if PG_URL:
        url = make_url(PG_URL)
        name = f"lmtest_{WORKER}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        test_url = url.set(database=name).render_as_string(hide_password=False)
        schema.alembic_config  # noqa: B018
        from alembic import command

        command.upgrade(schema.alembic_config(test_url), "head")
        yield test_url
        dbmod.dispose_engines()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    else:
        path = tmp_path_factory.mktemp("template") / "template.db"
        from alembic import command

        command.upgrade(schema.alembic_config(f"sqlite:///{path}"), "head")
        yield str(path)


@pytest.fixture
def database_url(_database_template: str, tmp_path: Path) -> Iterator[str]:
    """A clean database for one test."""
    if PG_URL:
        engine = dbmod.get_engine(_database_template)
        tables = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
        with engine.begin() as c:
            c.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        yield _database_template
    else:
        path = tmp_path / "listmgr.db"
        shutil.copy(_database_template, path)
        url = f"sqlite:///{path}"
        yield url
        dbmod.dispose_engines()


def settings_for(database_url: str, sink: Sink | None, **extra: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "database_url": database_url,
        "broker_url": BROKER_URL,
        "broker_namespace": f"t{uuid.uuid4().hex[:10]}",
        "secret_key": SECRET,
        "base_url": "http://listmgr.test",
        "mail_domain": "lists.example.test",
        "smtp_url": sink.url if sink else "",
        "inbound_secret": "inbound-test-secret",
        "default_from_email": "news@lists.example.test",
        "default_postal_address": "Example Org, 1 Test Street, Testville",
        "sweep_seconds": 3600,
        "var_dir": str(VAR_DIR),
    }
    values.update(extra)
    return values


@pytest.fixture
def make_runtime(
    database_url: str, sink: Sink, tmp_path: Path
) -> Iterator[Callable[..., runtime.Runtime]]:
    """Build a runtime (with a broker and worker threads) for this test's database, with a
    var directory of its own (uploads waiting there are this test's alone)."""
    started: list[boot.Background] = []

    def make(*, threads: int = 2, **extra: Any) -> runtime.Runtime:
        extra.setdefault("var_dir", str(tmp_path / "var"))
        rt = runtime.build(settings_for(database_url, sink, **extra))
        bg = boot.start(rt, threads=threads, sweep=False)
        started.append(bg)
        return rt

    yield make
    for bg in started:
        bg.stop()
    runtime.set_current(None)


@pytest.fixture
def rt(make_runtime: Callable[..., runtime.Runtime]) -> runtime.Runtime:
    return make_runtime()


@pytest.fixture
def app(rt: runtime.Runtime):
    from listmgr.app import create_app

    application = create_app(rt=rt, migrate=False)
    application.config["TESTING"] = True
    return application


@pytest.fixture
def client(app):
    return app.test_client()


def drain(rt: runtime.Runtime, timeout_ms: int = 30000) -> None:
    """Wait until the worker has processed every queued message."""
    rt.queue.join(timeout_ms=timeout_ms)


@pytest.fixture
def owner_token(rt: runtime.Runtime) -> str:
    from listmgr.services import accounts

    return accounts.create_token(rt, role="owner", name="tests")


@pytest.fixture
def api(client, owner_token: str):
    """A test client that sends the owner's bearer token."""

    class Api:
        def __getattr__(self, method: str):
            def call(path: str, **kw: Any):
                headers = kw.pop("headers", {})
                headers.setdefault("Authorization", f"Bearer {owner_token}")
                return getattr(client, method)(path, headers=headers, **kw)

            return call

    return Api()


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """configure() changes the process's root logger: put back what the test runner had."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    factory = logging.getLogRecordFactory()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.setLogRecordFactory(factory)
    logging.captureWarnings(False)
