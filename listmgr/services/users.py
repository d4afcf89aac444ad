"""User administration for owners (list, role, active, password reset) and token listings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col

from listmgr import passwords
from listmgr.addresses import clean_name
from listmgr.errors import Conflict, Forbidden, NotFound
from listmgr.models import ApiToken, Role, User
from listmgr.permissions import RANK
from listmgr.runtime import Runtime
from listmgr.services.accounts import (
    Principal,
    check_grant,
    check_password,
    may_manage_all_tokens,
    own_tokens_clause,
)


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


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def _user(row: User) -> UserInfo:
    from listmgr.models import utcnow

    assert row.id is not None
    return UserInfo(
        row.id,
        row.email,
        row.name,
        row.role,
        row.active,
        bool(row.locked_until and row.locked_until > utcnow()),
        _iso(row.created_at) or "",
        _iso(row.last_login_at),
    )


def all_users(rt: Runtime) -> list[UserInfo]:
    with rt.db.session() as s:
        return [_user(u) for u in s.scalars(select(User).order_by(col(User.email)))]


def any_users(rt: Runtime) -> bool:
    """Whether anyone can sign in to the admin yet."""
    with rt.db.session() as s:
        return s.scalar(select(col(User.id)).limit(1)) is not None


def user_id_by_email(rt: Runtime, email: str) -> int | None:
    """The id of the user with this address (as typed: case and spaces do not matter)."""
    with rt.db.session() as s:
        return s.scalar(select(col(User.id)).where(col(User.email) == email.strip().lower()))


def get_user(rt: Runtime, user_id: int) -> UserInfo:
    with rt.db.session() as s:
        row = s.get(User, user_id)
        if row is None:
            raise NotFound("no such user")
        return _user(row)


def _check_reach(actor: Principal | None, row: User) -> None:
    """Nobody changes a principal above their own role (None: the command line)."""
    if actor is not None and RANK.get(row.role, 99) > RANK.get(actor.role, 0):
        raise Forbidden(f"a {actor.role} cannot change a {row.role}", field="role")


def _active_owners(s: Session) -> list[int]:
    """Lock every active owner row first (in id order), so two owners demoting or disabling each
    other at once cannot both pass the last-owner check, nor deadlock."""
    return [
        user_id
        for user_id in s.scalars(
            select(col(User.id))
            .where(col(User.role) == Role.owner.value, col(User.active).is_(True))
            .order_by(col(User.id))
            .with_for_update()
        )
        if user_id is not None
    ]


def update_user(
    rt: Runtime,
    user_id: int,
    *,
    role: str | None = None,
    active: bool | None = None,
    name: str | None = None,
    unlock: bool = False,
    password: str | None = None,
    actor: Principal | None = None,
) -> UserInfo:
    """Change a user's role, name, active flag or password, all or nothing; never a user above
    the actor, never to a role above the actor's, never the last owner."""
    if role is not None:
        check_grant(actor, role)
    with rt.db.session() as s:
        owners = _active_owners(s) if role is not None or active is False else []
        row = s.get(User, user_id, with_for_update=True)
        if row is None:
            raise NotFound("no such user")
        _check_reach(actor, row)
        if actor is not None and actor.user_id == user_id and active is False:
            raise Conflict("you cannot disable yourself", field="active")
        losing_owner = (
            row.role == Role.owner.value
            and row.active
            and ((role is not None and role != Role.owner.value) or active is False)
        )
        if losing_owner and len(owners) <= 1:
            raise Conflict(
                "this is the last active owner; make someone else owner first", field="role"
            )
        if name is not None:
            row.name = clean_name(name)
        if password is not None:
            check_password(rt, password, email=row.email, name=row.name)
            row.password_hash = passwords.hash_password(password)
            row.session_version += 1  # a new password ends every session of the user
            row.locked_until, row.failed_logins = None, 0
        if role is not None and role != row.role:
            row.role = role
        if active is not None and active != row.active:
            row.active = active
            row.session_version += 1  # a disabled user's sessions end at once
        if unlock:
            row.locked_until, row.failed_logins = None, 0
        s.flush()
        return _user(row)


def reset_password(
    rt: Runtime, user_id: int, *, password: str, actor: Principal | None = None
) -> None:
    """Set a new password for someone (an owner's reset); their sessions end."""
    update_user(rt, user_id, password=password, actor=actor)


def tokens(
    rt: Runtime, *, viewer: Principal | None, every: bool = False, token_id: int | None = None
) -> list[TokenInfo]:
    """The viewer's own tokens (with `every`, for those who manage tokens, all; viewer None: the
    system itself), newest first."""
    with rt.db.session() as s:
        query = (
            select(ApiToken, col(User.email))
            .join(User, col(User.id) == col(ApiToken.user_id), isouter=True)
            .order_by(col(ApiToken.id).desc())
        )
        if viewer is not None and not (every and may_manage_all_tokens(viewer)):
            query = query.where(own_tokens_clause(s, viewer))
        if token_id is not None:
            query = query.where(col(ApiToken.id) == token_id)
        return [_token(t, email) for t, email in s.execute(query)]


def _token(t: ApiToken, user_email: str | None) -> TokenInfo:
    assert t.id is not None
    return TokenInfo(
        t.id,
        t.user_id,
        user_email,
        t.name,
        t.prefix,
        t.role,
        _iso(t.created_at) or "",
        _iso(t.last_used_at),
        _iso(t.revoked_at),
    )


def end_sessions(rt: Runtime, user_id: int) -> None:
    """Sign a user out everywhere: session cookies are signed, not stored, so bump the version."""
    with rt.db.session() as s:
        row = s.get(User, user_id)
        if row is not None:
            row.session_version += 1
