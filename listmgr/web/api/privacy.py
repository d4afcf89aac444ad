"""API: export and erase one subscriber's personal data."""

from __future__ import annotations

from flask import jsonify, request
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ConfigDict, StrictBool

from listmgr.services import access_links, privacy
from listmgr.services.subscriptions import Origin
from listmgr.web.api.base import actor, parse_body, route
from listmgr.web.extensions import client_ip, current_runtime


class ForgetLinksIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    notify: StrictBool = True  # mail the subscriber a new preference link


@route("/subscribers/<int:subscriber_id>/export", permission="people:export", tag="subscribers")
def export_subscriber(subscriber_id: int) -> ResponseReturnValue:
    """Everything held about one subscriber, as JSON (the access is audited)."""
    data = privacy.export_subscriber(
        current_runtime(), subscriber_id, actor=actor(), ip=client_ip()
    )
    resp = jsonify(data)
    resp.headers["Content-Disposition"] = f'attachment; filename="subscriber-{subscriber_id}.json"'
    return resp


@route(
    "/subscribers/<int:subscriber_id>/erase", ["POST"], permission="people:erase", tag="subscribers"
)
def erase_subscriber(subscriber_id: int) -> ResponseReturnValue:
    """Delete every row about one subscriber; a keyed hash stays on the suppression list."""
    digest = privacy.erase_subscriber(
        current_runtime(), subscriber_id, origin=Origin(source="api", actor=actor(), ip=client_ip())
    )
    return jsonify(status="erased", email_hash=digest)


@route(
    "/subscribers/<int:subscriber_id>/forget-links",
    ["POST"],
    permission="people:write",
    body=ForgetLinksIn,
    tag="subscribers",
)
def forget_subscriber_links(subscriber_id: int) -> ResponseReturnValue:
    """End every earlier preference and data link of one subscriber (old unsubscribe links
    still unsubscribe); the body may be empty."""
    body = parse_body(ForgetLinksIn) if request.get_data() else ForgetLinksIn()
    access_links.forget_links_of(
        current_runtime(),
        subscriber_id,
        notify=body.notify,
        origin=Origin(source="api", actor=actor(), ip=client_ip()),
    )
    return jsonify(status="forgotten", notified=body.notify)
