"""Users (owners only): invite with a role, change role, disable, unlock, reset a password."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
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
    errors: dict[str, str] | None = None, values: dict[str, str] | None = None, status: int = 200
) -> ResponseReturnValue:
    me = principal()
    # Only the roles the signed-in user may give are offered (the service refuses the rest).
    roles = [r.value for r in Role if me is not None and at_most(r.value, me.role)]
    return render_template(
        "pages/admin/users.html",
        users=users_service.all_users(current_runtime()),
        roles=roles,
        errors=errors or {},
        values=values or {},
        title="Users",
    ), status


@bp.get("/users")
@require("users")
def users() -> ResponseReturnValue:
    """Everyone who can sign in, with role and last sign-in."""
    return _page()


@bp.post("/users")
@require("users")
def user_create() -> ResponseReturnValue:
    """Add a user with a first password they should change."""
    values = {
        "email": ui.text("email"),
        "name": ui.text("name"),
        "role": ui.text("role", "editor"),
    }
    try:
        uid = accounts.create_user(
            current_runtime(),
            password=request.form.get("password", ""),
            actor=principal(),
            **values,
        )
    except ListmgrError as exc:
        return _page({exc.field or "form": exc.message}, values, exc.status)
    record("user.create", "user", uid, email=values["email"], role=values["role"])
    flash(f"User {values['email']} created as {values['role']}.")
    return redirect(url_for("admin.users"))


@bp.post("/users/<int:user_id>")
@require("users")
def user_update(user_id: int) -> ResponseReturnValue:
    """Change role or active flag, unlock, or set a new password."""
    rt = current_runtime()
    action = request.form.get("action", "save")
    me = principal()
    try:
        if action == "password":
            users_service.reset_password(
                rt, user_id, password=request.form.get("password", ""), actor=me
            )
            record("user.edit", "user", user_id, password_reset=True)
            flash("Password set; the user's sessions were signed out.")
        else:
            flags = request.form.getlist("active")  # hidden "0" first, the checkbox's "1" after
            active = None if not flags else flags[-1] in ("1", "on")
            info = users_service.update_user(
                rt,
                user_id,
                role=request.form.get("role") or None,
                active=active,
                unlock=action == "unlock",
                actor=me,
            )
            record(
                "user.edit",
                "user",
                user_id,
                role=info.role,
                active=info.active,
                unlocked=action == "unlock",
            )
            flash(f"{info.email} saved.")
    except ListmgrError as exc:
        return _page({f"user{user_id}": exc.message}, status=exc.status)
    return redirect(url_for("admin.users"))
