"""The deployment files: systemd units that systemd itself accepts, running real commands
with the hardening promised, and an environment file that names only real settings."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from listmgr.cli import main
from listmgr.settings import load_settings

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("listmgr-*.*"))
INSTALLED = "/opt/listmgr/.venv/bin/listmgr"
LONG_RUNNING = ("listmgr-web.service", "listmgr-worker.service", "listmgr-inbound.service")


def _directives(unit: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)
def test_systemd_accepts_every_unit(tmp_path):
    # verify checks that each command exists: point the units at this installation's.
    here = str(Path(sys.executable).parent / "listmgr")
    for unit in UNITS:
        (tmp_path / unit.name).write_text(unit.read_text().replace(INSTALLED, here))
    result = subprocess.run(
        ["systemd-analyze", "verify", *sorted(str(p) for p in tmp_path.iterdir())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


@pytest.mark.parametrize("name", (*LONG_RUNNING, "listmgr-migrate.service"))
def test_units_run_real_commands_unprivileged_and_hardened(name):
    unit = _directives(DEPLOY / "systemd" / name)
    assert unit["User"] == ["listmgr"] and unit["EnvironmentFile"] == ["/etc/listmgr/env"]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "PrivateTmp": "yes",
        "StateDirectory": "listmgr",
    }.items():
        assert unit[key] == [value], key
    assert "ReadWritePaths" not in unit  # the state directory is all it writes
    if name in LONG_RUNNING:
        assert unit["Restart"] == ["on-failure"]
    [command] = unit["ExecStart"]
    program, sub, *args = shlex.split(command)
    assert program == INSTALLED
    cmd = main.get_command(None, sub)  # type: ignore[arg-type]
    assert cmd is not None, f"{name}: listmgr has no command {sub!r}"
    cmd.make_context(sub, list(args))  # the options exist and parse


def test_the_environment_file_names_only_real_settings():
    env = {}
    for line in (DEPLOY / "env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    settings = load_settings(environ=env)  # an unknown LISTMGR_* key would be refused
    assert settings.env == "production" and settings.auto_migrate is False
    assert settings.trusted_proxies == 1  # the one nginx of deploy/nginx
    proxy = (DEPLOY / "nginx" / "listmgr.conf").read_text()
    # Set, never appended to: a client's own X-Forwarded-For must not reach listmgr.
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in proxy
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in proxy
    assert "$proxy_add_x_forwarded_for" not in proxy
