"""API: /api/templates (saved campaign templates) and /api/templates/designs (the shipped
starting designs)."""

from __future__ import annotations

from dataclasses import asdict

from flask import jsonify
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ConfigDict

from listmgr.services import campaign_templates as service
from listmgr.web.api.base import actor, parse_body, route, schema_of
from listmgr.web.extensions import current_runtime


class TemplateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    content_format: str = "html"  # html, markdown or visual (checked by the service)
    body: str


class TemplatePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    content_format: str | None = None
    body: str | None = None


@schema_of(service.TemplateInfo)
class TemplateOut(BaseModel):
    pass


@route("/templates", permission="templates:read", tag="templates")
def all_templates() -> ResponseReturnValue:
    """Saved templates, by name."""
    return jsonify(items=[asdict(t) for t in service.all_templates(current_runtime())])


@route("/templates/designs", permission="templates:read", tag="templates")
def all_designs() -> ResponseReturnValue:
    """The starting designs shipped with listmgr (key, name, description, format, body)."""
    return jsonify(items=[asdict(d) for d in service.designs()])


@route(
    "/templates",
    ["POST"],
    permission="templates:write",
    body=TemplateIn,
    response=TemplateOut,
    status=201,
    tag="templates",
)
def create_template() -> ResponseReturnValue:
    """Save a template; its body is checked as a campaign template now."""
    body = parse_body(TemplateIn)
    rt = current_runtime()
    tid = service.create(rt, actor=actor(), **body.model_dump())
    return jsonify(asdict(service.get(rt, tid))), 201


@route(
    "/templates/<int:template_id>",
    permission="templates:read",
    response=TemplateOut,
    tag="templates",
)
def get_template(template_id: int) -> ResponseReturnValue:
    """One saved template."""
    return jsonify(asdict(service.get(current_runtime(), template_id)))


@route(
    "/templates/<int:template_id>",
    ["PATCH"],
    permission="templates:write",
    body=TemplatePatch,
    response=TemplateOut,
    tag="templates",
)
def update_template(template_id: int) -> ResponseReturnValue:
    """Change a template's name, format or body."""
    body = parse_body(TemplatePatch)
    rt = current_runtime()
    now = service.get(rt, template_id)
    values = {"name": now.name, "content_format": now.content_format, "body": now.body}
    values.update(body.model_dump(exclude_unset=True, exclude_none=True))
    service.update(rt, template_id, actor=actor(), **values)
    return jsonify(asdict(service.get(rt, template_id)))


@route(
    "/templates/<int:template_id>",
    ["DELETE"],
    permission="templates:write",
    status=204,
    tag="templates",
)
def delete_template(template_id: int) -> ResponseReturnValue:
    """Delete a template (campaigns started from it keep their copy)."""
    service.delete(current_runtime(), template_id, actor=actor())
    return "", 204
