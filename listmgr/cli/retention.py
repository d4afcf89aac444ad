"""`listmgr retention sweep`: delete what is older than its retention period now."""

from __future__ import annotations

import click

from listmgr.cli.base import get_runtime, main
from listmgr.services import retention as service


@main.group()
def retention() -> None:
    """Retention periods (settings retention_*_days)."""


@retention.command("sweep")
def sweep() -> None:
    """Delete what is older than its period and print how many of each kind."""
    counts = service.sweep(get_runtime())
    for kind, what in service.KINDS.items():
        click.echo(f"{counts[kind]:>8}  {what}")
