"""API: /api/subscribers."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from flask import jsonify
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ConfigDict, StrictBool

from listmgr.services import subscribers
from listmgr.services.subscriptions import Origin
from listmgr.web.api.base import Page, actor, paginated, parse_body, parse_query, route
from listmgr.web.extensions import client_ip, current_runtime


class Consents(BaseModel):
    model_config = ConfigDict(extra="forbid")
    profiling: bool = False
    tracking: bool = False


class SubscriberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str
    name: str = ""
    lists: list[str] = []
    status: Literal["confirmed", "pending"] = "confirmed"
    fields: dict[str, Any] = {}
    interests: list[str] = []
    consent: str = ""
    consents: Consents | None = None


class ConsentsPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    profiling: StrictBool | None = None
    tracking: StrictBool | None = None


class ProfilePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    fields: dict[str, Any] | None = None
    interests: list[str] | None = None
    consents: ConsentsPatch | None = None
    consent: str = ""


class SubscriberQuery(Page):
    email: str | None = None
    q: str | None = None
    list: str | None = None
    status: Literal["pending", "confirmed", "unsubscribed", "bounced"] | None = None


class MembershipOut(BaseModel):
    slug: str
    status: str


class SubscriberOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: int
    email: str
    name: str
    lists: list[MembershipOut]


@route(
    "/subscribers",
    ["POST"],
    permission="people:write",
    body=SubscriberIn,
    response=SubscriberOut,
    status=201,
    tag="subscribers",
)
def create_subscriber() -> ResponseReturnValue:
    """Add a subscriber (confirmed with a consent basis, or pending and sent a confirmation)."""
    body = parse_body(SubscriberIn)
    rt = current_runtime()
    sid = subscribers.create(
        rt,
        email=body.email,
        name=body.name,
        lists=body.lists,
        status=body.status,
        fields=body.fields,
        interests=body.interests,
        consent=body.consent,
        consents=body.consents.model_dump() if body.consents else None,
        origin=Origin(source="api", actor=actor(), ip=client_ip()),
    )
    return jsonify(asdict(subscribers.get(rt, sid))), 201


@route("/subscribers", permission="people:read", query=SubscriberQuery, tag="subscribers")
def search_subscribers() -> ResponseReturnValue:
    """Find subscribers by exact email, or by email/name prefix, list and status."""
    q = parse_query(SubscriberQuery)
    offset, limit = q.bounds()
    items, total = subscribers.search(
        current_runtime(),
        email=q.email,
        q=q.q,
        list_slug=q.list,
        status=q.status,
        offset=offset,
        limit=limit,
    )
    return paginated([asdict(x) for x in items], total, q)


@route(
    "/subscribers/<int:subscriber_id>",
    permission="people:read",
    response=SubscriberOut,
    tag="subscribers",
)
def get_subscriber(subscriber_id: int) -> ResponseReturnValue:
    """One subscriber with memberships, fields, interests and consents."""
    return jsonify(asdict(subscribers.get(current_runtime(), subscriber_id)))


@route(
    "/subscribers/<int:subscriber_id>",
    ["PATCH"],
    permission="people:write",
    body=ProfilePatch,
    tag="subscribers",
)
def update_subscriber_profile(subscriber_id: int) -> ResponseReturnValue:
    """Edit name, field values (merged; null removes one), interests (replaced), consents."""
    body = parse_body(ProfilePatch)
    rt = current_runtime()
    consents = None
    if body.consents is not None:
        consents = {k: v for k, v in body.consents.model_dump().items() if v is not None}
    subscribers.update(
        rt,
        subscriber_id,
        name=body.name,
        fields=body.fields,
        interests=body.interests,
        consents=consents,
        wording=body.consent,
        origin=Origin(source="api", actor=actor(), ip=client_ip()),
    )
    return jsonify(asdict(subscribers.get(rt, subscriber_id)))
