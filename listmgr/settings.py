"""Settings: config/defaults.toml, then config/<env>.toml, then LISTMGR_* variables, then overrides."""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from listmgr import resource_dir
from listmgr.errors import ConfigError

DEFAULT_SECRET = "dev-secret-change-me"
DEFAULT_INBOUND_SECRET = "dev-inbound-secret"


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
    dkim_domain: str = ""
    dkim_selector: str = ""
    dkim_private_key_path: str = ""
    soft_bounce_threshold: int = 3
    unsubscribe_confirmation_mail: bool = True
    var_dir: str = "var"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def embedded_outbox(self) -> bool:
        """True when mail goes to the built-in dev outbox instead of an SMTP server."""
        return not self.smtp_url.strip()

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        Path(self.var_dir).mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{Path(self.var_dir).resolve() / 'listmgr.db'}"

    def check(self) -> None:
        """Refuse unsafe production settings with a one-line explanation."""
        if self.production:
            if self.secret_key == DEFAULT_SECRET or len(self.secret_key) < 16:
                raise ConfigError(
                    "refusing to start in production with the default or a short secret key: "
                    "set LISTMGR_SECRET_KEY to at least 16 random characters"
                )
            if self.inbound_secret == DEFAULT_INBOUND_SECRET:
                raise ConfigError(
                    "refusing to start in production with the default inbound secret: "
                    "set LISTMGR_INBOUND_SECRET"
                )


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


def load_settings(overrides: Mapping[str, Any] | None = None,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from the toml files, the environment and explicit overrides."""
    environ = os.environ if environ is None else environ
    known = {f.name: f for f in fields(Settings) if f.name != "extra"}
    values: dict[str, Any] = {}
    config_dir = Path(environ.get("LISTMGR_CONFIG_DIR", "")) if environ.get(
        "LISTMGR_CONFIG_DIR") else resource_dir("config")
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
    return settings
