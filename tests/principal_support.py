"""Callers of every kind for privilege tests: a user-less (command-line) token, a user's token,
and a signed-in session, each with any role; and what the database holds about principals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from listmgr.models import ApiToken, User
from listmgr.permissions import RANK
from listmgr.services import accounts
from tests.admin_support import Account, csrf_from, session_login

KINDS = ("userless", "user_token", "session")


@dataclass
class Caller:
    """One principal calling the API (and, for sessions, the admin pages)."""

    kind: str
    role: str
    client: Any
    headers: dict[str, str]
    token: str | None = None
    token_id: int | None = None
    user_id: int | None = None

    def api(self, method: str, path: str, **kw: Any) -> Any:
        headers = {**self.headers, **kw.pop("headers", {})}
        return self.client.open(path, method=method, headers=headers, **kw)

    def page_post(self, page: str, action: str, data: dict[str, Any]) -> Any:
        """A form post from an admin page, with that page's CSRF token (sessions only)."""
        token = csrf_from(self.client.get(page).text)
        return self.client.post(action, data={**data, "csrf_token": token})


def make_caller(
    app,
    rt,
    accounts_by_role: dict[str, Account],
    kind: str,
    role: str,
) -> Caller:
    """A fresh client acting as this kind of principal with this role."""
    client = app.test_client()
    if kind == "session":
        account = accounts_by_role[role]
        session_login(client, rt, account)
        csrf = csrf_from(client.get("/admin/").text)
        return Caller(kind, role, client, {"X-CSRFToken": csrf}, user_id=account.id)
    user_id = accounts_by_role[role].id if kind == "user_token" else None
    issued = accounts.issue_token(rt, role=role, user_id=user_id, name=f"{kind}-{role}")
    return Caller(
        kind,
        role,
        client,
        {"Authorization": f"Bearer {issued.token}"},
        token=issued.token,
        token_id=issued.id,
        user_id=user_id,
    )


@pytest.fixture
def caller(app, rt, accounts_by_role):
    """caller(kind, role) -> Caller."""
    return lambda kind, role: make_caller(app, rt, accounts_by_role, kind, role)


def tokens_above(rt, role: str) -> list[tuple[int, str]]:
    """Every token whose role is above this one."""
    with rt.db.session() as s:
        return [
            (int(t.id), t.role) for t in s.scalars(select(ApiToken)) if RANK[t.role] > RANK[role]
        ]


def users_snapshot(rt) -> dict[int, tuple[str, str, bool, str, int]]:
    """Each user's email, role, active flag, password hash and session version."""
    with rt.db.session() as s:
        return {
            int(u.id): (u.email, u.role, u.active, u.password_hash, u.session_version)
            for u in s.scalars(select(User))
        }


def token_ids(rt) -> set[int]:
    with rt.db.session() as s:
        return set(s.scalars(select(ApiToken.id)))


def live_token_ids(rt) -> set[int]:
    with rt.db.session() as s:
        return set(s.scalars(select(ApiToken.id).where(ApiToken.revoked_at.is_(None))))
