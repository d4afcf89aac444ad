"""Bring a process up: runtime, broker, in-process worker threads and the periodic sweeper."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import dramatiq

from listmgr.models import utcnow
from listmgr.queue import Queue
from listmgr.runtime import Runtime
from listmgr.services import heartbeats
from listmgr.workers import actors

log = logging.getLogger("listmgr")


@dataclass
class Background:
    """The worker and sweeper running inside this process."""

    rt: Runtime
    worker: dramatiq.Worker | None = None
    stop_event: threading.Event = field(default_factory=threading.Event)
    sweeper: threading.Thread | None = None
    heartbeat: threading.Thread | None = None
    name: str = ""  # this process's heartbeat row

    def stop(self) -> None:
        self.stop_event.set()
        if self.worker is not None:
            self.worker.stop(timeout=10000)
        if self.heartbeat is not None:
            self.heartbeat.join(timeout=5)
            try:
                heartbeats.forget(self.rt, self.name)
            except Exception:  # the row then simply ages out
                log.warning("could not remove this worker's heartbeat row", exc_info=True)
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
        bg.name = heartbeats.new_name()
        bg.heartbeat = threading.Thread(
            target=_beat, args=(bg, threads), name="listmgr-heartbeat", daemon=True
        )
        bg.heartbeat.start()
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


def _beat(bg: Background, threads: int) -> None:
    """Say this worker is alive now and every BEAT_SECONDS until it stops."""
    started = utcnow()
    while True:
        try:
            heartbeats.beat(bg.rt, bg.name, threads=threads, started_at=started)
        except Exception:  # the database is away: the next beat tries again
            log.warning("heartbeat failed", exc_info=True)
        if bg.stop_event.wait(heartbeats.BEAT_SECONDS):
            return
