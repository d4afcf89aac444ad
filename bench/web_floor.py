"""The floors of bench/web.py: the least a one-click unsubscribe and a sign-up can do in a
Flask application under the same gunicorn, database and Redis, served as `web_floor:app`.

POST /u/TOKEN checks the token with listmgr's own signer, counts the request against a
per-address limit in Redis (one INCR and EXPIRE, as a fixed-window limiter does at the least),
and in one transaction marks the membership unsubscribed and appends the consent event that
proves it, with the same columns listmgr writes; it answers a short 200 (RFC 8058 needs no
more). Nothing else: no ORM, no templates, no request hooks, no metrics, no audit. No
one-click that keeps the proof and the limit can be faster on this machine.

POST /subscribe/SLUG checks the address with listmgr's own rule (email-validator, no DNS),
counts the request against the per-IP and the per-address limits in Redis (one pipeline), and
in one transaction stores the person (or finds them by address), the pending membership, the
consent event of the sign-up naming the notice in force, and the confirmation mail in the
outbox for a worker to send, with the same columns listmgr writes; it answers a short 200.
The list and its notice are read once per worker (listmgr reads them per request, as a change
must show at once).

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
from listmgr.addresses import normalize_email
from listmgr.errors import ValidationError

app = Flask(__name__)
_rt = runtime.build(
    {
        "database_url": os.environ["LISTMGR_DATABASE_URL"],
        "secret_key": os.environ["LISTMGR_SECRET_KEY"],
    }
)
# listmgr's own one-click budget per address (unsubscribe_rate_limit_ip)
_limit = limits.parse(_rt.settings.unsubscribe_rate_limit_ip)
# and its sign-up budgets, per IP address and per address signed up
_ip_limit = limits.parse(_rt.settings.subscribe_rate_limit_ip)
_address_limit = limits.parse(_rt.settings.subscribe_rate_limit_email)
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


def _list(db: Any, slug: str) -> tuple[int, int | None]:
    """The list's id and its latest notice's, read once per worker."""
    if slug not in _state:
        _state[slug] = db.execute(
            "SELECT l.id, (SELECT max(n.id) FROM privacy_notice n WHERE n.list_id = l.id) "
            "FROM mailing_list l WHERE l.slug = %s",
            (slug,),
        ).fetchone()
        db.commit()
    if _state[slug] is None:
        abort(404)
    return _state[slug]


@app.post("/subscribe/<slug>")
def subscribe(slug: str) -> tuple[str, int]:
    try:
        address = normalize_email(request.form.get("email"))
    except ValidationError:
        abort(422)
    name = (request.form.get("name") or "")[:200]
    db, counter = _connections()
    source = request.headers.get("X-Forwarded-For", request.remote_addr or "")
    by_ip, by_address = f"floor:subscribe:{source}", f"floor:subscribe:{address}"
    ip_count, _, address_count, _ = (
        counter.pipeline()
        .incr(by_ip)
        .expire(by_ip, _ip_limit.get_expiry(), nx=True)
        .incr(by_address)
        .expire(by_address, _address_limit.get_expiry(), nx=True)
        .execute()
    )
    if ip_count > _ip_limit.amount or address_count > _address_limit.amount:
        abort(429)
    list_id, notice_id = _list(db, slug)
    with db.transaction():
        sid = db.execute(
            "INSERT INTO subscriber (email, email_hash, name, fields, source, consent_profiling, "
            "consent_tracking, soft_bounces, created_at, updated_at) VALUES (%s, %s, %s, '{}', "
            "'form', false, false, 0, now(), now()) ON CONFLICT (email) DO UPDATE SET "
            "updated_at = subscriber.updated_at RETURNING id",
            (address, _rt.email_hash(address), name),
        ).fetchone()[0]
        db.execute(
            "INSERT INTO membership (subscriber_id, list_id, status, opt_in_level, source, "
            "created_at, updated_at, confirm_nonce, confirm_requested_at) VALUES (%s, %s, "
            "'pending', '', 'form', now(), now(), %s, now()) ON CONFLICT DO NOTHING",
            (sid, list_id, os.urandom(12).hex()),
        )
        db.execute(
            "INSERT INTO consent_event (subscriber_id, list_id, kind, at, source, actor, ip, "
            "user_agent, wording, detail, privacy_notice_id) VALUES (%s, %s, 'subscribe', now(), "
            "'form', 'subscriber', %s, %s, '', %s, %s)",
            (
                sid,
                list_id,
                source[:64],
                request.headers.get("User-Agent", "")[:500],
                Jsonb({"opt_in": "double"}),
                notice_id,
            ),
        )
        db.execute(
            "INSERT INTO outbox (kind, to_email, subscriber_id, list_id, payload, status, "
            "attempts, created_at, message_id, last_error, possibly_duplicate) VALUES ('confirm', "
            "%s, %s, %s, %s, 'pending', 0, now(), '', '', false)",
            (address, sid, list_id, Jsonb({"wording": ""})),
        )
    return "Almost done: please confirm with the link we mailed you.\n", 200
