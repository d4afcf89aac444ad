"""Public pages for a person's data: download, erase, correct the address, and "forget my old
links".

A preference link (/p/TOKEN) only asks for a fresh link here; the mailed single-use link
(the same paths with its own token) shows a button, and only the button's POST spends it, so
link scanners that fetch mail links spend nothing."""

from __future__ import annotations

import base64
import json
from typing import Any

from flask import Blueprint, jsonify, make_response, render_template, request
from flask.typing import ResponseReturnValue

from listmgr.services import access_links, address_change, campaign_subject, fielddefs, privacy
from listmgr.web import limits
from listmgr.web.extensions import csrf, current_runtime, visitor_origin

bp = Blueprint("data_rights", __name__)
csrf.exempt(bp)  # the signed token in the URL authenticates, as on the other public pages

SENT = (
    "If this address can receive our mail, a link is on its way to it. It works once, "
    "for {minutes} minutes. If you asked a few minutes ago, please use the link you "
    "already received."
)


def _access(token: str, action: str) -> tuple[Any, access_links.Access]:
    """For a preference link, the page that offers (GET) or mails (POST) a fresh link, the
    same answer whether or not a mail goes out; for a fresh link, nothing yet."""
    rt = current_runtime()
    access = access_links.inspect(rt, token)
    if access.fresh:
        return None, access
    minutes = rt.settings.data_link_max_age_minutes
    if request.method == "POST":
        access_links.request_data_link(rt, token, origin=visitor_origin("preferences"))
        return render_template(
            "pages/public/message.html",
            title="Check your mailbox",
            message=SENT.format(minutes=minutes),
        ), access
    return render_template(
        "pages/public/data_request.html",
        token=token,
        action=action,
        email=access.email,
        minutes=minutes,
    ), access


@bp.route("/p/<token>/export", methods=["GET", "POST"])
@limits.token_link()
def export_data(token: str) -> ResponseReturnValue:
    page, _ = _access(token, "export")
    if page is not None:
        return page
    if request.method == "GET":
        return render_template("pages/public/data_export.html", token=token)
    rt = current_runtime()
    data = privacy.export_by_token(rt, token, origin=visitor_origin("data-link"))
    if request.form.get("format") == "page":
        # The link is spent: the page carries the file too, so both come from one use.
        resp = make_response(
            render_template(
                "pages/public/data_report.html",
                data=data,
                labels={f.key: f.label for f in fielddefs.list_fields(rt)},
                # as a sample reader gets them (rendering each person's own is not kept)
                subjects=campaign_subject.sample_subjects(
                    rt, [d["campaign_id"] for d in data["deliveries"] if d["campaign_id"]]
                ),
                json_b64=base64.b64encode(json.dumps(data, indent=2).encode()).decode(),
            )
        )
        resp.headers["Cache-Control"] = "no-store"
        return resp
    resp = jsonify(data)
    resp.headers["Content-Disposition"] = 'attachment; filename="my-data.json"'
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.route("/p/<token>/erase", methods=["GET", "POST"])
@limits.token_link()
def erase(token: str) -> ResponseReturnValue:
    page, access = _access(token, "erase")
    if page is not None:
        return page
    if request.method == "GET" or request.form.get("confirm") != "yes":
        return render_template("pages/public/erase.html", token=token, email=access.email)
    privacy.erase_by_token(current_runtime(), token, origin=visitor_origin("data-link"))
    return render_template(
        "pages/public/message.html",
        title="Your data has been erased",
        message="Everything we held about you has been deleted. We keep "
        "only a one-way fingerprint of your address so that we never "
        "add it back by mistake.",
    )


@bp.post("/p/<token>/forget")
@limits.token_link()
def forget_links(token: str) -> ResponseReturnValue:
    """End every older link; the new one is mailed to the address, never shown here."""
    access_links.forget_links(current_runtime(), token, origin=visitor_origin("preferences"))
    return render_template(
        "pages/public/message.html",
        title="Your old links are forgotten",
        message="Every earlier link to your preferences has stopped working, "
        "this one too. A new link is on its way to your address. "
        "Unsubscribe links in older emails still unsubscribe you.",
    )


@bp.post("/p/<token>/address")
@limits.token_link()
def change_address(token: str) -> ResponseReturnValue:
    """Ask to move to a new address: a link goes to it (the same answer whatever happens)."""
    address_change.request_change(
        current_runtime(), token, request.form.get("email"), origin=visitor_origin("preferences")
    )
    return render_template(
        "pages/public/message.html",
        title="Check the new mailbox",
        message="If this address can receive our mail, a link is on its way to it. Your "
        "address changes only when that link is used; until then nothing changes.",
    )


@bp.get("/address/<token>")
@limits.token_link()
def address_page(token: str) -> ResponseReturnValue:
    view = address_change.view(current_runtime(), token)
    return render_template("pages/public/address.html", view=view, token=token)


@bp.post("/address/<token>")
@limits.token_link()
def address_confirm(token: str) -> ResponseReturnValue:
    view = address_change.confirm_change(
        current_runtime(), token, origin=visitor_origin("address-link")
    )
    return render_template(
        "pages/public/message.html",
        title="Your address is changed",
        message=f"Your subscriptions now go to {view.new_email}. We let your old address know.",
    )
