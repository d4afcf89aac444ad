"""The inbound inbox: replies that need a human, and every processed message with its evidence."""

from __future__ import annotations

from typing import Any

from flask import Response, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from listmgr.errors import ValidationError
from listmgr.mail import answer
from listmgr.mail.inbound import message
from listmgr.services import inbound as inbound_service
from listmgr.services import inbound_reply
from listmgr.web import limits
from listmgr.web.admin import bp, ui
from listmgr.web.auth import principal, record, require
from listmgr.web.extensions import current_runtime
from listmgr.web.mailview import SANDBOX_CSP

MAX_HEADERS = 500  # header lines shown; the source holds them all
VIEWS = {"inbox": (None, None), "all": (None, None), "handled": (None, True)}


def _part(raw: bytes, kind: str) -> str | None:
    return message.body_text(message.structure(raw)[0], kind)


@bp.get("/inbound")
@require("inbound:read")
def inbound() -> ResponseReturnValue:
    """The inbox (mail a human should read) or every inbound message, filtered by kind."""
    page = ui.page_number()
    view = request.args.get("view", "inbox")
    kind = (request.args.get("kind") or "").strip() or None
    if view not in VIEWS:
        raise ValidationError("view must be inbox, all or handled", field="view")
    default_kind, handled = VIEWS[view]
    if kind and kind not in inbound_service.KINDS:
        raise ValidationError("unknown kind", field="kind")
    items, total = inbound_service.list_messages(
        current_runtime(),
        kind=kind or default_kind,
        handled=handled,
        inbox=view == "inbox",
        offset=(page - 1) * ui.PER_PAGE,
        limit=ui.PER_PAGE,
    )
    return render_template(
        "pages/admin/inbound.html",
        items=items,
        view=view,
        kind=kind or "",
        kinds=inbound_service.KINDS,
        pager=ui.pager(total, "admin.inbound", page, view=view, kind=kind),
        title="Inbox",
    )


@bp.get("/inbound/<int:message_id>")
@require("inbound:read")
def inbound_message(message_id: int) -> ResponseReturnValue:
    """One message: what it was taken for and why, its text, headers and source."""
    return _message_page(message_id)


def _message_page(
    message_id: int, *, reply_text: str = "", errors: dict[str, str] | None = None
) -> str:
    rt = current_runtime()
    info, raw = inbound_service.get_with_raw(rt, message_id)
    # compat32 parses a part ten times faster than the default policy, and at most
    # MAX_PARTS parts are parsed: a message of 100,000 parts opens as fast as one of 200.
    msg, parts, cut = message.structure(raw)
    try:
        answer_to: answer.Answer | None = answer.answer(raw)
    except ValidationError:
        answer_to = None  # nobody to answer
    headers: list[tuple[str, Any]] = []
    if msg is not None:
        try:
            headers = [(k, message.decoded(v)) for k, v in msg.items()[:MAX_HEADERS]]
        except Exception:
            headers = []
    return render_template(
        "pages/admin/inbound_message.html",
        info=info,
        headers=headers,
        parts=parts,
        parts_cut=cut,
        max_parts=message.MAX_PARTS,
        text=message.body_text(msg, "plain"),
        has_html=message.body_text(msg, "html") is not None,
        raw=raw[:200_000].decode("utf-8", "replace"),
        kinds=inbound_service.KINDS,
        answer=answer_to,
        reply_text=reply_text,
        errors=errors or {},
        title=info.subject or "Inbound message",
    )


@bp.get("/inbound/<int:message_id>/html")
@require("inbound:read")
def inbound_html(message_id: int) -> Response:
    """The HTML part under a CSP that runs nothing and loads nothing (it came from outside)."""
    html = _part(inbound_service.raw(current_runtime(), message_id), "html") or ""
    resp = Response(html, mimetype="text/html")
    resp.headers["Content-Security-Policy"] = SANDBOX_CSP
    resp.headers["X-Frame-Options"] = "SAMEORIGIN"
    return resp


@bp.post("/inbound/<int:message_id>")
@require("inbound:write")
def inbound_act(message_id: int) -> ResponseReturnValue:
    """Mark handled (or not), or re-classify and apply that kind's action."""
    rt = current_runtime()
    action = request.form.get("action", "")
    if action == "reclassify":
        kind = ui.text("kind")
        p = principal()
        inbound_service.reclassify(rt, message_id, kind=kind, actor=p.label if p else "admin")
        record("inbound.handled", "inbound", message_id, reclassified=kind)
        flash(f"Re-classified as {kind} and acted on.")
    elif action in ("handled", "unhandled"):
        inbound_service.mark_handled(rt, message_id, action == "handled")
        record("inbound.handled", "inbound", message_id, handled=action == "handled")
        flash("Marked as handled." if action == "handled" else "Back in the inbox.")
    else:
        raise ValidationError("action must be handled, unhandled or reclassify", field="action")
    return redirect(url_for("admin.inbound_message", message_id=message_id))


@bp.post("/inbound/<int:message_id>/reply")
@require("inbound:write")
@limits.reply_send()
def inbound_reply_send(message_id: int) -> ResponseReturnValue:
    """Send a plain-text answer to the message's sender (Reply-To, else From)."""
    text = request.form.get("text", "")
    p = principal()
    try:
        sent = inbound_reply.reply(
            current_runtime(),
            message_id,
            text,
            actor=p.label if p else "admin",
            user_id=p.user_id if p else None,
            token_id=p.token_id if p else None,
        )
    except ValidationError as exc:
        return _message_page(message_id, reply_text=text, errors={"text": exc.message}), exc.status
    flash(f"Your answer to {sent.to} is on its way.")
    return redirect(url_for("admin.inbound_message", message_id=message_id))
