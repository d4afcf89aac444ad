"""The JSON API under /api: each module registers its routes on the blueprint."""

from __future__ import annotations

from listmgr.web.api import (  # noqa: F401  (registration)
    admin,
    campaigns,
    domain,
    events,
    fields,
    imports,
    inbound,
    lists,
    openapi,
    privacy,
    reputation,
    segments,
    subscribers,
    templates,
)
from listmgr.web.api.base import bp

__all__ = ["bp"]
