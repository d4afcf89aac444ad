"""`listmgr` command line: each module registers its commands on the group."""

from __future__ import annotations

from listmgr.cli import (  # noqa: F401  (registration)
    admin,
    audience,
    campaigns,
    domain,
    inbound,
    retention,
    serve,
    status,
)
from listmgr.cli.base import main

__all__ = ["main"]
