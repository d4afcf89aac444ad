"""Logging for every process: one handler, text or JSON lines, addresses masked, request ids.

Every entry point (`serve`, `web`, `worker`, `inbound-server` and the other commands) calls
configure() once. The request id of the web request (or of the job that carries it) is in a
context variable that every log record reads, so a line written anywhere during that request
or job names it.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import json
import logging
import re
import secrets
import sys
from datetime import UTC, datetime
from typing import Any

from listmgr.settings import Settings

# An address as it can appear in any text we log: in brackets, quoted, in a URL's query
# (where "@" may read %40).
ADDRESS = re.compile(
    r"(?<![\w.%+-])([\w.%+-]{1,64})(?:@|%40)([^\W_][\w-]{0,252}(?:\.[\w-]{1,63})*)(?![\w-])",
    re.IGNORECASE,
)
# A request id we accept from a client or a proxy: short, and nothing that could forge a log line.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,64}")
REQUEST_ID_HEADER = "X-Request-ID"

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("listmgr_request_id", default="")
_entry_point = "listmgr"


def new_request_id() -> str:
    """A fresh id for a request or job nobody named."""
    return secrets.token_hex(8)


def sane_request_id(value: str | None) -> str | None:
    """The id a client or a queued job brought, if it is one we can log safely."""
    if value and REQUEST_ID.fullmatch(value):
        return value
    return None


def request_id() -> str:
    """The id of the request or job this thread works for ("" outside any)."""
    return _request_id.get()


def bind_request_id(value: str) -> contextvars.Token[str]:
    """Make `value` the current request id (until reset with the returned token)."""
    return _request_id.set(value)


def reset_request_id(token: contextvars.Token[str]) -> None:
    _request_id.reset(token)


class AddressMask:
    """Replaces each email address in a text with its first letter, its domain and a short
    keyed hash (the same address always reads the same, and nobody can reverse it)."""

    def __init__(self, key: str) -> None:
        self.key = hashlib.sha256(b"log-address:" + key.encode()).digest()

    def _one(self, match: re.Match[str]) -> str:
        local, domain = match.group(1), match.group(2)
        address = f"{local}@{domain}".lower()
        digest = hmac.new(self.key, address.encode("utf-8"), hashlib.sha256).hexdigest()[:6]
        return f"{local[:1]}***@{domain}~{digest}"

    def __call__(self, text: str) -> str:
        return ADDRESS.sub(self._one, text) if "@" in text or "%40" in text else text


class _Formatter(logging.Formatter):
    """Shared: the masking of the whole formatted line (message, arguments, traceback)."""

    def __init__(self, mask: AddressMask | None, fmt: str | None = None) -> None:
        super().__init__(fmt)
        self.mask = mask

    def masked(self, text: str) -> str:
        return self.mask(text) if self.mask is not None else text


class TextFormatter(_Formatter):
    """`2026-12-07T03:00:00.123Z INFO listmgr.web [rid] message`."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        rid = getattr(record, "request_id", "") or "-"
        line = (
            f"{when}.{int(record.msecs):03d}Z {record.levelname} {record.name} "
            f"[{rid}] {record.getMessage()}"
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        elif record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return self.masked(line)


class JsonFormatter(_Formatter):
    """One JSON object a line, for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC)
        out: dict[str, Any] = {
            "ts": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": self.masked(record.getMessage()),
            "process": _entry_point,
            "pid": record.process,
            "thread": record.threadName,
        }
        rid = getattr(record, "request_id", "")
        if rid:
            out["request_id"] = rid
        if record.exc_info:
            out["exception"] = self.masked(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False)


def _record_factory(base: Any) -> Any:
    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = base(*args, **kwargs)
        record.request_id = _request_id.get()
        return record

    make.listmgr = True  # type: ignore[attr-defined]  # installed once, however often configured
    return make


class _Handler(logging.StreamHandler):
    """The one handler configure() installs (and replaces when called again). It writes to
    whatever sys.stderr is at the time (a daemon or a test may swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure(settings: Settings, entry_point: str) -> logging.Handler:
    """Send every log record of this process to stderr as these settings say."""
    global _entry_point
    _entry_point = entry_point
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "listmgr", False):
        logging.setLogRecordFactory(_record_factory(factory))
    mask = None if settings.log_addresses else AddressMask(settings.secret_key)
    handler = _Handler()
    handler.setFormatter(
        JsonFormatter(mask) if settings.log_format == "json" else TextFormatter(mask)
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    # Our own access lines name the route, not the path (paths carry tokens); the development
    # server's would repeat them with the token in.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # Every start checks the migrations: its lines would open each process's output.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # aiosmtpd writes lines per SMTP connection and command; the inbound listener logs what fails.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    logging.captureWarnings(True)
    return handler
