"""Settings: config/defaults.toml, then config/<env>.toml, then LISTMGR_* variables, then overrides."""

from __future__ import annotations

import hmac
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from listmgr import resource_dir
from listmgr.errors import ConfigError

DEFAULT_SECRET = "dev-secret-change-me"
DEFAULT_INBOUND_SECRET = "dev-inbound-secret"
MIN_SECRET_KEY = 32  # characters of LISTMGR_SECRET_KEY in production
MIN_INBOUND_SECRET = 16  # characters of LISTMGR_INBOUND_SECRET in production
MIN_DISTINCT = 8  # "aaaa…" or "1212…" is no secret, whatever its length
# Values that only stand in for a real one: the development defaults and what the example
# production file suggests (read from it too, so the two cannot drift apart).
PLACEHOLDERS = {DEFAULT_SECRET, DEFAULT_INBOUND_SECRET, "secret", "changeme", "password"}
CHECKED = ("secret_key", "inbound_secret", "smtp_url")


@dataclass(frozen=True)
class Settings:
    """Every setting listmgr reads; see config/defaults.toml for meanings."""

    env: str = "development"
    secret_key: str = DEFAULT_SECRET
    database_url: str = ""
    broker_url: str = ""
    broker_namespace: str = "listmgr"
    base_url: str = "http://127.0.0.1:8000"
    mail_domain: str = "localhost"
    smtp_url: str = ""
    inbound_secret: str = DEFAULT_INBOUND_SECRET
    ratelimit_storage_url: str = "memory://"
    default_from_name: str = "listmgr"
    default_from_email: str = "newsletter@localhost"
    default_postal_address: str = ""
    confirm_max_age_days: int = 7
    confirm_window_minutes: int = 15
    data_link_max_age_minutes: int = 60
    data_link_window_minutes: int = 5
    subscribe_rate_limit_ip: str = "30/hour"
    subscribe_rate_limit_email: str = "5/hour"
    max_form_bytes: int = 65536
    max_inbound_bytes: int = 10 * 1024 * 1024
    aggregate_min_count: int = 10
    worker_threads: int = 4
    sweep_seconds: int = 30
    send_rate: float = 0.0
    send_rate_per_server: float = 0.0
    send_batch_size: int = 500
    send_connections: int = 4
    lease_seconds: int = 300
    retry_max_attempts: int = 6
    retry_base_seconds: float = 60.0
    send_synchronous_commit: bool = False
    template_seconds: float = 0.5
    template_max_chars: int = 2_000_000
    template_failures_pause: int = 5
    dkim_domain: str = ""
    dkim_selector: str = ""
    dkim_private_key_path: str = ""
    soft_bounce_threshold: int = 3
    unsubscribe_confirmation_mail: bool = True
    session_hours: int = 12
    password_min_score: int = 3
    login_free_failures: int = 5
    login_free_failures_per_ip: int = 50
    login_max_delay_seconds: int = 900
    trusted_proxies: int = 0
    link_rate_limit_ip: str = "300/minute"
    unsubscribe_rate_limit_ip: str = "6000/minute"
    token_failure_rate_limit_ip: str = "60/minute"
    inbound_rate_limit_ip: str = "30000/minute"
    inbound_auth_failure_rate_limit_ip: str = "20/hour"
    test_send_rate_limit: str = "60/hour"
    smtp_check_rate_limit: str = "20/hour"
    inbound_authserv_id: str = ""
    unsubscribe_request_window_hours: int = 24
    var_dir: str = "var"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def production(self) -> bool:
        return self.env.strip().lower() in ("production", "prod")

    @property
    def embedded_outbox(self) -> bool:
        """True when mail goes to the built-in dev outbox instead of an SMTP server."""
        return not self.smtp_url.strip()

    @property
    def dev_outbox_shown(self) -> bool:
        """Whether the dev outbox pages exist: embedded mode outside production only."""
        return self.embedded_outbox and not self.production

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        Path(self.var_dir).mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{Path(self.var_dir).resolve() / 'listmgr.db'}"

    def check(self) -> None:
        """Refuse unsafe production settings (and malformed limits anywhere) with a one-line
        explanation naming the variables."""
        from limits import parse_many

        for name in (f.name for f in fields(self) if "rate_limit" in f.name):
            try:
                parse_many(getattr(self, name))
            except ValueError:
                raise ConfigError(
                    f"LISTMGR_{name.upper()} must be a rate limit such as "
                    f"30/hour or 5/minute, got {getattr(self, name)!r}"
                ) from None
        if not 0 <= self.trusted_proxies <= 10:
            raise ConfigError(
                "LISTMGR_TRUSTED_PROXIES must be the number of reverse proxies in "
                f"front of listmgr (0 to 10), got {self.trusted_proxies}"
            )
        if not self.production:
            return
        problems = production_problems(self)
        if problems:
            raise ConfigError("refusing to start in production: " + "; ".join(problems))


def _example_values() -> dict[str, str]:
    """The checked settings as config/production.example.toml suggests them (placeholders)."""
    path = resource_dir("config") / "production.example.toml"
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    return {k: str(data[k]) for k in CHECKED if k in data}


def _placeholder(value: str, example: str | None) -> bool:
    """A value nobody chose: a known stand-in, the example's, or anything saying change-me."""
    folded = re.sub(r"[^a-z0-9]", "", value.lower())
    return (
        value.strip() in PLACEHOLDERS
        or folded in PLACEHOLDERS
        or "changeme" in folded
        or (example is not None and value.strip() == example.strip())
    )


def _secret_problem(
    var: str, what: str, value: str, example: str | None, minimum: int
) -> str | None:
    """Why this secret is unfit for production, or None."""
    wanted = f"set it to at least {minimum} random characters"
    if not value.strip():
        return f"{var} ({what}) is empty: {wanted}"
    if _placeholder(value, example):
        return f"{var} ({what}) is a placeholder: {wanted}"
    if len(value.strip()) < minimum or len(set(value)) < MIN_DISTINCT:
        return f"{var} ({what}) is too short or not random: {wanted}"
    return None


def production_problems(settings: Settings) -> list[str]:
    """What makes these settings unsafe for production, one phrase each naming the variable."""
    examples = _example_values()
    key, inbound = settings.secret_key, settings.inbound_secret
    problems = [
        p
        for p in (
            _secret_problem(
                "LISTMGR_SECRET_KEY",
                "the secret key",
                key,
                examples.get("secret_key"),
                MIN_SECRET_KEY,
            ),
            _secret_problem(
                "LISTMGR_INBOUND_SECRET",
                "the inbound secret",
                inbound,
                examples.get("inbound_secret"),
                MIN_INBOUND_SECRET,
            ),
        )
        if p
    ]
    if inbound.strip() and hmac.compare_digest(inbound.encode(), key.encode()):
        problems.append("LISTMGR_INBOUND_SECRET must differ from LISTMGR_SECRET_KEY")
    if not settings.smtp_url.strip():
        problems.append(
            "LISTMGR_SMTP_URL is empty: production mail must go to an SMTP server, "
            "never to the dev outbox"
        )
    elif settings.smtp_url.strip() == examples.get("smtp_url", "").strip():
        problems.append("LISTMGR_SMTP_URL is the example's placeholder: set your SMTP server")
    return problems


def _coerce(name: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        return str(value).strip().lower() in ("1", "true", "yes", "on")
    if isinstance(default, int) and not isinstance(default, bool):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"setting {name} must be an integer, got {value!r}") from None
    if isinstance(default, float):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"setting {name} must be a number, got {value!r}") from None
    return str(value)


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build Settings from the toml files, the environment and explicit overrides."""
    environ = os.environ if environ is None else environ
    known = {f.name: f for f in fields(Settings) if f.name != "extra"}
    values: dict[str, Any] = {}
    config_dir = (
        Path(environ.get("LISTMGR_CONFIG_DIR", ""))
        if environ.get("LISTMGR_CONFIG_DIR")
        else resource_dir("config")
    )
    env_name = environ.get("LISTMGR_ENV") or (overrides or {}).get("env")
    for fname in ["defaults.toml"] + ([f"{env_name}.toml"] if env_name else []):
        path = config_dir / fname
        if path.is_file():
            with path.open("rb") as fh:
                values.update(tomllib.load(fh))
    for name in known:
        key = f"LISTMGR_{name.upper()}"
        if key in environ:
            values[name] = environ[key]
    values.update(overrides or {})
    base = Settings()
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for name, value in values.items():
        if name in known:
            kwargs[name] = _coerce(name, value, getattr(base, name))
        else:
            extra[name] = value
    settings = replace(base, **kwargs, extra=extra)
    if settings.base_url.endswith("/"):
        settings = replace(settings, base_url=settings.base_url.rstrip("/"))
    # A template budget of zero (or less) would refuse every template, or none: say so now.
    for name in ("template_seconds", "template_max_chars", "template_failures_pause"):
        if getattr(settings, name) <= 0:
            raise ConfigError(f"setting {name} must be more than 0")
    return settings
