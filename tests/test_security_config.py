"""Production refuses unsafe secrets and the dev outbox; the outbox pages are for roles that may
export people, in embedded development only. The processes are started through the real CLI."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from listmgr import resource_dir
from listmgr.errors import ConfigError
from listmgr.models import DevMail, SettingValue
from listmgr.services import accounts, settings_store
from listmgr.settings import load_settings
from tests.admin_support import PASSWORD, Account, session_login
from tests.conftest import BROKER_URL, free_port

GOOD_KEY = secrets.token_urlsafe(40)
GOOD_INBOUND = secrets.token_urlsafe(24)
STARTED = "started"  # what a refused command must never do


def _production_env(database_url: str, tmp_path: Path, **env: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LISTMGR_")}
    return {
        **base,
        "LISTMGR_ENV": "production",
        "LISTMGR_DATABASE_URL": database_url,
        "LISTMGR_BROKER_URL": BROKER_URL or "redis://127.0.0.1:6379/15",
        "LISTMGR_BROKER_NAMESPACE": f"sec{os.getpid()}",
        "LISTMGR_VAR_DIR": str(tmp_path),
        "LISTMGR_SECRET_KEY": GOOD_KEY,
        "LISTMGR_INBOUND_SECRET": GOOD_INBOUND,
        "LISTMGR_SMTP_URL": "smtp://127.0.0.1:2525",
        **env,
    }


def _command(name: str) -> list[str]:
    port = str(free_port())
    return {
        "serve": ["serve", "--port", port],
        "web": ["web", "--port", port, "--workers", "1"],
        "worker": ["worker", "--threads", "1"],
        "inbound-server": ["inbound-server", "--smtp", f"127.0.0.1:{port}"],
    }[name]


def _run(command: str, env: dict[str, str], cwd: Path) -> tuple[int | str, str]:
    """Exit code and stderr; STARTED when the process was still running after 120 s (a
    refusal comes at once; a loaded machine may take long to get that far)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "listmgr", *_command(command)],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, err = proc.communicate(timeout=120)
        return proc.returncode, err
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return STARTED, ""


def _refused(result: tuple[int | str, str], variable: str) -> None:
    code, err = result
    assert code != STARTED, "the process started with unsafe production settings"
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got: {err!r}"
    assert variable in lines[0], lines[0]
    for secret in (GOOD_KEY, GOOD_INBOUND):
        assert secret not in lines[0]  # the message names the variable, never a real value


@pytest.fixture
def example_config(tmp_path: Path) -> Path:
    """A config folder whose production.toml is the shipped example, copied as is."""
    folder = tmp_path / "config"
    folder.mkdir()
    shutil.copy(resource_dir("config") / "defaults.toml", folder / "defaults.toml")
    shutil.copy(resource_dir("config") / "production.example.toml", folder / "production.toml")
    return folder


@pytest.mark.parametrize("command", ["serve", "web", "worker", "inbound-server"])
def test_every_process_refuses_the_example_file_as_is(
    command, database_url, tmp_path, example_config
):
    env = _production_env(database_url, tmp_path, LISTMGR_CONFIG_DIR=str(example_config))
    for name in ("LISTMGR_SECRET_KEY", "LISTMGR_INBOUND_SECRET", "LISTMGR_SMTP_URL"):
        env.pop(name)  # everything the example says, as a careless operator would run it
    _refused(_run(command, env, tmp_path), "LISTMGR_SECRET_KEY")


UNSAFE = [
    # (variable, value, command), with an id of its own: the values are partly random, and every
    # pytest-xdist worker must collect the same test names
    pytest.param(
        "LISTMGR_SECRET_KEY",
        "CHANGE-ME: at least 32 random characters",
        "serve",
        id="secret-key-example-text",
    ),
    pytest.param(
        "LISTMGR_SECRET_KEY",
        "change-me-" + "k3Y9xQ2mP7vL0sR4tW8zB1nC6dF5gH",
        "web",
        id="secret-key-change-me-prefix",
    ),
    pytest.param(
        "LISTMGR_SECRET_KEY",
        "Change-Me" + secrets.token_hex(20),
        "worker",
        id="secret-key-change-me-mixed-case",
    ),
    pytest.param(
        "LISTMGR_SECRET_KEY",
        "  CHANGE_ME " + secrets.token_hex(20),
        "inbound-server",
        id="secret-key-change-me-spaces-underscore",
    ),
    pytest.param(
        "LISTMGR_SECRET_KEY", secrets.token_hex(16)[:31], "worker", id="secret-key-31-characters"
    ),
    pytest.param("LISTMGR_SECRET_KEY", "a" * 64, "serve", id="secret-key-no-randomness"),
    pytest.param("LISTMGR_INBOUND_SECRET", "", "worker", id="inbound-secret-empty"),
    pytest.param("LISTMGR_INBOUND_SECRET", "   ", "inbound-server", id="inbound-secret-blank"),
    pytest.param("LISTMGR_INBOUND_SECRET", "CHANGE-ME", "serve", id="inbound-secret-change-me"),
    pytest.param(
        "LISTMGR_INBOUND_SECRET",
        "change-me-" + secrets.token_hex(16),
        "web",
        id="inbound-secret-change-me-prefix",
    ),
    pytest.param(
        "LISTMGR_INBOUND_SECRET", GOOD_KEY, "inbound-server", id="inbound-secret-is-signing-key"
    ),
    pytest.param("LISTMGR_SMTP_URL", "", "serve", id="smtp-url-empty-outbox"),
    pytest.param(
        "LISTMGR_SMTP_URL",
        "smtp://user:password@smtp.example.org:587?starttls=1",
        "worker",
        id="smtp-url-example-credentials",
    ),
]


@pytest.mark.parametrize("variable,value,command", UNSAFE)
def test_production_refuses_unsafe_settings(variable, value, command, database_url, tmp_path):
    env = _production_env(database_url, tmp_path, **{variable: value})
    _refused(_run(command, env, tmp_path), variable)


def test_the_example_file_starts_once_filled_in(database_url, tmp_path, example_config):
    """The checks refuse what is unsafe, not production itself."""
    env = _production_env(database_url, tmp_path, LISTMGR_CONFIG_DIR=str(example_config))
    subprocess.run(
        [sys.executable, "-m", "listmgr", "db", "upgrade"],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "listmgr", "inbound-server", "--smtp", f"127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert "listening" in line, line
    finally:
        proc.terminate()
        proc.wait(15)
    unfilled = {k: v for k, v in env.items() if k != "LISTMGR_INBOUND_SECRET"}
    _refused(_run("inbound-server", unfilled, tmp_path), "LISTMGR_INBOUND_SECRET")


@pytest.mark.parametrize(
    "env",
    [
        {"LISTMGR_ENV": "PRODUCTION"},
        {"LISTMGR_ENV": " production "},
        {"LISTMGR_ENV": "production", "LISTMGR_SECRET_KEY": "CHANGE-ME" + "x1y2z3" * 8},
        {"LISTMGR_ENV": "production", "LISTMGR_SECRET_KEY": "0123456789" * 3 + "0"},
    ],
)
def test_settings_check_refuses_variants(env):
    values = {
        "LISTMGR_SMTP_URL": "smtp://relay.internal:25",
        "LISTMGR_INBOUND_SECRET": GOOD_INBOUND,
        **env,
    }
    with pytest.raises(ConfigError, match="LISTMGR_SECRET_KEY"):
        load_settings(environ=values).check()


# -- the dev outbox ------------------------------------------------------------------------------
@pytest.fixture
def outbox_mail(make_runtime):
    """An embedded development runtime with one captured mail and a user of every role."""
    from listmgr.app import create_app

    rt = make_runtime(smtp_url="")
    with rt.db.session() as s:
        mail = DevMail(
            mail_from="news@lists.example.test",
            rcpt_to="victim@example.org",
            subject="Please confirm",
            raw=b"Subject: Please confirm\r\n\r\nhttp://listmgr.test/confirm/SECRET-TOKEN\r\n",
        )
        s.add(mail)
        s.flush()
        mail_id = mail.id
    users = {}
    for role in ("analyst", "editor", "admin", "owner"):
        email = f"{role}@staff.example.org"
        users[role] = Account(
            accounts.create_user(rt, email=email, password=PASSWORD, role=role), email, role
        )
    return rt, create_app(rt=rt, migrate=False), mail_id, users


def _outbox_paths(mail_id: int) -> list[str]:
    return [
        f"{prefix}/outbox{tail}"
        for prefix in ("/dev", "/admin")
        for tail in ("", f"/{mail_id}", f"/{mail_id}/html", f"/{mail_id}.eml")
    ]


def test_outbox_is_closed_to_visitors_analysts_and_editors(outbox_mail):
    rt, app, mail_id, users = outbox_mail
    client = app.test_client()
    for path in _outbox_paths(mail_id):
        resp = client.get(path)
        assert resp.status_code == 302 and "/admin/login" in resp.headers["Location"], path
        assert b"SECRET-TOKEN" not in resp.data and b"victim@" not in resp.data
    for role in ("analyst", "editor"):
        session_login(client, rt, users[role])
        for path in _outbox_paths(mail_id):
            resp = client.get(path)
            assert resp.status_code == 403, (role, path, resp.status_code)
            assert b"SECRET-TOKEN" not in resp.data and b"victim@" not in resp.data
    for role in ("admin", "owner"):  # they may export people anyway
        session_login(client, rt, users[role])
        assert b"SECRET-TOKEN" in client.get(f"/dev/outbox/{mail_id}.eml").data
        assert "victim@example.org" in client.get("/admin/outbox").text


def test_production_admin_cannot_switch_to_the_dev_outbox(make_runtime, api_for):
    rt, api = api_for(make_runtime(env="production"))
    server = rt.settings.smtp_url
    resp = api.patch("/api/settings", json={"values": {"smtp_url": ""}})
    assert resp.status_code == 422 and resp.json["error"]["field"] == "smtp_url"
    assert settings_store.effective(rt).smtp_url == server
    # A row written some other way (an older version, the database by hand) is not obeyed.
    with rt.db.session() as s:
        s.add(SettingValue(key="smtp_url", value=""))
    assert settings_store.effective(rt).smtp_url == server
    assert not settings_store.effective(rt).dev_outbox_shown
    from listmgr.app import create_app

    with rt.db.session() as s:
        mail = DevMail(mail_from="a@x.org", rcpt_to="b@x.org", subject="s", raw=b"s")
        s.add(mail)
        s.flush()
        mail_id = mail.id
    owner = Account(
        accounts.create_user(rt, email="o@staff.example.org", password=PASSWORD, role="owner"),
        "o@staff.example.org",
        "owner",
    )
    client = create_app(rt=rt, migrate=False).test_client()
    session_login(client, rt, owner)
    for path in _outbox_paths(mail_id):  # not even for the owner: no outbox in production
        assert client.get(path).status_code == 404, path


@pytest.fixture
def api_for():
    """A Flask client for a runtime that sends an owner's API token."""
    from listmgr.app import create_app

    def make(rt):
        token = accounts.create_token(rt, role="owner", name="sec")
        client = create_app(rt=rt, migrate=False).test_client()

        class Api:
            def __getattr__(self, method: str):
                def call(path: str, **kw):
                    kw.setdefault("headers", {})["Authorization"] = f"Bearer {token}"
                    return getattr(client, method)(path, **kw)

                return call

        return rt, Api()

    return make
