"""API: /api/segments (saved segments) and /api/segments/count (live count)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import jsonify
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ConfigDict

from listmgr.services import audit, segments
from listmgr.web.api.base import Page, actor, paginated, parse_body, parse_query, route, schema_of
from listmgr.web.auth import personal, shown_count
from listmgr.web.extensions import current_runtime


class SegmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    lists: list[str] = []
    rules: Any = None


class SegmentPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    lists: list[str] | None = None
    rules: Any = None


@schema_of(segments.SegmentInfo)
class SegmentOut(BaseModel):
    pass


class CountIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lists: list[str] = []
    rules: Any = None


class CountOut(BaseModel):
    count: int | None  # null for a count kept back from a role without personal data
    fewer_than: int | None = None


@route("/segments", permission="segments:read", query=Page, tag="segments")
def all_segments() -> ResponseReturnValue:
    """Saved segments, by name."""
    page = parse_query(Page)
    offset, limit = page.bounds()
    items, total = segments.all_segments(
        current_runtime(), offset=offset, limit=limit, personal=personal()
    )
    return paginated([asdict(x) for x in items], total, page)


@route(
    "/segments",
    ["POST"],
    permission="segments:write",
    body=SegmentIn,
    response=SegmentOut,
    status=201,
    tag="segments",
)
def create_segment() -> ResponseReturnValue:
    """Save a segment; rules are checked against the current fields, interests and lists."""
    body = parse_body(SegmentIn)
    rt = current_runtime()
    sid = segments.create(rt, name=body.name, lists=body.lists, rules=body.rules)
    audit.record(rt, actor=actor(), action="segment.create", target_type="segment", target_id=sid)
    return jsonify(asdict(segments.get(rt, sid))), 201


@route(
    "/segments/<int:segment_id>", permission="segments:read", response=SegmentOut, tag="segments"
)
def get_segment(segment_id: int) -> ResponseReturnValue:
    """One saved segment."""
    return jsonify(asdict(segments.get(current_runtime(), segment_id, personal=personal())))


@route(
    "/segments/<int:segment_id>",
    ["PATCH"],
    permission="segments:write",
    body=SegmentPatch,
    response=SegmentOut,
    tag="segments",
)
def update_segment(segment_id: int) -> ResponseReturnValue:
    """Change a segment's name, lists or rules."""
    body = parse_body(SegmentPatch)
    rt = current_runtime()
    info = segments.update(rt, segment_id, name=body.name, lists=body.lists, rules=body.rules)
    audit.record(
        rt, actor=actor(), action="segment.edit", target_type="segment", target_id=segment_id
    )
    return jsonify(asdict(info))


@route(
    "/segments/<int:segment_id>",
    ["DELETE"],
    permission="segments:write",
    status=204,
    tag="segments",
)
def delete_segment(segment_id: int) -> ResponseReturnValue:
    """Delete a saved segment."""
    rt = current_runtime()
    segments.delete(rt, segment_id)
    audit.record(
        rt, actor=actor(), action="segment.delete", target_type="segment", target_id=segment_id
    )
    return "", 204


@route(
    "/segments/count",
    ["POST"],
    permission="segments:read",
    body=CountIn,
    response=CountOut,
    tag="segments",
)
def count_segment() -> ResponseReturnValue:
    """How many subscribers lists + rules select now (with lists: the campaign audience)."""
    body = parse_body(CountIn)
    mine = personal()
    return jsonify(
        shown_count(
            segments.count(current_runtime(), lists=body.lists, rules=body.rules, personal=mine)
        ).as_json()
    )
