"""The role matrix: every registered route has an access rule, and every role gets the answer the
policy below says, for the admin pages and the API alike."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from listmgr.models import ApiToken, User
from listmgr.permissions import RANK
from listmgr.services import accounts
from listmgr.web import auth
from tests.admin_support import ROLES, accounts_by_role, session_login  # noqa: F401
from tests.principal_support import KINDS, make_caller, users_snapshot

# The policy, written out here independently of listmgr/permissions.py: which roles hold each
# permission. Analysts see aggregates only; editors work on campaigns and segments and may read
# people but never export or erase them; admins do everything but users; owners everything.
POLICY: dict[str, set[str]] = {
    "stats": {"analyst", "editor", "admin", "owner"},
    "account": {"analyst", "editor", "admin", "owner"},
    "tokens:own": {"analyst", "editor", "admin", "owner"},
    "lists:read": {"analyst", "editor", "admin", "owner"},
    "campaigns:read": {"analyst", "editor", "admin", "owner"},
    "templates:read": {"analyst", "editor", "admin", "owner"},
    "segments:read": {"analyst", "editor", "admin", "owner"},
    "people:read": {"editor", "admin", "owner"},
    "campaigns:write": {"editor", "admin", "owner"},
    "templates:write": {"editor", "admin", "owner"},
    "segments:write": {"editor", "admin", "owner"},
    "fields:read": {"editor", "admin", "owner"},
    "lists:write": {"admin", "owner"},
    "people:write": {"admin", "owner"},
    "people:export": {"admin", "owner"},
    "people:erase": {"admin", "owner"},
    "fields:write": {"admin", "owner"},
    "inbound:read": {"admin", "owner"},
    "inbound:write": {"admin", "owner"},
    "settings": {"admin", "owner"},
    "audit:read": {"admin", "owner"},
    "users": {"owner"},
    "tokens:manage": {"owner"},
}
# Routes anyone may call, by name: a new public admin or API route must be added here on purpose.
PUBLIC_ADMIN_API = {
    "admin.login",
    "api.openapi_json",
    "api.docs",
    "api.reference",
    "api.docs_asset",
}
# Paths that show personal data: never open to analysts, whatever permission a route declares.
PERSONAL = re.compile(
    r"/(subscribers|people|export|erase|imports|inbound|suppression|audit|"
    r"outbox|users|events)(/|$|\.)"
)
PERSONAL_EXCEPTIONS = {"api.post_events"}  # write-only ingestion; it returns counts


def _rules(app):
    for rule in app.url_map.iter_rules():
        methods = sorted(rule.methods - {"HEAD", "OPTIONS"})
        for method in methods:
            yield rule, method


def _permission(app, endpoint: str):
    """The route's rule: a declared permission, None for public, or "MISSING"."""
    view = app.view_functions[endpoint]
    if hasattr(view, "permission"):
        return view.permission
    blueprint = endpoint.rsplit(".", 1)[0] if "." in endpoint else ""
    if endpoint in auth.PUBLIC_ENDPOINTS or blueprint in auth.PUBLIC_BLUEPRINTS:
        return None
    return "MISSING"


def _url(rule) -> str:
    def fill(m: re.Match[str]) -> str:
        converter, args = m.group(1) or "", m.group(2) or ""
        if converter == "any":
            return args.split(",")[0].strip().strip("'\"")  # a real choice, or the route 404s
        return "999999" if converter.startswith("int") else "zz-none"

    return re.sub(r"<(?:(\w+)(?:\(([^)]*)\))?:)?\w+>", fill, rule.rule)


def test_every_route_has_an_access_rule(app):
    missing, undeclared, unknown = [], [], []
    for rule, _method in _rules(app):
        permission = _permission(app, rule.endpoint)
        if permission == "MISSING":
            missing.append(rule.rule)
        in_guarded = rule.endpoint.startswith(("admin.", "api."))
        if in_guarded and not hasattr(app.view_functions[rule.endpoint], "permission"):
            undeclared.append(rule.rule)
        if in_guarded and permission is None and rule.endpoint not in PUBLIC_ADMIN_API:
            undeclared.append(f"{rule.rule} (public without being listed)")
        if permission not in (None, "MISSING") and permission not in POLICY:
            unknown.append(f"{rule.rule}: {permission}")
    assert not missing, f"routes without an access rule: {missing}"
    assert not undeclared, f"admin/API routes must declare a permission: {undeclared}"
    assert not unknown, f"permissions missing from the test's policy: {unknown}"


def test_analysts_reach_no_personal_data(app):
    leaks = []
    for rule, _method in _rules(app):
        permission = _permission(app, rule.endpoint)
        if permission is None or rule.endpoint in PERSONAL_EXCEPTIONS:
            continue
        if PERSONAL.search(rule.rule) and "analyst" in POLICY.get(permission, set()):
            leaks.append(f"{rule.rule} ({permission})")
    assert not leaks, f"routes with personal data open to analysts: {leaks}"


def _answers_as_expected(
    status: int, location: str, *, api: bool, role: str | None, permission: str
) -> str | None:
    if status >= 500:
        return f"server error {status}"
    if role is None:
        if api and status != 401:
            return f"anonymous got {status}, expected 401"
        if not api and not (status == 302 and "/admin/login" in location):
            return f"anonymous got {status}, expected a redirect to sign in"
        return None
    if role in POLICY[permission]:
        if status in (401, 403) or (not api and "/admin/login" in location):
            return f"{role} was refused ({status}) but holds {permission}"
        return None
    if status != 403:
        return f"{role} got {status}, expected 403 (lacks {permission})"
    return None


@pytest.mark.slow
@pytest.mark.parametrize("token_kind", ["userless", "user_token"])
def test_role_matrix_over_every_route(app, rt, accounts_by_role, token_kind):
    """Anonymous, analyst, editor, admin and owner against every admin and API route; the API
    with user-less (command-line) tokens and with users' own tokens of every role."""
    app.config["WTF_CSRF_ENABLED"] = False  # the form token is tested apart; here: roles only
    tokens = {
        role: accounts.create_token(
            rt,
            role=role,
            name=f"matrix-{role}",
            user_id=accounts_by_role[role].id if token_kind == "user_token" else None,
        )
        for role in ROLES
    }
    client = app.test_client()
    failures = []
    checked = 0
    for rule, method in _rules(app):
        permission = _permission(app, rule.endpoint)
        if permission is None:
            continue
        api = rule.endpoint.startswith("api.")
        url = _url(rule)
        for role in (None, *ROLES):
            headers = {}
            if api:
                client.delete_cookie("listmgr_session")
                if role:
                    headers["Authorization"] = f"Bearer {tokens[role]}"
            elif role:
                session_login(client, rt, accounts_by_role[role])
            else:
                client.delete_cookie("listmgr_session")
            kwargs = {"headers": headers}
            if api and method in ("POST", "PUT", "PATCH"):
                kwargs["json"] = {}
            resp = client.open(url, method=method, **kwargs)
            location = resp.headers.get("Location", "")
            if rule.endpoint == "admin.logout" and role:
                location = ""  # signing out lands on the sign-in page, as it should
            problem = _answers_as_expected(
                resp.status_code, location, api=api, role=role, permission=permission
            )
            checked += 1
            if problem:
                failures.append(f"{method} {url} [{rule.endpoint}]: {problem}")
    assert checked > 100
    assert not failures, "\n".join(failures)


def test_session_reaches_the_api_with_the_same_rules(app, rt, accounts_by_role):
    """The admin's own scripts call the API with the session: same permission check."""
    client = app.test_client()
    session_login(client, rt, accounts_by_role["analyst"])
    assert client.get("/api/lists").status_code == 200
    resp = client.get("/api/subscribers")
    assert resp.status_code == 403 and resp.json["error"]["code"] == "forbidden"
    session_login(client, rt, accounts_by_role["editor"])
    assert client.get("/api/subscribers").status_code == 200


def test_public_routes_answer_anonymous_visitors(app):
    client = app.test_client()
    for rule, method in _rules(app):
        if method != "GET" or _permission(app, rule.endpoint) is not None:
            continue
        if rule.endpoint.startswith("dev.") or rule.endpoint == "static":
            continue
        resp = client.get(_url(rule))
        assert resp.status_code not in (401, 403) and resp.status_code < 500, (
            f"GET {_url(rule)} -> {resp.status_code}"
        )


# -- writes that create or change a principal ----------------------------------------------------
# Every route that creates or changes a user, a token, a role or a password: a new one must be
# added here (and so to the test below) on purpose.
PRINCIPAL_WRITES = {
    "api.create_api_token",
    "api.revoke_api_token",
    "api.create_user",
    "api.update_user",
    "admin.token_create",
    "admin.token_revoke",
    "admin.user_create",
    "admin.user_update",
    "admin.password",
}
PRINCIPAL_PATH = re.compile(r"/(users|tokens|password|passwords|roles|account)(/|$)")
STRONG = "violet harbour lantern 93"


def test_every_principal_write_is_covered(app):
    found = {
        rule.endpoint
        for rule, method in _rules(app)
        if method not in ("GET",) and PRINCIPAL_PATH.search(rule.rule)
    }
    assert found == PRINCIPAL_WRITES


def _tokens(rt) -> dict[int, tuple[str, bool]]:
    with rt.db.session() as s:
        return {int(t.id): (t.role, t.revoked_at is not None) for t in s.scalars(select(ApiToken))}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("role", ROLES)
def test_principal_writes_never_exceed_the_caller(app, rt, accounts_by_role, kind, role):
    """Each principal write, by every kind of caller of every role, asking for every role: no
    token or user above the caller appears, nobody above the caller changes, and tokens of
    others are revoked only by a role that manages tokens."""
    decoys = {accounts.issue_token(rt, role=r, name=f"decoy {r}").id for r in ROLES}
    decoys |= {
        accounts.issue_token(rt, role=r, user_id=accounts_by_role[r].id).id
        for r in ROLES
        if r != role
    }
    me = make_caller(app, rt, accounts_by_role, kind, role)
    users_before, tokens_before = users_snapshot(rt), _tokens(rt)
    is_owner = role == "owner"
    statuses: dict[str, set[int]] = {}

    def note(what: str, resp) -> None:
        statuses.setdefault(what, set()).add(resp.status_code)
        assert resp.status_code < 500, (what, resp.status_code)

    for wanted in ROLES:
        resp = me.api("POST", "/api/tokens", json={"role": wanted})
        assert resp.status_code == (201 if RANK[wanted] <= RANK[role] else 403), wanted
        note(
            "api.create_user",
            me.api(
                "POST",
                "/api/users",
                json={"email": f"{kind}-{wanted}@example.org", "password": STRONG, "role": wanted},
            ),
        )
        for target in accounts_by_role.values():
            for body in ({"role": wanted}, {"password": STRONG + wanted}):
                if target.id == me.user_id and "password" in body and kind == "session":
                    continue  # a new password ends the setter's own sessions too, by design
                note("api.update_user", me.api("PATCH", f"/api/users/{target.id}", json=body))
        if kind == "session":
            page = me.page_post("/admin/tokens", "/admin/tokens", {"role": wanted})
            assert page.status_code == (200 if RANK[wanted] <= RANK[role] else 403), wanted
            note(
                "admin.user_create",
                me.page_post(
                    "/admin/",
                    "/admin/users",
                    {"email": f"page-{wanted}@example.org", "password": STRONG, "role": wanted},
                ),
            )
            for target in accounts_by_role.values():
                for data in ({"role": wanted}, {"action": "password", "password": STRONG + wanted}):
                    if target.id == me.user_id and "password" in data:
                        continue
                    note(
                        "admin.user_update",
                        me.page_post("/admin/", f"/admin/users/{target.id}", data),
                    )
    for token_id in sorted(decoys):
        resp = me.api("DELETE", f"/api/tokens/{token_id}")
        assert resp.status_code == (200 if is_owner else 404)
        if kind == "session":
            page = me.page_post("/admin/tokens", f"/admin/tokens/{token_id}/revoke", {})
            assert page.status_code == (302 if is_owner else 404)

    tokens_after = _tokens(rt)
    new_tokens = {i: t for i, t in tokens_after.items() if i not in tokens_before}
    assert all(RANK[r] <= RANK[role] for r, _ in new_tokens.values()), new_tokens
    revoked = {i for i, (_, gone) in tokens_after.items() if gone and not tokens_before[i][1]}
    assert revoked == (decoys if is_owner else set())
    users_after = users_snapshot(rt)
    if not is_owner:
        assert users_after == users_before
        assert all(codes == {403} for codes in statuses.values()), statuses
    new_users = [u for i, u in users_after.items() if i not in users_before]
    assert all(RANK[u[1]] <= RANK[role] for u in new_users), new_users
    higher = [i for i, u in users_before.items() if RANK[u[1]] > RANK[role]]
    assert all(users_after[i] == users_before[i] for i in higher)
    with rt.db.session() as s:
        assert s.scalar(select(User.id).where(User.role == "owner", User.active)) is not None
