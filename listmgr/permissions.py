"""Roles and what each may do: the one place access rules live (UI and API alike)."""

from __future__ import annotations

from listmgr.models import Role

# "account" (own password, own API tokens) belongs to every signed-in user.
_ANALYST = {
    "stats",
    "lists:read",
    "campaigns:read",
    "templates:read",
    "segments:read",
    "account",
    "tokens:own",
}
_EDITOR = _ANALYST | {
    "people:read",
    "campaigns:write",
    "templates:write",
    "segments:write",
    "fields:read",
}
_ADMIN = _EDITOR | {
    "lists:write",
    "people:write",
    "people:export",
    "people:erase",
    "fields:write",
    "inbound:read",
    "inbound:write",
    "settings",
    "audit:read",
    "tokens:own",
}
# Principals (users and everyone's tokens) are the owner's alone: "users" guards the pages,
# "tokens:manage" lets a principal list and revoke tokens that are not its own.
_OWNER = _ADMIN | {"users", "tokens:manage"}

PERMISSIONS: dict[str, frozenset[str]] = {
    Role.analyst.value: frozenset(_ANALYST),
    Role.editor.value: frozenset(_EDITOR),
    Role.admin.value: frozenset(_ADMIN),
    Role.owner.value: frozenset(_OWNER),
}
RANK = {Role.analyst.value: 1, Role.editor.value: 2, Role.admin.value: 3, Role.owner.value: 4}


def allowed(role: str | None, permission: str) -> bool:
    """True when this role holds this permission."""
    return permission in PERMISSIONS.get(role or "", frozenset())


def at_most(role: str, ceiling: str) -> bool:
    """True when role is no higher than ceiling (unknown roles are above everything)."""
    return RANK.get(role, 99) <= RANK.get(ceiling, 0)


def lower(a: str, b: str) -> str:
    """The lower of two roles: what a token of role a held by someone of role b may do."""
    return a if RANK.get(a, 0) <= RANK.get(b, 0) else b
