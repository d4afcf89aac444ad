"""Custom fields and interests: the profile vocabulary that forms, imports and segments use."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from listmgr.errors import ListmgrError
from listmgr.services import fielddefs
from listmgr.web.admin import bp, ui
from listmgr.web.auth import record, require
from listmgr.web.extensions import current_runtime

TYPES = ("text", "number", "date", "boolean", "choice", "multi_choice")


def _page(errors: dict[str, str] | None = None, status: int = 200) -> ResponseReturnValue:
    rt = current_runtime()
    return render_template(
        "pages/admin/fields.html",
        fields=fielddefs.list_fields(rt),
        interests=fielddefs.list_interests(rt),
        types=TYPES,
        errors=errors or {},
        values=request.form,
        title="Fields & interests",
    ), status


@bp.get("/fields")
@require("fields:read")
def fields() -> ResponseReturnValue:
    """Every custom field with its type and choices, and every interest."""
    return _page()


@bp.post("/fields")
@require("fields:write")
def field_save() -> ResponseReturnValue:
    """Create a field or an interest, change one, or delete one (with its values)."""
    rt = current_runtime()
    kind, action, key = ui.text("kind"), ui.text("action", "create"), ui.text("key")
    try:
        if kind == "interest":
            if action == "delete":
                fielddefs.delete_interest(rt, key)
            elif action == "update":
                fielddefs.update_interest(rt, key, label=ui.text("label"))
            else:
                fielddefs.create_interest(rt, key=key, label=ui.text("label"))
        elif action == "delete":
            fielddefs.delete_field(rt, key)
        elif action == "update":
            fielddefs.update_field(
                rt,
                key,
                label=ui.text("label"),
                choices=ui.lines("choices") or None,
                editable=ui.checked("editable"),
            )
        else:
            fielddefs.create_field(
                rt,
                key=key,
                label=ui.text("label"),
                type=ui.text("type", "text"),
                choices=ui.lines("choices") or None,
                editable=ui.checked("editable"),
            )
    except ListmgrError as exc:
        return _page({exc.field or "form": exc.message}, exc.status)
    record(f"{kind or 'field'}.{action}", kind or "field", key)
    flash(
        f"{'Interest' if kind == 'interest' else 'Field'} {key} "
        f"{ {'delete': 'deleted', 'update': 'saved'}.get(action, 'created') }."
    )
    return redirect(url_for("admin.fields") + ("#interests" if kind == "interest" else ""))
