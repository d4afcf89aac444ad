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
    abandoned uploads; unsubscribe who let a re-permission request's deadline pass; delete
    what is older than its retention period (hourly); at the first sweep of a process, store the
    privacy notice versions a change of the configuration file made."""
    from listmgr.models import utcnow
    from listmgr.services import campaigns, notice_follow, repermission, retention, uploads

    counts = {"started": campaigns.start_due(rt)}
    try:
        counts["repermission_ended"] = repermission.sweep(rt)
    except Exception:  # the next round retries; pending work must still be re-enqueued
        log.exception("re-permission sweep failed")
    try:
        counts["uploads_forgotten"] = uploads.forget(rt)
    except Exception:  # the next round retries; pending work must still be re-enqueued
        log.exception("forgetting abandoned uploads failed")
    try:
        deleted = retention.sweep_due(rt, utcnow())
        counts.update({f"retention_{kind}": n for kind, n in deleted.items()})
    except Exception:  # the next round retries; pending work must still be re-enqueued
        log.exception("retention sweep failed")
    if not rt.state.get("notices_refreshed"):  # once per process: the configuration file
        rt.state["notices_refreshed"] = True  # and environment change only with a restart
        counts["notice_versions"] = notice_follow.refresh(rt)
    counts.update(requeue_pending(rt))
    return counts
