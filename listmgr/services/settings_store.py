"""Settings changed from the admin (SMTP, DKIM, mail domain, sender, rate limits) over the files.

`effective()` reads them: the settings from the files and environment (`rt.settings`, never
changed at run time) with the admin's changes from the database. Each job reads it once at its
start and passes the result down; each web request once (`web.extensions.settings_in_force`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from sqlmodel import col

from listmgr.errors import ConfigError, ValidationError
from listmgr.mail.dkim import aligned, load_key
from listmgr.models import AuditLog, MailingList, SettingValue, utcnow
from listmgr.runtime import Runtime
from listmgr.services import audit, notices
from listmgr.settings import OFF, Settings

log = logging.getLogger("listmgr.settings")
# What an SMTP URL set in the admin or API may carry; file paths (cafile) and anything else
# come only from the configuration files or environment.
SMTP_OPTIONS = {"starttls", "rate", "timeout"}
SMTP_BOUNDS = {"rate": (0.0, 100000.0), "timeout": (1.0, 120.0)}
MASK = "•••"
DKIM_KEY = "dkim_private_key"  # PEM, kept in the database; never shown or exported
RATE = re.compile(r"^\d+\s*/\s*(second|minute|hour|day)$")
HOST = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}"
    r"[a-z0-9])?$"
)


def _text(limit: int) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or len(value) > limit or any(c in value for c in "\r\n\0"):
            raise ValueError(f"text of at most {limit} characters on one line")
        return value.strip()

    return check


def _smtp(value: Any) -> str:
    """SMTP URLs as the admin may set them: no file paths (cafile…) and no unknown options,
    which only the configuration files and environment may give; a message never shows a
    password."""
    from listmgr.mail.transport import parse_smtp_urls

    value = "" if value is None else value  # none: the dev outbox (refused in production)
    if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
        raise ValueError("SMTP URLs on one line, separated by spaces")
    value = " ".join(value.replace(",", " ").split())
    for url in value.split():
        shown = mask("smtp_url", url)
        try:
            parse_smtp_urls(url)
            parts = urlsplit(url)
            query = parse_qs(parts.query, keep_blank_values=True)
        except (ConfigError, ValueError):
            raise ValueError(
                f"bad SMTP URL {shown!r}: use smtp://user:pass@host:port or smtps://…"
            ) from None
        refused = sorted(set(query) - SMTP_OPTIONS)
        if refused:
            raise ValueError(
                f"{shown!r}: {', '.join(refused)} may be set only in the "
                "configuration file or environment (LISTMGR_SMTP_URL); here: "
                + ", ".join(sorted(SMTP_OPTIONS))
            )
        for key, (low, high) in SMTP_BOUNDS.items():
            if key in query and not low <= float(query[key][-1]) <= high:
                raise ValueError(f"{shown!r}: {key} must be between {low:g} and {high:g}")
    return value


def _domain(value: Any) -> str:
    value = str(value or "").strip().lower().rstrip(".")
    if value and not HOST.match(value):
        raise ValueError("a domain name such as lists.example.org")
    return value


def _selector(value: Any) -> str:
    value = str(value or "").strip().lower()
    if value and not re.match(r"^[a-z0-9][a-z0-9-]{0,62}$", value):
        raise ValueError("letters, digits and dashes, e.g. mail2024")
    return value


def _email(value: Any) -> str:
    from listmgr.addresses import normalize_email

    try:
        return normalize_email(value)
    except ValidationError as exc:
        raise ValueError(exc.message) from None


def _rate(value: Any) -> float:
    number = float(value)
    if not 0 <= number <= 100000:
        raise ValueError("a number of messages per second between 0 (unlimited) and 100000")
    return number


def _off(value: Any) -> Any:
    return 0 if isinstance(value, str) and value.strip().lower() in OFF else value


def _share(value: Any) -> float:
    number = float(_off(value))
    if not 0 <= number <= 1:
        raise ValueError("a share between 0 (off) and 1, e.g. 0.05 for 5 %")
    return number


def _count(value: Any) -> int:
    value = _off(value)
    number = int(value.strip()) if isinstance(value, str) else value
    if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= 100_000_000:
        raise ValueError("a whole number between 0 (off) and 100,000,000")
    return number


def _limit(value: Any) -> str:
    value = str(value or "").strip().lower()
    if not RATE.match(value):
        raise ValueError("a limit such as 30/hour or 5/minute")
    return value.replace(" ", "")


@dataclass(frozen=True)
class Spec:
    key: str
    label: str
    check: Callable[[Any], Any]
    group: str
    secret: bool = False
    help: str = ""


SPECS: tuple[Spec, ...] = (
    Spec(
        "smtp_url",
        "SMTP servers",
        _smtp,
        "Sending",
        secret=True,
        help="smtp://user:pass@host:587?starttls=1 or smtps://…:465; several separated by "
        "spaces. Empty: the built-in dev outbox.",
    ),
    Spec(
        "send_rate",
        "Messages per second (all servers)",
        _rate,
        "Sending",
        help="0 means as fast as the servers accept.",
    ),
    Spec("send_rate_per_server", "Messages per second per server", _rate, "Sending"),
    Spec(
        "mail_domain",
        "Mail domain",
        _domain,
        "Identity",
        help="Used in Message-IDs, bounce (VERP) and unsubscribe mailto addresses.",
    ),
    Spec(
        "inbound_host",
        "Inbound mail host",
        _domain,
        "Identity",
        help="Where mail for the mail domain reaches listmgr; the domain check expects the "
        "mail domain's MX to point here.",
    ),
    Spec("default_from_name", "Default sender name", _text(200), "Identity"),
    Spec("default_from_email", "Default sender address", _email, "Identity"),
    Spec(
        "default_postal_address",
        "Default postal address",
        _text(500),
        "Identity",
        help="Shown in every campaign footer unless the list has its own.",
    ),
    Spec("dkim_domain", "DKIM signing domain", _domain, "DKIM"),
    Spec("dkim_selector", "DKIM selector", _selector, "DKIM"),
    Spec(
        "breaker_bounce_rate",
        "Hard-bounce limit",
        _share,
        "Circuit breaker",
        help="A sending campaign pauses itself above this share of hard bounces in its "
        "window (0.05 = 5 %; 0: off).",
    ),
    Spec(
        "breaker_complaint_rate",
        "Complaint limit",
        _share,
        "Circuit breaker",
        help="… or above this share of spam complaints (0.001 = 0.1 %; 0: off).",
    ),
    Spec(
        "breaker_window",
        "Window (messages)",
        _count,
        "Circuit breaker",
        help="The rates are those of the campaign's last N messages since it (re)started "
        "(0: no circuit breaker).",
    ),
    Spec(
        "breaker_min_deliveries",
        "Messages before a verdict",
        _count,
        "Circuit breaker",
        help="No pause before the window holds this many messages.",
    ),
    Spec("subscribe_rate_limit_ip", "Sign-ups per IP address", _limit, "Rate limits"),
    Spec("subscribe_rate_limit_email", "Sign-ups per email address", _limit, "Rate limits"),
)
BY_KEY = {spec.key: spec for spec in SPECS}


@dataclass(frozen=True)
class SettingView:
    key: str
    label: str
    group: str
    value: Any
    default: Any
    overridden: bool
    secret: bool
    help: str


def _stored(rt: Runtime, s: Session | None = None) -> dict[str, Any]:
    """The changes saved in the admin: in the session s, or in a read of their own."""
    query = select(col(SettingValue.key), col(SettingValue.value))
    rows = s.execute(query).all() if s is not None else rt.db.read(query)
    return {key: value for key, value in rows}


def _split(url: str) -> tuple[str, str | None, str]:
    """(scheme, userinfo or None, the rest: host, port, path and query) of a URL as typed;
    the userinfo runs to the last "@", so a password with odd characters is never cut."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return scheme, None, rest
    userinfo, _, after = rest.rpartition("@")
    return scheme, userinfo, after


def _server_key(url: str) -> tuple[str, str, str]:
    scheme, userinfo, after = _split(url)
    hostport = after.split("/", 1)[0].split("?", 1)[0].lower()
    return scheme.lower(), (userinfo or "").split(":", 1)[0], hostport


def _password_key(url: str) -> tuple[str, str, str, bool]:
    """What a stored password belongs to: the server, and whether it travels encrypted (a
    password set for STARTTLS is never kept for the same server without it)."""
    query = parse_qs(_split(url)[2].partition("?")[2])
    starttls = query.get("starttls", ["0"])[-1].lower() in ("1", "true", "yes")
    return (*_server_key(url), starttls)


def mask(key: str, value: Any) -> Any:
    """A value fit to show: passwords in SMTP URLs hidden (even in a URL that does not parse)."""
    if key != "smtp_url" or not value:
        return value
    out = []
    for url in str(value).split():
        scheme, userinfo, after = _split(url)
        if userinfo is not None and ":" in userinfo:
            url = f"{scheme}://{userinfo.split(':', 1)[0]}:{MASK}@{after}"
        out.append(url)
    return " ".join(out)


def servers_of(value: Any) -> list[str]:
    """SMTP servers as the audit log names them: scheme, user, host and port; no password."""
    out = []
    for url in str(value or "").split():
        scheme, user, hostport = _server_key(url)
        out.append(f"{scheme}://{user + '@' if user else ''}{hostport}")
    return out


def _keep_passwords(value: str, current: str) -> str:
    """A URL that came back with its password masked keeps the stored password, but only for
    the very server (scheme, user, host, port, STARTTLS) it was set for: a changed host must
    be given the password again, or anyone who may edit settings could send it elsewhere (or
    in the clear)."""
    known = {
        _password_key(url): _split(url)[1]
        for url in current.split()
        if ":" in (_split(url)[1] or "")
    }
    out = []
    for url in value.split():
        scheme, userinfo, after = _split(url)
        if MASK in url:
            stored = known.get(_password_key(url))
            if stored is None or MASK in after or userinfo != f"{_server_key(url)[1]}:{MASK}":
                raise ValidationError(
                    f"SMTP servers: type the password again for {mask('smtp_url', url)!r}: a "
                    "stored password is kept only for the server it was set for",
                    field="smtp_url",
                )
            url = f"{scheme}://{stored}@{after}"
        out.append(url)
    return " ".join(out)


def all_settings(rt: Runtime) -> list[SettingView]:
    """Every admin-editable setting with its effective value (secrets masked)."""
    base, stored = rt.settings, _stored(rt)
    return [
        SettingView(
            spec.key,
            spec.label,
            spec.group,
            mask(spec.key, stored.get(spec.key, getattr(base, spec.key))),
            mask(spec.key, getattr(base, spec.key)),
            spec.key in stored,
            spec.secret,
            spec.help,
        )
        for spec in SPECS
    ]


@dataclass(frozen=True)
class Actor:
    """Who changes settings, for the audit log."""

    label: str = "system"
    ip: str = ""
    user_id: int | None = None
    token_id: int | None = None


def update(
    rt: Runtime,
    values: dict[str, Any],
    *,
    reset: list[str] | None = None,
    actor: Actor | None = None,
) -> list[str]:
    """Validate and store changed settings (all or nothing) and audit the change in the same
    transaction; returns the keys that changed. Once saved, the privacy notices follow."""
    base, stored = rt.settings, _stored(rt)
    current = {spec.key: stored.get(spec.key, getattr(base, spec.key)) for spec in SPECS}
    clean: dict[str, Any] = {}
    for key, raw in values.items():
        spec = BY_KEY.get(key)
        if spec is None:
            raise ValidationError(f"unknown setting {key!r}", field=key)
        if spec.secret and isinstance(raw, str) and MASK in raw:
            if raw.strip() == mask(key, current[key]):
                continue  # the masked value came back unchanged
            raw = _keep_passwords(raw, str(current[key] or ""))
        try:
            clean[key] = spec.check(raw)
        except (ValueError, TypeError) as exc:
            raise ValidationError(f"{spec.label}: {exc}", field=key) from None
    for key in reset or []:
        if key not in BY_KEY:
            raise ValidationError(f"unknown setting {key!r}", field=key)
    if base.production and "smtp_url" in clean and not clean["smtp_url"]:
        raise ValidationError(
            "SMTP servers: production mail must go to an SMTP server, never to the dev outbox",
            field="smtp_url",
        )
    changed = [k for k, v in clean.items() if stored.get(k, getattr(base, k)) != v] + [
        k for k in reset or [] if k in stored
    ]
    with rt.db.session() as s:
        for key in reset or []:
            s.execute(delete(SettingValue).where(col(SettingValue.key) == key))
        for key, value in clean.items():
            if key in (reset or []):
                continue
            row = s.get(SettingValue, key)
            if row is None:
                s.add(SettingValue(key=key, value=value))
            elif row.value != value:
                row.value, row.updated_at = value, utcnow()
        if changed:
            after = {**current, **clean, **{k: getattr(base, k) for k in reset or []}}
            s.add(
                _audit_row(
                    actor or Actor(), "settings.change", _change_detail(changed, current, after)
                )
            )
    if changed:
        notices.follow_change(rt, effective(rt))
    return changed


def _change_detail(
    changed: list[str], before: dict[str, Any], after: dict[str, Any]
) -> dict[str, Any]:
    """The keys that changed; for the SMTP servers, which ones before and after (no password:
    whoever reads the audit log must not learn it there)."""
    detail: dict[str, Any] = {"keys": changed}
    if "smtp_url" in changed:
        detail["smtp_servers"] = {
            "before": servers_of(before["smtp_url"]),
            "after": servers_of(after["smtp_url"]),
        }
    return detail


def _audit_row(actor: Actor, action: str, detail: dict[str, Any]) -> AuditLog:
    return audit.entry(
        actor=actor.label,
        action=action,
        target_type="settings",
        ip=actor.ip,
        detail=detail,
        user_id=actor.user_id,
        token_id=actor.token_id,
    )


def effective(rt: Runtime, s: Session | None = None) -> Settings:
    """The settings in force: files and environment, then the changes saved in the admin (one
    read of the database, in the session s when given; so every process, web or worker,
    follows a change at its next job or request)."""
    base, stored = rt.settings, _stored(rt, s)
    changes = {k: v for k, v in stored.items() if k in BY_KEY and _usable(base, k, v)}
    pem = stored.get(DKIM_KEY)
    if pem and changes.get("dkim_selector", base.dkim_selector):
        changes["dkim_private_key_path"] = str(_key_file(base, pem))
    return base.with_values(changes)


def _usable(base: Settings, key: str, value: Any) -> bool:
    """Whether a stored value may be used: what the admin could not set today (file paths in
    SMTP URLs, an empty server list in production) is ignored, whoever wrote it."""
    if key != "smtp_url":
        return True
    if not str(value or "").strip():
        return not base.production
    try:
        _smtp(value)
    except ValueError:
        log.warning("ignoring the stored SMTP servers: %s", mask(key, value))
        return False
    return True


@dataclass(frozen=True)
class ServerCheck:
    """How connecting to one SMTP server went."""

    server: str
    ok: bool
    error: str


def check_servers(
    rt: Runtime, *, detailed: bool, actor: Actor | None = None, smtp_url: str | None = None
) -> list[ServerCheck]:
    """Connect to each SMTP server in force, or to those of `smtp_url` as a form gives them
    before they are saved (a masked password: the stored one, under the rule of update()),
    greeting, TLS and sign-in, and say how it went; detailed=False says only that it failed
    (for people who may not change the settings)."""
    from listmgr.mail.transport import (
        PermanentFailure,
        SmtpConnection,
        TemporaryFailure,
        describe_failure,
        parse_smtp_urls,
    )

    if smtp_url is None:
        settings = effective(rt)
        servers = "" if settings.embedded_outbox else settings.smtp_url
    else:
        servers = _form_servers(rt, smtp_url)
    if not servers:
        return [ServerCheck("dev outbox", True, "")]
    results = []
    for server in parse_smtp_urls(servers):
        try:
            SmtpConnection(server).check()
            results.append(ServerCheck(server.label, True, ""))
        except (TemporaryFailure, PermanentFailure) as exc:
            results.append(
                ServerCheck(server.label, False, describe_failure(exc, detailed=detailed))
            )
    with rt.db.session() as s:
        s.add(
            _audit_row(
                actor or Actor(),
                "settings.smtp_check",
                {"servers": [{"server": r.server, "ok": r.ok} for r in results]},
            )
        )
    return results


def _form_servers(rt: Runtime, value: str) -> str:
    """SMTP servers typed in a form, checked as update() would check them, with stored
    passwords for the masked ones."""
    current = str(_stored(rt).get("smtp_url", rt.settings.smtp_url) or "")
    if MASK in value:
        value = _keep_passwords(value, current)
    try:
        return _smtp(value)
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"{BY_KEY['smtp_url'].label}: {exc}", field="smtp_url") from None


@dataclass(frozen=True)
class Alignment:
    """Whether the DKIM signing domain aligns with the From domains (DMARC, relaxed)."""

    signing_domain: str
    misaligned: tuple[str, ...]  # From domains it does not align with


def dkim_alignment(rt: Runtime) -> Alignment:
    """The From domains in use (the default sender, each list's own) that the DKIM signing
    domain does not align with."""
    settings = effective(rt)
    signing = settings.dkim_domain or settings.mail_domain
    with rt.db.session() as s:
        senders = set(s.scalars(select(col(MailingList.from_email)).distinct()))
    senders.add(settings.default_from_email)
    domains = {e.rpartition("@")[2].lower() for e in senders if e and "@" in e}
    return Alignment(signing, tuple(sorted(d for d in domains if not aligned(signing, d))))


def _key_file(base: Settings, pem: str) -> Path:
    """The stored DKIM key as a private file named by its digest (signers read a path);
    written whole under a temporary name first, so no reader ever sees half a key."""
    folder = Path(base.var_dir) / "dkim"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(pem.encode()).hexdigest()[:16]}.pem"
    if path.exists():
        return path
    fd, temp = tempfile.mkstemp(dir=folder, prefix=".key-", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(pem)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path


def generate_dkim(rt: Runtime, *, selector: str, domain: str = "") -> str:
    """A new RSA-2048 DKIM key under this selector; returns the DNS TXT record to publish."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        selector = _selector(selector)
    except ValueError as exc:
        raise ValidationError(f"DKIM selector: {exc}", field="dkim_selector") from None
    if not selector:
        raise ValidationError("choose a selector, e.g. mail2024", field="dkim_selector")
    try:
        domain = _domain(domain) if domain else ""
    except ValueError as exc:
        raise ValidationError(f"DKIM signing domain: {exc}", field="dkim_domain") from None
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    with rt.db.session() as s:
        for k, v in ((DKIM_KEY, pem), ("dkim_selector", selector)) + (
            (("dkim_domain", domain),) if domain else ()
        ):
            row = s.get(SettingValue, k)
            if row is None:
                s.add(SettingValue(key=k, value=v))
            else:
                row.value, row.updated_at = v, utcnow()
    return dkim_record(rt) or ""


def dkim_record(rt: Runtime) -> str | None:
    """The DNS TXT record (name and value) for the DKIM key in force, or None."""
    settings = effective(rt)
    pem = _stored(rt).get(DKIM_KEY)
    if (
        not pem
        and settings.dkim_private_key_path
        and Path(settings.dkim_private_key_path).is_file()
    ):
        pem = Path(settings.dkim_private_key_path).read_text()
    if not pem or not settings.dkim_selector:
        return None
    domain = settings.dkim_domain or settings.mail_domain
    return load_key(domain, settings.dkim_selector, pem.encode()).zone_line()
