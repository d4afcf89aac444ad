"""`listmgr` commands for inbound."""
from __future__ import annotations

from listmgr.cli.base import main  # noqa: F401
