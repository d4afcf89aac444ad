"""Admin users, password checks with lockout, and hashed API tokens."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update

from listmgr.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationError
from listmgr.models import ApiToken, Role, User, utcnow
from listmgr.permissions import RANK, at_most
from listmgr.runtime import Runtime

_hasher = PasswordHasher()
MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
MIN_PASSWORD = 10


@dataclass(frozen=True)
class Principal:
    """Who is calling: a logged-in user or an API token."""

    role: str
    user_id: int | None
    token_id: int | None
    label: str


def _check_role(role: str) -> str:
    if role not in RANK:
        raise ValidationError(f"unknown role {role!r}; choose one of "
                              f"{', '.join(r.value for r in Role)}", field="role")
    return role


def create_user(rt: Runtime, *, email: str, password: str, role: str, name: str = "") -> int:
    """A new admin user with an argon2-hashed password."""
    from listmgr.services.subscriptions import normalize_email

    _check_role(role)
    address = normalize_email(email)
    if len(password) < MIN_PASSWORD:
        raise ValidationError(f"password must be at least {MIN_PASSWORD} characters",
                              field="password")
    with rt.db.session() as s:
        if s.scalar(select(User.id).where(User.email == address)) is not None:
            raise Conflict(f"a user {address} already exists", field="email")
        user = User(email=address, name=name, role=role, password_hash=_hasher.hash(password))
        s.add(user)
        s.flush()
        return int(user.id)  # type: ignore[arg-type]


def authenticate(rt: Runtime, *, email: str, password: str) -> User:
    """The user for these credentials; repeated failures lock the account for a while."""
    with rt.db.session() as s:
        user = s.scalar(select(User).where(User.email == email.strip().lower()))
        if user is None or not user.active:
            _hasher.hash(password)  # same cost whether or not the user exists
            raise Unauthorized("wrong email or password")
        now = utcnow()
        if user.locked_until and user.locked_until > now:
            raise Forbidden("too many failed logins; try again later", code="locked")
        try:
            _hasher.verify(user.password_hash, password)
        except (VerificationError, InvalidHashError):
            user.failed_logins += 1
            if user.failed_logins >= MAX_FAILED_LOGINS:
                user.locked_until = now + LOCKOUT
                user.failed_logins = 0
            s.commit()
            raise Unauthorized("wrong email or password") from None
        user.failed_logins = 0
        user.locked_until = None
        user.last_login_at = now
        if _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = _hasher.hash(password)
        return user


def change_password(rt: Runtime, *, user_id: int, old: str, new: str) -> None:
    """Change a password after checking the old one; other sessions end."""
    if len(new) < MIN_PASSWORD:
        raise ValidationError(f"password must be at least {MIN_PASSWORD} characters",
                              field="password")
    with rt.db.session() as s:
        user = s.get(User, user_id)
        if user is None:
            raise NotFound("no such user")
        try:
            _hasher.verify(user.password_hash, old)
        except (VerificationError, InvalidHashError):
            raise ValidationError("the current password is wrong", field="old_password") from None
        user.password_hash = _hasher.hash(new)
        user.session_version += 1


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(rt: Runtime, *, role: str, user_id: int | None = None, name: str = "") -> str:
    """A new API token; only its hash is stored, so it is shown once."""
    _check_role(role)
    token = "lm_" + secrets.token_urlsafe(32)
    with rt.db.session() as s:
        if user_id is not None:
            user = s.get(User, user_id)
            if user is None:
                raise NotFound("no such user")
            if not at_most(role, user.role):
                raise Forbidden(f"a {user.role} cannot create a {role} token", field="role")
        s.add(ApiToken(user_id=user_id, name=name, role=role, token_hash=_digest(token),
                       prefix=token[:7]))
    return token


def verify_token(rt: Runtime, token: str) -> Principal:
    """The principal of a bearer token; revoked or unknown tokens are refused."""
    with rt.db.session() as s:
        row = s.scalar(select(ApiToken).where(ApiToken.token_hash == _digest(token)))
        if row is None or row.revoked_at is not None:
            raise Unauthorized("invalid or revoked API token")
        role = row.role
        if row.user_id is not None:
            user = s.get(User, row.user_id)
            if user is None or not user.active:
                raise Unauthorized("the token's user is disabled")
            if RANK[user.role] < RANK[role]:
                role = user.role  # a demoted user's tokens follow them down
        now = utcnow()
        if row.last_used_at is None or now - row.last_used_at > timedelta(seconds=60):
            s.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
        return Principal(role=role, user_id=row.user_id, token_id=row.id,
                         label=f"token:{row.prefix}…{('/' + row.name) if row.name else ''}")


def revoke_token(rt: Runtime, *, token_id: int, user_id: int | None = None) -> None:
    """Revoke a token (a user may only revoke their own unless user_id is None)."""
    with rt.db.session() as s:
        row = s.get(ApiToken, token_id)
        if row is None or (user_id is not None and row.user_id != user_id):
            raise NotFound("no such token")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
