"""The dev outbox inside the admin (embedded mode): every mail sent, rendered safely."""

from __future__ import annotations

from flask import Response, abort, render_template
from flask.typing import ResponseReturnValue

from listmgr.services import devmail
from listmgr.web import mailview
from listmgr.web.admin import bp, ui
from listmgr.web.auth import require
from listmgr.web.dev import PERMISSION
from listmgr.web.extensions import current_runtime, settings_in_force


def _embedded() -> None:
    if not settings_in_force().dev_outbox_shown:
        abort(404)  # mail goes to real SMTP servers, or production: there is no outbox to show


@bp.get("/outbox")
@require(PERMISSION)
def outbox() -> ResponseReturnValue:
    """Captured mails, newest first."""
    _embedded()
    page = ui.page_number()
    rt = current_runtime()
    total = devmail.count(rt)
    mails = devmail.newest(rt, offset=(page - 1) * ui.PER_PAGE, limit=ui.PER_PAGE)
    return render_template(
        "pages/admin/outbox.html",
        mails=mails,
        pager=ui.pager(total, "admin.outbox", page),
        title="Dev outbox",
    )


@bp.get("/outbox/<int:mail_id>")
@require(PERMISSION)
def outbox_mail(mail_id: int) -> ResponseReturnValue:
    """One mail: the HTML part in a sandboxed frame, the text part, headers and source."""
    _embedded()
    shown = mailview.view(mailview.load(mail_id))
    return render_template("pages/admin/outbox_mail.html", **vars(shown), title=shown.mail.subject)


@bp.get("/outbox/<int:mail_id>/html")
@require(PERMISSION)
def outbox_html(mail_id: int) -> Response:
    _embedded()
    return mailview.html(mailview.load(mail_id))


@bp.get("/outbox/<int:mail_id>.eml")
@require(PERMISSION)
def outbox_raw(mail_id: int) -> Response:
    _embedded()
    return mailview.raw(mailview.load(mail_id), download=True)
