"""Settings precedence, production safety, and the CLI commands of the foundation."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from listmgr import resource_dir
from listmgr.errors import ConfigError
from listmgr.settings import Settings, load_settings
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


def test_environment_overrides_the_toml_defaults():
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


def test_production_refuses_the_default_secret(database_url):
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


def test_db_upgrade_token_create_and_demo(database_url):
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


def test_worker_needs_a_real_broker(database_url):
    result = run(["worker"], database_url, LISTMGR_BROKER_URL="")
    assert result.returncode == 1 and "LISTMGR_BROKER_URL" in result.stderr


def _config(tmp_path: Path, text: str) -> dict[str, str]:
    """An environment whose configuration folder holds a development.toml with this text."""
    folder = tmp_path / "config"
    folder.mkdir(exist_ok=True)
    (folder / "development.toml").write_text(text)
    return {"LISTMGR_CONFIG_DIR": str(folder), "LISTMGR_ENV": "development"}


def test_defaults_come_from_the_shipped_toml_alone(tmp_path):
    shipped = tomllib.loads((resource_dir("config") / "defaults.toml").read_text())
    assert set(shipped) == set(Settings.model_fields)  # every setting has its default there
    settings = load_settings(environ={})
    assert settings.model_dump() == {**shipped, "base_url": shipped["base_url"].rstrip("/")}
    # A folder of one's own needs to say only what differs.
    own = load_settings(environ=_config(tmp_path, 'mail_domain = "own.example.org"\n'))
    assert own.mail_domain == "own.example.org" and own.worker_threads == shipped["worker_threads"]


@pytest.mark.parametrize(
    "text,named",
    [
        ('smtp_urls = "smtp://relay.example.org"\n', "'smtp_urls'"),
        ('[dkim]\nselecter = "mail2024"\n', "'dkim.selecter'"),  # a table with a typo inside
    ],
)
def test_an_unknown_key_in_a_config_file_is_refused(tmp_path, text, named):
    with pytest.raises(ConfigError) as caught:
        load_settings(environ=_config(tmp_path, text))
    message = str(caught.value.message)
    assert named in message and "development.toml" in message and "\n" not in message


def test_an_unknown_environment_variable_is_refused():
    with pytest.raises(ConfigError, match="LISTMGR_SMTP_URLS") as caught:
        load_settings(environ={"LISTMGR_SMTP_URLS": "smtp://relay.example.org"})
    assert "did you mean LISTMGR_SMTP_URL?" in caught.value.message
    # Variables that are not settings stay allowed.
    load_settings(
        environ={
            "LISTMGR_CONFIG_DIR": "",
            "LISTMGR_NEW_PASSWORD": "x",
            "LISTMGR_CORPUS": "x",
            "LISTMGR_TEST_DATABASE_URL": "x",
            "LISTMGR_BENCH_PG_URL": "x",
            "LISTMGR_CI_BROKER_URL": "x",
        }
    )


def test_every_variable_the_project_names_is_a_setting_or_allowed():
    """README, CI, benchmarks and tests name no LISTMGR_* variable that would be refused."""
    root = Path(__file__).resolve().parents[1]
    found: set[str] = set()
    for folder in ("listmgr", "tests", "bench", ".ci", "config"):
        for path in (root / folder).rglob("*"):
            if path.is_file() and path.suffix in ("", ".py", ".toml", ".md", ".sh"):
                found |= set(re.findall(r"\bLISTMGR_[A-Z][A-Z0-9_]*[A-Z0-9]\b", path.read_text()))
    found |= set(
        re.findall(r"\bLISTMGR_[A-Z][A-Z0-9_]*[A-Z0-9]\b", (root / "README.md").read_text())
    )
    refused = []
    for name in sorted(found - {"LISTMGR_SMTP_URLS", "LISTMGR_FOO"}):  # this file's examples
        try:
            load_settings(environ={name: "1"} if name != "LISTMGR_ENV" else {})
        except ConfigError as exc:
            if "unknown setting" in exc.message:
                refused.append(name)
    assert refused == []


def test_unknown_override_is_refused(database_url):
    from listmgr.app import create_app

    with pytest.raises(ConfigError, match=r"'smtp_urls'.*the overrides"):
        create_app({"database_url": database_url, "smtp_urls": "smtp://relay.example.org"})


@pytest.mark.parametrize(
    "source,named",
    [
        ("toml", "worker_threads"),
        ("env", "LISTMGR_WORKER_THREADS"),
        ("overrides", "the overrides"),
    ],
)
def test_a_wrong_type_is_refused_with_the_key(tmp_path, source, named):
    environ = {"LISTMGR_WORKER_THREADS": "many"} if source == "env" else {}
    if source == "toml":
        environ = _config(tmp_path, 'worker_threads = "many"\n')
    overrides = {"worker_threads": [4]} if source == "overrides" else None
    with pytest.raises(ConfigError) as caught:
        load_settings(overrides, environ=environ)
    message = caught.value.message
    assert "worker_threads" in message and named in message and "an integer" in message
    with pytest.raises(ConfigError, match=r"unsubscribe_confirmation_mail.*true or false"):
        load_settings(environ={"LISTMGR_UNSUBSCRIBE_CONFIRMATION_MAIL": "maybe"})
    with pytest.raises(ConfigError, match=r"template_seconds.*more than 0"):
        load_settings({"template_seconds": 0}, environ={})


@pytest.mark.parametrize("command", [["db", "upgrade"], ["serve", "--port", "0"]])
def test_the_cli_refuses_an_unknown_variable_in_one_line(database_url, command):
    result = run(command, database_url, LISTMGR_SMTP_URLS="smtp://relay.example.org")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "LISTMGR_SMTP_URLS" in lines[0], result.stderr
