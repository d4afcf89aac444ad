"""The embedded dev outbox: every mail the system "sent", readable in the browser."""
from __future__ import annotations

from flask import Blueprint, Response, abort, render_template
from sqlalchemy import func, select

from listmgr.app import current_runtime
from listmgr.models import DevMail
from listmgr.web import mailview

bp = Blueprint("dev", __name__, url_prefix="/dev")


@bp.before_request
def _embedded_only() -> None:
    settings = current_runtime().settings
    if not settings.embedded_outbox or settings.production:
        abort(404)  # development only: it shows every mail, links and tokens included


@bp.get("/outbox")
def outbox():  # type: ignore[no-untyped-def]
    with current_runtime().db.session() as s:
        mails = list(s.scalars(select(DevMail).order_by(DevMail.id.desc()).limit(200)))
        total = s.scalar(select(func.count(DevMail.id)))
    return render_template("pages/dev/outbox.html", mails=mails, total=total)


@bp.get("/outbox/<int:mail_id>")
def show(mail_id: int):  # type: ignore[no-untyped-def]
    return render_template("pages/dev/mail.html", **vars(mailview.view(mailview.load(mail_id))))


@bp.get("/outbox/<int:mail_id>/html")
def html(mail_id: int) -> Response:
    """The HTML part, served so that the browser runs nothing in it."""
    return mailview.html(mailview.load(mail_id))


@bp.get("/outbox/<int:mail_id>.eml")
def raw(mail_id: int) -> Response:
    return mailview.raw(mailview.load(mail_id))
