"""API: export and erase one subscriber's personal data."""
from __future__ import annotations

from flask import jsonify

from listmgr.app import current_runtime
from listmgr.services import privacy
from listmgr.services.subscriptions import Origin
from listmgr.web.api.base import actor, route
from listmgr.web.extensions import client_ip


@route("/subscribers/<int:subscriber_id>/export", permission="people:export",
       tag="subscribers")
def export_subscriber(subscriber_id: int):  # type: ignore[no-untyped-def]
    """Everything held about one subscriber, as JSON (the access is audited)."""
    data = privacy.export_subscriber(current_runtime(), subscriber_id, actor=actor(),
                                     ip=client_ip())
    resp = jsonify(data)
    resp.headers["Content-Disposition"] = \
        f'attachment; filename="subscriber-{subscriber_id}.json"'
    return resp


@route("/subscribers/<int:subscriber_id>/erase", ["POST"], permission="people:erase",
       tag="subscribers")
def erase_subscriber(subscriber_id: int):  # type: ignore[no-untyped-def]
    """Delete every row about one subscriber; a keyed hash stays on the suppression list."""
    digest = privacy.erase_subscriber(current_runtime(), subscriber_id,
                                      origin=Origin(source="api", actor=actor(),
                                                    ip=client_ip()))
    return jsonify(status="erased", email_hash=digest)
