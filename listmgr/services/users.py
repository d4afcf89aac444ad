"""User administration for owners (list, role, active, password reset) and token listings."""
from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher
from sqlalchemy import func, select

from listmgr.errors import Conflict, NotFound, ValidationError
from listmgr.models import ApiToken, Role, User
from listmgr.permissions import RANK
from listmgr.runtime import Runtime
from listmgr.services.accounts import MIN_PASSWORD
from listmgr.services.subscriptions import clean_name

_hasher = PasswordHasher()


@dataclass(frozen=True)
class UserInfo:
    id: int
    email: str
    name: str
    role: str
    active: bool
    locked: bool
    created_at: str
    last_login_at: str | None


@dataclass(frozen=True)
class TokenInfo:
    id: int
    user_id: int | None
    user_email: str | None
    name: str
    prefix: str
    role: str
    created_at: str
    last_used_at: str | None
    revoked_at: str | None


def _iso(value) -> str | None:  # type: ignore[no-untyped-def]
    return value.isoformat(timespec="seconds") if value else None


def _user(row: User) -> UserInfo:
    from listmgr.models import utcnow

    return UserInfo(int(row.id), row.email, row.name, row.role, row.active,  # type: ignore[arg-type]
                    bool(row.locked_until and row.locked_until > utcnow()),
                    _iso(row.created_at) or "", _iso(row.last_login_at))


def all_users(rt: Runtime) -> list[UserInfo]:
    with rt.db.session() as s:
        return [_user(u) for u in s.scalars(select(User).order_by(User.email))]


def get_user(rt: Runtime, user_id: int) -> UserInfo:
    with rt.db.session() as s:
        row = s.get(User, user_id)
        if row is None:
            raise NotFound("no such user")
        return _user(row)


def update_user(rt: Runtime, user_id: int, *, role: str | None = None,
                active: bool | None = None, name: str | None = None,
                unlock: bool = False) -> UserInfo:
    """Change a user's role, name or active flag; the last active owner always stays."""
    if role is not None and role not in RANK:
        raise ValidationError(f"unknown role {role!r}; choose one of "
                              f"{', '.join(r.value for r in Role)}", field="role")
    with rt.db.session() as s:
        row = s.get(User, user_id, with_for_update=True)
        if row is None:
            raise NotFound("no such user")
        losing_owner = row.role == Role.owner.value and row.active and (
            (role is not None and role != Role.owner.value) or active is False)
        if losing_owner:
            owners = s.scalar(select(func.count(User.id)).where(
                User.role == Role.owner.value, User.active.is_(True))) or 0
            if owners <= 1:
                raise Conflict("this is the last active owner; make someone else owner first",
                               field="role")
        if name is not None:
            row.name = clean_name(name)
        if role is not None:
            row.role = role
        if active is not None and active != row.active:
            row.active = active
            row.session_version += 1  # a disabled user's sessions end at once
        if unlock:
            row.locked_until, row.failed_logins = None, 0
        s.flush()
        return _user(row)


def reset_password(rt: Runtime, user_id: int, *, password: str) -> None:
    """Set a new password for someone (an owner's reset); their sessions end."""
    if len(password) < MIN_PASSWORD:
        raise ValidationError(f"password must be at least {MIN_PASSWORD} characters",
                              field="password")
    with rt.db.session() as s:
        row = s.get(User, user_id)
        if row is None:
            raise NotFound("no such user")
        row.password_hash = _hasher.hash(password)
        row.session_version += 1
        row.locked_until, row.failed_logins = None, 0


def tokens(rt: Runtime, *, user_id: int | None = None, every: bool = False) -> list[TokenInfo]:
    """A user's tokens (or, for owners, every token), newest first."""
    with rt.db.session() as s:
        query = (select(ApiToken, User.email).join(User, User.id == ApiToken.user_id,
                                                   isouter=True)
                 .order_by(ApiToken.id.desc()))
        if not every:
            query = query.where(ApiToken.user_id == user_id)
        return [TokenInfo(int(t.id), t.user_id, email, t.name, t.prefix, t.role,  # type: ignore[arg-type]
                          _iso(t.created_at) or "", _iso(t.last_used_at), _iso(t.revoked_at))
                for t, email in s.execute(query)]


def token_owner(rt: Runtime, token_id: int) -> int | None:
    """The user a token belongs to (None for tokens made on the command line)."""
    with rt.db.session() as s:
        row = s.get(ApiToken, token_id)
        if row is None:
            raise NotFound("no such token")
        return row.user_id


def end_sessions(rt: Runtime, user_id: int) -> None:
    """Sign a user out everywhere: session cookies are signed, not stored, so bump the version."""
    with rt.db.session() as s:
        row = s.get(User, user_id)
        if row is not None:
            row.session_version += 1
