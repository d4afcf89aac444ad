"""Packaging: what listmgr imports is declared, SQLite needs no PostgreSQL driver, and the
Dramatiq actors keep the names that queued messages carry. (.ci/wheel-check builds and installs
the wheel itself.)"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from dramatiq.brokers.stub import StubBroker

import listmgr

PACKAGE = Path(listmgr.__file__).resolve().parent
PYPROJECT = PACKAGE.parent / "pyproject.toml"
# Blocks the PostgreSQL driver in a child process, as on an install without the postgres extra.
NO_PSYCOPG = "import sys; sys.modules['psycopg'] = None; sys.modules['psycopg_binary'] = None; "


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _names(requirements: list[str]) -> set[str]:
    return {_norm(re.match(r"[A-Za-z0-9._-]+", r)[0]) for r in requirements}


def _imported_top_levels() -> dict[str, set[str]]:
    """Every third-party top-level module that listmgr's code imports -> the files doing so."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                # _typeshed: the standard library's type stubs, imported for annotations only
                if top not in sys.stdlib_module_names and top not in ("listmgr", "_typeshed"):
                    found.setdefault(top, set()).add(str(path.relative_to(PACKAGE.parent)))
    return found


def test_every_imported_package_is_declared_and_none_is_test_only() -> None:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    runtime = _names(project["dependencies"])
    postgres = _names(project["optional-dependencies"]["postgres"])
    providers = importlib.metadata.packages_distributions()
    missing = {}
    for module, files in _imported_top_levels().items():
        dists = {_norm(d) for d in providers.get(module, [])}
        if not dists & (runtime | postgres):
            missing[module] = (sorted(dists), sorted(files)[:3])
    assert not missing, f"imported but not a runtime dependency in pyproject.toml: {missing}"
    # The PostgreSQL driver is optional: a plain install for SQLite must not pull in libpq.
    assert "psycopg" not in runtime and "psycopg" in postgres
    assert "dkimpy" not in runtime  # verifying signatures is for the tests only


def test_sqlite_install_runs_without_the_postgresql_driver(tmp_path: Path) -> None:
    env = {**os.environ, "LISTMGR_DATABASE_URL": "", "LISTMGR_BROKER_URL": ""}
    importer = NO_PSYCOPG + (
        "import importlib, pkgutil, listmgr; "
        "skip = ('listmgr.__main__', 'listmgr.migrations.env'); "
        "[importlib.import_module(m.name) for m in pkgutil.walk_packages(listmgr.__path__, "
        "'listmgr.') if m.name not in skip]; print('imported')"
    )
    done = subprocess.run(
        [sys.executable, "-c", importer],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "imported" in done.stdout, done.stderr
    demo = NO_PSYCOPG + "from listmgr.cli import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", demo, "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert "newsletter" in done.stdout and (tmp_path / "var" / "listmgr.db").is_file()


def test_postgresql_url_without_its_driver_is_a_one_line_error(tmp_path: Path) -> None:
    env = {**os.environ, "LISTMGR_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            NO_PSYCOPG + "from listmgr.cli import main; main()",
            "db",
            "upgrade",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        (
            "listmgr: the database driver 'psycopg' for this database URL is not installed "
            "(PostgreSQL: pip install 'listmgr[postgres]')"
        )
    ]


def test_actors_live_in_the_package_and_keep_their_queued_names() -> None:
    from listmgr.workers import actors

    broker = StubBroker()
    actors.declare(broker, "listmgr-names")
    # Queued messages (in Redis or RabbitMQ) name their actor: these names must never change.
    assert set(broker.actors) == {
        "send_outbox",
        "send_batch",
        "process_inbound",
        "run_import",
        "sweep",
    }
    assert {a.fn.__module__ for a in broker.actors.values()} == {"listmgr.workers.actors"}
    assert not (PACKAGE.parent / "workers" / "actors.py").exists()
