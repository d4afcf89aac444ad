"""Password hashing (argon2) and the strength rule every new password must pass (pure)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from listmgr.errors import ValidationError

MIN_LENGTH = 10
MAX_LENGTH = 1000
_ZXCVBN_CHARS = 72  # zxcvbn refuses longer input; the first 72 characters decide the estimate
_hasher = PasswordHasher()
_dummy_hash: str | None = None


def hash_password(password: str) -> str:
    """An argon2 hash of the password."""
    return _hasher.hash(password)


def verify(password_hash: str, password: str) -> bool:
    """True when the password matches the hash (a broken hash never matches)."""
    try:
        return bool(_hasher.verify(password_hash, password))
    except (VerificationError, InvalidHashError):
        return False


def verify_nobody(password: str) -> None:
    """Spend what a real verify costs, for accounts that do not exist or cannot sign in."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash("no account has this password: it only costs time")
    verify(_dummy_hash, password)


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with older parameters."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


def check_strength(
    password: str, *, min_score: int, user_inputs: tuple[str, ...] = (), field: str = "password"
) -> None:
    """Refuse a password that is short, overlong or easy to guess, saying why."""
    if len(password) < MIN_LENGTH:
        raise ValidationError(f"password must be at least {MIN_LENGTH} characters", field=field)
    if len(password) > MAX_LENGTH:
        raise ValidationError(f"password must be at most {MAX_LENGTH} characters", field=field)
    if "\x00" in password:
        raise ValidationError("password must not contain NUL characters", field=field)
    # The email address and name (and their parts) are the first guesses of anyone attacking.
    words = [
        w
        for value in user_inputs
        if value
        for w in (value, *value.replace("@", " ").replace(".", " ").split())
    ]
    from zxcvbn import zxcvbn  # its word lists take memory: loaded only to check a password

    result = zxcvbn(password[:_ZXCVBN_CHARS], user_inputs=words)
    if result["score"] >= min_score:
        return
    feedback = result.get("feedback") or {}
    lowered = password.lower()
    own = any(len(w) >= 3 and w.lower() in lowered for w in words)
    reasons = [
        "It contains your email address or name." if own else "",
        feedback.get("warning") or "",
        *(feedback.get("suggestions") or []),
    ]
    why = (
        " ".join(r.strip() for r in reasons if r and r.strip())
        or "It is easy to guess (for example, it contains your name or address or common words)."
    )
    raise ValidationError(
        f"password is too easy to guess: {why}", field=field, code="weak_password"
    )
