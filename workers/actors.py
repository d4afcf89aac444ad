"""Thin actors: each takes ids, calls one service, and is harmless to run twice."""
from __future__ import annotations

import dramatiq

from listmgr import runtime


def send_outbox(outbox_id: int) -> None:
    """Send one transactional mail from the outbox."""
    from listmgr.services import outbox

    outbox.send(runtime.current(), outbox_id)


def send_batch(campaign_id: int) -> None:
    """Claim and send one batch of a campaign's deliveries."""
    from listmgr.services import delivery

    delivery.send_batch(runtime.current(), campaign_id)


def process_inbound(message_id: int) -> None:
    """Classify a stored inbound message and act on it."""
    from listmgr.services import inbound

    inbound.process(runtime.current(), message_id)


def run_import(job_id: int) -> None:
    """Run a queued CSV import job."""
    from listmgr.services import imports

    imports.run_job(runtime.current(), job_id)


def sweep() -> None:
    """Re-enqueue pending work and start due scheduled campaigns."""
    from listmgr.services import recovery

    recovery.sweep(runtime.current())


ACTORS = (send_outbox, send_batch, process_inbound, run_import, sweep)


def declare(broker: dramatiq.Broker, queue_name: str) -> None:
    """Declare every actor on this broker (no global broker at import time)."""
    for fn in ACTORS:
        if fn.__name__ in broker.actors:
            continue
        dramatiq.Actor(fn, broker=broker, actor_name=fn.__name__, queue_name=queue_name,
                       priority=0, options={"max_retries": 20, "min_backoff": 1000,
                                            "max_backoff": 300000})
