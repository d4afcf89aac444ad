"""Sessions and sign-in as an attacker meets them: a sign-in ends after 12 hours however it is
used, a stolen cookie dies on sign-out and on a password change, a planted session is never
signed in, failed sign-ins tell nothing about which accounts exist (same answer, same work),
nobody outside can lock the owner out, and guessable passwords are refused everywhere."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import argon2
import pytest
from sqlalchemy import select

from listmgr.errors import Unauthorized
from listmgr.models import User
from listmgr.services import accounts, login_throttle
from tests.admin_support import PASSWORD, accounts_by_role, csrf_from, form_login, post_form  # noqa: F401
from tests.conftest import SECRET

HOURS = 12
REAL_TIME = time.time
FROZEN = datetime(2026, 3, 1, 9, 0, 0)
STRONG = "violet harbour lantern 93"
# Guessable passwords of every flavour: common, keyboard walks, repeats, sequences, the
# account's own address or name, a dictionary word with digits.
WEAK = [
    "password123",
    "qwertyuiop",
    "aaaaaaaaaaaa",
    "0123456789abc",
    "Password1!",
    "iloveyou2024",
    "letmein12345",
]


def _session_cookie(resp) -> str:
    [cookie] = [h for h in resp.headers.getlist("Set-Cookie") if h.startswith("listmgr_session=")][
        -1:
    ]
    return cookie


def _at(monkeypatch, offset: float) -> None:
    """Move the wall clock (what signed cookies and sessions read) by offset seconds."""
    monkeypatch.setattr(time, "time", lambda: REAL_TIME() + offset)


@pytest.fixture
def still_clock(monkeypatch):
    """The sign-in slow-down's clock stands still: a wait never runs out by itself while a
    slow machine answers."""
    monkeypatch.setattr(login_throttle, "utcnow", lambda: FROZEN)


def _signed_in(client) -> bool:
    resp = client.get("/admin/")
    return resp.status_code == 200


# -- lifetime ------------------------------------------------------------------------------------
def test_the_session_cookie_lives_twelve_hours_not_a_month(client, accounts_by_role):
    resp = form_login(client, accounts_by_role["owner"].email, PASSWORD)
    cookie = _session_cookie(resp)
    expires = next(
        part.split("=", 1)[1] for part in cookie.split("; ") if part.lower().startswith("expires=")
    )
    left = parsedate_to_datetime(expires) - datetime.now(UTC)
    assert timedelta(hours=HOURS) - timedelta(minutes=5) < left <= timedelta(hours=HOURS)


def test_a_replayed_cookie_is_refused_after_twelve_hours(app, accounts_by_role, monkeypatch):
    client = app.test_client()
    form_login(client, accounts_by_role["owner"].email, PASSWORD)
    stolen = client.get_cookie("listmgr_session").value
    thief = app.test_client()
    thief.set_cookie("listmgr_session", stolen)
    _at(monkeypatch, HOURS * 3600 - 120)
    assert _signed_in(thief)
    thief.set_cookie("listmgr_session", stolen)  # the cookie as copied, not as refreshed
    _at(monkeypatch, HOURS * 3600 + 60)
    assert not _signed_in(thief)
    assert thief.get("/api/lists").status_code == 401


def test_a_session_in_constant_use_still_ends_twelve_hours_after_sign_in(
    app,
    accounts_by_role,
    monkeypatch,
):
    client = app.test_client()
    form_login(client, accounts_by_role["editor"].email, PASSWORD)
    for hour in range(1, HOURS):
        _at(monkeypatch, hour * 3600)
        assert _signed_in(client), f"signed out after {hour} hours"
    _at(monkeypatch, HOURS * 3600 + 60)
    assert not _signed_in(client)
    assert client.get("/api/lists").status_code == 401


def test_a_request_that_only_reads_the_session_never_puts_a_shown_notice_back(
    app, accounts_by_role
):
    """A live preview still in flight when a form is saved carries the cookie from before the
    notice was shown: its answer must not write that cookie back, or the notice shows twice."""
    client = app.test_client()
    form_login(client, accounts_by_role["owner"].email, PASSWORD)
    saved = post_form(
        client, "/admin/lists/new", "/admin/lists/new", {"slug": "news", "name": "News"}
    )
    assert saved.status_code == 302
    with_notice = client.get_cookie("listmgr_session").value
    shown = client.get(saved.headers["Location"])
    assert "List News created." in shown.text
    late = app.test_client()
    late.set_cookie("listmgr_session", with_notice)
    for path in ("/api/lists", "/static/app.css"):
        answer = late.get(path)
        assert answer.status_code == 200, path
        assert not [
            h for h in answer.headers.getlist("Set-Cookie") if h.startswith("listmgr_session=")
        ], path
    assert "List News created." not in client.get("/admin/lists").text


# -- sign-in, sign-out, password change -----------------------------------------------------------
def test_a_planted_session_is_never_signed_in(app, accounts_by_role):
    attacker = app.test_client()
    attacker.get("/admin/login")
    with attacker.session_transaction() as sess:
        sess["_user_id"] = "planted"
        sess["next"] = "https://evil.example/"
    planted = attacker.get_cookie("listmgr_session").value
    victim = app.test_client()
    victim.set_cookie("listmgr_session", planted)
    assert form_login(victim, accounts_by_role["owner"].email, PASSWORD).status_code == 302
    issued = victim.get_cookie("listmgr_session").value
    assert issued != planted
    assert _signed_in(victim)
    attacker.set_cookie("listmgr_session", planted)
    assert not _signed_in(attacker)
    with victim.session_transaction() as sess:
        assert "next" not in sess and sess["_user_id"] != "planted"


def test_sign_out_kills_every_copy_of_the_cookie_for_pages_and_api(app, accounts_by_role):
    victim = app.test_client()
    form_login(victim, accounts_by_role["admin"].email, PASSWORD)
    stolen = victim.get_cookie("listmgr_session").value
    csrf = csrf_from(victim.get("/admin/").text)
    assert post_form(victim, "/admin/", "/admin/logout", {}).status_code == 302
    thief = app.test_client()
    thief.set_cookie("listmgr_session", stolen)
    assert not _signed_in(thief)
    assert thief.get("/api/subscribers").status_code == 401
    assert thief.post(
        "/api/tokens", json={"role": "admin"}, headers={"X-CSRFToken": csrf}
    ).status_code in (400, 401)
    # Signing in again does not bring the old cookie back to life.
    assert form_login(victim, accounts_by_role["admin"].email, PASSWORD).status_code == 302
    thief.set_cookie("listmgr_session", stolen)
    assert not _signed_in(thief)


def test_a_password_change_ends_every_other_session(app, rt, accounts_by_role):
    editor = accounts_by_role["editor"]
    here, laptop, thief = app.test_client(), app.test_client(), app.test_client()
    form_login(here, editor.email, PASSWORD)
    form_login(laptop, editor.email, PASSWORD)
    thief.set_cookie("listmgr_session", laptop.get_cookie("listmgr_session").value)
    assert _signed_in(thief)
    resp = post_form(
        here,
        "/admin/password",
        "/admin/password",
        {"old_password": PASSWORD, "new_password": STRONG, "confirm_password": STRONG},
    )
    assert resp.status_code == 302
    assert _signed_in(here)
    assert not _signed_in(laptop) and not _signed_in(thief)
    assert thief.get("/api/lists").status_code == 401
    with rt.db.session() as s:
        assert s.scalar(select(User.session_version).where(User.id == editor.id)) >= 1


def test_an_owner_reset_ends_the_users_sessions(app, rt, accounts_by_role):
    owner, victim = app.test_client(), app.test_client()
    form_login(owner, accounts_by_role["owner"].email, PASSWORD)
    form_login(victim, accounts_by_role["analyst"].email, PASSWORD)
    uid = accounts_by_role["analyst"].id
    resp = post_form(
        owner, "/admin/users", f"/admin/users/{uid}", {"action": "password", "password": STRONG}
    )
    assert resp.status_code == 302
    assert not _signed_in(victim)


# -- failed sign-ins ------------------------------------------------------------------------------
def _answer(resp, email: str) -> tuple[int, str]:
    """Status and page text (without the echoed address and form token): what a visitor can
    compare (the per-address request limit's headers count down by themselves)."""
    text = re.sub(
        r'(name="csrf_token" value|name="csrf-token" content)="[^"]*"',
        "",
        resp.text.replace(email, "EMAIL"),
    )
    return resp.status_code, text


def _wait(resp) -> int:
    found = re.search(r"try again in (\d+) second", resp.text)
    assert found, resp.text
    return int(found.group(1))


def test_failed_sign_ins_answer_alike_for_real_unknown_and_disabled_accounts(
    app, rt, accounts_by_role, still_clock
):
    from listmgr.services import users

    users.update_user(rt, accounts_by_role["analyst"].id, active=False)
    candidates = {
        "real": accounts_by_role["editor"].email,
        "unknown": "ghost@staff.example.org",
        "disabled": accounts_by_role["analyst"].email,
    }
    answers = {}
    for label, email in candidates.items():
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = f"192.0.2.{len(answers) + 10}"
        runs = [
            _answer(form_login(client, email, "not the password at all"), email)
            for _ in range(rt.settings.login_free_failures + 2)
        ]
        answers[label] = runs
    assert answers["real"] == answers["unknown"] == answers["disabled"]
    statuses = [status for status, _ in answers["real"]]
    assert statuses[0] == 401 and 429 in statuses and 403 not in statuses


def test_failed_sign_ins_do_the_same_work_for_real_unknown_and_disabled_accounts(
    rt, accounts_by_role, monkeypatch
):
    """The cost of a failed sign-in is one full argon2 verify with the same parameters, whether
    the account exists or not. The work is counted at argon2's own PasswordHasher rather than
    timed, so that a loaded machine (parallel test workers) cannot make the answer wrong."""
    from listmgr.services import users

    verified: list[tuple[argon2.Parameters, str]] = []
    real_verify = argon2.PasswordHasher.verify

    def counting_verify(self, hash, password):
        encoded = hash.decode() if isinstance(hash, bytes) else hash
        try:
            result = real_verify(self, hash, password)
        except Exception as exc:
            verified.append((argon2.extract_parameters(encoded), type(exc).__name__))
            raise
        verified.append((argon2.extract_parameters(encoded), "match"))
        return result

    monkeypatch.setattr(argon2.PasswordHasher, "verify", counting_verify)
    users.update_user(rt, accounts_by_role["analyst"].id, active=False)

    def work(email: str, n: int = 3) -> list[tuple[argon2.Parameters, str]]:
        verified.clear()
        for i in range(n):
            with pytest.raises(Unauthorized):
                accounts.authenticate(
                    rt, email=email, password="wrong but long enough", ip=f"198.51.100.{i}"
                )
        return list(verified)

    real = work(accounts_by_role["owner"].email)
    assert len(real) == 3 and {outcome for _, outcome in real} == {"VerifyMismatchError"}, real
    assert work("nobody@example.org") == real
    assert work(accounts_by_role["analyst"].email) == real


def test_nobody_outside_can_lock_the_owner_out(app, rt, accounts_by_role, still_clock):
    owner = accounts_by_role["owner"]
    for n, address in enumerate(("203.0.113.5", "203.0.113.6", "203.0.113.7")):
        attacker = app.test_client()
        attacker.environ_base["REMOTE_ADDR"] = address
        for _ in range(rt.settings.login_free_failures + 3 + n):
            assert form_login(attacker, owner.email, "guess guess guess").status_code in (401, 429)
        assert form_login(attacker, owner.email, PASSWORD).status_code == 429
    office = app.test_client()
    office.environ_base["REMOTE_ADDR"] = "198.51.100.20"
    assert form_login(office, owner.email, PASSWORD).status_code == 302
    assert _signed_in(office)
    with rt.db.session() as s:
        assert s.scalar(select(User.locked_until).where(User.id == owner.id)) is None


def test_guessing_slows_down_more_with_every_failure(
    app,
    rt,
    accounts_by_role,
    monkeypatch,
    still_clock,
):
    email = accounts_by_role["admin"].email
    attacker = app.test_client()
    attacker.environ_base["REMOTE_ADDR"] = "203.0.113.50"
    for _ in range(rt.settings.login_free_failures):
        form_login(attacker, email, "guess guess guess")
    waits = []
    offset = 0.0
    for _ in range(4):
        resp = form_login(attacker, email, PASSWORD)  # even the right password waits
        assert resp.status_code == 429
        wait = _wait(resp)
        assert int(resp.headers["Retry-After"]) >= wait
        waits.append(wait)
        offset += wait + 0.5
        later = FROZEN + timedelta(seconds=offset)
        monkeypatch.setattr(login_throttle, "utcnow", lambda later=later: later)
        assert form_login(attacker, email, "guess guess guess").status_code == 401
    assert waits == sorted(waits) and waits[-1] >= 4 * waits[0], waits
    assert waits[-1] <= rt.settings.login_max_delay_seconds


def test_spraying_many_accounts_from_one_address_is_slowed(
    make_runtime, accounts_by_role, still_clock
):
    from listmgr.app import create_app

    rt = make_runtime(login_free_failures_per_ip=6)
    app = create_app(rt=rt, migrate=False)
    sprayer = app.test_client()
    sprayer.environ_base["REMOTE_ADDR"] = "203.0.113.99"
    statuses = [
        form_login(sprayer, f"user{i}@staff.example.org", "Summer2024!").status_code
        for i in range(8)
    ]
    assert statuses[:5] == [401] * 5 and statuses[-1] == 429
    assert form_login(sprayer, accounts_by_role["owner"].email, PASSWORD).status_code == 429
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "198.51.100.21"
    assert form_login(other, accounts_by_role["owner"].email, PASSWORD).status_code == 302


# -- password strength ---------------------------------------------------------------------------
def _cli(args: list[str], database_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "LISTMGR_DATABASE_URL": database_url, "LISTMGR_SECRET_KEY": SECRET, **env}
    return subprocess.run(
        [sys.executable, "-m", "listmgr", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_command_line_refuses_a_guessable_password(database_url):
    for weak in ("password123", "bossbossboss1"):
        result = _cli(
            ["user", "create", "--email", "boss@example.org", "--name", "Boss"],
            database_url,
            LISTMGR_NEW_PASSWORD=weak,
        )
        assert result.returncode != 0, weak
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "password" in lines[0] and "guess" in lines[0], lines
    ok = _cli(
        ["user", "create", "--email", "boss@example.org"], database_url, LISTMGR_NEW_PASSWORD=STRONG
    )
    assert ok.returncode == 0, ok.stderr


def test_guessable_passwords_are_refused_on_every_path(app, rt, accounts_by_role):
    from tests.principal_support import make_caller

    owner = make_caller(app, rt, accounts_by_role, "session", "owner")
    target = accounts_by_role["editor"]
    before = {u.id: u.password_hash for u in _users(rt)}

    def refused(resp, page: bool = False) -> bool:
        if resp.status_code != 422:
            return False
        message = resp.text if page else resp.json["error"]["message"]
        return "password" in message and ("guess" in message or "characters" in message)

    new = "new.person@staff.example.org"
    for weak in [*WEAK, new, new + "1", "New Person 2024"]:
        resp = owner.api(
            "POST", "/api/users", json={"email": new, "name": "New Person", "password": weak}
        )
        assert refused(resp), weak
        assert resp.json["error"]["field"] == "password"
        page = owner.page_post(
            "/admin/users",
            "/admin/users",
            {"email": new, "name": "New Person", "role": "analyst", "password": weak},
        )
        assert refused(page, page=True), weak
    for weak in [*WEAK, target.email, target.email + "!"]:
        assert refused(owner.api("PATCH", f"/api/users/{target.id}", json={"password": weak}))
        page = owner.page_post(
            "/admin/users", f"/admin/users/{target.id}", {"action": "password", "password": weak}
        )
        assert refused(page, page=True), weak
    editor = make_caller(app, rt, accounts_by_role, "session", "editor")
    for weak in [*WEAK[:3], target.email + "1"]:
        page = editor.page_post(
            "/admin/password",
            "/admin/password",
            {"old_password": PASSWORD, "new_password": weak, "confirm_password": weak},
        )
        assert refused(page, page=True), weak
    assert {u.id: u.password_hash for u in _users(rt)} == before
    assert new not in {u.email for u in _users(rt)}
    made = owner.api(
        "POST", "/api/users", json={"email": new, "password": STRONG, "role": "analyst"}
    )
    assert made.status_code == 201


def _users(rt) -> list[User]:
    with rt.db.session() as s:
        return list(s.scalars(select(User)))


def test_old_failures_are_forgotten_and_pruned(
    app,
    rt,
    accounts_by_role,
    monkeypatch,
    still_clock,
):
    from listmgr.models import LoginThrottle

    email = accounts_by_role["editor"].email
    attacker = app.test_client()
    attacker.environ_base["REMOTE_ADDR"] = "203.0.113.77"
    for _ in range(rt.settings.login_free_failures + 1):
        form_login(attacker, email, "guess guess guess")
    assert form_login(attacker, email, PASSWORD).status_code == 429
    next_day = FROZEN + timedelta(hours=25)
    monkeypatch.setattr(login_throttle, "utcnow", lambda: next_day)
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "198.51.100.77"
    assert form_login(other, "someone@example.org", "guess guess guess").status_code == 401
    with rt.db.session() as s:
        assert len(s.scalars(select(LoginThrottle)).all()) == 2  # only the newest attempt's
    assert form_login(attacker, email, PASSWORD).status_code == 302
