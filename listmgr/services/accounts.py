"""Admin users, sign-in with a slow-down instead of a lockout, and hashed API tokens.

Privilege never grows: whoever creates a user or a token (a signed-in user, a user's token or a
user-less token) gives at most their own role; only the command line (someone with the server's
configuration) acts without a ceiling.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session
from sqlmodel import col

from listmgr import passwords
from listmgr.db import rows_changed
from listmgr.errors import Conflict, Forbidden, NotFound, RateLimited, Unauthorized, ValidationError
from listmgr.models import ApiToken, Role, User, utcnow
from listmgr.permissions import RANK, allowed, at_most, lower
from listmgr.runtime import Runtime
from listmgr.services import login_throttle

MIN_PASSWORD = passwords.MIN_LENGTH


@dataclass(frozen=True)
class Principal:
    """Who is calling: a logged-in user or an API token."""

    role: str
    user_id: int | None
    token_id: int | None
    label: str


@dataclass(frozen=True)
class Account:
    """A user as a sign-in knows them: who, which role, and the version of their sessions."""

    id: int
    email: str
    name: str
    role: str
    session_version: int


def _account(user: User) -> Account:
    assert user.id is not None
    return Account(user.id, user.email, user.name, user.role, user.session_version)


@dataclass(frozen=True)
class IssuedToken:
    """A new token: its id and the secret, which exists nowhere else."""

    id: int
    token: str


def _check_role(role: str) -> str:
    if role not in RANK:
        raise ValidationError(
            f"unknown role {role!r}; choose one of {', '.join(r.value for r in Role)}", field="role"
        )
    return role


def check_grant(actor: Principal | None, role: str, what: str = "user") -> None:
    """Refuse to give a role above the actor's own (None: the command line, no ceiling)."""
    _check_role(role)
    if actor is not None and not at_most(role, actor.role):
        raise Forbidden(f"a {actor.role} cannot create or change a {role} {what}", field="role")


def check_password(
    rt: Runtime, password: str, *, email: str = "", name: str = "", field: str = "password"
) -> None:
    """The strength rule for every password anyone sets (zxcvbn, the account's words count)."""
    passwords.check_strength(
        password, min_score=rt.settings.password_min_score, user_inputs=(email, name), field=field
    )


def create_user(
    rt: Runtime,
    *,
    email: str,
    password: str,
    role: str,
    name: str = "",
    actor: Principal | None = None,
) -> int:
    """A new admin user with an argon2-hashed password, never above the actor's role."""
    from listmgr.addresses import clean_name, normalize_email

    check_grant(actor, role)
    address = normalize_email(email)
    name = clean_name(name)
    check_password(rt, password, email=address, name=name)
    with rt.db.session() as s:
        if s.scalar(select(col(User.id)).where(col(User.email) == address)) is not None:
            raise Conflict(f"a user {address} already exists", field="email")
        user = User(
            email=address, name=name, role=role, password_hash=passwords.hash_password(password)
        )
        s.add(user)
        s.flush()
        assert user.id is not None
        return user.id


def authenticate(rt: Runtime, *, email: str, password: str, ip: str = "") -> Account:
    """The user for these credentials. Unknown and real accounts answer alike, in the same time;
    repeated failures slow down that account from that address (and that address) only."""
    address = email.strip().lower()
    keys = login_throttle.keys_for(rt, email=address, ip=ip)
    with rt.db.session() as s:
        wait = login_throttle.wait_seconds(s, keys)
    if wait:
        raise RateLimited(
            f"too many failed sign-ins; try again in {wait} second{'' if wait == 1 else 's'}",
            code="slow_down",
            detail={"retry_after": wait},
        )
    with rt.db.session() as s:
        user = s.scalar(select(User).where(col(User.email) == address))
        user_id = user.id if user is not None and user.active else None
        if user is None or user_id is None:
            passwords.verify_nobody(password)  # the cost of a real check, for no account
            ok = False
        else:
            ok = passwords.verify(user.password_hash, password)
        if not ok:
            login_throttle.failed(s, keys)
    if not ok:
        with rt.db.session() as s:
            login_throttle.prune(s)
        raise Unauthorized("wrong email or password")
    with rt.db.session() as s:
        login_throttle.succeeded(s, keys)
        assert user_id is not None  # ok: a real, active account
        user = s.get(User, user_id)
        assert user is not None
        user.failed_logins, user.locked_until = 0, None
        user.last_login_at = utcnow()
        if passwords.needs_rehash(user.password_hash):
            user.password_hash = passwords.hash_password(password)
        return _account(user)


def signed_in(rt: Runtime, user_id: int, session_version: int) -> Account | None:
    """The account a session names, while it is active and the session's version is current
    (a new password or a sign-out everywhere moves the version on)."""
    with rt.db.session() as s:
        user = s.get(User, user_id)
        if user is None or not user.active or user.session_version != session_version:
            return None
        return _account(user)


def change_password(rt: Runtime, *, user_id: int, old: str, new: str) -> Account:
    """Change your own password after checking the old one; every session ends (the account
    returned carries the new session version)."""
    with rt.db.session() as s:
        user = s.get(User, user_id)
        if user is None:
            raise NotFound("no such user")
        if not passwords.verify(user.password_hash, old):
            raise ValidationError("the current password is wrong", field="old_password")
        check_password(rt, new, email=user.email, name=user.name, field="new_password")
        if new == old:
            raise ValidationError("the new password is the current one", field="new_password")
        user.password_hash = passwords.hash_password(new)
        user.session_version += 1
        return _account(user)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_token(
    rt: Runtime,
    *,
    role: str,
    creator: Principal | None = None,
    user_id: int | None = None,
    name: str = "",
) -> IssuedToken:
    """A new API token no higher than its creator's role (and its user's); only its hash is kept.

    A token created by a principal belongs to that principal: to its user, or, for a user-less
    token, to that token. `user_id` is for the command line only (creator None)."""
    check_grant(creator, role, "token")
    if creator is not None:
        user_id = creator.user_id
    token = "lm_" + secrets.token_urlsafe(32)
    with rt.db.session() as s:
        if user_id is not None:
            user = s.get(User, user_id)
            if user is None or not user.active:
                raise NotFound("no such user")
            if not at_most(role, user.role):
                raise Forbidden(f"a {user.role} cannot hold a {role} token", field="role")
        if creator is not None and creator.token_id is not None:
            parent = s.get(ApiToken, creator.token_id)
            if parent is None or parent.revoked_at is not None:
                raise Unauthorized("invalid or revoked API token")
        row = ApiToken(
            user_id=user_id,
            name=name,
            role=role,
            token_hash=_digest(token),
            prefix=token[:7],
            created_by_token_id=creator.token_id if creator is not None else None,
        )
        s.add(row)
        s.flush()
        assert row.id is not None
        return IssuedToken(row.id, token)


def create_token(
    rt: Runtime,
    *,
    role: str,
    user_id: int | None = None,
    name: str = "",
    creator: Principal | None = None,
) -> str:
    """A new API token (see issue_token); returns only the secret."""
    return issue_token(rt, role=role, creator=creator, user_id=user_id, name=name).token


def verify_token(rt: Runtime, token: str) -> Principal:
    """The principal of a bearer token; revoked or unknown tokens are refused."""
    with rt.db.session() as s:
        row = s.scalar(select(ApiToken).where(col(ApiToken.token_hash) == _digest(token)))
        if row is None or row.revoked_at is not None or row.role not in RANK:
            raise Unauthorized("invalid or revoked API token")
        role = row.role
        if row.user_id is not None:
            user = s.get(User, row.user_id)
            if user is None or not user.active:
                raise Unauthorized("the token's user is disabled")
            role = lower(role, user.role)  # a demoted user's tokens follow them down
        now = utcnow()
        if row.last_used_at is None or now - row.last_used_at > timedelta(seconds=60):
            s.execute(update(ApiToken).where(col(ApiToken.id) == row.id).values(last_used_at=now))
        return Principal(
            role=role,
            user_id=row.user_id,
            token_id=row.id,
            label=f"token:{row.prefix}…{('/' + row.name) if row.name else ''}",
        )


def descendants(s: Session, token_id: int) -> set[int]:
    """Every token minted, directly or not, by this token."""
    found: set[int] = set()
    frontier = {token_id}
    while frontier:
        children = {
            token
            for token in s.scalars(
                select(col(ApiToken.id)).where(col(ApiToken.created_by_token_id).in_(frontier))
            )
            if token is not None
        }
        frontier = children - found - {token_id}
        found |= frontier
    return found


def own_tokens_clause(s: Session, viewer: Principal) -> ColumnElement[bool]:
    """Which tokens are the viewer's own: its user's, or for a user-less token, itself and
    what it minted."""
    if viewer.user_id is not None:
        return col(ApiToken.user_id) == viewer.user_id
    if viewer.token_id is not None:
        return col(ApiToken.id).in_({viewer.token_id} | descendants(s, viewer.token_id))
    return col(ApiToken.id).is_(None)


def may_manage_all_tokens(viewer: Principal | None) -> bool:
    """The command line and roles that manage tokens see and revoke everyone's."""
    return viewer is None or allowed(viewer.role, "tokens:manage")


def revoke_token(rt: Runtime, *, token_id: int, actor: Principal | None = None) -> list[int]:
    """Revoke a token and every token it minted; others' tokens only for those who manage
    tokens (to anyone else they do not exist). Returns the ids revoked now."""
    with rt.db.session() as s:
        query = select(ApiToken).where(col(ApiToken.id) == token_id)
        if not may_manage_all_tokens(actor):
            assert actor is not None
            query = query.where(or_(own_tokens_clause(s, actor)))
        row = s.scalar(query.with_for_update())
        if row is None:
            raise NotFound("no such token")
        now = utcnow()
        revoked: list[int] = []
        assert row.id is not None
        for tid in sorted({row.id} | descendants(s, row.id)):
            done = rows_changed(
                s,
                update(ApiToken)
                .where(col(ApiToken.id) == tid, col(ApiToken.revoked_at).is_(None))
                .values(revoked_at=now),
            )
            if done:
                revoked.append(tid)
        return revoked
