"""An SMTP server as the admin's form shows it (host, port, user, password, TLS) and as the
`smtp_url` setting stores it (`smtp://user:pass@host:port?starttls=1`, `smtps://…`): one
decomposition and its inverse. Pure.

The other options of a URL (rate, timeout) ride along unchanged in `options`.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

TLS_MODES = ("none", "starttls", "ssl")
TLS_LABELS = {"none": "None", "starttls": "STARTTLS", "ssl": "SSL/TLS"}
KEPT_PASSWORD = "•••"  # the stored password, kept (settings_store.MASK)


@dataclass(frozen=True)
class SmtpFields:
    host: str
    port: int | None = None  # None: the default of the TLS mode (25 or 465)
    user: str = ""
    password: str = ""
    tls: str = "none"
    options: str = ""  # the rest of the query, e.g. "rate=5&timeout=10"


def _userinfo(url: str) -> tuple[str, str, str]:
    """(scheme, userinfo, the rest) of a URL as typed: userinfo runs to the last "@"."""
    scheme, _, rest = url.partition("://")
    userinfo, at, after = rest.rpartition("@")
    return scheme, userinfo if at else "", after if at else rest


def fields_of(url: str) -> SmtpFields:
    """One SMTP URL as form fields; ValueError when it is not one."""
    scheme, userinfo, after = _userinfo(url.strip())
    parts = urlsplit(f"{scheme}://{after}")
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("not an SMTP URL")
    user, colon, password = userinfo.partition(":")
    query = parse_qsl(parts.query, keep_blank_values=True)
    starttls = any(k == "starttls" and v.lower() in ("1", "true", "yes") for k, v in query)
    tls = "ssl" if parts.scheme == "smtps" else "starttls" if starttls else "none"
    return SmtpFields(
        host=parts.hostname,
        port=parts.port,
        user=unquote(user),
        password=password if password == KEPT_PASSWORD else unquote(password) if colon else "",
        tls=tls,
        options=urlencode([(k, v) for k, v in query if k != "starttls"]),
    )


def url_of(f: SmtpFields) -> str:
    """The SMTP URL of form fields; ValueError naming what is wrong."""
    host = f.host.strip().lower()
    if not host or any(c in host for c in "/@?#:[] \t\r\n"):
        raise ValueError("a host name such as smtp.example.org")
    if f.tls not in TLS_MODES:
        raise ValueError("TLS must be none, STARTTLS or SSL")
    if f.port is not None and not 1 <= f.port <= 65535:
        raise ValueError("a port between 1 and 65535")
    if f.password and not f.user:
        raise ValueError("a password needs a user name")
    password = f.password if f.password == KEPT_PASSWORD else quote(f.password, safe="")
    userinfo = quote(f.user, safe="") + (f":{password}" if f.password else "")
    query = ("starttls=1&" if f.tls == "starttls" else "") + f.options
    return (
        f"{'smtps' if f.tls == 'ssl' else 'smtp'}://"
        f"{userinfo + '@' if userinfo else ''}{host}"
        f"{f':{f.port}' if f.port is not None else ''}"
        f"{'?' + query.rstrip('&') if query.rstrip('&') else ''}"
    )


def servers_of(value: str) -> list[SmtpFields]:
    """The servers of an `smtp_url` setting (several, separated by spaces)."""
    return [fields_of(url) for url in value.replace(",", " ").split()]


def setting_of(servers: list[SmtpFields]) -> str:
    """The `smtp_url` setting of servers (none: the dev outbox)."""
    return " ".join(url_of(f) for f in servers)
