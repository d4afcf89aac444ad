"""Flask extensions shared by the blueprints (bound to the app in create_app), and the one way
to name the client's address."""

from __future__ import annotations

from collections.abc import Callable

from flask import Response, current_app, request
from flask_limiter import Limiter
from flask_wtf.csrf import CSRFProtect

from listmgr.runtime import Runtime


def current_runtime() -> Runtime:
    """The runtime of the running app."""
    rt: Runtime = current_app.extensions["listmgr"]
    return rt


def client_ip() -> str:
    """The visitor's address: the peer, or what trusted proxies say (ProxyFix, trusted_proxies).
    Rate limits, consent events and the audit log all use this one."""
    return (request.remote_addr or "")[:64]


def ip_key() -> str:
    """The rate-limit key of the client's address."""
    # An empty key would make Flask-Limiter skip the limit: never let that happen.
    return "ip:" + (client_ip() or "unknown")


def refused(*statuses: int) -> Callable[[Response], bool]:
    """deduct_when for limits that count only refused requests (bad tokens, wrong secrets)."""
    return lambda resp: resp.status_code in statuses


csrf = CSRFProtect()
limiter = Limiter(key_func=ip_key, headers_enabled=True)
