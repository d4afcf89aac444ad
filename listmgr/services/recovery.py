"""The database is the truth for pending work: re-enqueue it on start and periodically."""
from __future__ import annotations

import logging

from listmgr.runtime import Runtime

log = logging.getLogger(__name__)


def requeue_pending(rt: Runtime) -> dict[str, int]:
    """Enqueue a wake-up for every piece of unfinished work; duplicates are harmless."""
    from listmgr.services import outbox

    counts: dict[str, int] = {}
    ids = outbox.pending_ids(rt)
    for oid in ids:
        rt.enqueue("send_outbox", oid)
    counts["outbox"] = len(ids)
    for name, fn in _extra_sources():
        try:
            counts[name] = fn(rt)
        except Exception:  # one broken source must not stop the others
            log.exception("requeue of %s failed", name)
    return counts


def _extra_sources():  # type: ignore[no-untyped-def]
    """Other services' requeue hooks (campaign deliveries, inbound mail, imports)."""
    sources = []
    for module, attr in (("campaigns", "requeue"), ("inbound", "requeue"),
                         ("imports", "requeue")):
        try:
            mod = __import__(f"listmgr.services.{module}", fromlist=[attr])
        except ImportError:
            continue
        fn = getattr(mod, attr, None)
        if fn is not None:
            sources.append((module, fn))
    return sources


def sweep(rt: Runtime) -> dict[str, int]:
    """Periodic duty: start due scheduled campaigns, then re-enqueue pending work."""
    counts: dict[str, int] = {}
    try:
        from listmgr.services import campaigns

        counts["started"] = campaigns.start_due(rt)
    except (ImportError, AttributeError):
        pass
    counts.update(requeue_pending(rt))
    return counts
