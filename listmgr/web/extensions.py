"""Flask extensions shared by the blueprints (bound to the app in create_app), and the one way
to name the client's address."""

from __future__ import annotations

from collections.abc import Callable

from flask import Response, current_app, g, request
from flask_limiter import Limiter
from flask_wtf.csrf import CSRFProtect

from listmgr.runtime import Runtime
from listmgr.services import audit, settings_store
from listmgr.services.subscriptions import Origin
from listmgr.settings import Settings


def current_runtime() -> Runtime:
    """The runtime of the running app."""
    rt: Runtime = current_app.extensions["listmgr"]
    return rt


def client_ip() -> str:
    """The visitor's address: the peer, or what trusted proxies say (ProxyFix, trusted_proxies).
    Rate limits, consent events and the audit log all use this one."""
    return (request.remote_addr or "")[:64]


def note_audit_ip() -> None:
    """Before each request: audit entries written while serving it carry the client's address."""
    audit.request_ip.set(client_ip())


def forget_audit_ip(_exc: BaseException | None = None) -> None:
    """After each request: entries written later on this thread (a job) carry no address."""
    audit.request_ip.set("")


def visitor_origin(source: str) -> Origin:
    """Where a public request comes from, for consent events and the audit log."""
    return Origin(
        source=source, ip=client_ip(), user_agent=request.headers.get("User-Agent", "")[:500]
    )


def ip_key() -> str:
    """The rate-limit key of the client's address."""
    # An empty key would make Flask-Limiter skip the limit: never let that happen.
    return "ip:" + (client_ip() or "unknown")


def refused(*statuses: int) -> Callable[[Response], bool]:
    """deduct_when for limits that count only refused requests (bad tokens, wrong secrets)."""
    return lambda resp: resp.status_code in statuses


csrf = CSRFProtect()
limiter = Limiter(key_func=ip_key, headers_enabled=True)


def settings_in_force() -> Settings:
    """The settings in force for this request, admin changes included: read once per request
    (the first time a view, limit or template asks), so one request sees one set of values."""
    if "settings_in_force" not in g:
        g.settings_in_force = settings_store.effective(current_runtime())
    settings: Settings = g.settings_in_force
    return settings
