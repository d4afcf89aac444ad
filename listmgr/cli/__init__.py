"""`listmgr` command line: each module registers its commands on the group."""

from __future__ import annotations

from listmgr.cli import admin, audience, campaigns, inbound, serve  # noqa: F401  (registration)
from listmgr.cli.base import main

__all__ = ["main"]
