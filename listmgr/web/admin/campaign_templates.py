"""Campaign templates: the shipped starting designs and saved templates (list, create, edit,
preview, delete); a new campaign starts from either."""

from __future__ import annotations

from typing import Any

from flask import Response, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from listmgr.errors import ListmgrError
from listmgr.services import campaign_templates as service
from listmgr.web.admin import bp
from listmgr.web.admin.campaigns import shown_preview
from listmgr.web.auth import principal, require
from listmgr.web.extensions import current_runtime


def _actor() -> str:
    p = principal()
    return p.label if p else "admin"


def _values() -> dict[str, Any]:
    return {
        "name": request.form.get("name", ""),
        "content_format": request.form.get("content_format", "html"),
        "body": request.form.get("body", ""),
    }


def _form(
    template: Any,
    values: dict[str, Any],
    *,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    return render_template(
        "pages/admin/template_form.html",
        template=template,
        values=values,
        errors=errors or {},
        title=template.name if template else "New template",
    ), status


@bp.get("/templates")
@require("templates:read")
def templates() -> ResponseReturnValue:
    """The shipped designs and the saved templates."""
    return render_template(
        "pages/admin/templates.html",
        designs=service.designs(),
        items=service.all_templates(current_runtime()),
        title="Templates",
    )


@bp.route("/templates/new", methods=["GET", "POST"])
@require("templates:write")
def template_new() -> ResponseReturnValue:
    """Save a new template, blank or from a shipped design (?design=KEY)."""
    if request.method == "GET":
        key = request.args.get("design", "")
        if key:
            d = service.design(key)
            return _form(
                None, {"name": f"{d.name} (mine)", "content_format": "html", "body": d.body}
            )
        return _form(None, {"name": "", "content_format": "visual", "body": ""})
    values = _values()
    try:
        tid = service.create(current_runtime(), actor=_actor(), **values)
    except ListmgrError as exc:
        return _form(None, values, errors={exc.field or "form": exc.message}, status=exc.status)
    flash("Template saved.")
    return redirect(url_for("admin.template_edit", template_id=tid))


@bp.get("/templates/<int:template_id>")
@require("templates:read")
def template_edit(template_id: int) -> ResponseReturnValue:
    """A template in its form (read-only for those who may not change templates)."""
    t = service.get(current_runtime(), template_id)
    return _form(t, {"name": t.name, "content_format": t.content_format, "body": t.body})


@bp.post("/templates/<int:template_id>")
@require("templates:write")
def template_save(template_id: int) -> ResponseReturnValue:
    rt = current_runtime()
    values = _values()
    try:
        service.update(rt, template_id, actor=_actor(), **values)
    except ListmgrError as exc:
        t = service.get(rt, template_id)
        return _form(t, values, errors={exc.field or "form": exc.message}, status=exc.status)
    flash("Template saved.")
    return redirect(url_for("admin.template_edit", template_id=template_id))


@bp.post("/templates/<int:template_id>/delete")
@require("templates:write")
def template_delete(template_id: int) -> ResponseReturnValue:
    """Delete a template; campaigns started from it keep their copy."""
    service.delete(current_runtime(), template_id, actor=_actor())
    flash("Template deleted.")
    return redirect(url_for("admin.templates"))


def _preview(body: str, content_format: str, name: str) -> Response:
    return shown_preview(
        lambda: service.preview(
            current_runtime(), body=body, content_format=content_format, name=name
        )
    )


@bp.get("/templates/<int:template_id>/preview.html")
@require("templates:read")
def template_preview(template_id: int) -> Response:
    """The saved template as a sample person would get it."""
    t = service.get(current_runtime(), template_id)
    return _preview(t.body, t.content_format, t.name)


@bp.get("/templates/designs/<key>/preview.html")
@require("templates:read")
def design_preview(key: str) -> Response:
    """A shipped design as a sample person would get it."""
    d = service.design(key)
    return _preview(d.body, d.content_format, d.name)
