"""The dev outbox inside the admin (embedded mode): every mail sent, rendered safely."""
from __future__ import annotations

from email import message_from_bytes
from email.policy import default as default_policy

from flask import Response, abort, render_template
from sqlalchemy import func, select

from listmgr.app import current_runtime
from listmgr.models import DevMail
from listmgr.web.admin import _ui, bp
from listmgr.web.auth import require
from listmgr.web.dev import SANDBOX_CSP


def _embedded() -> None:
    if not current_runtime().settings.embedded_outbox:
        abort(404)  # mail goes to real SMTP servers: there is no outbox to show


def _load(mail_id: int) -> DevMail:
    _embedded()
    with current_runtime().db.session() as s:
        row = s.get(DevMail, mail_id)
        if row is None:
            abort(404)
        return row


@bp.get("/outbox")
@require("people:read")
def outbox():  # type: ignore[no-untyped-def]
    """Captured mails, newest first."""
    _embedded()
    page = _ui.page_number()
    with current_runtime().db.session() as s:
        total = s.scalar(select(func.count(DevMail.id))) or 0
        mails = list(s.scalars(select(DevMail).order_by(DevMail.id.desc())
                               .offset((page - 1) * _ui.PER_PAGE).limit(_ui.PER_PAGE)))
    return render_template("pages/admin/outbox.html", mails=mails,
                           pager=_ui.pager(total, "admin.outbox", page), title="Dev outbox")


@bp.get("/outbox/<int:mail_id>")
@require("people:read")
def outbox_mail(mail_id: int):  # type: ignore[no-untyped-def]
    """One mail: the HTML part in a sandboxed frame, the text part, headers and source."""
    row = _load(mail_id)
    msg = message_from_bytes(row.raw, policy=default_policy)
    text_part = msg.get_body(("plain",))
    return render_template("pages/admin/outbox_mail.html", mail=row, headers=list(msg.items()),
                           text=text_part.get_content() if text_part else "",
                           has_html=msg.get_body(("html",)) is not None,
                           raw=row.raw.decode("utf-8", "replace"), title=row.subject)


@bp.get("/outbox/<int:mail_id>/html")
@require("people:read")
def outbox_html(mail_id: int) -> Response:
    """The HTML part under a CSP that runs nothing and loads nothing from outside."""
    msg = message_from_bytes(_load(mail_id).raw, policy=default_policy)
    part = msg.get_body(("html",))
    resp = Response(part.get_content() if part else "", mimetype="text/html")
    resp.headers["Content-Security-Policy"] = SANDBOX_CSP
    resp.headers["X-Frame-Options"] = "SAMEORIGIN"
    return resp


@bp.get("/outbox/<int:mail_id>.eml")
@require("people:read")
def outbox_raw(mail_id: int) -> Response:
    resp = Response(_load(mail_id).raw, mimetype="message/rfc822")
    resp.headers["Content-Disposition"] = f'attachment; filename="mail-{mail_id}.eml"'
    return resp
