"""Bring a process up: runtime, broker, in-process worker threads and the periodic sweeper."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import dramatiq

from listmgr.queue import Queue
from listmgr.runtime import Runtime
from listmgr.workers import actors

log = logging.getLogger("listmgr")


@dataclass
class Background:
    """The worker and sweeper running inside this process."""

    rt: Runtime
    worker: dramatiq.Worker | None = None
    stop_event: threading.Event = field(default_factory=threading.Event)
    sweeper: threading.Thread | None = None

    def stop(self) -> None:
        self.stop_event.set()
        if self.worker is not None:
            self.worker.stop(timeout=10000)
        if self.rt.queue is not None:
            self.rt.queue.close()


def attach_queue(rt: Runtime) -> Queue:
    """Give the runtime its broker (once), with listmgr's actors declared on it."""
    if rt.queue is None:
        rt.queue = Queue(
            rt.settings.broker_url, rt.settings.broker_namespace, declare_actors=actors.declare
        )
    queue: Queue = rt.queue
    return queue


def start(rt: Runtime, *, threads: int, sweep: bool = True) -> Background:
    """Start worker threads (if any) and the sweeper; re-enqueue pending work first."""
    from listmgr.services import recovery

    queue = attach_queue(rt)
    bg = Background(rt)
    if threads > 0:
        bg.worker = queue.start_worker(threads)
    counts = recovery.requeue_pending(rt)
    if any(counts.values()):
        log.info("re-enqueued pending work: %s", counts)
    if sweep:

        def loop() -> None:
            while not bg.stop_event.wait(rt.settings.sweep_seconds):
                try:
                    recovery.sweep(rt)
                except Exception:  # keep sweeping; the next round retries
                    log.exception("sweep failed")

        bg.sweeper = threading.Thread(target=loop, name="listmgr-sweeper", daemon=True)
        bg.sweeper.start()
    return bg
