"""Settings precedence, production safety, and the CLI commands of the foundation."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from listmgr.errors import ConfigError
from listmgr.settings import load_settings
from tests.conftest import SECRET


def run(args: list[str], database_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "LISTMGR_DATABASE_URL": database_url, "LISTMGR_SECRET_KEY": SECRET, **env}
    return subprocess.run(
        [sys.executable, "-m", "listmgr", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_environment_overrides_the_toml_defaults():  # type: ignore[no-untyped-def]
    s = load_settings(
        environ={
            "LISTMGR_MAIL_DOMAIN": "m.example.org",
            "LISTMGR_SEND_RATE": "12.5",
            "LISTMGR_WORKER_THREADS": "3",
        }
    )
    assert s.mail_domain == "m.example.org" and s.send_rate == 12.5 and s.worker_threads == 3
    assert load_settings(environ={}).confirm_max_age_days == 7
    with pytest.raises(ConfigError):
        load_settings(environ={"LISTMGR_WORKER_THREADS": "many"})


def test_production_refuses_the_default_secret(database_url):  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="secret key"):
        load_settings(environ={"LISTMGR_ENV": "production"}).check()
    result = run(
        ["db", "upgrade"],
        database_url,
        LISTMGR_ENV="production",
        LISTMGR_SECRET_KEY="dev-secret-change-me",
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "secret key" in lines[0]


def test_db_upgrade_token_create_and_demo(database_url):  # type: ignore[no-untyped-def]
    assert run(["db", "upgrade"], database_url).returncode == 0
    assert run(["db", "upgrade"], database_url).returncode == 0  # idempotent
    result = run(["token", "create", "--role", "owner"], database_url)
    assert result.returncode == 0
    token = result.stdout.strip()
    assert token.startswith("lm_") and "\n" not in token and len(token) > 30
    bad = run(["token", "create", "--role", "emperor"], database_url)
    assert bad.returncode != 0
    demo = run(["demo"], database_url)
    assert demo.returncode == 0 and "newsletter" in demo.stdout
    assert run(["demo"], database_url).returncode == 0  # idempotent
    user = run(
        ["user", "create", "--email", "boss@example.org", "--role", "owner"],
        database_url,
        LISTMGR_NEW_PASSWORD="correct horse battery",
    )
    assert user.returncode == 0, user.stderr
    again = run(
        ["user", "create", "--email", "boss@example.org"],
        database_url,
        LISTMGR_NEW_PASSWORD="correct horse battery",
    )
    assert again.returncode == 1 and "already exists" in again.stderr
    short = run(
        ["user", "create", "--email", "x@example.org"], database_url, LISTMGR_NEW_PASSWORD="short"
    )
    assert short.returncode == 1 and len(short.stderr.strip().splitlines()) == 1


def test_worker_needs_a_real_broker(database_url):  # type: ignore[no-untyped-def]
    result = run(["worker"], database_url, LISTMGR_BROKER_URL="")
    assert result.returncode == 1 and "LISTMGR_BROKER_URL" in result.stderr
