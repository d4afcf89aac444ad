"""Settings: SMTP servers, DKIM key and its DNS record, mail domain, sender, rate limits."""

from __future__ import annotations

from dataclasses import replace
from itertools import groupby

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from listmgr.errors import ValidationError
from listmgr.mail import smtp_fields
from listmgr.mail.smtp_fields import SmtpFields
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


# Shown by a form of their own: the SMTP servers as fields, the DKIM key with its selector.
OWN_FORMS = ("smtp_url", "dkim_domain", "dkim_selector")
SMTP_FORM = (
    "smtp_host",
    "smtp_port",
    "smtp_user",
    "smtp_password",
    "smtp_tls",
    "smtp_kept",
    "smtp_options",
)


def _smtp_rows(value: str) -> list[SmtpFields]:
    """The servers of a (masked) setting as form rows, and an empty row to add one."""
    try:
        rows = smtp_fields.servers_of(value)
    except ValueError:
        rows = []  # a value the form cannot show: typed anew
    return [*rows, SmtpFields(host="")]


def _smtp_form_rows() -> list[SmtpFields]:
    """The SMTP servers of the form; an empty password where one is stored stands for the
    stored one (kept for that very server only: settings_store)."""
    columns = [request.form.getlist(name) for name in SMTP_FORM]
    rows = len(columns[0])  # one per host field; a field missing from a row is empty
    columns = [(column + [""] * rows)[:rows] for column in columns]
    servers = []
    for host, port, user, password, tls, kept, options in zip(*columns, strict=True):
        if not (host.strip() or port.strip() or user.strip() or password):
            continue
        if port.strip() and not port.strip().isdigit():
            raise ValidationError("SMTP servers: the port must be a number", field="smtp_url")
        servers.append(
            SmtpFields(
                host=host,
                port=int(port) if port.strip() else None,
                user=user.strip(),
                password=password or (smtp_fields.KEPT_PASSWORD if kept == "1" else ""),
                tls=tls,
                options=options,
            )
        )
    return servers


def _typed_rows() -> list[SmtpFields] | None:
    """The SMTP rows as typed, to show them again (a typed password never: a stored one
    stays marked as kept); None when the form has none or they cannot be read."""
    if "smtp_host" not in request.form:
        return None
    try:
        rows = _smtp_form_rows()
    except ValidationError:
        return None
    kept = smtp_fields.KEPT_PASSWORD
    return [
        *(replace(r, password=kept if r.password == kept else "") for r in rows),
        SmtpFields(""),
    ]


def _smtp_from_form() -> str:
    """The smtp_url setting the SMTP fields of the form give."""
    try:
        return smtp_fields.setting_of(_smtp_form_rows())
    except ValueError as exc:
        raise ValidationError(f"SMTP servers: {exc}", field="smtp_url") from None


def _page(
    errors: dict[str, str] | None = None,
    status: int = 200,
    *,
    checks: list[settings_store.ServerCheck] | None = None,
    smtp: list[SmtpFields] | None = None,
) -> tuple[str, int]:
    rt = current_runtime()
    items = settings_store.all_settings(rt)
    shown = [item for item in items if item.key not in OWN_FORMS]
    groups = [(name, list(rows)) for name, rows in groupby(shown, key=lambda x: x.group)]
    by_key = {item.key: item for item in items}
    smtp_url = by_key["smtp_url"]
    return render_template(
        "pages/admin/settings.html",
        groups=groups,
        errors=errors or {},
        smtp=smtp if smtp is not None else _smtp_rows(str(smtp_url.value or "")),
        smtp_setting=smtp_url,
        tls_modes=smtp_fields.TLS_LABELS,
        checks=checks,
        dkim=settings_store.dkim_record(rt),
        dkim_selector=by_key["dkim_selector"].value or "",
        dkim_domain=by_key["dkim_domain"].value or "",
        alignment=settings_store.dkim_alignment(rt),
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
        if "smtp_host" in request.form:
            values["smtp_url"] = _smtp_from_form()
        changed = settings_store.update(rt, values, reset=reset, actor=settings_actor())
    except ValidationError as exc:
        return _page({exc.field or "form": exc.message}, exc.status, smtp=_typed_rows())
    if changed:
        flash(f"Saved: {', '.join(changed)}.")
    else:
        flash("Nothing changed.")
    return redirect(url_for("admin.settings"))


@bp.post("/settings/smtp-check")
@require("settings")
@limits.smtp_check()
def settings_smtp_check() -> ResponseReturnValue:
    """Connect to each SMTP server as the form gives them (unsaved), or else to each server
    in force, and tell how it went."""
    if "smtp_host" in request.form:
        try:
            typed = _smtp_from_form()
            results = settings_store.check_servers(
                current_runtime(), detailed=may("settings"), actor=settings_actor(), smtp_url=typed
            )
        except ValidationError as exc:
            return _page({exc.field or "form": exc.message}, exc.status, smtp=_typed_rows())
        return _page(checks=results, smtp=_typed_rows())
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
