"""Settings: SMTP servers, DKIM key and its DNS record, mail domain, sender, rate limits."""

from __future__ import annotations

from itertools import groupby

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from listmgr.errors import ValidationError
from listmgr.services import settings_store
from listmgr.web import limits
from listmgr.web.admin import bp, ui
from listmgr.web.auth import may, principal, record, require
from listmgr.web.extensions import client_ip, current_runtime


def settings_actor() -> settings_store.Actor:
    """The signed-in user or token, as the settings audit names them."""
    p = principal()
    return settings_store.Actor(
        label=p.label if p else "anonymous",
        ip=client_ip(),
        user_id=p.user_id if p else None,
        token_id=p.token_id if p else None,
    )


def _page(errors: dict[str, str] | None = None, status: int = 200) -> tuple[str, int]:
    rt = current_runtime()
    items = settings_store.all_settings(rt)
    groups = [(name, list(rows)) for name, rows in groupby(items, key=lambda x: x.group)]
    return render_template(
        "pages/admin/settings.html",
        groups=groups,
        errors=errors or {},
        dkim=settings_store.dkim_record(rt),
        title="Settings",
    ), status


@bp.get("/settings")
@require("settings")
def settings() -> ResponseReturnValue:
    """Every setting an admin may change, with where its value comes from."""
    return _page()


@bp.post("/settings")
@require("settings")
def settings_save() -> ResponseReturnValue:
    """Save changed settings (all or nothing) and reset the ticked ones to their defaults."""
    rt = current_runtime()
    values = {
        spec.key: request.form[spec.key]
        for spec in settings_store.SPECS
        if spec.key in request.form
    }
    reset = [k for k in request.form.getlist("reset") if k in settings_store.BY_KEY]
    try:
        changed = settings_store.update(rt, values, reset=reset, actor=settings_actor())
    except ValidationError as exc:
        return _page({exc.field or "form": exc.message}, exc.status)
    if changed:
        flash(f"Saved: {', '.join(changed)}.")
    else:
        flash("Nothing changed.")
    return redirect(url_for("admin.settings"))


@bp.post("/settings/smtp-check")
@require("settings")
@limits.smtp_check()
def settings_smtp_check() -> ResponseReturnValue:
    """Connect to each SMTP server in force and tell how it went."""
    results = settings_store.check_servers(
        current_runtime(), detailed=may("settings"), actor=settings_actor()
    )
    for r in results:
        if r.ok:
            flash(f"{r.server}: connected.")
        else:
            flash(f"{r.server}: {r.error}", "error")
    return redirect(url_for("admin.settings") + "#smtp-check")


@bp.post("/settings/dkim")
@require("settings")
def settings_dkim() -> ResponseReturnValue:
    """Generate a new DKIM key under a selector; the page then shows the record to publish."""
    selector = ui.text("dkim_selector")
    domain = ui.text("dkim_domain")
    try:
        settings_store.generate_dkim(current_runtime(), selector=selector, domain=domain)
    except ValidationError as exc:
        return _page({exc.field or "form": exc.message}, exc.status)
    record("dkim.generate", "settings", selector, domain=domain)
    flash("New DKIM key generated. Publish the DNS record below before you send.")
    return redirect(url_for("admin.settings") + "#dkim")
