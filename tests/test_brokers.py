"""The same flow through each real broker a deployment may use (Redis, RabbitMQ)."""

from __future__ import annotations

import socket

import pytest

from listmgr.services import lists
from tests.conftest import drain

BROKERS = {
    "redis": ("redis://127.0.0.1:6379/0", 6379),
    "amqp": ("amqp://guest:guest@127.0.0.1:5672/", 5672),
}


def _reachable(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.mark.parametrize("name", sorted(BROKERS))
def test_confirmation_mail_through_broker(make_runtime, sink, name):
    from listmgr.app import create_app

    url, port = BROKERS[name]
    if not _reachable(port):
        pytest.skip(f"no {name} server on 127.0.0.1:{port}")
    rt = make_runtime(broker_url=url)
    lists.create(rt, slug="news", name="News")
    client = create_app(rt=rt, migrate=False).test_client()
    assert client.post("/subscribe/news", data={"email": f"{name}@example.org"}).status_code == 200
    drain(rt)
    assert [m.rcpt_tos for m in sink.wait_for(1)] == [[f"{name}@example.org"]]
    if name == "amqp":
        channel = rt.queue.broker.channel
        for queue in (
            rt.queue.queue_name,
            rt.queue.queue_name + ".DQ",
            rt.queue.queue_name + ".XQ",
        ):
            channel.queue_delete(queue)
