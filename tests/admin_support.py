"""Helpers for admin tests: one user per role, signing in (for real or by session), CSRF tokens."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import pytest

from listmgr.models import User
from listmgr.services import accounts

PASSWORD = "correct horse battery staple"
ROLES = ("analyst", "editor", "admin", "owner")


@dataclass(frozen=True)
class Account:
    id: int
    email: str
    role: str
    password: str = PASSWORD


@pytest.fixture
def accounts_by_role(rt) -> dict[str, Account]:
    out = {}
    for role in ROLES:
        email = f"{role}@staff.example.org"
        uid = accounts.create_user(rt, email=email, password=PASSWORD, role=role, name=role.title())
        out[role] = Account(uid, email, role)
    return out


def session_login(client, rt, account: Account) -> None:
    """Put a signed-in session in the client's cookie (fast; the real form is tested apart)."""
    with rt.db.session() as s:
        version = s.get(User, account.id).session_version
    with client.session_transaction() as sess:
        sess.clear()
        sess["_user_id"] = f"{account.id}:{version}"
        sess["_fresh"] = True
        sess["signed_in_at"] = int(time.time())


def csrf_from(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html) or re.search(
        r'name="csrf-token" content="([^"]+)"', html
    )
    assert found, "no CSRF token on the page"
    return found.group(1)


def form_login(client, email: str, password: str, next_url: str = "") -> Any:
    """Sign in through the real form (CSRF token included)."""
    page = client.get("/admin/login" + (f"?next={next_url}" if next_url else ""))
    data = {"email": email, "password": password, "csrf_token": csrf_from(page.text)}
    if next_url:
        data["next"] = next_url
    return client.post("/admin/login", data=data)


def post_form(client, page_url: str, action: str, data: dict[str, Any]) -> Any:
    """GET a page for its CSRF token, then POST a form as a browser would."""
    token = csrf_from(client.get(page_url).text)
    return client.post(action, data={**data, "csrf_token": token})
