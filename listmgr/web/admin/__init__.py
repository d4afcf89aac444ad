"""The marketer's workspace under /admin: one blueprint, one module per area."""

from __future__ import annotations

import functools
import importlib
from typing import Any

from flask import Blueprint, redirect, request, url_for
from flask.typing import ResponseReturnValue

from listmgr.errors import Forbidden, Unauthorized, ValidationError
from listmgr.web import auth

bp = Blueprint("admin", __name__, url_prefix="/admin")
bp.record_once(lambda state: auth.init_app(state.app))
auth.register(bp)

AREAS = (
    "dashboard",
    "lists",
    "subscribers",
    "fields",
    "imports",
    "segments",
    "campaigns",
    "campaign_templates",
    "inbound",
    "suppression",
    "reputation",
    "settings",
    "domain_check",
    "users",
    "tokens",
    "audit",
    "outbox",
)
for _name in AREAS:  # each area's module adds its views to bp
    importlib.import_module(f"listmgr.web.admin.{_name}")


@bp.before_request
def _guard() -> ResponseReturnValue | None:
    """Every admin view declares a permission (fail closed); people without it are stopped."""
    from flask import current_app

    if request.url_rule is None:
        return None
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None or not hasattr(view, "permission"):
        raise Forbidden("this page has no access rule")
    try:
        auth.authorize(view.permission, api=False)
    except Unauthorized:
        return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))
    # The upload reads its own (large) body; everything else is small and checked here.
    sources = (
        (request.args,)
        if request.endpoint == "admin.import_upload"
        else (request.args, request.form)
    )
    if any("\x00" in value for source in sources for value in source.values()):
        raise ValidationError("Text must not contain NUL characters.")
    return None


@bp.app_context_processor
def _nav() -> dict[str, Any]:
    from listmgr.permissions import allowed

    p = auth.principal() or auth.session_principal()
    role = p.role if p else None
    return {
        "can": lambda permission: allowed(role, permission),
        "me": p,
        "admin_areas": _loaded_areas(),
        # a count of people as this user may see it ("fewer than 10" without personal data)
        "shown": lambda n: auth.shown_count(int(n or 0)).label,
        "visual_editor": visual_editor_installed(),
    }


@functools.cache
def visual_editor_installed() -> bool:
    """Whether the visual editor's files were fetched at install (it needs npm then); without
    them the composer offers HTML and Markdown only."""
    from listmgr import resource_dir

    return (resource_dir("static") / "vendor" / "squire" / "squire.js").is_file()


def _loaded_areas() -> set[str]:
    return {name for name in AREAS if f"listmgr.web.admin.{name}" in __import__("sys").modules}
