"""The Dramatiq broker from settings (in-process stub, Redis or RabbitMQ) and the worker.

The actors are not imported here: whoever brings the process up (listmgr.boot) passes the
function that declares them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker

from listmgr.errors import ConfigError

QUEUE = "listmgr"


def make_broker(url: str, namespace: str = "listmgr") -> dramatiq.Broker:
    """A broker for LISTMGR_BROKER_URL: empty or stub:// is in-process."""
    url = (url or "").strip()
    if not url or url.startswith("stub:"):
        broker: dramatiq.Broker = StubBroker()
        broker.emit_after("process_boot")
    elif url.startswith(("redis://", "rediss://", "unix://")):
        from dramatiq.brokers.redis import RedisBroker

        broker = RedisBroker(url=url, namespace=namespace)
    elif url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker = RabbitmqBroker(url=url)
    else:
        raise ConfigError(f"unsupported broker URL {url!r}: use stub://, redis://… or amqp://…")
    return broker


class Queue:
    """A broker with listmgr's actors declared on it (by declare_actors(broker, queue_name))."""

    def __init__(
        self,
        url: str,
        namespace: str = "listmgr",
        *,
        declare_actors: Callable[[dramatiq.Broker, str], None],
    ) -> None:
        self.url = url
        self.queue_name = QUEUE if namespace == "listmgr" else f"{QUEUE}-{namespace}"
        self.broker = make_broker(url, namespace)
        dramatiq.set_broker(self.broker)
        declare_actors(self.broker, self.queue_name)
        self.broker.declare_queue(self.queue_name)

    @property
    def in_process(self) -> bool:
        return isinstance(self.broker, StubBroker)

    def enqueue(self, actor: str, *args: Any, delay_ms: int | None = None) -> None:
        message: dramatiq.Message[None] = dramatiq.Message(
            queue_name=self.queue_name, actor_name=actor, args=tuple(args), kwargs={}, options={}
        )
        self.broker.enqueue(message, delay=delay_ms)

    def start_worker(self, threads: int) -> dramatiq.Worker:
        worker = dramatiq.Worker(
            self.broker, queues={self.queue_name}, worker_threads=threads, worker_timeout=100
        )
        worker.start()
        return worker

    def join(self, timeout_ms: int = 60000) -> None:
        """Wait until every queued message (including delayed ones) has been processed."""
        self.broker.join(self.queue_name, timeout=timeout_ms)

    def close(self) -> None:
        self.broker.close()
