"""API: users, tokens, audit log, settings and the suppression list."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from flask import jsonify
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ConfigDict, Field

from listmgr.services import accounts, audit, settings_store, suppression, users
from listmgr.web import limits
from listmgr.web.admin.settings import settings_actor
from listmgr.web.api.base import (
    Page,
    paginated,
    parse_body,
    parse_query,
    principal,
    route,
    schema_of,
)
from listmgr.web.auth import may, record
from listmgr.web.extensions import current_runtime

RoleName = Literal["owner", "admin", "editor", "analyst"]


# -- users ---------------------------------------------------------------------------------------
class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(max_length=320)
    password: str = Field(max_length=1000)  # strength is checked (and explained) by the service
    role: RoleName = "editor"
    name: str = Field(default="", max_length=200)


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: RoleName | None = None
    active: bool | None = None
    name: str | None = Field(default=None, max_length=200)
    unlock: bool = False
    password: str | None = Field(default=None, max_length=1000)


@schema_of(users.UserInfo)
class UserOut(BaseModel):
    pass


class UserList(BaseModel):
    items: list[UserOut]
    page: int
    per_page: int
    total: int


@route("/users", permission="users", response=UserList, tag="users")
def list_users() -> ResponseReturnValue:
    """Everyone who can sign in."""
    items = [asdict(u) for u in users.all_users(current_runtime())]
    return jsonify(items=items, page=1, per_page=max(len(items), 1), total=len(items))


@route(
    "/users", ["POST"], permission="users", body=UserIn, response=UserOut, status=201, tag="users"
)
def create_user() -> ResponseReturnValue:
    """Add a user."""
    body = parse_body(UserIn)
    rt = current_runtime()
    uid = accounts.create_user(
        rt,
        email=body.email,
        password=body.password,
        role=body.role,
        name=body.name,
        actor=principal(),
    )
    record("user.create", "user", uid, role=body.role, via="api")
    return jsonify(asdict(users.get_user(rt, uid))), 201


@route(
    "/users/<int:user_id>",
    ["PATCH"],
    permission="users",
    body=UserPatch,
    response=UserOut,
    tag="users",
)
def update_user(user_id: int) -> ResponseReturnValue:
    """Change a user's role, name or active flag, unlock them, or set a new password."""
    body = parse_body(UserPatch)
    info = users.update_user(
        current_runtime(),
        user_id,
        role=body.role,
        active=body.active,
        name=body.name,
        unlock=body.unlock,
        password=body.password,
        actor=principal(),
    )
    record(
        "user.edit",
        "user",
        user_id,
        **body.model_dump(exclude={"password"}, exclude_none=True),
        password_reset=body.password is not None,
        via="api",
    )
    return jsonify(asdict(info))


# -- tokens --------------------------------------------------------------------------------------
class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="", max_length=200)
    role: RoleName | None = None


@schema_of(users.TokenInfo)
class TokenOut(BaseModel):
    pass


class NewToken(TokenOut):
    token: str


class TokenList(BaseModel):
    items: list[TokenOut]
    page: int
    per_page: int
    total: int


class TokenQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    all: bool = False


@route("/tokens", permission="tokens:own", query=TokenQuery, response=TokenList, tag="tokens")
def list_tokens() -> ResponseReturnValue:
    """Your tokens (a user's: all of that user's; a token's: itself and those it created).
    Owners: `?all=true` for every token."""
    q = parse_query(TokenQuery)
    items = [asdict(t) for t in users.tokens(current_runtime(), viewer=principal(), every=q.all)]
    return jsonify(items=items, page=1, per_page=max(len(items), 1), total=len(items))


@route(
    "/tokens",
    ["POST"],
    permission="tokens:own",
    body=TokenIn,
    response=NewToken,
    status=201,
    tag="tokens",
)
def create_api_token() -> ResponseReturnValue:
    """Create a token with a role no higher than yours (yours by default); it is yours, and the
    secret is in this answer only."""
    body = parse_body(TokenIn)
    p = principal()
    rt = current_runtime()
    issued = accounts.issue_token(rt, role=body.role or p.role, creator=p, name=body.name)
    [info] = users.tokens(rt, viewer=None, token_id=issued.id)
    record("token.create", "token", info.id, role=info.role, name=info.name, via="api")
    return jsonify({**asdict(info), "token": issued.token}), 201


@route(
    "/tokens/<int:token_id>", ["DELETE"], permission="tokens:own", response=TokenOut, tag="tokens"
)
def revoke_api_token(token_id: int) -> ResponseReturnValue:
    """Revoke a token and the tokens it created (yours; owners may revoke any)."""
    rt = current_runtime()
    revoked = accounts.revoke_token(rt, token_id=token_id, actor=principal())
    record("token.revoke", "token", token_id, revoked=revoked, via="api")
    [info] = users.tokens(rt, viewer=None, token_id=token_id)
    return jsonify(asdict(info))


# -- audit ---------------------------------------------------------------------------------------
class AuditQuery(Page):
    model_config = ConfigDict(extra="forbid")
    actor: str | None = Field(default=None, max_length=320)
    action: str | None = Field(default=None, max_length=64)
    target_type: str | None = Field(default=None, max_length=32)
    target_id: str | None = Field(default=None, max_length=64)
    since: str | None = Field(
        default=None, max_length=32, description="ISO date or date-time (UTC)"
    )
    until: str | None = Field(default=None, max_length=32)


@schema_of(audit.Entry)
class AuditOut(BaseModel):
    pass


class AuditList(BaseModel):
    items: list[AuditOut]
    page: int
    per_page: int
    total: int


@route("/audit", permission="audit:read", query=AuditQuery, response=AuditList, tag="audit")
def audit_log() -> ResponseReturnValue:
    """The audit log, newest first; filter by actor, action prefix, target and time."""
    q = parse_query(AuditQuery)
    offset, limit = q.bounds()
    items, total = audit.search(
        current_runtime(),
        actor=q.actor,
        action=q.action,
        target_type=q.target_type,
        target_id=q.target_id,
        since=q.since,
        until=q.until,
        offset=offset,
        limit=limit,
    )
    return paginated([asdict(e) for e in items], total, q)


# -- settings ------------------------------------------------------------------------------------
@schema_of(settings_store.SettingView)
class SettingOut(BaseModel):
    pass


class SettingsOut(BaseModel):
    items: list[SettingOut]
    dkim_record: str | None


class SettingsPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    values: dict[str, Any] = {}
    reset: list[str] = []


class DkimIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    selector: str = Field(max_length=63)
    domain: str = Field(default="", max_length=253)


def _settings_out() -> ResponseReturnValue:
    rt = current_runtime()
    return jsonify(
        items=[asdict(x) for x in settings_store.all_settings(rt)],
        dkim_record=settings_store.dkim_record(rt),
    )


@route("/settings", permission="settings", response=SettingsOut, tag="settings")
def get_settings() -> ResponseReturnValue:
    """Settings admins may change, with their effective values (secrets masked)."""
    return _settings_out()


@route(
    "/settings",
    ["PATCH"],
    permission="settings",
    body=SettingsPatch,
    response=SettingsOut,
    tag="settings",
)
def update_settings() -> ResponseReturnValue:
    """Change settings (all or nothing) and reset others to their configured defaults."""
    body = parse_body(SettingsPatch)
    settings_store.update(current_runtime(), body.values, reset=body.reset, actor=settings_actor())
    return _settings_out()


@schema_of(settings_store.ServerCheck)
class ServerCheckOut(BaseModel):
    pass


class ServerChecks(BaseModel):
    results: list[ServerCheckOut]


@route(
    "/settings/smtp/check", ["POST"], permission="settings", response=ServerChecks, tag="settings"
)
@limits.smtp_check()
def check_smtp() -> ResponseReturnValue:
    """Connect to each SMTP server in force (greeting, TLS, sign-in) and tell how it went."""
    results = settings_store.check_servers(
        current_runtime(), detailed=may("settings"), actor=settings_actor()
    )
    return jsonify(results=[asdict(r) for r in results])


@route(
    "/settings/dkim",
    ["POST"],
    permission="settings",
    body=DkimIn,
    response=SettingsOut,
    tag="settings",
)
def generate_dkim() -> ResponseReturnValue:
    """Generate a new DKIM key; the answer carries the DNS record to publish."""
    body = parse_body(DkimIn)
    settings_store.generate_dkim(current_runtime(), selector=body.selector, domain=body.domain)
    record("dkim.generate", "settings", body.selector, domain=body.domain)
    return _settings_out()


# -- suppression ---------------------------------------------------------------------------------
class SuppressionQuery(Page):
    model_config = ConfigDict(extra="forbid")
    q: str | None = Field(default=None, max_length=320)
    reason: (
        Literal["unsubscribed_all", "hard_bounce", "complaint", "erased", "manual", "flagged"]
        | None
    ) = None


class SuppressionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(max_length=320)
    detail: str = Field(default="", max_length=500)


class SuppressionOut(BaseModel):
    id: int
    email: str | None
    reason: str
    detail: str
    created_at: str


class SuppressionList(BaseModel):
    items: list[SuppressionOut]
    page: int
    per_page: int
    total: int


@route(
    "/suppression",
    permission="people:read",
    query=SuppressionQuery,
    response=SuppressionList,
    tag="suppression",
)
def list_suppression() -> ResponseReturnValue:
    """Addresses that never get campaign mail (erased people appear only as a hash)."""
    q = parse_query(SuppressionQuery)
    offset, limit = q.bounds()
    items, total = suppression.search(
        current_runtime(), q=q.q, reason=q.reason, offset=offset, limit=limit
    )
    return paginated([asdict(e) for e in items], total, q)


@route(
    "/suppression",
    ["POST"],
    permission="people:write",
    body=SuppressionIn,
    response=SuppressionOut,
    status=201,
    tag="suppression",
)
def add_suppression() -> ResponseReturnValue:
    """Suppress an address by hand."""
    body = parse_body(SuppressionIn)
    rt = current_runtime()
    entry_id = suppression.add(rt, email=body.email, detail=body.detail)
    record("suppression.add", "suppression", entry_id)
    [entry] = [e for e in suppression.search(rt, q=body.email)[0] if e.id == entry_id]
    return jsonify(asdict(entry)), 201


@route(
    "/suppression/<int:entry_id>",
    ["DELETE"],
    permission="people:write",
    response=SuppressionOut,
    tag="suppression",
)
def remove_suppression(entry_id: int) -> ResponseReturnValue:
    """Lift a suppression (erasures stay)."""
    entry = suppression.remove(current_runtime(), entry_id)
    record("suppression.remove", "suppression", entry_id, reason=entry.reason)
    return jsonify(asdict(entry))
