"""The embedded dev outbox: every mail the system "sent", readable in the browser."""

from __future__ import annotations

from flask import Blueprint, Response, abort, redirect, render_template, url_for
from flask.typing import ResponseReturnValue

from listmgr.services import devmail
from listmgr.web import mailview
from listmgr.web.extensions import current_runtime, settings_in_force

bp = Blueprint("dev", __name__, url_prefix="/dev")


# Every mail with its links: whoever reads them can confirm, unsubscribe, export and erase
# anyone. So: signed in with a role that may export people, and only in embedded development.
PERMISSION = "people:export"


@bp.before_request
def _guard() -> ResponseReturnValue | None:
    from listmgr.errors import Unauthorized
    from listmgr.web import auth

    if not settings_in_force().dev_outbox_shown:
        abort(404)  # mail goes to real SMTP servers, or production: there is no outbox
    try:
        auth.authorize(PERMISSION, api=False)
    except Unauthorized:
        return redirect(url_for("admin.login", next=url_for("admin.outbox")))
    return None


@bp.get("/outbox")
def outbox() -> ResponseReturnValue:
    rt = current_runtime()
    mails = devmail.newest(rt, limit=200)
    total = devmail.count(rt)
    return render_template("pages/dev/outbox.html", mails=mails, total=total)


@bp.get("/outbox/<int:mail_id>")
def show(mail_id: int) -> ResponseReturnValue:
    return render_template("pages/dev/mail.html", **vars(mailview.view(mailview.load(mail_id))))


@bp.get("/outbox/<int:mail_id>/html")
def html(mail_id: int) -> Response:
    """The HTML part, served so that the browser runs nothing in it."""
    return mailview.html(mailview.load(mail_id))


@bp.get("/outbox/<int:mail_id>.eml")
def raw(mail_id: int) -> Response:
    return mailview.raw(mailview.load(mail_id))
