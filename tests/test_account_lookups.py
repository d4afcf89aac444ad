"""The sign-in and user lookups the web and the command line ask the services for."""

from __future__ import annotations

import os
import subprocess
import sys

from listmgr.runtime import Runtime
from listmgr.services import accounts, users
from tests.admin_support import PASSWORD, Account, accounts_by_role  # noqa: F401
from tests.conftest import SECRET


def test_a_session_names_its_account_only_while_its_version_is_current(
    rt: Runtime, accounts_by_role: dict[str, Account]
) -> None:
    editor = accounts_by_role["editor"]
    signed_in = accounts.authenticate(rt, email=editor.email.upper(), password=PASSWORD)
    assert (signed_in.id, signed_in.email, signed_in.role) == (editor.id, editor.email, "editor")
    assert accounts.signed_in(rt, editor.id, signed_in.session_version) == signed_in
    assert accounts.signed_in(rt, editor.id, signed_in.session_version + 1) is None
    users.end_sessions(rt, editor.id)  # "sign out everywhere"
    assert accounts.signed_in(rt, editor.id, signed_in.session_version) is None
    again = accounts.authenticate(rt, email=editor.email, password=PASSWORD)
    users.update_user(rt, editor.id, active=False)
    assert accounts.signed_in(rt, editor.id, again.session_version) is None
    assert accounts.signed_in(rt, 2**31 - 1, 0) is None


def test_a_password_change_hands_back_the_account_with_its_new_session_version(
    rt: Runtime, accounts_by_role: dict[str, Account]
) -> None:
    owner = accounts_by_role["owner"]
    before = accounts.authenticate(rt, email=owner.email, password=PASSWORD)
    after = accounts.change_password(
        rt, user_id=owner.id, old=PASSWORD, new="a different staple for the battery horse"
    )
    assert after.session_version == before.session_version + 1
    assert accounts.signed_in(rt, owner.id, after.session_version) == after
    assert accounts.signed_in(rt, owner.id, before.session_version) is None


def test_users_are_found_by_address_and_counted(rt: Runtime) -> None:
    assert not users.any_users(rt)
    uid = accounts.create_user(rt, email="Pat@Example.org", password=PASSWORD, role="admin")
    assert users.any_users(rt)
    assert users.user_id_by_email(rt, "  pat@EXAMPLE.org ") == uid
    assert users.user_id_by_email(rt, "nobody@example.org") is None


def test_the_command_line_gives_a_token_to_a_user_named_by_address(
    rt: Runtime, database_url: str
) -> None:
    uid = accounts.create_user(rt, email="pat@example.org", password=PASSWORD, role="admin")
    env = {**os.environ, "LISTMGR_DATABASE_URL": database_url, "LISTMGR_SECRET_KEY": SECRET}

    def token_create(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "listmgr", "token", "create", "--role", "editor", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    done = token_create("--user", " PAT@example.org")
    assert done.returncode == 0, done.stderr
    assert accounts.verify_token(rt, done.stdout.strip()).user_id == uid
    unknown = token_create("--user", "nobody@example.org")
    assert unknown.returncode == 1 and "no user nobody@example.org" in unknown.stderr
