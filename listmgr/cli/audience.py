"""`listmgr` commands for audience."""
from __future__ import annotations

from listmgr.cli.base import main  # noqa: F401
