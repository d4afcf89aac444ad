"""Thin actors: each takes ids, calls one service, and is harmless to run twice."""

from __future__ import annotations

import dramatiq

from listmgr import runtime


def _runtime() -> runtime.Runtime:
    """This process's runtime (each service reads the settings in force at its job's start)."""
    return runtime.current()


def send_outbox(outbox_id: int) -> None:
    """Send one transactional mail from the outbox."""
    from listmgr.services import outbox

    outbox.send(_runtime(), outbox_id)


def send_batch(campaign_id: int) -> None:
    """Claim and send one batch of a campaign's deliveries."""
    from listmgr.services import delivery

    delivery.send_batch(_runtime(), campaign_id)


def process_inbound(message_id: int) -> None:
    """Classify a stored inbound message and act on it."""
    from listmgr.services import inbound

    inbound.process(_runtime(), message_id)


def run_import(job_id: int) -> None:
    """Run a queued CSV import job."""
    from listmgr.services import imports

    imports.run_job(_runtime(), job_id)


def sweep() -> None:
    """Re-enqueue pending work and start due scheduled campaigns."""
    from listmgr.services import recovery

    recovery.sweep(_runtime())


ACTORS = (send_outbox, send_batch, process_inbound, run_import, sweep)


def declare(broker: dramatiq.Broker, queue_name: str) -> None:
    """Declare every actor on this broker (no global broker at import time)."""
    # Queued messages name their actor: the names are the function names, never the module path,
    # so moving or renaming this module strands no message.
    for fn in ACTORS:
        if fn.__name__ in broker.actors:
            continue
        dramatiq.Actor(
            fn,
            broker=broker,
            actor_name=fn.__name__,
            queue_name=queue_name,
            priority=0,
            options={"max_retries": 20, "min_backoff": 1000, "max_backoff": 300000},
        )
