"""Privilege never grows: whatever principal calls (a user-less command-line token, a user's
token, a signed-in session), it cannot mint a token above its own role, see or revoke other
principals' tokens unless its role manages tokens, or create or change a user above itself."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from listmgr.errors import Conflict, Forbidden, Unauthorized
from listmgr.models import ApiToken, AuditLog, User
from listmgr.permissions import RANK
from listmgr.services import accounts, users
from listmgr.services.accounts import Principal
from tests.admin_support import PASSWORD, ROLES, accounts_by_role  # noqa: F401
from tests.principal_support import (  # noqa: F401
    KINDS,
    caller,
    live_token_ids,
    token_ids,
    tokens_above,
    users_snapshot,
)

NEW_PASSWORD = "violet harbour lantern 93"
BELOW_OWNER = ("analyst", "editor", "admin")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _power(rt, token: str) -> str:
    return accounts.verify_token(rt, token).role


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("role", ROLES)
def test_no_caller_mints_a_token_above_its_role(rt, caller, kind, role):
    me = caller(kind, role)
    for wanted in ROLES:
        before = token_ids(rt)
        resp = me.api("POST", "/api/tokens", json={"role": wanted, "name": f"want-{wanted}"})
        if RANK[wanted] > RANK[role]:
            assert resp.status_code == 403, (wanted, resp.status_code)
            assert resp.json["error"]["field"] == "role"
            assert token_ids(rt) == before, f"a {role} {kind} minted a {wanted} token"
        else:
            assert resp.status_code == 201, resp.json
            assert _power(rt, resp.json["token"]) == wanted
    # Without a role the new token gets the caller's, never more.
    resp = me.api("POST", "/api/tokens", json={})
    assert resp.status_code == 201 and _power(rt, resp.json["token"]) == role
    assert not tokens_above(rt, role)


@pytest.mark.parametrize("holder", ("admin", "owner"))
def test_a_weaker_token_of_a_strong_user_does_not_mint_the_users_role(
    rt,
    accounts_by_role,
    client,
    holder,
):
    weak = accounts.create_token(rt, role="analyst", user_id=accounts_by_role[holder].id)
    for wanted in ("editor", "admin", "owner"):
        resp = client.post("/api/tokens", json={"role": wanted}, headers=_bearer(weak))
        assert resp.status_code == 403, wanted
    assert not tokens_above(rt, "analyst")


def test_a_minted_token_is_no_stepping_stone(rt, client):
    editor = accounts.create_token(rt, role="editor")
    child = client.post("/api/tokens", json={"role": "editor"}, headers=_bearer(editor)).json
    grandchild = client.post(
        "/api/tokens", json={"role": "analyst"}, headers=_bearer(child["token"])
    ).json
    for token in (child["token"], grandchild["token"]):
        for wanted in ("admin", "owner"):
            assert (
                client.post(
                    "/api/tokens", json={"role": wanted}, headers=_bearer(token)
                ).status_code
                == 403
            )
    assert (
        client.post(
            "/api/tokens", json={"role": "editor"}, headers=_bearer(grandchild["token"])
        ).status_code
        == 403
    )
    assert not tokens_above(rt, "editor")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("role", BELOW_OWNER)
def test_tokens_of_other_principals_stay_invisible_and_irrevocable(
    rt,
    caller,
    accounts_by_role,
    client,
    kind,
    role,
):
    decoys = {}
    for other in ROLES:
        decoys[f"cli-{other}"] = accounts.issue_token(rt, role=other, name=f"decoy {other}")
        if other != role:
            decoys[f"user-{other}"] = accounts.issue_token(
                rt, role=other, user_id=accounts_by_role[other].id
            )
    me = caller(kind, role)
    mine = me.api("POST", "/api/tokens", json={"name": "mine"}).json["id"]
    own = {mine} | ({me.token_id} if me.token_id else set())
    for query in ("", "?all=true", "?all=1"):
        resp = me.api("GET", "/api/tokens" + query)
        assert resp.status_code == 200
        seen = {item["id"] for item in resp.json["items"]}
        assert seen == own, f"{role} {kind} sees {seen - own}"
    decoy_ids = {d.id for d in decoys.values()}
    for d in decoys.values():
        resp = me.api("DELETE", f"/api/tokens/{d.id}")
        assert resp.status_code == 404, resp.status_code
        if kind == "session":
            page = me.page_post("/admin/tokens", f"/admin/tokens/{d.id}/revoke", {})
            assert page.status_code == 404
    assert decoy_ids <= live_token_ids(rt), "a token of someone else was revoked"
    for d in decoys.values():
        assert client.get("/api/lists", headers=_bearer(d.token)).status_code == 200
    if kind == "session":
        page = me.client.get("/admin/tokens").text
        assert not any(f"decoy {other}" in page for other in ROLES)
    # Its own it may revoke.
    assert me.api("DELETE", f"/api/tokens/{mine}").status_code == 200


@pytest.mark.parametrize("kind", ("userless", "user_token"))
def test_owners_manage_every_token(rt, caller, accounts_by_role, client, kind):
    victim = accounts.issue_token(rt, role="editor", user_id=accounts_by_role["editor"].id)
    stray = accounts.issue_token(rt, role="admin")
    owner = caller(kind, "owner")
    own_only = {t["id"] for t in owner.api("GET", "/api/tokens").json["items"]}
    assert victim.id not in own_only and stray.id not in own_only
    every = {t["id"] for t in owner.api("GET", "/api/tokens?all=true").json["items"]}
    assert {victim.id, stray.id} <= every
    for issued in (victim, stray):
        assert owner.api("DELETE", f"/api/tokens/{issued.id}").status_code == 200
        assert client.get("/api/lists", headers=_bearer(issued.token)).status_code == 401


def test_revoking_a_stolen_token_revokes_the_tokens_it_minted(rt, client, caller):
    stolen = accounts.issue_token(rt, role="editor", name="ci")
    child = client.post("/api/tokens", json={"name": "backdoor"}, headers=_bearer(stolen.token))
    assert child.status_code == 201
    grandchild = client.post(
        "/api/tokens", json={"name": "backdoor 2"}, headers=_bearer(child.json["token"])
    )
    seen = {t["id"] for t in client.get("/api/tokens", headers=_bearer(stolen.token)).json["items"]}
    assert seen == {stolen.id, child.json["id"], grandchild.json["id"]}
    owner = caller("userless", "owner")
    assert owner.api("DELETE", f"/api/tokens/{stolen.id}").status_code == 200
    for token in (stolen.token, child.json["token"], grandchild.json["token"]):
        assert client.get("/api/lists", headers=_bearer(token)).status_code == 401
        assert client.post("/api/tokens", json={}, headers=_bearer(token)).status_code == 401


def test_a_demoted_users_tokens_follow_them_down(rt, client, accounts_by_role, caller):
    admin = accounts_by_role["admin"]
    token = accounts.create_token(rt, role="admin", user_id=admin.id)
    assert client.get("/api/subscribers", headers=_bearer(token)).status_code == 200
    owner = caller("session", "owner")
    assert owner.api("PATCH", f"/api/users/{admin.id}", json={"role": "analyst"}).status_code == 200
    assert client.get("/api/subscribers", headers=_bearer(token)).status_code == 403
    for wanted in ("editor", "admin"):
        assert (
            client.post("/api/tokens", json={"role": wanted}, headers=_bearer(token)).status_code
            == 403
        )
    assert owner.api("PATCH", f"/api/users/{admin.id}", json={"active": False}).status_code == 200
    assert client.get("/api/lists", headers=_bearer(token)).status_code == 401
    assert client.post("/api/tokens", json={}, headers=_bearer(token)).status_code == 401


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("role", BELOW_OWNER)
def test_nobody_but_owners_creates_or_changes_users(rt, caller, accounts_by_role, kind, role):
    me = caller(kind, role)
    before = users_snapshot(rt)
    for new_role in ROLES:
        resp = me.api(
            "POST",
            "/api/users",
            json={
                "email": f"new-{new_role}@example.org",
                "password": NEW_PASSWORD,
                "role": new_role,
            },
        )
        assert resp.status_code == 403
    for target in accounts_by_role.values():
        for body in (
            {"role": "owner"},
            {"password": NEW_PASSWORD},
            {"active": False},
            {"role": role, "password": NEW_PASSWORD},
        ):
            assert me.api("PATCH", f"/api/users/{target.id}", json=body).status_code == 403
    if kind == "session":
        for new_role in ROLES:
            resp = me.page_post(
                "/admin/",
                "/admin/users",
                {
                    "email": f"page-{new_role}@example.org",
                    "password": NEW_PASSWORD,
                    "role": new_role,
                },
            )
            assert resp.status_code == 403
        owner_id = accounts_by_role["owner"].id
        for data in (
            {"action": "password", "password": NEW_PASSWORD},
            {"role": "analyst", "active": ["0"]},
            {"role": "owner"},
        ):
            assert me.page_post("/admin/", f"/admin/users/{owner_id}", data).status_code == 403
    assert users_snapshot(rt) == before
    owner = accounts_by_role["owner"]
    assert accounts.authenticate(rt, email=owner.email, password=PASSWORD).role == "owner"


def test_a_lower_actor_never_raises_or_touches_a_higher_user(rt, accounts_by_role):
    """The service rule itself, for whatever route may one day let a non-owner manage users."""
    before = users_snapshot(rt)
    for role in BELOW_OWNER:
        actor = Principal(role=role, user_id=accounts_by_role[role].id, token_id=None, label=role)
        for higher in (r for r in ROLES if RANK[r] > RANK[role]):
            with pytest.raises(Forbidden):
                accounts.create_user(
                    rt,
                    email=f"{role}-{higher}@example.org",
                    password=NEW_PASSWORD,
                    role=higher,
                    actor=actor,
                )
            with pytest.raises(Forbidden):
                accounts.issue_token(rt, role=higher, creator=actor)
            target = accounts_by_role[higher].id
            for change in (
                {"password": NEW_PASSWORD},
                {"role": role},
                {"active": False},
                {"name": "renamed"},
            ):
                with pytest.raises(Forbidden):
                    users.update_user(rt, target, actor=actor, **change)
            with pytest.raises(Forbidden):
                users.update_user(rt, accounts_by_role["analyst"].id, role=higher, actor=actor)
    assert users_snapshot(rt) == before


def test_the_last_owner_cannot_be_removed(rt, caller, accounts_by_role):
    owner = caller("userless", "owner")
    me = accounts_by_role["owner"]
    for body in ({"role": "admin"}, {"active": False}, {"role": "analyst", "active": False}):
        resp = owner.api("PATCH", f"/api/users/{me.id}", json=body)
        assert resp.status_code == 409, body
    second = owner.api(
        "POST",
        "/api/users",
        json={"email": "second@example.org", "password": NEW_PASSWORD, "role": "owner"},
    )
    assert second.status_code == 201
    assert owner.api("PATCH", f"/api/users/{me.id}", json={"role": "admin"}).status_code == 200
    last = owner.api("PATCH", f"/api/users/{second.json['id']}", json={"role": "editor"})
    assert last.status_code == 409
    with pytest.raises(Conflict):
        users.update_user(rt, second.json["id"], active=False)
    with rt.db.session() as s:
        owners = s.scalars(select(User.email).where(User.role == "owner", User.active)).all()
    assert owners == ["second@example.org"]
    session = caller("session", "owner")  # now the only owner is second@, so this is an admin
    assert session.api("GET", "/api/users").status_code == 403


def test_changes_to_a_principal_are_refused_whole(rt, caller, accounts_by_role):
    """A refused change (last owner) does not slip the password through on the way."""
    owner = caller("userless", "owner")
    me = accounts_by_role["owner"]
    resp = owner.api(
        "PATCH", f"/api/users/{me.id}", json={"password": NEW_PASSWORD, "role": "admin"}
    )
    assert resp.status_code == 409
    assert accounts.authenticate(rt, email=me.email, password=PASSWORD).id == me.id
    with pytest.raises(Unauthorized):
        accounts.authenticate(rt, email=me.email, password=NEW_PASSWORD)


def test_tokens_are_stored_hashed_and_their_changes_audited(rt, caller, client):
    owner = caller("session", "owner")
    made = owner.api("POST", "/api/tokens", json={"role": "editor", "name": "deploy"})
    assert made.status_code == 201
    secret = made.json["token"]
    page = owner.page_post("/admin/tokens", "/admin/tokens", {"role": "analyst", "name": "pg"})
    assert page.status_code == 200
    assert owner.api("DELETE", f"/api/tokens/{made.json['id']}").status_code == 200
    with rt.db.session() as s:
        rows = [(t.token_hash, t.prefix, t.name) for t in s.scalars(select(ApiToken))]
        entries = list(s.scalars(select(AuditLog).where(AuditLog.action.like("token.%"))))
    assert all(secret not in str(row) for row in rows)
    created = [e for e in entries if e.action == "token.create"]
    assert {e.target_id for e in created} >= {str(made.json["id"])}
    assert all(e.target_id.isdigit() for e in created), "audit names tokens by id"
    assert all(e.user_id == owner.user_id for e in created)
    revoked = [e for e in entries if e.action == "token.revoke"]
    assert [e.target_id for e in revoked] == [str(made.json["id"])]
    assert all(secret not in str(e.detail) for e in entries)
    assert client.get("/api/lists", headers=_bearer(secret)).status_code == 401
