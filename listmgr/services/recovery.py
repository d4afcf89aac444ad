"""The database is the truth for pending work: re-enqueue it on start and periodically."""

from __future__ import annotations

import logging
from collections.abc import Callable

from listmgr.runtime import Runtime

log = logging.getLogger(__name__)


def _sources() -> list[tuple[str, Callable[[Runtime], int]]]:
    """Each kind of unfinished work and the function that re-enqueues it."""
    from listmgr.services import campaigns, imports, inbound, outbox

    return [
        ("outbox", outbox.requeue),
        ("campaigns", campaigns.requeue),
        ("inbound", inbound.requeue),
        ("imports", imports.requeue),
    ]


def requeue_pending(rt: Runtime) -> dict[str, int]:
    """Enqueue a wake-up for every piece of unfinished work; duplicates are harmless."""
    counts: dict[str, int] = {}
    for name, fn in _sources():
        try:
            counts[name] = fn(rt)
        except Exception:  # one broken source must not stop the others
            log.exception("requeue of %s failed", name)
    return counts


def sweep(rt: Runtime) -> dict[str, int]:
    """Periodic duty: start due scheduled campaigns, then re-enqueue pending work; forget
    abandoned uploads."""
    from listmgr.services import campaigns, imports

    counts = {"started": campaigns.start_due(rt)}
    try:
        counts["uploads_forgotten"] = imports.forget_uploads(rt)
    except OSError:
        log.exception("forgetting abandoned uploads failed")
    counts.update(requeue_pending(rt))
    return counts
