"""The embedded dev outbox: every mail the system "sent", readable in the browser."""
from __future__ import annotations

from email import message_from_bytes
from email.policy import default as default_policy

from flask import Blueprint, Response, abort, render_template
from sqlalchemy import func, select

from listmgr.app import current_runtime
from listmgr.models import DevMail

bp = Blueprint("dev", __name__, url_prefix="/dev")
SANDBOX_CSP = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"


@bp.before_request
def _embedded_only() -> None:
    settings = current_runtime().settings
    if not settings.embedded_outbox or settings.production:
        abort(404)  # development only: it shows every mail, links and tokens included


def _load(mail_id: int) -> DevMail:
    with current_runtime().db.session() as s:
        row = s.get(DevMail, mail_id)
        if row is None:
            abort(404)
        return row


@bp.get("/outbox")
def outbox():  # type: ignore[no-untyped-def]
    with current_runtime().db.session() as s:
        mails = list(s.scalars(select(DevMail).order_by(DevMail.id.desc()).limit(200)))
        total = s.scalar(select(func.count(DevMail.id)))
    return render_template("pages/dev/outbox.html", mails=mails, total=total)


@bp.get("/outbox/<int:mail_id>")
def show(mail_id: int):  # type: ignore[no-untyped-def]
    row = _load(mail_id)
    msg = message_from_bytes(row.raw, policy=default_policy)
    text_part = msg.get_body(("plain",))
    return render_template("pages/dev/mail.html", mail=row, headers=list(msg.items()),
                           text=text_part.get_content() if text_part else "",
                           raw=row.raw.decode("utf-8", "replace"))


@bp.get("/outbox/<int:mail_id>/html")
def html(mail_id: int) -> Response:
    """The HTML part, served so that the browser runs nothing in it."""
    msg = message_from_bytes(_load(mail_id).raw, policy=default_policy)
    part = msg.get_body(("html",))
    resp = Response(part.get_content() if part else "", mimetype="text/html")
    resp.headers["Content-Security-Policy"] = SANDBOX_CSP
    resp.headers["X-Frame-Options"] = "SAMEORIGIN"
    return resp


@bp.get("/outbox/<int:mail_id>.eml")
def raw(mail_id: int) -> Response:
    return Response(_load(mail_id).raw, mimetype="message/rfc822")
