"""Showing a captured mail in the browser (dev outbox pages): its parts, and its HTML served so
that nothing in it runs or loads."""

from __future__ import annotations

from dataclasses import dataclass
from email import message_from_bytes
from email.policy import default as default_policy
from typing import TYPE_CHECKING, Any

from flask import Response, abort

from listmgr.services import devmail
from listmgr.web.extensions import current_runtime

if TYPE_CHECKING:
    from listmgr.models import DevMail

SANDBOX_CSP = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"


@dataclass(frozen=True)
class MailView:
    mail: DevMail
    headers: list[tuple[str, Any]]
    text: str
    has_html: bool
    raw: str


def load(mail_id: int) -> DevMail:
    """The captured mail, or a 404 page."""
    row = devmail.get(current_runtime(), mail_id)
    if row is None:
        abort(404)
    return row


def view(row: DevMail) -> MailView:
    msg = message_from_bytes(row.raw, policy=default_policy)
    text_part = msg.get_body(("plain",))
    return MailView(
        row,
        list(msg.items()),
        text_part.get_content() if text_part else "",
        msg.get_body(("html",)) is not None,
        row.raw.decode("utf-8", "replace"),
    )


def html(row: DevMail) -> Response:
    """The HTML part under a CSP that runs nothing and loads nothing from outside."""
    part = message_from_bytes(row.raw, policy=default_policy).get_body(("html",))
    resp = Response(part.get_content() if part else "", mimetype="text/html")
    resp.headers["Content-Security-Policy"] = SANDBOX_CSP
    resp.headers["X-Frame-Options"] = "SAMEORIGIN"
    return resp


def raw(row: DevMail, *, download: bool = False) -> Response:
    resp = Response(row.raw, mimetype="message/rfc822")
    if download:
        resp.headers["Content-Disposition"] = f'attachment; filename="mail-{row.id}.eml"'
    return resp
