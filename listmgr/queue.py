"""The Dramatiq broker from settings (in-process stub, Redis or RabbitMQ) and the worker.

The actors are not imported here: whoever brings the process up (listmgr.boot) passes the
function that declares them."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Middleware

from listmgr import logs, metrics
from listmgr.errors import ConfigError

QUEUE = "listmgr"
REQUEST_ID = "request_id"  # the message option that carries the enqueuing request's id
PING_SECONDS = 3.0
log = logging.getLogger("listmgr.jobs")


class JobContext(Middleware):
    """Each job runs under the request id of whoever enqueued it (or its own message id), so
    its log lines and the jobs it enqueues name it; one log line and metrics per job."""

    def __init__(self) -> None:
        self.running = threading.local()  # a worker thread runs one job at a time

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        rid = logs.sane_request_id(message.options.get(REQUEST_ID)) or message.message_id
        self.running.job = (logs.bind_request_id(rid), time.perf_counter())

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        token, started = getattr(self.running, "job", (None, None))
        self.running.job = (None, None)
        if started is not None:
            seconds = time.perf_counter() - started
            outcome = "ok" if exception is None else "error"
            m = metrics.metrics()
            m.jobs.labels(message.actor_name, outcome).inc()
            m.job_seconds.labels(message.actor_name).observe(seconds)
            log.info("job %s%s %s in %.3fs", message.actor_name, message.args, outcome, seconds)
        if token is not None:
            logs.reset_request_id(token)

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        self.after_process_message(broker, message)


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
        self.broker.add_middleware(JobContext())
        dramatiq.set_broker(self.broker)
        declare_actors(self.broker, self.queue_name)
        self.broker.declare_queue(self.queue_name)

    @property
    def in_process(self) -> bool:
        return isinstance(self.broker, StubBroker)

    def enqueue(self, actor: str, *args: Any, delay_ms: int | None = None) -> None:
        # The id of the request (or job) enqueueing this travels with it into the worker's logs.
        rid = logs.request_id()
        message: dramatiq.Message[None] = dramatiq.Message(
            queue_name=self.queue_name,
            actor_name=actor,
            args=tuple(args),
            kwargs={},
            options={REQUEST_ID: rid} if rid else {},
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


def ping(url: str) -> str:
    """Reach the broker of this URL; what it is, or the error raised when it does not answer."""
    url = (url or "").strip()
    if not url or url.startswith("stub:"):
        return "in-process"
    if url.startswith(("redis://", "rediss://", "unix://")):
        import redis

        client = redis.Redis.from_url(
            url, socket_connect_timeout=PING_SECONDS, socket_timeout=PING_SECONDS
        )
        try:
            client.ping()
        finally:
            client.close()
        return "redis"
    if url.startswith(("amqp://", "amqps://")):
        import pika  # type: ignore[import-untyped]

        params = pika.URLParameters(url)
        params.socket_timeout = PING_SECONDS
        params.connection_attempts = 1
        pika.BlockingConnection(params).close()
        return "rabbitmq"
    raise ConfigError("unsupported broker URL: use stub://, redis://… or amqp://…")
