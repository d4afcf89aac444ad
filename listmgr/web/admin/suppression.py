"""The suppression list: search, add an address by hand, lift an entry."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from listmgr.errors import ListmgrError, ValidationError
from listmgr.services import suppression as suppression_service
from listmgr.web.admin import bp, ui
from listmgr.web.auth import record, require
from listmgr.web.extensions import current_runtime


def _page(errors: dict[str, str] | None = None, status: int = 200) -> ResponseReturnValue:
    page = ui.page_number()
    q = (request.args.get("q") or "").strip()[:320]
    reason = (request.args.get("reason") or "").strip()
    if reason and reason not in suppression_service.REASONS:
        raise ValidationError("unknown reason", field="reason")
    items, total = suppression_service.search(
        current_runtime(),
        q=q or None,
        reason=reason or None,
        offset=(page - 1) * ui.PER_PAGE,
        limit=ui.PER_PAGE,
    )
    return render_template(
        "pages/admin/suppression.html",
        items=items,
        q=q,
        reason=reason,
        reasons=suppression_service.REASONS,
        permanent=suppression_service.PERMANENT,
        errors=errors or {},
        pager=ui.pager(total, "admin.suppression", page, q=q, reason=reason),
        title="Suppression list",
    ), status


@bp.get("/suppression")
@require("people:read")
def suppression() -> ResponseReturnValue:
    """Who never gets campaign mail, and why."""
    return _page()


@bp.post("/suppression")
@require("people:write")
def suppression_add() -> ResponseReturnValue:
    """Suppress an address by hand."""
    try:
        entry_id = suppression_service.add(
            current_runtime(), email=ui.text("email"), detail=ui.text("detail")
        )
    except ListmgrError as exc:
        return _page({exc.field or "form": exc.message}, exc.status)
    record("suppression.add", "suppression", entry_id)
    flash("Address suppressed.")
    return redirect(url_for("admin.suppression"))


@bp.post("/suppression/<int:entry_id>/remove")
@require("people:write")
def suppression_remove(entry_id: int) -> ResponseReturnValue:
    """Lift an entry."""
    try:
        entry = suppression_service.remove(current_runtime(), entry_id)
    except ListmgrError as exc:
        return _page({"form": exc.message}, exc.status)
    record("suppression.remove", "suppression", entry_id, reason=entry.reason)
    flash(
        "Suppression lifted. The address gets campaign mail again only from lists it is "
        "confirmed on."
    )
    return redirect(url_for("admin.suppression"))
