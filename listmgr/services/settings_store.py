"""Settings changed from the admin (SMTP, DKIM, mail domain, sender, rate limits) over the files."""
from __future__ import annotations

import base64
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import delete, select

from listmgr.errors import ConfigError, ValidationError
from listmgr.models import SettingValue, utcnow
from listmgr.runtime import Runtime
from listmgr.settings import Settings

CACHE_SECONDS = 5.0
DKIM_KEY = "dkim_private_key"   # PEM, kept in the database; never shown or exported
RATE = re.compile(r"^\d+\s*/\s*(second|minute|hour|day)$")
HOST = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}"
                  r"[a-z0-9])?$")


def _text(limit: int) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or len(value) > limit or any(c in value for c in "\r\n\0"):
            raise ValueError(f"text of at most {limit} characters on one line")
        return value.strip()
    return check


def _smtp(value: Any) -> str:
    from listmgr.mail.transport import parse_smtp_urls

    value = " ".join(str(value or "").replace(",", " ").split())
    try:
        parse_smtp_urls(value)
    except ConfigError as exc:
        raise ValueError(exc.message) from None
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
    from listmgr.services.subscriptions import normalize_email

    try:
        return normalize_email(value)
    except ValidationError as exc:
        raise ValueError(exc.message) from None


def _rate(value: Any) -> float:
    number = float(value)
    if not 0 <= number <= 100000:
        raise ValueError("a number of messages per second between 0 (unlimited) and 100000")
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
    Spec("smtp_url", "SMTP servers", _smtp, "Sending", secret=True,
         help="smtp://user:pass@host:587?starttls=1 or smtps://…:465; several separated by "
              "spaces. Empty: the built-in dev outbox."),
    Spec("send_rate", "Messages per second (all servers)", _rate, "Sending",
         help="0 means as fast as the servers accept."),
    Spec("send_rate_per_server", "Messages per second per server", _rate, "Sending"),
    Spec("mail_domain", "Mail domain", _domain, "Identity",
         help="Used in Message-IDs, bounce (VERP) and unsubscribe mailto addresses."),
    Spec("default_from_name", "Default sender name", _text(200), "Identity"),
    Spec("default_from_email", "Default sender address", _email, "Identity"),
    Spec("default_postal_address", "Default postal address", _text(500), "Identity",
         help="Shown in every campaign footer unless the list has its own."),
    Spec("dkim_domain", "DKIM signing domain", _domain, "DKIM"),
    Spec("dkim_selector", "DKIM selector", _selector, "DKIM"),
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


def _base(rt: Runtime) -> Settings:
    """The settings from files and environment, before admin changes."""
    return rt.state.setdefault("base_settings", rt.settings)  # type: ignore[no-any-return]


def _stored(rt: Runtime) -> dict[str, Any]:
    with rt.db.session() as s:
        return {row.key: row.value for row in s.scalars(select(SettingValue))}


def mask(key: str, value: Any) -> Any:
    """A value fit to show: passwords in SMTP URLs hidden."""
    if key != "smtp_url" or not value:
        return value
    out = []
    for url in str(value).split():
        parts = urlsplit(url)
        if parts.password:
            netloc = f"{parts.username}:•••@{parts.hostname}" + (
                f":{parts.port}" if parts.port else "")
            url = urlunsplit(parts._replace(netloc=netloc))
        out.append(url)
    return " ".join(out)


def all_settings(rt: Runtime) -> list[SettingView]:
    """Every admin-editable setting with its effective value (secrets masked)."""
    base, stored = _base(rt), _stored(rt)
    return [SettingView(spec.key, spec.label, spec.group,
                        mask(spec.key, stored.get(spec.key, getattr(base, spec.key))),
                        mask(spec.key, getattr(base, spec.key)), spec.key in stored,
                        spec.secret, spec.help) for spec in SPECS]


def update(rt: Runtime, values: dict[str, Any], *, reset: list[str] | None = None) -> list[str]:
    """Validate and store changed settings (all or nothing); returns the keys that changed."""
    base, stored = _base(rt), _stored(rt)
    clean: dict[str, Any] = {}
    for key, raw in values.items():
        spec = BY_KEY.get(key)
        if spec is None:
            raise ValidationError(f"unknown setting {key!r}", field=key)
        if spec.secret and isinstance(raw, str) and "•••" in raw:
            continue  # the masked value came back unchanged
        try:
            clean[key] = spec.check(raw)
        except (ValueError, TypeError) as exc:
            raise ValidationError(f"{spec.label}: {exc}", field=key) from None
    for key in reset or []:
        if key not in BY_KEY:
            raise ValidationError(f"unknown setting {key!r}", field=key)
    changed = [k for k, v in clean.items()
               if stored.get(k, getattr(base, k)) != v] + [k for k in reset or [] if k in stored]
    with rt.db.session() as s:
        for key in reset or []:
            s.execute(delete(SettingValue).where(SettingValue.key == key))
        for key, value in clean.items():
            if key in (reset or []):
                continue
            row = s.get(SettingValue, key)
            if row is None:
                s.add(SettingValue(key=key, value=value))
            elif row.value != value:
                row.value, row.updated_at = value, utcnow()
    refresh(rt)
    return changed


def effective(rt: Runtime) -> Settings:
    """The settings in force: files and environment, then admin changes (read again every few
    seconds, so every process, web or worker, follows a change made in the admin)."""
    cached = rt.state.get("settings_store")
    now = time.monotonic()
    if cached and now - cached[0] < CACHE_SECONDS:
        return cached[1]  # type: ignore[no-any-return]
    base, stored = _base(rt), _stored(rt)
    changes = {k: v for k, v in stored.items() if k in BY_KEY}
    pem = stored.get(DKIM_KEY)
    if pem and changes.get("dkim_selector", base.dkim_selector):
        changes["dkim_private_key_path"] = str(_key_file(rt, base, pem))
    result = replace(base, **changes) if changes else base
    rt.state["settings_store"] = (now, result)
    _adopt(rt, result)
    return result


def _adopt(rt: Runtime, new: Settings) -> None:
    """Make `new` this process's settings; the transport is rebuilt when its servers changed."""
    old, rt.settings = rt.settings, new
    if (old.smtp_url, old.send_rate, old.send_rate_per_server) != (
            new.smtp_url, new.send_rate, new.send_rate_per_server):
        rt.state.pop("transport", None)  # rebuilt from the new servers on next use


def refresh(rt: Runtime) -> Settings:
    """Re-read the stored settings now and make them this process's settings."""
    rt.state.pop("settings_store", None)
    return effective(rt)


def _key_file(rt: Runtime, base: Settings, pem: str) -> Path:
    """The stored DKIM key as a private file (signers read a path)."""
    folder = Path(base.var_dir) / "dkim"
    folder.mkdir(parents=True, exist_ok=True)
    digest = __import__("hashlib").sha256(pem.encode()).hexdigest()[:16]
    path = folder / f"{digest}.pem"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(pem)
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
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    with rt.db.session() as s:
        for k, v in ((DKIM_KEY, pem), ("dkim_selector", selector)) + (
                (("dkim_domain", domain),) if domain else ()):
            row = s.get(SettingValue, k)
            if row is None:
                s.add(SettingValue(key=k, value=v))
            else:
                row.value, row.updated_at = v, utcnow()
    refresh(rt)
    return dkim_record(rt) or ""


def dkim_record(rt: Runtime) -> str | None:
    """The DNS TXT record (name and value) for the DKIM key in force, or None."""
    from cryptography.hazmat.primitives import serialization

    settings = effective(rt)
    pem = _stored(rt).get(DKIM_KEY)
    if not pem and settings.dkim_private_key_path and Path(
            settings.dkim_private_key_path).is_file():
        pem = Path(settings.dkim_private_key_path).read_text()
    if not pem or not settings.dkim_selector:
        return None
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    domain = settings.dkim_domain or settings.mail_domain
    return (f'{settings.dkim_selector}._domainkey.{domain}. IN TXT '
            f'"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"')
