"""The hook floor of bench/inbound.py --floor: the least an inbound hook can do in a Flask
application under the same gunicorn, database and clients, served as `inbound_floor:app`.

POST /hooks/inbound checks the Bearer secret and keeps the body as listmgr's store does: its
SHA-256, then one INSERT ... ON CONFLICT (sha256) DO NOTHING RETURNING id of the row with the
same columns, committed before the 202 that names the id. Nothing else: no rate limit, no
Message-ID, no wake-up for a worker, no ORM, no request hooks, no metrics. No hook that keeps
every message it acknowledges can be faster on this machine.

Environment: LISTMGR_DATABASE_URL, LISTMGR_SECRET_KEY, LISTMGR_INBOUND_SECRET.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any

from flask import Flask, abort, jsonify, request
from flask.typing import ResponseReturnValue
from psycopg.types.json import Jsonb

from listmgr import runtime

app = Flask(__name__)
_rt = runtime.build(
    {
        "database_url": os.environ["LISTMGR_DATABASE_URL"],
        "secret_key": os.environ["LISTMGR_SECRET_KEY"],
    }
)
_secret = os.environ["LISTMGR_INBOUND_SECRET"].encode()
_state: dict[str, Any] = {}  # this gunicorn worker's connection, made on its first request

INSERT = (
    "INSERT INTO inbound_message (sha256, message_id, envelope_from, envelope_to, raw, size, "
    "received_at, status, kind, action, evidence, attempts, error, handled, proof) VALUES "
    "(%s, '', '', '', %s, %s, now() AT TIME ZONE 'utc', 'stored', '', '', %s, 0, '', false, '') "
    "ON CONFLICT (sha256) DO NOTHING RETURNING id"
)


def _db() -> Any:
    if not _state:
        _state["db"] = _rt.db.engine.raw_connection().driver_connection
    return _state["db"]


@app.get("/")
def up() -> str:
    """Answers once the worker is up."""
    return ""


@app.post("/hooks/inbound")
def store() -> ResponseReturnValue:
    bearer = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(bearer.encode(), _secret):
        abort(401)
    raw = request.get_data(cache=False)
    db = _db()
    with db.transaction():
        row = db.execute(
            INSERT, (hashlib.sha256(raw).hexdigest(), raw, len(raw), Jsonb({}))
        ).fetchone()
    return jsonify(id=row[0] if row else None), 202
