"""The `listmgr` command group and helpers shared by its commands."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click

from listmgr import runtime
from listmgr.errors import ListmgrError


def fail(message: str, code: int = 1) -> NoReturn:
    """Exit non-zero with a one-line message on stderr."""
    click.echo(f"listmgr: {message}", err=True)
    sys.exit(code)


def get_runtime(migrate: bool = True) -> runtime.Runtime:
    """The runtime from config and environment, its schema migrated (auto_migrate) or checked."""
    try:
        return runtime.build(migrate=migrate)
    except ListmgrError as exc:
        fail(exc.message)


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
