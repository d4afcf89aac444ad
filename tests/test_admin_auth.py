"""Signing in and out, lockout, password change, session fixation, open redirects, CSRF, cookies
and security headers of the admin."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from listmgr.models import AuditLog, MailingList, User
from tests.admin_support import (  # noqa: F401
    PASSWORD,
    accounts_by_role,
    csrf_from,
    form_login,
    post_form,
    session_login,
)


def _audit(rt, action):
    with rt.db.session() as s:
        return list(s.scalars(select(AuditLog).where(AuditLog.action == action)))


def test_sign_in_lands_on_the_dashboard_and_is_audited(client, rt, accounts_by_role):
    first = client.get("/admin/subscribers?q=ada")
    assert first.status_code == 302
    assert first.headers["Location"].startswith("/admin/login?next=/admin/subscribers")
    owner = accounts_by_role["owner"]
    resp = form_login(client, owner.email, PASSWORD, next_url="/admin/subscribers?q=ada")
    assert resp.status_code == 302 and resp.headers["Location"] == "/admin/subscribers?q=ada"
    page = client.get("/admin/")
    assert page.status_code == 200 and owner.email in page.text
    [entry] = _audit(rt, "login")
    assert entry.actor == owner.email and entry.ip == "127.0.0.1"


def test_wrong_password_is_refused_with_one_message(client, rt, accounts_by_role):
    resp = form_login(client, accounts_by_role["editor"].email, "not the password")
    assert resp.status_code == 401 and "wrong email or password" in resp.text
    unknown = form_login(client, "nobody@example.org", "whatever-it-is")
    assert unknown.status_code == 401 and "wrong email or password" in unknown.text
    assert client.get("/admin/").status_code == 302
    assert len(_audit(rt, "login_failed")) == 2


def test_repeated_failures_slow_down_that_address_without_locking_the_account(
    app, rt, accounts_by_role
):
    email = accounts_by_role["admin"].email
    attacker = app.test_client()
    attacker.environ_base["REMOTE_ADDR"] = "203.0.113.9"
    for _ in range(rt.settings.login_free_failures):
        assert form_login(attacker, email, "wrong password!").status_code == 401
    slowed = form_login(attacker, email, PASSWORD)
    assert slowed.status_code == 429 and "try again in" in slowed.text
    assert attacker.get("/admin/").status_code == 302
    elsewhere = app.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "198.51.100.7"
    assert form_login(elsewhere, email, PASSWORD).status_code == 302
    with rt.db.session() as s:
        assert s.scalar(select(User.locked_until).where(User.email == email)) is None


def test_session_fixation_a_session_from_before_sign_in_is_not_kept(client, rt, accounts_by_role):
    client.get("/admin/login")
    with client.session_transaction() as sess:
        sess["planted"] = "by an attacker"
        before_token = sess.get("csrf_token")
    form_login(client, accounts_by_role["owner"].email, PASSWORD)
    with client.session_transaction() as sess:
        assert "planted" not in sess
        assert sess.get("csrf_token") != before_token
        assert "_user_id" in sess


def test_logout_needs_post_with_token_and_ends_copied_cookies(app, rt, accounts_by_role):
    client = app.test_client()
    form_login(client, accounts_by_role["owner"].email, PASSWORD)
    stolen = client.get_cookie("listmgr_session").value
    assert client.get("/admin/logout").status_code == 405
    assert client.post("/admin/logout").status_code == 400  # no CSRF token: refused
    assert client.get("/admin/").status_code == 200
    resp = post_form(client, "/admin/", "/admin/logout", {})
    assert resp.status_code == 302 and "/admin/login" in resp.headers["Location"]
    assert client.get("/admin/").status_code == 302
    thief = app.test_client()
    thief.set_cookie("listmgr_session", stolen)
    assert thief.get("/admin/").status_code == 302


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "\\\\evil.example",
        "https:/evil.example",
        "javascript:alert(1)",
        "/%0d%0aLocation:%20https://evil.example",
        " //evil.example",
        "http://listmgr.test@evil.example/",
        "/admin/../\\evil.example",
        "/admin%2f%2f..%2f%2fevil.example",
        "/admin/%0d%0aSet-Cookie:x=1",
    ],
)
def test_next_never_leaves_the_site(client, accounts_by_role, target):
    resp = form_login(client, accounts_by_role["owner"].email, PASSWORD, next_url=target)
    assert resp.status_code == 302
    assert resp.headers["Location"] == "/admin/"


def test_password_change_keeps_this_session_and_ends_others(app, rt, accounts_by_role):
    editor = accounts_by_role["editor"]
    here, elsewhere = app.test_client(), app.test_client()
    form_login(here, editor.email, PASSWORD)
    form_login(elsewhere, editor.email, PASSWORD)
    bad = post_form(
        here,
        "/admin/password",
        "/admin/password",
        {
            "old_password": "wrong one!!",
            "new_password": "a new password 1",
            "confirm_password": "a new password 1",
        },
    )
    assert bad.status_code == 422 and "current password is wrong" in bad.text
    short = post_form(
        here,
        "/admin/password",
        "/admin/password",
        {"old_password": PASSWORD, "new_password": "short", "confirm_password": "short"},
    )
    assert short.status_code == 422
    resp = post_form(
        here,
        "/admin/password",
        "/admin/password",
        {
            "old_password": PASSWORD,
            "new_password": "a new password 1",
            "confirm_password": "a new password 1",
        },
    )
    assert resp.status_code == 302
    assert here.get("/admin/").status_code == 200
    assert elsewhere.get("/admin/").status_code == 302
    assert form_login(app.test_client(), editor.email, PASSWORD).status_code == 401
    assert form_login(app.test_client(), editor.email, "a new password 1").status_code == 302
    assert len(_audit(rt, "password_changed")) == 1


def test_disabled_user_is_signed_out_at_once(app, rt, accounts_by_role):
    owner, editor = app.test_client(), app.test_client()
    form_login(owner, accounts_by_role["owner"].email, PASSWORD)
    form_login(editor, accounts_by_role["editor"].email, PASSWORD)
    uid = accounts_by_role["editor"].id
    resp = post_form(
        owner, "/admin/users", f"/admin/users/{uid}", {"role": "editor", "active": ["0"]}
    )
    assert resp.status_code == 302
    assert editor.get("/admin/").status_code == 302
    assert (
        form_login(app.test_client(), accounts_by_role["editor"].email, PASSWORD).status_code == 401
    )


def test_form_post_without_csrf_token_changes_nothing(client, rt, accounts_by_role):
    form_login(client, accounts_by_role["owner"].email, PASSWORD)
    resp = client.post("/admin/lists/new", data={"slug": "sneaky", "name": "Sneaky"})
    assert resp.status_code == 400 and "form expired" in resp.text
    wrong = client.post(
        "/admin/lists/new", data={"slug": "sneaky", "name": "Sneaky", "csrf_token": "forged"}
    )
    assert wrong.status_code == 400
    users_before = client.post(
        "/admin/users", data={"email": "x@example.org", "password": "0123456789ab", "role": "owner"}
    )
    assert users_before.status_code == 400
    with rt.db.session() as s:
        assert s.scalar(select(func.count(MailingList.id))) == 0
        assert s.scalar(select(func.count(User.id)).where(User.email == "x@example.org")) == 0
    ok = post_form(
        client,
        "/admin/lists/new",
        "/admin/lists/new",
        {"slug": "fine", "name": "Fine", "opt_in": "double"},
    )
    assert ok.status_code == 302


def test_session_api_calls_need_the_csrf_header_for_changes(client, rt, accounts_by_role):
    form_login(client, accounts_by_role["owner"].email, PASSWORD)
    refused = client.post("/api/lists", json={"slug": "via-js", "name": "Via JS"})
    assert refused.status_code == 400 and refused.json["error"]["code"] == "bad_request"
    token = csrf_from(client.get("/admin/").text)
    ok = client.post(
        "/api/lists", json={"slug": "via-js", "name": "Via JS"}, headers={"X-CSRFToken": token}
    )
    assert ok.status_code == 201
    with rt.db.session() as s:
        assert s.scalar(select(func.count(MailingList.id))) == 1


def test_cookie_flags_and_security_headers(make_runtime, accounts_by_role, rt):
    from listmgr.app import create_app

    secure_rt = make_runtime(base_url="https://lists.example.org")
    app = create_app(rt=secure_rt, migrate=False)
    client = app.test_client()
    resp = form_login(client, accounts_by_role["owner"].email, PASSWORD)
    cookie = [h for h in resp.headers.getlist("Set-Cookie") if h.startswith("listmgr_session=")]
    assert cookie, resp.headers
    flags = cookie[-1].lower()
    assert "httponly" in flags and "secure" in flags and "samesite=lax" in flags
    page = client.get("/admin/", base_url="https://lists.example.org")
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "<script>" not in page.text and " on" + "click=" not in page.text
