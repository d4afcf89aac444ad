"""API tokens: your own (owners see every token), created with a role no higher than yours."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue

from listmgr.errors import ListmgrError
from listmgr.models import Role
from listmgr.permissions import at_most
from listmgr.services import accounts
from listmgr.services import users as users_service
from listmgr.web.admin import bp, ui
from listmgr.web.auth import principal, record, require
from listmgr.web.extensions import current_runtime


def _page(
    new_token: str | None = None, errors: dict[str, str] | None = None, status: int = 200
) -> ResponseReturnValue:
    me = principal()
    assert me is not None
    every = accounts.may_manage_all_tokens(me)
    roles = [r.value for r in Role if at_most(r.value, me.role)]
    resp = render_template(
        "pages/admin/tokens.html",
        tokens=users_service.tokens(current_runtime(), viewer=me, every=every),
        roles=roles,
        every=every,
        new_token=new_token,
        errors=errors or {},
        title="API tokens",
    )
    # A new token is shown once: keep the page out of every cache.
    return resp, status, {"Cache-Control": "no-store"}


@bp.get("/tokens")
@require("tokens:own")
def tokens() -> ResponseReturnValue:
    """Your API tokens with their last use."""
    return _page()


@bp.post("/tokens")
@require("tokens:own")
def token_create() -> ResponseReturnValue:
    """Create a token and show it once."""
    me = principal()
    assert me is not None
    role = ui.text("role", me.role)
    name = ui.text("name")[:200]
    try:
        issued = accounts.issue_token(current_runtime(), role=role, creator=me, name=name)
    except ListmgrError as exc:
        return _page(errors={exc.field or "form": exc.message}, status=exc.status)
    record("token.create", "token", issued.id, role=role, name=name)
    return _page(new_token=issued.token)


@bp.post("/tokens/<int:token_id>/revoke")
@require("tokens:own")
def token_revoke(token_id: int) -> ResponseReturnValue:
    """Revoke a token and those it created at once (owners may revoke anyone's)."""
    revoked = accounts.revoke_token(current_runtime(), token_id=token_id, actor=principal())
    record("token.revoke", "token", token_id, revoked=revoked)
    flash("Token revoked.")
    return redirect(url_for("admin.tokens"))
