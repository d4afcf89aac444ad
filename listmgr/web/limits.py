"""Rate limits of the web: which requests count, per what key, and how many (from settings).

Each limit answers 429 through the one error handler: a page for people, JSON for the API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, Protocol, TypeVar

from flask import g, request

from listmgr.web.extensions import current_runtime, ip_key, limiter, refused

P = ParamSpec("P")
R = TypeVar("R")


class Decorator(Protocol):
    """A limit put on a view: the view comes back with its own signature."""

    def __call__(self, fn: Callable[P, R], /) -> Callable[P, R]: ...


# A signed link that names nobody (tampered, unknown, erased): what a guesser gets.
TOKEN_REFUSED = (400, 404, 410)


def _setting(name: str) -> Callable[[], str]:
    return lambda: str(getattr(current_runtime().settings, name))


def _stack(*decorators: Decorator) -> Decorator:
    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        for decorate in reversed(decorators):
            fn = decorate(fn)
        return fn

    return wrap


def _user_key() -> str:
    """Per signed-in user (their API tokens share the budget); per address otherwise."""
    p = getattr(g, "principal", None)
    if p is not None and p.user_id is not None:
        return f"user:{p.user_id}"
    if p is not None and p.token_id is not None:
        return f"token:{p.token_id}"
    return ip_key()


def token_link(*, one_click: bool = False) -> Decorator:
    """Pages behind a signed link (/confirm/, /u/, /p/): per address, all of them together,
    and a stricter budget for refused tokens (guessing). The one-click POST has a budget of
    its own, large enough for a mail provider posting many unsubscribes from one address."""
    overall = (
        limiter.limit(_setting("unsubscribe_rate_limit_ip"))
        if one_click
        else limiter.shared_limit(_setting("link_rate_limit_ip"), scope="links")
    )
    return _stack(
        overall,
        limiter.shared_limit(
            _setting("token_failure_rate_limit_ip"),
            scope="token-refused",
            deduct_when=refused(*TOKEN_REFUSED),
        ),
    )


def inbound_hook() -> Decorator:
    """POST /hooks/inbound: per address, and far fewer failed authentications."""
    return _stack(
        limiter.limit(_setting("inbound_rate_limit_ip")),
        limiter.shared_limit(
            _setting("inbound_auth_failure_rate_limit_ip"),
            scope="inbound-auth",
            deduct_when=refused(401, 403),
        ),
    )


def _test_recipients() -> int:
    """How many test mails a request asks for (each counts; the service refuses above 10)."""
    if request.is_json:
        data = request.get_json(silent=True)
        to = data.get("to") if isinstance(data, dict) else None
        count = len(to) if isinstance(to, list) else 1
    else:
        raw = request.form.get("to") or ""
        count = len([x for x in raw.replace(",", "\n").splitlines() if x.strip()])
    return max(1, min(count, 10))


def test_send() -> Decorator:
    """Campaign test sends (mail to any address): test mails per user, pages and API alike."""
    return limiter.shared_limit(
        _setting("test_send_rate_limit"),
        scope="test-send",
        key_func=_user_key,
        cost=_test_recipients,
    )


def reply_send() -> Decorator:
    """Answers to inbound mail (mail to any address, like test sends): the same budget per
    user as test mails, one mail each."""
    return limiter.shared_limit(
        _setting("test_send_rate_limit"), scope="test-send", key_func=_user_key
    )


def smtp_check() -> Decorator:
    """Connecting to the SMTP servers on request: per user, pages and API alike."""
    return limiter.shared_limit(
        _setting("smtp_check_rate_limit"), scope="smtp-check", key_func=_user_key
    )
