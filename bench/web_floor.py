"""The one-click floor of bench/web.py: the least a one-click unsubscribe can do in a Flask
application under the same gunicorn, database and Redis, served as `web_floor:app`.

POST /u/TOKEN checks the token with listmgr's own signer, counts the request against a
per-address limit in Redis (one INCR and EXPIRE, as a fixed-window limiter does at the least),
and in one transaction marks the membership unsubscribed and appends the consent event that
proves it, with the same columns listmgr writes; it answers a short 200 (RFC 8058 needs no
more). Nothing else: no ORM, no templates, no request hooks, no metrics, no audit. No
one-click that keeps the proof and the limit can be faster on this machine.

Environment: LISTMGR_DATABASE_URL, LISTMGR_SECRET_KEY, LISTMGR_RATELIMIT_STORAGE_URL.
"""

from __future__ import annotations

import os
from typing import Any

import limits
import redis
from flask import Flask, abort, request
from psycopg.types.json import Jsonb

from listmgr import runtime

app = Flask(__name__)
_rt = runtime.build(
    {
        "database_url": os.environ["LISTMGR_DATABASE_URL"],
        "secret_key": os.environ["LISTMGR_SECRET_KEY"],
    }
)
# listmgr's own one-click budget per address (unsubscribe_rate_limit_ip)
_limit = limits.parse(_rt.settings.unsubscribe_rate_limit_ip)
_state: dict[str, Any] = {}  # this gunicorn worker's connections, made on its first request


def _connections() -> tuple[Any, redis.Redis]:
    if not _state:
        _state["db"] = _rt.db.engine.raw_connection().driver_connection
        _state["redis"] = redis.Redis.from_url(os.environ["LISTMGR_RATELIMIT_STORAGE_URL"])
    return _state["db"], _state["redis"]


@app.post("/u/<token>")
def one_click(token: str) -> tuple[str, int]:
    try:
        who = _rt.tokens.read_unsubscribe(token)
    except Exception:
        abort(404)
    db, counter = _connections()
    source = request.headers.get("X-Forwarded-For", request.remote_addr or "")
    key = f"floor:one-click:{source}"
    count, _ = counter.pipeline().incr(key).expire(key, _limit.get_expiry(), nx=True).execute()
    if count > _limit.amount:
        abort(429)
    with db.transaction():
        changed = db.execute(
            "UPDATE membership SET status = 'unsubscribed', unsubscribed_at = now(), "
            "updated_at = now() WHERE subscriber_id = %s AND list_id = %s "
            "AND status <> 'unsubscribed' RETURNING list_id",
            (who.subscriber_id, who.list_id),
        ).fetchall()
        if changed:
            db.execute(
                "INSERT INTO consent_event (subscriber_id, list_id, kind, at, source, actor, ip, "
                "user_agent, wording, detail, campaign_id, requested_at) VALUES (%s, %s, "
                "'unsubscribe', now(), 'one-click', 'subscriber', %s, %s, '', %s, %s, now())",
                (
                    who.subscriber_id,
                    who.list_id,
                    source[:64],
                    request.headers.get("User-Agent", "")[:500],
                    Jsonb({}),
                    who.campaign_id,
                ),
            )
    return "You are unsubscribed.\n", 200
