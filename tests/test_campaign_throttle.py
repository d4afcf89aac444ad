"""Rate limits: with a Redis broker, the limit holds over every worker process together."""

from __future__ import annotations

import itertools
import uuid

import pytest

from listmgr.mail.transport import SharedThrottle
from tests.conftest import BROKER_URL


@pytest.mark.skipif(
    not BROKER_URL.startswith("redis"),
    reason="the shared limit lives in Redis (set LISTMGR_TEST_BROKER_URL)",
)
def test_shared_throttle_hands_out_evenly_spaced_slots_to_every_process() -> None:
    import redis

    key = f"test-{uuid.uuid4().hex}:send-rate:all"
    # Two clients stand for two worker processes sharing one limit of a message every 2 s.
    # (The slots stay evenly spaced while the reservations come faster than the limit: a slow
    # interval keeps that true however loaded the machine is.)
    first = SharedThrottle(redis.Redis.from_url(BROKER_URL), key, 0.5)
    second = SharedThrottle(redis.Redis.from_url(BROKER_URL), key, 0.5)
    slots = [t.reserve()[0] for t in (first, second) * 4]
    assert [b - a for a, b in itertools.pairwise(slots)] == [2_000_000] * 7
    unlimited = SharedThrottle(redis.Redis.from_url(BROKER_URL), key + "x", 0)
    unlimited.wait()  # no limit, no Redis call
