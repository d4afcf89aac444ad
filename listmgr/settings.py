"""Settings: config/defaults.toml, then config/<env>.toml, then LISTMGR_* variables, then overrides.

The model below gives each setting its type; its value comes only from config/defaults.toml
(shipped in the package), so there is one place to read and change a default. A key that is
not a setting is refused, wherever it comes from, with the key named.
"""

from __future__ import annotations

import difflib
import functools
import hmac
import ipaddress
import json
import os
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticError

from listmgr import resource_dir
from listmgr.errors import ConfigError
from listmgr.mail.domains import Warmup

MIN_SECRET_KEY = 32  # characters of LISTMGR_SECRET_KEY in production
MIN_INBOUND_SECRET = 16  # characters of LISTMGR_INBOUND_SECRET in production
MIN_DISTINCT = 8  # "aaaa…" or "1212…" is no secret, whatever its length
# Values that only stand in for a real one; the development defaults and what the example
# production file suggests are added from those files, so that none can drift apart.
PLACEHOLDERS = frozenset({"secret", "changeme", "password"})
CHECKED = ("secret_key", "inbound_secret", "smtp_url")
PREFIX = "LISTMGR_"
# LISTMGR_* variables that are not settings: where the configuration lives, the password of
# `listmgr user create`, and what the tests, benchmarks and CI read for themselves.
NOT_SETTINGS = frozenset(
    {"LISTMGR_CONFIG_DIR", "LISTMGR_CONFIG", "LISTMGR_NEW_PASSWORD", "LISTMGR_CORPUS"}
)
NOT_SETTINGS_PREFIXES = ("LISTMGR_TEST_", "LISTMGR_BENCH_", "LISTMGR_CI_")
Positive = Annotated[float, Field(gt=0)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
Days = Annotated[int, Field(ge=0, le=36500)]  # a retention period; 0: kept forever
# A campaign's ledger is kept at least as long as the reputation figures look back
# (services/reputation.WINDOWS), which read it message by message.
LEDGER_MIN_DAYS = 30
Share = Annotated[float, Field(ge=0, le=1)]  # a rate limit of the circuit breaker; 0: off
Count = Annotated[int, Field(ge=0, le=100_000_000)]
OFF = frozenset({"off", "false", "no", "none", ""})
NonNegativeInt = Annotated[int, Field(ge=0)]


class DomainLimitEntry(BaseModel):
    """One entry of `domain_limits`: a receiving domain (or `domains`, a provider's several)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    rate: NonNegativeFloat = 0.0  # messages per second over all workers; 0: no limit
    concurrency: NonNegativeInt = 0  # messages in flight at once over all workers; 0: no limit
    domains: list[str] = []  # empty: the entry's own name


class Settings(BaseModel):
    """Every setting listmgr reads; see config/defaults.toml for values and meanings."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    env: str
    secret_key: str
    database_url: str
    broker_url: str
    broker_namespace: str
    base_url: str
    mail_domain: str
    smtp_url: str
    inbound_secret: str
    ratelimit_storage_url: str
    ratelimit_enabled: bool
    default_from_name: str
    default_from_email: str
    default_postal_address: str
    organisation_name: str
    privacy_contact: str
    processors: list[str]
    retention_unconfirmed_days: Days
    retention_activity_days: Days
    retention_engagement_days: Days
    retention_inbound_days: Days
    retention_audit_days: Days
    retention_repermission_days: Days
    retention_delivery_days: Days
    confirm_max_age_days: int
    confirm_window_minutes: int
    data_link_max_age_minutes: int
    data_link_window_minutes: int
    unsubscribe_undo_minutes: int
    subscribe_rate_limit_ip: str
    subscribe_rate_limit_email: str
    max_form_bytes: int
    max_inbound_bytes: int
    max_import_bytes: int
    aggregate_min_count: int
    worker_threads: int
    sweep_seconds: int
    send_rate: float
    send_rate_per_server: float
    send_batch_size: int
    send_connections: int
    lease_seconds: int
    retry_max_attempts: int
    retry_base_seconds: float
    send_synchronous_commit: bool
    domain_limits: dict[str, DomainLimitEntry]
    domain_backoff_seconds: NonNegativeFloat
    warmup_start: str
    warmup_days: NonNegativeInt
    warmup_first_day: NonNegativeInt
    warmup_growth: Annotated[float, Field(gt=1)]
    # A template budget of zero (or less) would refuse every template, or none.
    template_seconds: Positive
    template_max_chars: PositiveInt
    template_failures_pause: PositiveInt
    breaker_bounce_rate: Share
    breaker_complaint_rate: Share
    breaker_window: Count
    breaker_min_deliveries: Count
    dkim_domain: str
    dkim_selector: str
    dkim_private_key_path: str
    soft_bounce_threshold: int
    flag_soft_bounces: PositiveInt
    flag_never_engaged_campaigns: PositiveInt
    repermission_days: PositiveInt
    tracking: bool
    machine_open_seconds: NonNegativeFloat
    scanner_click_seconds: NonNegativeFloat
    unsubscribe_confirmation_mail: bool
    session_hours: int
    password_min_score: int
    login_free_failures: int
    login_free_failures_per_ip: int
    login_max_delay_seconds: int
    trusted_proxies: int
    link_rate_limit_ip: str
    unsubscribe_rate_limit_ip: str
    token_failure_rate_limit_ip: str
    inbound_rate_limit_ip: str
    inbound_auth_failure_rate_limit_ip: str
    test_send_rate_limit: str
    smtp_check_rate_limit: str
    inbound_authserv_id: str
    inbound_host: str
    dns_resolver: str
    dns_timeout_seconds: Positive
    unsubscribe_request_window_hours: int
    var_dir: str
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
    log_format: Literal["text", "json"]
    log_addresses: bool
    metrics_token: str
    metrics_allow: str
    auto_migrate: bool

    @field_validator("processors", mode="before")
    @classmethod
    def _one_per_line(cls, value: Any) -> Any:
        """LISTMGR_PROCESSORS gives one processor a line (a name may hold commas)."""
        if isinstance(value, str):
            return [line.strip() for line in value.splitlines() if line.strip()]
        return value

    @field_validator(
        "breaker_bounce_rate",
        "breaker_complaint_rate",
        "breaker_window",
        "breaker_min_deliveries",
        mode="before",
    )
    @classmethod
    def _off_is_zero(cls, value: Any) -> Any:
        """The circuit breaker's numbers may be written "off" (0: that check is off)."""
        if value is False or (isinstance(value, str) and value.strip().lower() in OFF):
            return 0
        return value

    @field_validator("retention_delivery_days")
    @classmethod
    def _ledger_kept_for_reputation(cls, value: int) -> int:
        if 0 < value < LEDGER_MIN_DAYS:
            raise ValueError(
                f"0 (kept forever) or at least {LEDGER_MIN_DAYS} days: the reputation "
                "figures read the last 30 days message by message"
            )
        return value

    @field_validator("domain_limits", mode="before")
    @classmethod
    def _json_table(cls, value: Any) -> Any:
        """LISTMGR_DOMAIN_LIMITS gives the table as JSON."""
        if isinstance(value, str):
            try:
                return json.loads(value) if value.strip() else {}
            except ValueError:
                raise ValueError(
                    'JSON such as {"gmail.com": {"rate": 20, "concurrency": 4}}'
                ) from None
        return value

    @property
    def organisation(self) -> str:
        """Who is responsible for the subscribers' data."""
        return self.organisation_name.strip() or self.default_from_name

    @property
    def privacy_address(self) -> str:
        """Where privacy questions go."""
        return self.privacy_contact.strip() or self.default_from_email

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_capitals(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("metrics_allow")
    @classmethod
    def _networks(cls, value: str) -> str:
        for part in value.replace(",", " ").split():
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError:
                raise ValueError("networks such as 10.0.0.0/8, separated by commas") from None
        return value

    @property
    def metrics_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """The networks /metrics answers (empty: any, when a token is set)."""
        parts = self.metrics_allow.replace(",", " ").split()
        return tuple(ipaddress.ip_network(p, strict=False) for p in parts)

    @field_validator("base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

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

    def with_values(self, changes: Mapping[str, Any]) -> Settings:
        """These settings with some values changed (checked like any other source)."""
        if not changes:
            return self
        return _validated({**self.model_dump(), **changes}, dict.fromkeys(changes, "a change"))

    def check(self) -> None:
        """Refuse unsafe production settings (and malformed limits anywhere) with a one-line
        explanation naming the variables."""
        from limits import parse_many

        for name in (n for n in type(self).model_fields if "rate_limit" in n):
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
        self._check_delivery_guard()
        if not self.production:
            return
        problems = production_problems(self)
        if problems:
            raise ConfigError("refusing to start in production: " + "; ".join(problems))

    def _check_delivery_guard(self) -> None:
        """The domain limits and the warm-up plan make sense together."""
        from listmgr.mail.domains import table_problems

        problems = table_problems({k: v.model_dump() for k, v in self.domain_limits.items()})
        if problems:
            raise ConfigError("setting " + "; ".join(problems))
        if not self.warmup_start:
            return
        try:
            date.fromisoformat(self.warmup_start)
        except ValueError:
            raise ConfigError(
                f"setting warmup_start must be a date such as 2026-01-31, got {self.warmup_start!r}"
            ) from None
        if self.warmup_days < 1 or self.warmup_first_day < 1:
            raise ConfigError(
                "settings warmup_days and warmup_first_day must be at least 1 when "
                "warmup_start is set"
            )

    @property
    def warmup(self) -> Warmup | None:
        """The warm-up plan, or None when there is none."""
        if not self.warmup_start:
            return None
        return Warmup(
            date.fromisoformat(self.warmup_start),
            self.warmup_days,
            self.warmup_first_day,
            self.warmup_growth,
        )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None


@functools.cache
def shipped_defaults() -> dict[str, Any]:
    """config/defaults.toml as shipped: the default of every setting."""
    return _read_toml(resource_dir("config") / "defaults.toml")


def _example_values() -> dict[str, str]:
    """The checked settings as config/production.example.toml suggests them (placeholders)."""
    path = resource_dir("config") / "production.example.toml"
    try:
        data = _read_toml(path)
    except (OSError, ConfigError):
        return {}
    return {k: str(data[k]) for k in CHECKED if k in data}


def _placeholder(value: str, example: str | None) -> bool:
    """A value nobody chose: a known stand-in, the example's, or anything saying change-me."""
    defaults = shipped_defaults()
    known = PLACEHOLDERS | {str(defaults.get(k, "")) for k in ("secret_key", "inbound_secret")}
    folded = re.sub(r"[^a-z0-9]", "", value.lower())
    return (
        value.strip() in known
        or folded in known
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


def _hint(key: str, spelled: Callable[[str], str] = str) -> str:
    """ " (did you mean x?)" for a key close to a setting's name, else nothing."""
    close = difflib.get_close_matches(
        key.replace(".", "_").lower(), list(Settings.model_fields), n=1, cutoff=0.75
    )
    return f" (did you mean {spelled(close[0])}?)" if close else ""


def _unknown(data: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """The keys of data (tables named by their dotted path) that are not settings."""
    for key, value in data.items():
        name = f"{prefix}{key}"
        if name in Settings.model_fields:
            continue
        if isinstance(value, Mapping) and value:
            yield from _unknown(value, f"{name}.")
        else:
            yield name


def _take(
    values: dict[str, Any], origin: dict[str, str], data: Mapping[str, Any], where: str
) -> None:
    """Add one source's values, refusing the first key that is not a setting."""
    name = next(_unknown(data), None)
    if name is not None:
        raise ConfigError(f"unknown setting {name!r} in {where}{_hint(name)}")
    values.update(data)
    origin.update(dict.fromkeys(data, where))


def _variable(key: str) -> str:
    return f"{PREFIX}{key.upper()}"


def _from_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The settings given as LISTMGR_<KEY> variables; any other LISTMGR_* name is refused
    unless it is one of the few that are not settings."""
    out: dict[str, str] = {}
    for var, value in environ.items():
        if not var.startswith(PREFIX) or var in NOT_SETTINGS:
            continue
        if var.startswith(NOT_SETTINGS_PREFIXES):
            continue
        key = var[len(PREFIX) :].lower()
        if key not in Settings.model_fields:
            raise ConfigError(f"unknown setting {var} in the environment{_hint(key, _variable)}")
        out[key] = value
    return out


def _expected(key: str, error: Mapping[str, Any]) -> str:
    """What a setting must be, in words, for the error pydantic found."""
    context = error.get("ctx") or {}
    if error["type"] == "greater_than":
        return f"more than {context.get('gt'):g}"
    if error["type"] == "greater_than_equal":
        return f"at least {context.get('ge'):g}"
    if error["type"] == "less_than_equal":
        return f"at most {context.get('le'):g}"
    if error["type"] == "finite_number":
        return "a finite number"
    if error["type"] == "literal_error":
        return str(error["msg"]).removeprefix("Input should be ")
    if error["type"] == "value_error":  # a validator's own words
        return str(error["msg"]).removeprefix("Value error, ")
    by_type = {
        "float_parsing": "a number",
        "float_type": "a number",
        "int_parsing": "an integer",
        "int_type": "an integer",
        "int_from_float": "an integer",
        "list_type": "a list",
        "string_type": "text",
        "dict_type": "a table",
        "model_type": "a table",
    }
    if error["type"] in by_type:
        return by_type[error["type"]]
    words: dict[Any, str] = {
        int: "an integer",
        float: "a number",
        bool: "true or false",
        str: "text",
    }
    return words.get(Settings.model_fields[key].annotation, str(error["msg"]).lower())


def _validated(values: Mapping[str, Any], origin: Mapping[str, str]) -> Settings:
    """Settings from these values, or a one-line ConfigError naming the key and its source."""
    try:
        return Settings.model_validate(values)
    except PydanticError as exc:
        error = exc.errors()[0]
        key = str(error["loc"][0]) if error["loc"] else ""
        if len(error["loc"]) > 1:  # inside a table: name the whole path
            path = ".".join(str(part) for part in error["loc"])
            where = origin.get(key, "")
            source = f" (from {where})" if where else ""
            if error["type"] == "extra_forbidden":
                raise ConfigError(
                    f"unknown setting {path}{source}: an entry has rate, concurrency, domains"
                ) from None
            raise ConfigError(
                f"setting {path}{source} must be {_expected(key, error)}, got {error['input']!r}"
            ) from None
        if error["type"] == "missing":
            raise ConfigError(f"setting {key} is missing from config/defaults.toml") from None
        if error["type"] == "extra_forbidden":
            raise ConfigError(f"unknown setting {key!r}{_hint(key)}") from None
        where = origin.get(key, "")
        source = f" (from {where})" if where else ""
        # Secrets and URLs (which may carry a password) are never echoed back.
        shown = "" if "secret" in key or "url" in key else f", got {error['input']!r}"
        raise ConfigError(f"setting {key}{source} must be {_expected(key, error)}{shown}") from None


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build Settings from the toml files, the environment and explicit overrides."""
    environ = os.environ if environ is None else environ
    overrides = overrides or {}
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    shipped = resource_dir("config")
    _take(values, origin, shipped_defaults(), str(shipped / "defaults.toml"))
    # A folder of one's own may hold a defaults.toml too (over the shipped one) and <env>.toml.
    folder = environ.get("LISTMGR_CONFIG_DIR")
    config_dir = Path(folder) if folder else shipped
    env_name = environ.get("LISTMGR_ENV") or overrides.get("env")
    names = (["defaults.toml"] if folder else []) + ([f"{env_name}.toml"] if env_name else [])
    for name in names:
        path = config_dir / name
        if path.is_file():
            _take(values, origin, _read_toml(path), str(path))
    from_env = _from_environ(environ)
    values.update(from_env)
    origin.update({key: _variable(key) for key in from_env})
    _take(values, origin, overrides, "the overrides")
    return _validated(values, origin)
