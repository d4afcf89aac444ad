"""The only SMTP client: server URLs, kept-open connections, throttling, failure classes.

With no LISTMGR_SMTP_URL, mail goes to the embedded dev outbox: a sink the caller passes in
(services/devmail.py stores each message, the admin shows it).
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from listmgr.addresses import ascii_address
from listmgr.errors import ConfigError

# (envelope sender, recipients, message): where mail goes when no SMTP server is configured
DevSink = Callable[[str, list[str], bytes], None]


class TemporaryFailure(Exception):
    """4xx or a connection problem: try again later."""

    def __init__(
        self, message: str, code: int | None = None, *, ambiguous: bool = False, stage: str = ""
    ) -> None:
        super().__init__(message)
        self.code = code
        self.stage = stage
        # The connection broke after the whole message went out and before the server
        # answered: it may have been accepted, so a retry may deliver it twice.
        self.ambiguous = ambiguous


class PermanentFailure(Exception):
    """5xx: this recipient will not get this message."""

    def __init__(self, message: str, code: int | None = None, *, stage: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.stage = stage  # "mail", "rcpt" or "data" when known (the fast path sets it)


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    tls: bool = False  # implicit TLS (smtps://)
    starttls: bool = False
    username: str = ""
    password: str = ""
    rate: float = 0  # messages per second, 0 = unlimited
    timeout: float = 30
    cafile: str = ""  # trust this CA bundle (a private relay's certificate)

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port}"


def parse_smtp_urls(value: str) -> list[SmtpServer]:
    """`smtp://user:pass@host:port`, `smtps://…`, `?starttls=1&rate=N&cafile=F`; space-separated."""
    servers = []
    for url in value.replace(",", " ").split():
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ConfigError(f"bad SMTP URL {url!r}: use smtp://user:pass@host:port or smtps://…")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        tls = parts.scheme == "smtps"
        try:
            port = parts.port or (465 if tls else 25)
            rate = float(query.get("rate", 0))
            timeout = float(query.get("timeout", 30))
        except ValueError:
            raise ConfigError(
                f"bad SMTP URL {url!r}: port, rate and timeout must be numbers"
            ) from None
        servers.append(
            SmtpServer(
                host=parts.hostname,
                port=port,
                tls=tls,
                starttls=query.get("starttls", "0").lower() in ("1", "true", "yes"),
                username=unquote(parts.username or ""),
                password=unquote(parts.password or ""),
                rate=rate,
                timeout=timeout,
                cafile=query.get("cafile", ""),
            )
        )
    return servers


class Throttle:
    """At most `rate` events per second (0 = unlimited), shared by the threads of a process."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            time.sleep(slot - now)

    def try_acquire(self) -> float:
        """Take the next slot if it is free now (0.0), else the seconds until it is (nothing
        taken): the caller sends something else meanwhile."""
        if not self.interval:
            return 0.0
        with self._lock:
            now = time.monotonic()
            if self._next > now:
                return self._next - now
            self._next = now + self.interval
        return 0.0


class SharedThrottle:
    """At most `rate` events per second across every process sharing one Redis: each call
    reserves the next free slot (GCRA on the Redis clock) and sleeps until it comes."""

    _SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local slot = tonumber(redis.call('GET', KEYS[1]) or '0')
if slot < now then slot = now end
local interval = tonumber(ARGV[1])
redis.call('SET', KEYS[1], slot + interval, 'PX', math.floor(interval / 1000) + 60000)
return {slot, now}
"""

    # Take `n` slots if the next is free now; else say how far away it is (nothing taken).
    _TRY_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local slot = tonumber(redis.call('GET', KEYS[1]) or '0')
if slot > now then return slot - now end
local span = tonumber(ARGV[1]) * tonumber(ARGV[2])
redis.call('SET', KEYS[1], now + span, 'PX', math.floor(span / 1000) + 60000)
return 0
"""
    CREDIT_SECONDS = 0.02  # a fast limit is taken from Redis this many seconds' worth at once

    def __init__(self, client: Any, key: str, rate: float) -> None:
        self.interval_us = int(1_000_000 / rate) if rate > 0 else 0
        self.key = key
        self._script = client.register_script(self._SCRIPT) if self.interval_us else None
        self._try = client.register_script(self._TRY_SCRIPT) if self.interval_us else None
        # Slots taken from Redis and not used yet: one call serves several messages of a fast
        # limit, so a limit that does not bind costs next to nothing per message.
        self._batch = max(1, int(rate * self.CREDIT_SECONDS)) if rate > 0 else 1
        self._credit = 0
        self._lock = threading.Lock()

    def reserve(self) -> tuple[int, int]:
        """(reserved slot, Redis now), in microseconds."""
        assert self._script is not None  # only a rate-limited throttle reserves slots
        slot, now = self._script(keys=[self.key], args=[self.interval_us])
        return int(slot), int(now)

    def wait(self) -> None:
        if not self.interval_us:
            return
        slot, now = self.reserve()
        if slot > now:
            time.sleep((slot - now) / 1_000_000)

    def try_acquire(self) -> float:
        """Throttle.try_acquire over every process sharing the Redis."""
        if not self.interval_us:
            return 0.0
        assert self._try is not None  # only a rate-limited throttle reserves slots
        with self._lock:
            if self._credit:
                self._credit -= 1
                return 0.0
            wait = int(self._try(keys=[self.key], args=[self.interval_us, self._batch]))
            if wait > 0:
                return wait / 1_000_000
            self._credit = self._batch - 1
            return 0.0


def _classify_smtp_error(exc: Exception) -> Exception:
    code = getattr(exc, "smtp_code", None)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, msg = next(iter(exc.recipients.values()))
        text = msg.decode("utf-8", "replace") if isinstance(msg, bytes) else str(msg)
        return (PermanentFailure if 500 <= code < 600 else TemporaryFailure)(
            f"{code} {text}", code, stage="rcpt"
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        text = (
            exc.smtp_error.decode("utf-8", "replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        stage = (
            "mail"
            if isinstance(exc, smtplib.SMTPSenderRefused)
            else "data"
            if isinstance(exc, smtplib.SMTPDataError)
            else ""
        )
        if 500 <= exc.smtp_code < 600:
            return PermanentFailure(f"{exc.smtp_code} {text}", exc.smtp_code, stage=stage)
        return TemporaryFailure(f"{exc.smtp_code} {text}", exc.smtp_code, stage=stage)
    return TemporaryFailure(f"connection: {exc.__class__.__name__}: {exc}", code)


GENERIC_FAILURE = (
    "the mail server could not take the message; someone who may change the "
    "SMTP settings can see why"
)


def describe_failure(exc: Exception, *, detailed: bool) -> str:
    """What a failure to hand mail over says to a person: everything to those who may change
    the SMTP settings; to others only the server's reply code, never hosts, ports, TLS or file
    details (else anyone who may send a test could map what the server reaches)."""
    if detailed:
        return str(exc)
    code = getattr(exc, "code", None)
    stage = getattr(exc, "stage", "")
    if isinstance(code, int) and 200 <= code < 600 and stage in ("mail", "rcpt", "data"):
        return f"the mail server refused the message ({code})"
    return GENERIC_FAILURE


class SmtpConnection:
    """One kept-open SMTP connection; reconnects when the server dropped it."""

    def __init__(self, server: SmtpServer, throttle: Throttle | None = None) -> None:
        self.server = server
        self.throttle = throttle or Throttle(server.rate)
        self._smtp: smtplib.SMTP | None = None
        self._payload_sent = False
        self._rbuf = b""  # reply bytes read ahead of the fast path

    def _connect(self) -> smtplib.SMTP:
        s = self.server
        context = ssl.create_default_context(cafile=s.cafile or None)
        if s.tls:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                s.host, s.port, timeout=s.timeout, context=context
            )
        else:
            smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        smtp.ehlo_or_helo_if_needed()
        if s.starttls:
            smtp.starttls(context=context)
            smtp.ehlo()
        if s.username:
            smtp.login(s.username, s.password)
        return smtp

    def send(self, mail_from: str, rcpt: str | list[str], data: bytes) -> None:
        """Hand one message to the server; raise TemporaryFailure or PermanentFailure."""
        self.throttle.wait()
        rcpts = [ascii_address(r) for r in ([rcpt] if isinstance(rcpt, str) else rcpt)]
        try:
            if self._smtp is None:
                self._smtp = self._connect()
            refused = self._smtp.sendmail(ascii_address(mail_from), rcpts, data)
        except (TimeoutError, smtplib.SMTPServerDisconnected, OSError) as exc:
            self.close()
            raise _classify_smtp_error(exc) from exc
        except smtplib.SMTPException as exc:
            if isinstance(
                exc,
                (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError),
            ):
                self._reset()
            else:
                self.close()
            raise _classify_smtp_error(exc) from exc
        if refused:
            code, msg = next(iter(refused.values()))
            raise (PermanentFailure if code >= 500 else TemporaryFailure)(f"{code} {msg!r}", code)

    def ensure_open(self) -> None:
        """Connect now (not in the middle of a send); TemporaryFailure when it cannot."""
        if self._smtp is None:
            try:
                self._smtp = self._connect()
            except (TimeoutError, smtplib.SMTPException, OSError) as exc:
                self.close()
                raise _classify_smtp_error(exc) from exc

    def check(self) -> None:
        """Connect, greet, start TLS and sign in as a send would, then leave; raises
        TemporaryFailure or PermanentFailure saying what went wrong."""
        try:
            self.ensure_open()
        finally:
            self.close()

    def send_prepared(
        self, mail_from: str, rcpt: str, data: bytes, *, throttled: bool = False
    ) -> None:
        """send() for one recipient of a message with CRLF line ends (the campaign fast path).
        throttled=True: the caller already waited for this server's rate limit."""
        if not throttled:
            self.throttle.wait()
        for _ in self.steps(mail_from, rcpt, data):
            pass

    def steps(self, mail_from: str, rcpt: str, data: bytes) -> Iterator[None]:
        """The fast path as steps: each `yield` waits for the server, so that several
        connections can wait at once (send_all). MAIL, RCPT and DATA go out in one write when
        the server offers PIPELINING, and a connection found closed before anything was sent
        is reopened once. Raises TemporaryFailure or PermanentFailure."""
        payload = data.replace(b"\r\n.", b"\r\n..")
        if payload[:1] == b".":
            payload = b"." + payload
        if not payload.endswith(b"\r\n"):
            payload += b"\r\n"
        payload += b".\r\n"
        for attempt in (1, 2):
            reused = self._smtp is not None
            self._payload_sent = False
            try:
                if self._smtp is None:
                    self._smtp = self._connect()
                yield from self._transaction(self._smtp, mail_from, rcpt, payload)
                return
            except (TimeoutError, smtplib.SMTPServerDisconnected, OSError) as exc:
                self.close()
                if self._payload_sent:
                    raise TemporaryFailure(
                        f"connection lost after the message was sent: "
                        f"{exc.__class__.__name__}: {exc}",
                        ambiguous=True,
                    ) from exc
                if attempt == 1 and reused:
                    continue  # the server closed an idle connection: reopen and retry once
                raise _classify_smtp_error(exc) from exc
            except smtplib.SMTPException as exc:
                self.close()
                raise _classify_smtp_error(exc) from exc

    def _transaction(
        self, smtp: smtplib.SMTP, mail_from: str, rcpt: str, payload: bytes
    ) -> Iterator[None]:
        """One SMTP transaction, yielding before each wait for a reply; raises
        Temporary/PermanentFailure on a refusal."""
        commands = [
            f"MAIL FROM:<{ascii_address(mail_from)}>\r\n".encode("ascii"),
            f"RCPT TO:<{ascii_address(rcpt)}>\r\n".encode("ascii"),
            b"DATA\r\n",
        ]
        replies: list[tuple[int, bytes]] = []
        if smtp.has_extn("pipelining"):
            self._send(smtp, b"".join(commands))
            yield
            for _ in commands:
                try:
                    replies.append(self._reply(smtp))
                except smtplib.SMTPServerDisconnected:
                    if not replies or replies[-1][0] in (250, 251, 354):
                        raise
                    replies.append((421, b"connection closed by the server"))
                    break
        else:
            for command in commands:
                self._send(smtp, command)
                yield
                replies.append(self._reply(smtp))
                if replies[-1][0] not in (250, 251, 354):
                    break
        if [code for code, _ in replies] in ([250, 250, 354], [250, 251, 354]):
            self._send(smtp, payload)
            self._payload_sent = True
            yield
            code, msg = self._reply(smtp)
            if code == 250:
                return
            refusal: tuple[int, bytes] = (code, msg)
            sent, stage = True, "data"
        else:
            failing = next(
                (i for i, r in enumerate(replies) if r[0] not in (250, 251, 354)), len(replies) - 1
            )
            refusal, stage = replies[failing], ("mail", "rcpt", "data")[failing]
            sent = False
            if replies[-1][0] == 354 and refusal[0] != 421:  # in DATA mode anyway: end it empty
                self._send(smtp, b".\r\n")
                self._reply(smtp)
        code, msg = refusal
        text = f"{code} {msg.decode('utf-8', 'replace')}"
        if code == 421 or code == -1:  # the server is closing the connection
            self.close()
        elif not sent:
            self._reset()
        raise (PermanentFailure if 500 <= code < 600 else TemporaryFailure)(text, code, stage=stage)

    @staticmethod
    def _send(smtp: smtplib.SMTP, data: bytes) -> None:
        if smtp.sock is None:
            raise smtplib.SMTPServerDisconnected("please run connect() first")
        smtp.sock.sendall(data)

    def _reply(self, smtp: smtplib.SMTP) -> tuple[int, bytes]:
        """One (possibly multi-line) reply, like smtplib's getreply() but reading whatever has
        arrived at once (pipelined replies usually come in one packet)."""
        lines: list[bytes] = []
        buf = self._rbuf
        while True:
            end = buf.find(b"\n")
            if end < 0:
                if smtp.file is None:
                    if smtp.sock is None:
                        raise smtplib.SMTPServerDisconnected("please run connect() first")
                    smtp.file = smtp.sock.makefile("rb")
                chunk = smtp.file.read1(65536)
                if not chunk:
                    self._rbuf = b""
                    raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
                buf += chunk
                continue
            line, buf = buf[: end + 1], buf[end + 1 :]
            lines.append(line[4:].strip(b" \t\r\n"))
            if line[3:4] != b"-":
                self._rbuf = buf
                try:
                    code = int(line[:3])
                except ValueError:
                    code = -1
                return code, b"\n".join(lines)

    def _reset(self) -> None:
        self._rbuf = b""
        try:
            if self._smtp is not None:
                self._smtp.rset()
        except (smtplib.SMTPException, OSError):
            self.close()

    def close(self) -> None:
        self._rbuf = b""
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                with contextlib.suppress(OSError):
                    self._smtp.close()
            self._smtp = None


class DevOutboxConnection:
    """The embedded dev outbox: hands each message to the sink the caller gave (the service
    that stores it so the admin can show it) instead of sending it."""

    def __init__(self, sink: DevSink) -> None:
        self.sink = sink
        self.server = SmtpServer(host="dev-outbox", port=0)

    def send(self, mail_from: str, rcpt: str | list[str], data: bytes) -> None:
        self.sink(mail_from, [rcpt] if isinstance(rcpt, str) else rcpt, data)

    def ensure_open(self) -> None:
        pass

    def steps(self, mail_from: str, rcpt: str, data: bytes) -> Iterator[None]:
        self.send(mail_from, rcpt, data)
        yield from ()

    def close(self) -> None:
        pass


def send_all(items: list[tuple[Any, str, str, bytes]]) -> list[Exception | None]:
    """Hand several messages over at once, each (connection, envelope from, recipient, data)
    on its own connection: every connection's waits for the server overlap the others'.
    Returns None (accepted) or the TemporaryFailure / PermanentFailure of each."""
    results: list[Exception | None] = [None] * len(items)
    running = [
        (i, conn.steps(mail_from, rcpt, data))
        for i, (conn, mail_from, rcpt, data) in enumerate(items)
    ]
    while running:
        waiting = []
        for i, steps in running:
            try:
                next(steps)
            except StopIteration:
                continue
            except (TemporaryFailure, PermanentFailure) as exc:
                results[i] = exc
                continue
            waiting.append((i, steps))
        running = waiting
    return results


class Transport:
    """Connections to the configured SMTP servers (or the dev outbox), one pool per process."""

    def __init__(
        self,
        smtp_url: str,
        dev_outbox: DevSink | None = None,
        rate: float = 0,
        rate_per_server: float = 0,
        throttle_factory: Any = None,
    ) -> None:
        self.servers = parse_smtp_urls(smtp_url) if smtp_url.strip() else []
        self.dev_outbox = dev_outbox
        # throttle_factory(name, rate) may share the limits between processes (SharedThrottle).
        make = throttle_factory or (lambda _name, r: Throttle(r))
        self.throttle = make("all", rate)
        self._server_throttles = {
            s.label: make(s.label, s.rate or rate_per_server) for s in self.servers
        }
        self.limited = rate > 0 or any((s.rate or rate_per_server) > 0 for s in self.servers)
        self._counter = 0
        self._lock = threading.Lock()

    def connection(self) -> SmtpConnection | DevOutboxConnection:
        """A new connection, spreading connections over the servers round-robin."""
        if not self.servers:
            if self.dev_outbox is None:
                raise ConfigError("no SMTP server is configured (smtp_url) and no dev outbox")
            return DevOutboxConnection(self.dev_outbox)
        with self._lock:
            server = self.servers[self._counter % len(self.servers)]
            self._counter += 1
        return SmtpConnection(server, self._server_throttles[server.label])

    def send_one(self, mail_from: str, rcpt: str, data: bytes) -> str:
        """Send a single message on a fresh connection (transactional mail); the server label."""
        self.throttle.wait()
        conn = self.connection()
        try:
            conn.send(mail_from, rcpt, data)
        finally:
            conn.close()
        return conn.server.label
