"""API: /api/inbound — the inbound messages, their kind, action and evidence."""

from __future__ import annotations

from dataclasses import asdict
from typing import Literal

from flask import Response, jsonify
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ConfigDict

from listmgr.mail.inbound import message
from listmgr.services import inbound
from listmgr.web.api.base import Page, actor, paginated, parse_body, parse_query, route
from listmgr.web.extensions import current_runtime

Kind = Literal["bounce", "complaint", "autoreply", "unsubscribe", "other"]


class InboundQuery(Page):
    kind: Kind | None = None
    handled: bool | None = None
    proof: Literal["none", "token", "message-id", "dmarc", "dkim", "link", "admin"] | None = None


class Reclassify(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Kind


class Handled(BaseModel):
    model_config = ConfigDict(extra="forbid")
    handled: bool = True


class InboundOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: int
    kind: str
    action: str
    status: str
    proof: str  # what tied it to us; "none": it changed nobody, `action` says why


@route("/inbound", permission="inbound:read", query=InboundQuery, tag="inbound")
def list_inbound() -> ResponseReturnValue:
    """Inbound messages, newest first, with kind, action taken, proof and evidence;
    `proof=none` lists what changed nobody for lack of proof."""
    q = parse_query(InboundQuery)
    offset, limit = q.bounds()
    items, total = inbound.list_messages(
        current_runtime(), kind=q.kind, handled=q.handled, proof=q.proof, offset=offset, limit=limit
    )
    return paginated([asdict(x) for x in items], total, q)


@route("/inbound/<int:message_id>", permission="inbound:read", response=InboundOut, tag="inbound")
def get_inbound(message_id: int) -> ResponseReturnValue:
    """One inbound message, with the outline of its parts (at most 200: "parts_cut" says
    whether there were more)."""
    rt = current_runtime()
    info, raw = inbound.get_with_raw(rt, message_id)
    _, parts, cut = message.structure(raw)
    return jsonify(**asdict(info), parts=parts, parts_cut=cut)


@route("/inbound/<int:message_id>/raw", permission="inbound:read", tag="inbound")
def raw_inbound(message_id: int) -> Response:
    """The raw source as received (message/rfc822)."""
    return Response(inbound.raw(current_runtime(), message_id), mimetype="message/rfc822")


@route(
    "/inbound/<int:message_id>/reclassify",
    ["POST"],
    permission="inbound:write",
    body=Reclassify,
    response=InboundOut,
    tag="inbound",
)
def reclassify_inbound(message_id: int) -> ResponseReturnValue:
    """Set the kind by hand; its action runs again."""
    body = parse_body(Reclassify)
    rt = current_runtime()
    inbound.reclassify(rt, message_id, kind=body.kind, actor=actor())
    return jsonify(asdict(inbound.get(rt, message_id)))


@route(
    "/inbound/<int:message_id>/handled",
    ["POST"],
    permission="inbound:write",
    body=Handled,
    response=InboundOut,
    tag="inbound",
)
def handle_inbound(message_id: int) -> ResponseReturnValue:
    """Mark a message in the human inbox as dealt with (or not)."""
    body = parse_body(Handled)
    rt = current_runtime()
    inbound.mark_handled(rt, message_id, body.handled)
    return jsonify(asdict(inbound.get(rt, message_id)))
