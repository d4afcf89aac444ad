"""The `listmgr` command group and helpers shared by its commands."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click

from listmgr import logs, runtime
from listmgr.errors import ListmgrError
from listmgr.settings import Settings, load_settings


def fail(message: str, code: int = 1) -> NoReturn:
    """Exit non-zero with a one-line message on stderr."""
    click.echo(f"listmgr: {message}", err=True)
    sys.exit(code)


def entry_point() -> str:
    """The command running, as log lines name it ("serve", "db upgrade")."""
    names = []
    ctx = click.get_current_context(silent=True)
    while ctx is not None and ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return " ".join(reversed(names)) or "listmgr"


def configure_logs(settings: Settings) -> None:
    """Every command logs the same way (listmgr.logs), before it does anything."""
    logs.configure(settings, entry_point())


def get_runtime(migrate: bool = True) -> runtime.Runtime:
    """The runtime from config and environment, its schema migrated (auto_migrate) or checked."""
    try:
        settings = load_settings()
        configure_logs(settings)
        return runtime.build(settings=settings, migrate=migrate)
    except ListmgrError as exc:
        fail(exc.message)


def host_port(addr: str) -> tuple[str, int]:
    """HOST:PORT from an option, or a one-line refusal."""
    host, _, port = addr.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        fail(f"bad address {addr!r}: use HOST:PORT, e.g. 127.0.0.1:9300")
    return host.strip("[]"), int(port)


metrics_option = click.option(
    "--metrics",
    "metrics_addr",
    metavar="HOST:PORT",
    help="Answer GET /metrics (this process's counters) on HOST:PORT.",
)


def serve_metrics(rt: runtime.Runtime, addr: str | None) -> None:
    """Start this process's /metrics listener when --metrics asked for one."""
    if not addr:
        return
    from listmgr import metrics

    host, port = host_port(addr)
    try:
        metrics.serve(rt.settings, host, port)
    except OSError as exc:
        fail(f"cannot listen for /metrics on {addr}: {exc.strerror or exc}")


class Group(click.Group):
    """Turns domain errors into one-line messages and a non-zero exit."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ListmgrError as exc:
            fail(exc.message)


@click.group(cls=Group)
@click.version_option(package_name="listmgr")
def main() -> None:
    """listmgr: email lists with honest consent."""
