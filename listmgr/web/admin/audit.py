"""The audit log, newest first, filterable by who, what, target and time."""

from __future__ import annotations

from typing import Any

from flask import render_template, request
from flask.typing import ResponseReturnValue

from listmgr.services import audit as audit_service
from listmgr.web.admin import bp, ui
from listmgr.web.auth import require
from listmgr.web.extensions import current_runtime

FILTERS = ("actor", "action", "target_type", "target_id", "since", "until")


@bp.get("/audit")
@require("audit:read")
def audit() -> ResponseReturnValue:
    """Who viewed, exported, imported, erased, changed or sent what."""
    page = ui.page_number()
    filters = {k: (request.args.get(k) or "").strip()[:200] for k in FILTERS}
    query: dict[str, Any] = dict(filters)  # the pager's links keep the filters
    entries, total = audit_service.search(
        current_runtime(),
        offset=(page - 1) * ui.PER_PAGE,
        limit=ui.PER_PAGE,
        **{k: v or None for k, v in filters.items()},
    )
    return render_template(
        "pages/admin/audit.html",
        entries=entries,
        filters=filters,
        actions=audit_service.ACTIONS,
        pager=ui.pager(total, "admin.audit", page, **query),
        title="Audit log",
    )
