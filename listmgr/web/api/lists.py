"""API: /api/lists."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from flask import jsonify
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ConfigDict, StrictBool

from listmgr.services import lists
from listmgr.web.api.base import parse_body, route
from listmgr.web.auth import shown_count
from listmgr.web.extensions import current_runtime


class ListIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slug: str
    name: str
    opt_in: Literal["double", "single"] = "double"
    description: str = ""
    from_name: str = ""
    from_email: str = ""
    reply_to: str = ""
    postal_address: str = ""
    consent_wording: str = ""
    form_fields: list[str] = []
    form_interests: list[str] = []
    opt_in_levels: list[str] = []
    archive: StrictBool = False  # past campaigns on a public page, rendered for no one
    welcome_mail: StrictBool = False  # a welcome mail to each person who confirms
    welcome_text: str = ""  # its words, plain text (empty: a short standard welcome)


class ListPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    opt_in: Literal["double", "single"] | None = None
    description: str | None = None
    from_name: str | None = None
    from_email: str | None = None
    reply_to: str | None = None
    postal_address: str | None = None
    consent_wording: str | None = None
    form_fields: list[str] | None = None
    form_interests: list[str] | None = None
    opt_in_levels: list[str] | None = None
    archive: StrictBool | None = None
    welcome_mail: StrictBool | None = None
    welcome_text: str | None = None


class ListOut(ListIn):
    model_config = ConfigDict(extra="allow")
    id: int
    counts: dict[str, int | None]  # null: fewer than "fewer_than" (roles without personal data)


@route(
    "/lists",
    ["POST"],
    permission="lists:write",
    body=ListIn,
    response=ListOut,
    status=201,
    tag="lists",
)
def create_list() -> ResponseReturnValue:
    """Create a list."""
    body = parse_body(ListIn)
    rt = current_runtime()
    lists.create(rt, **body.model_dump())
    return jsonify(asdict(lists.get(rt, body.slug))), 201


@route("/lists", permission="lists:read", tag="lists")
def all_lists() -> ResponseReturnValue:
    """All lists with member counts per status."""
    items = [_shown(asdict(x)) for x in lists.all_lists(current_runtime())]
    return jsonify(items=items, page=1, per_page=len(items), total=len(items))


@route("/lists/<slug>", permission="lists:read", response=ListOut, tag="lists")
def get_list(slug: str) -> ResponseReturnValue:
    """One list."""
    return jsonify(_shown(asdict(lists.get(current_runtime(), slug))))


def _shown(info: dict[str, Any]) -> dict[str, Any]:
    """A list as this caller may see it: member counts under the threshold are null for a
    role without access to people, with "fewer_than"."""
    shown = {k: shown_count(int(v)) for k, v in info["counts"].items()}
    out = {**info, "counts": {k: c.value for k, c in shown.items()}}
    kept = [c.fewer_than for c in shown.values() if c.value is None]
    if kept:
        out["fewer_than"] = kept[0]
    return out


@route(
    "/lists/<slug>",
    ["PATCH"],
    permission="lists:write",
    body=ListPatch,
    response=ListOut,
    tag="lists",
)
def update_list(slug: str) -> ResponseReturnValue:
    """Change a list's settings."""
    body = parse_body(ListPatch)
    rt = current_runtime()
    lists.update(rt, slug, **body.model_dump(exclude_none=True))
    return jsonify(asdict(lists.get(rt, slug)))
