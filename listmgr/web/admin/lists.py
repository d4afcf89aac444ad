"""Lists: overview with counts, create, edit opt-in mode, sender identity, address; embed code."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from listmgr.errors import ValidationError
from listmgr.services import lists as lists_service
from listmgr.web import public
from listmgr.web.admin import bp, ui
from listmgr.web.auth import record, require
from listmgr.web.extensions import current_runtime

FORM_KEYS = (
    "name",
    "description",
    "opt_in",
    "from_name",
    "from_email",
    "reply_to",
    "postal_address",
    "consent_wording",
    "welcome_text",
)


def _values() -> dict[str, Any]:
    values: dict[str, Any] = {key: ui.text(key) for key in FORM_KEYS if key in request.form}
    for key in ("form_fields", "form_interests", "opt_in_levels"):
        if key in request.form:
            values[key] = ui.lines(key)
    values["archive"] = ui.checked("archive")
    values["welcome_mail"] = ui.checked("welcome_mail")
    return values


@bp.get("/lists")
@require("lists:read")
def lists() -> ResponseReturnValue:
    """Every list with its members per status."""
    return render_template(
        "pages/admin/lists.html", lists=lists_service.all_lists(current_runtime()), title="Lists"
    )


@bp.route("/lists/new", methods=["GET", "POST"])
@require("lists:write")
def list_new() -> ResponseReturnValue:
    """Create a list."""
    values: dict[str, Any] = {"opt_in": "double"}
    if request.method == "POST":
        values = {"slug": ui.text("slug"), **_values()}
        try:
            lists_service.create(current_runtime(), **values)
        except ValidationError as exc:
            return render_template(
                "pages/admin/list_form.html",
                lst=None,
                values=values,
                errors={exc.field or "form": exc.message},
                title="New list",
            ), exc.status
        record("list.create", "list", values["slug"])
        flash(f"List {values['name']} created.")
        return redirect(url_for("admin.list_detail", slug=values["slug"]))
    return render_template(
        "pages/admin/list_form.html", lst=None, values=values, errors={}, title="New list"
    )


@bp.get("/lists/<slug>")
@require("lists:read")
def list_detail(slug: str) -> ResponseReturnValue:
    """A list: counts, settings form, hosted page link and the embeddable form."""
    lst = lists_service.get(current_runtime(), slug)
    embed = public.embed_html(slug)
    return render_template(
        "pages/admin/list_form.html",
        lst=lst,
        values=lst.__dict__,
        errors={},
        embed=embed,
        title=lst.name,
    )


@bp.post("/lists/<slug>")
@require("lists:write")
def list_update(slug: str) -> ResponseReturnValue:
    """Save a list's settings."""
    rt = current_runtime()
    values = _values()
    try:
        lists_service.update(rt, slug, **values)
    except ValidationError as exc:
        lst = lists_service.get(rt, slug)
        return render_template(
            "pages/admin/list_form.html",
            lst=lst,
            values={**lst.__dict__, **values},
            errors={exc.field or "form": exc.message},
            embed=public.embed_html(slug),
            title=lst.name,
        ), exc.status
    record("list.edit", "list", slug, changed=sorted(values))
    flash("List saved.")
    return redirect(url_for("admin.list_detail", slug=slug))
