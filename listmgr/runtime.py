"""The runtime of one process: settings, database, tokens and the way to enqueue work."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from listmgr.db import Database
from listmgr.settings import Settings, load_settings
from listmgr.tokens import Tokens


@dataclass
class Runtime:
    """Everything a service needs besides its arguments."""

    settings: Settings
    db: Database
    tokens: Tokens
    queue: Any = None  # listmgr.queue.Queue, set by queue.setup()
    state: dict[str, Any] = field(default_factory=dict)

    def email_hash(self, normalized_email: str) -> str:
        """Keyed HMAC of a normalized address: what stays on the suppression list after erasure."""
        key = hashlib.sha256(b"suppression:" + self.settings.secret_key.encode()).digest()
        return hmac.new(key, normalized_email.encode("utf-8"), hashlib.sha256).hexdigest()

    def enqueue(self, actor: str, *args: Any, delay_ms: int | None = None) -> None:
        """Wake a worker; the database already holds the work, so a lost message loses nothing."""
        if self.queue is not None:
            self.queue.enqueue(actor, *args, delay_ms=delay_ms)

    def url(self, path: str) -> str:
        return f"{self.settings.base_url}{path}"


_current: Runtime | None = None


def build(
    overrides: Mapping[str, Any] | None = None,
    *,
    settings: Settings | None = None,
    migrate: bool = False,
) -> Runtime:
    """Build (and make current) the runtime for these settings; with migrate, bring the schema
    up to date (auto_migrate) or refuse to go on with an older one."""
    global _current
    settings = settings or load_settings(overrides)
    settings.check()
    db = Database(settings)
    if migrate and settings.auto_migrate:
        db.upgrade()
    elif migrate:
        db.check_schema()
    rt = Runtime(
        settings=settings,
        db=db,
        tokens=Tokens(
            settings.secret_key,
            settings.confirm_max_age_days,
            settings.data_link_max_age_minutes,
            settings.unsubscribe_undo_minutes,
        ),
    )
    _current = rt
    return rt


def current() -> Runtime:
    """The runtime of this process (workers look it up; web and CLI build it)."""
    global _current
    if _current is None:
        _current = build()
    return _current


def set_current(rt: Runtime | None) -> None:
    global _current
    _current = rt
