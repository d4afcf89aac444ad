"""Who is asking and may they: sessions (Flask-Login), API tokens, the one permission check."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sansio.app import App
from flask.typing import ResponseReturnValue
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user

from listmgr import aggregates, passwords
from listmgr.aggregates import Count
from listmgr.errors import Forbidden, ListmgrError, RateLimited, Unauthorized
from listmgr.permissions import allowed
from listmgr.services import accounts, audit, users
from listmgr.services.accounts import Account, Principal
from listmgr.web.extensions import client_ip, csrf, current_runtime, limiter

F = TypeVar("F", bound=Callable[..., Any])
PUBLIC = None  # permission of routes anyone may call
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
SESSION_HOURS = 12  # the default of the session_hours setting
SIGNED_IN_AT = "signed_in_at"  # session key: when this sign-in began (epoch seconds)
# Blueprints and endpoints outside the admin and API that need no account (the role matrix
# test checks that every other route declares a permission).
PUBLIC_BLUEPRINTS = {"public", "engagement", "data_rights", "hooks", "dev"}
# /metrics answers by its own rule (allowed networks and a token: metrics.access), not a sign-in.
PUBLIC_ENDPOINTS = {"static", "observe.scrape"}
# Successful API reads of personal data that the audit log records, by endpoint.
AUDITED_READS: dict[str, tuple[str, str, str]] = {
    "api.get_subscriber": ("subscriber.view", "subscriber", "subscriber_id"),
}

login_manager = LoginManager()
login_manager.session_protection = "basic"


class AdminUser(UserMixin):
    """The signed-in user; the session names the user and their session version."""

    def __init__(self, account: Account) -> None:
        self.user_id = account.id
        self.email = account.email
        self.name = account.name
        self.role = account.role
        self.version = account.session_version

    def get_id(self) -> str:
        # A password change bumps the version, which ends every other session.
        return f"{self.user_id}:{self.version}"


def _session_hours() -> int:
    return int(current_runtime().settings.session_hours or SESSION_HOURS)


@login_manager.user_loader
def _load_user(ident: str) -> AdminUser | None:
    try:
        uid, version = (int(x) for x in ident.split(":"))
    except ValueError:
        return None
    # A sign-in lasts session_hours from when it began, however often it is used: a cookie
    # renewed by later changes (notices, tokens) alone would never end an active session.
    started = session.get(SIGNED_IN_AT)
    if not isinstance(started, (int, float)) or not (
        0 <= time.time() - started <= _session_hours() * 3600
    ):
        return None
    account = accounts.signed_in(current_runtime(), uid, version)
    return AdminUser(account) if account is not None else None


@login_manager.unauthorized_handler
def _unauthorized() -> Any:
    raise Unauthorized("Please sign in.")


def init_app(app: App) -> None:
    """Sessions for the admin: Flask-Login, cookie lifetime, API audit hook."""
    if "login_manager" in app.extensions or hasattr(app, "login_manager"):
        return
    login_manager.init_app(app)
    hours = int(app.extensions["listmgr"].settings.session_hours or SESSION_HOURS)
    # Flask's default (31 days) is always present, so this must be set, not defaulted.
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=hours)
    app.config["SESSION_COOKIE_NAME"] = "listmgr_session"
    # The cookie is written only when the session changes: a request that merely reads it (a
    # live preview still in flight when a form is saved) cannot put back a notice already shown.
    app.config["SESSION_REFRESH_EACH_REQUEST"] = False
    passwords.verify_nobody("")  # make the stand-in hash now, not during someone's sign-in
    app.after_request(_audit_api)


def require(permission: str | None) -> Callable[[F], F]:
    """Declare the permission a view needs; the blueprint's guard enforces it (fail closed)."""

    def wrap(fn: F) -> F:
        fn.permission = permission  # type: ignore[attr-defined]  # read back by the guards
        return fn

    return wrap


def session_principal() -> Principal | None:
    """The signed-in user as a principal, or None."""
    if not current_user or not current_user.is_authenticated:
        return None
    return Principal(
        role=current_user.role,
        user_id=current_user.user_id,
        token_id=None,
        label=current_user.email,
    )


def authorize(permission: str | None, *, api: bool) -> Principal | None:
    """The one access check for admin pages and API alike: who is it, and may they."""
    if permission is PUBLIC:
        return None
    header = request.headers.get("Authorization", "") if api else ""
    if header:
        if not header.startswith("Bearer ") or not header[7:].strip():
            raise Unauthorized("send an API token: Authorization: Bearer <token>")
        principal: Principal | None = accounts.verify_token(current_runtime(), header[7:].strip())
    else:
        principal = session_principal()
        if principal is None:
            raise Unauthorized(
                "send an API token: Authorization: Bearer <token>" if api else "Please sign in."
            )
        if (
            api
            and request.method not in SAFE_METHODS
            and current_app.config.get("WTF_CSRF_ENABLED", True)
        ):
            csrf.protect()  # the browser sends the cookie by itself: demand the form token
    assert principal is not None
    g.principal = principal
    if not allowed(principal.role, permission):
        raise Forbidden(
            f"a {principal.role} may not do this ({permission})"
            if api
            else "Your role does not allow this page or action."
        )
    return principal


def principal() -> Principal | None:
    return getattr(g, "principal", None)


def may(permission: str) -> bool:
    """Whether whoever this request is for holds this permission (beyond the route's own)."""
    p = principal()
    return p is not None and allowed(p.role, permission)


PERSONAL = "people:read"  # the permission that makes a principal see people, not aggregates


def personal() -> bool:
    """Whether this request may see personal data (else: aggregates only, k-anonymous)."""
    return may(PERSONAL)


def shown_count(n: int) -> Count:
    """A count as this request may see it (see listmgr.aggregates)."""
    return aggregates.shown(
        n, personal=personal(), threshold=current_runtime().settings.aggregate_min_count
    )


def withholds(size: int) -> bool:
    """Whether a group of `size` people is too small for this request to see its figures."""
    return aggregates.small_group(
        size, personal=personal(), threshold=current_runtime().settings.aggregate_min_count
    )


def shown_stats(stats: dict[str, Any]) -> dict[str, Any]:
    """A campaign's figures as this request may see them (withheld for a small audience)."""
    if not withholds(int(stats.get("audience") or 0)):
        return stats
    return aggregates.withheld(stats, current_runtime().settings.aggregate_min_count)


def record(action: str, target_type: str = "", target_id: object = "", **detail: Any) -> None:
    """Write an audit entry for the current principal and request."""
    p = principal()
    audit.record(
        current_runtime(),
        actor=p.label if p else "anonymous",
        action=action,
        target_type=target_type,
        target_id=target_id,
        ip=client_ip(),
        detail=detail,
        user_id=p.user_id if p else None,
        token_id=p.token_id if p else None,
    )


_token_lock = threading.Lock()


def _token_due(token_id: int) -> bool:
    """True at most once a minute per token in this process (reads are many; one line will do)."""
    now = time.monotonic()
    seen: dict[int, float] = current_runtime().state.setdefault("audited_token_use", {})
    with _token_lock:
        if now - seen.get(token_id, -1e9) < 60:
            return False
        seen[token_id] = now
        return True


def _audit_api(resp: Response) -> Response:
    """Record token use (per minute), every mutating call, and reads of personal data."""
    if request.blueprint != "api":
        return resp
    p = principal()
    if p is None:
        return resp
    endpoint = request.endpoint or ""
    try:
        if endpoint in AUDITED_READS and resp.status_code == 200:
            action, target_type, arg = AUDITED_READS[endpoint]
            record(action, target_type, (request.view_args or {}).get(arg, ""), via="api")
        query_like = endpoint.endswith(("count", "preview"))
        if p.token_id is not None and request.method not in SAFE_METHODS and not query_like:
            record(
                "api.call",
                "token",
                p.token_id,
                method=request.method,
                path=request.path,
                status=resp.status_code,
            )
        elif p.token_id is not None and _token_due(p.token_id):
            record("token.use", "token", p.token_id, path=request.path)
    except ListmgrError:
        pass  # the audit line must not turn an answered request into an error
    return resp


def safe_next(target: str | None) -> str:
    """Only an admin path: `next=` must never send a signed-in user to another site."""
    default = url_for("admin.dashboard")
    if not target:
        return default
    decoded = unquote(target)
    for value in (target, decoded):
        if not (value == "/admin" or value.startswith(("/admin/", "/admin?"))) or "//" in value:
            return default
        if any(c in value for c in "\\\r\n\t\0 ") or urlsplit(value).netloc:
            return default
    return target


# -- views (registered on the admin blueprint) ---------------------------------------------------
def start_session(account: Account) -> None:
    """A fresh signed-in session: nothing set before survives it (no fixation), and it
    remembers when it began (its absolute end)."""
    session.clear()
    login_user(AdminUser(account))
    session[SIGNED_IN_AT] = int(time.time())
    session.permanent = True


@require(PUBLIC)
def login() -> ResponseReturnValue:
    """Sign in with email and password; repeated failures slow that account down from that
    address (never a lockout someone else could cause)."""
    nxt = request.values.get("next", "")
    if request.method == "GET":
        if session_principal() is not None:
            return redirect(safe_next(nxt))
        return render_template(
            "pages/admin/login.html",
            next=nxt,
            error=None,
            email="",
            no_users=not users.any_users(current_runtime()),
        )
    email = request.form.get("email", "").strip()[:320]
    rt = current_runtime()
    try:
        row = accounts.authenticate(
            rt, email=email, password=request.form.get("password", ""), ip=client_ip()
        )
    except (Unauthorized, RateLimited) as exc:
        audit.record(
            rt,
            actor=email or "anonymous",
            action="login_failed",
            target_type="user",
            ip=client_ip(),
            detail={"reason": exc.code},
        )
        headers = {}
        if isinstance(exc, RateLimited) and isinstance(exc.detail, dict):
            headers["Retry-After"] = str(exc.detail.get("retry_after", 1))
        return (
            render_template(
                "pages/admin/login.html", next=nxt, error=exc.message, email=email, no_users=False
            ),
            exc.status,
            headers,
        )
    start_session(row)
    audit.record(
        rt,
        actor=row.email,
        action="login",
        target_type="user",
        target_id=row.id,
        ip=client_ip(),
        user_id=row.id,
    )
    return redirect(safe_next(nxt))


@require("account")
def logout() -> ResponseReturnValue:
    """Sign out everywhere (POST with the form token, so another site cannot sign you out)."""
    record("logout", "user", current_user.user_id)
    # A copied cookie must not outlive the sign-out: end every session of this user.
    users.end_sessions(current_runtime(), current_user.user_id)
    logout_user()
    session.clear()
    flash("You are signed out.")
    return redirect(url_for("admin.login"))


@require("account")
def password() -> ResponseReturnValue:
    """Change your own password; your other sessions end."""
    if request.method == "POST":
        new = request.form.get("new_password", "")
        if new != request.form.get("confirm_password", ""):
            return render_template(
                "pages/admin/password.html", error="The two new passwords differ."
            ), 422
        rt = current_runtime()
        try:
            account = accounts.change_password(
                rt, user_id=current_user.user_id, old=request.form.get("old_password", ""), new=new
            )
        except ListmgrError as exc:
            return render_template("pages/admin/password.html", error=exc.message), exc.status
        start_session(account)
        record("password_changed", "user", current_user.user_id)
        flash("Your password was changed. Other sessions have been signed out.")
        return redirect(url_for("admin.dashboard"))
    return render_template("pages/admin/password.html", error=None)


def register(bp: Blueprint) -> None:
    """Put the sign-in views on the admin blueprint."""
    bp.add_url_rule(
        "/login",
        "login",
        limiter.limit("30/minute", methods=["POST"])(login),
        methods=["GET", "POST"],
    )
    bp.add_url_rule("/logout", "logout", logout, methods=["POST"])
    bp.add_url_rule("/password", "password", password, methods=["GET", "POST"])
