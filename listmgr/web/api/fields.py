"""API: /api/fields and /api/interests (the definitions)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from flask import jsonify
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ConfigDict, StrictBool

from listmgr.services import fielddefs
from listmgr.web.api.base import parse_body, route
from listmgr.web.extensions import current_runtime

FieldType = Literal["text", "number", "date", "boolean", "choice", "multi_choice"]


class FieldIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str
    label: str
    type: FieldType
    choices: list[str] | None = None
    editable: StrictBool = True


class FieldPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str | None = None
    type: FieldType | None = None
    choices: list[str] | None = None
    editable: StrictBool | None = None


class FieldOut(BaseModel):
    id: int
    key: str
    label: str
    type: FieldType
    choices: list[str]
    editable: bool


class InterestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str
    label: str


class InterestPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str


class InterestOut(BaseModel):
    id: int
    key: str
    label: str


def _items(items: list[Any]) -> Any:
    return jsonify(items=[asdict(x) for x in items], page=1, per_page=len(items), total=len(items))


@route(
    "/fields",
    ["POST"],
    permission="fields:write",
    body=FieldIn,
    response=FieldOut,
    status=201,
    tag="fields",
)
def create_field() -> ResponseReturnValue:
    """Define a custom field (text, number, date, boolean, choice, multi_choice)."""
    body = parse_body(FieldIn)
    rt = current_runtime()
    fielddefs.create_field(
        rt,
        key=body.key,
        label=body.label,
        type=body.type,
        choices=body.choices,
        editable=body.editable,
    )
    return jsonify(asdict(fielddefs.get_field(rt, body.key))), 201


@route("/fields", permission="fields:read", tag="fields")
def list_fields() -> ResponseReturnValue:
    """Every custom field definition."""
    return _items(fielddefs.list_fields(current_runtime()))


@route("/fields/<key>", permission="fields:read", response=FieldOut, tag="fields")
def get_field(key: str) -> ResponseReturnValue:
    """One field definition."""
    return jsonify(asdict(fielddefs.get_field(current_runtime(), key)))


@route(
    "/fields/<key>",
    ["PATCH"],
    permission="fields:write",
    body=FieldPatch,
    response=FieldOut,
    tag="fields",
)
def update_field(key: str) -> ResponseReturnValue:
    """Change a field's label, choices or whether subscribers may edit it."""
    body = parse_body(FieldPatch)
    info = fielddefs.update_field(current_runtime(), key, **body.model_dump(exclude_unset=True))
    return jsonify(asdict(info))


@route("/fields/<key>", ["DELETE"], permission="fields:write", status=204, tag="fields")
def delete_field(key: str) -> ResponseReturnValue:
    """Delete a field and every value subscribers hold in it."""
    fielddefs.delete_field(current_runtime(), key)
    return "", 204


@route(
    "/interests",
    ["POST"],
    permission="fields:write",
    body=InterestIn,
    response=InterestOut,
    status=201,
    tag="fields",
)
def create_interest() -> ResponseReturnValue:
    """Add an interest to the vocabulary."""
    body = parse_body(InterestIn)
    rt = current_runtime()
    iid = fielddefs.create_interest(rt, key=body.key, label=body.label)
    return jsonify(id=iid, key=body.key, label=body.label.strip()), 201


@route("/interests", permission="fields:read", tag="fields")
def list_interests() -> ResponseReturnValue:
    """Every interest."""
    return _items(fielddefs.list_interests(current_runtime()))


@route(
    "/interests/<key>",
    ["PATCH"],
    permission="fields:write",
    body=InterestPatch,
    response=InterestOut,
    tag="fields",
)
def update_interest(key: str) -> ResponseReturnValue:
    """Rename an interest (its key stays)."""
    body = parse_body(InterestPatch)
    return jsonify(asdict(fielddefs.update_interest(current_runtime(), key, label=body.label)))


@route("/interests/<key>", ["DELETE"], permission="fields:write", status=204, tag="fields")
def delete_interest(key: str) -> ResponseReturnValue:
    """Delete an interest and every subscriber's choice of it."""
    fielddefs.delete_interest(current_runtime(), key)
    return "", 204
