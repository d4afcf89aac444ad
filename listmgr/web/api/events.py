"""API: /api/events (activity, kept only for subscribers who consented to profiling)."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ConfigDict

from listmgr.errors import ValidationError
from listmgr.services import activity
from listmgr.web.api.base import DbId, route
from listmgr.web.extensions import current_runtime


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str | None = None
    subscriber_id: DbId | None = None
    type: str
    properties: dict[str, Any] = {}
    at: str | None = None


class EventsIn(BaseModel):
    """One event, or {"events": [...]} with up to 10,000 of them."""

    model_config = ConfigDict(extra="forbid")
    events: list[EventIn]


class EventsOut(BaseModel):
    kept: int
    dropped: int


@route(
    "/events", ["POST"], permission="people:write", body=EventsIn, response=EventsOut, tag="events"
)
def post_events() -> ResponseReturnValue:
    """Record activity events; a bad item refuses the whole call and names its index."""
    # Validated by the service rather than the schema so errors read "events[3].type".
    body = request.get_json(silent=True)
    if body is None:
        raise ValidationError("send a JSON object body with Content-Type: application/json")
    outcome = activity.ingest(current_runtime(), body)
    return jsonify(kept=outcome.kept, dropped=outcome.dropped)
