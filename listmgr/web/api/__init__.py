"""The JSON API under /api: each module registers its routes on the blueprint."""
from __future__ import annotations

from listmgr.web.api.base import bp
from listmgr.web.api import lists, subscribers  # noqa: F401  (registration)
from listmgr.web.api import extra  # noqa: F401  (registration)

__all__ = ["bp"]
