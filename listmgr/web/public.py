"""Public pages: subscribe, confirm, one-click unsubscribe, preferences, health."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, render_template, request
from sqlalchemy import select, text

from listmgr.errors import TokenReplaced, ValidationError
from listmgr.models import FieldDef, Interest
from listmgr.services import people, subscriptions, unsubscribe_requests
from listmgr.services.subscriptions import Origin
from listmgr.web import limits
from listmgr.web.extensions import client_ip, csrf, current_runtime, limiter

bp = Blueprint("public", __name__)
csrf.exempt(bp)  # public forms are embedded on other sites; tokens in URLs authenticate
HONEYPOT = "website"
THANKS = (
    "Thank you! If this address can receive our mail, a message is on its way. "
    "Please open it and confirm your subscription."
)


def origin(source: str) -> Origin:
    return Origin(
        source=source, ip=client_ip(), user_agent=request.headers.get("User-Agent", "")[:500]
    )


def _payload() -> dict[str, Any]:
    if request.is_json:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise ValidationError("The body must be a JSON object.")
        return data
    form: dict[str, Any] = {k: v for k, v in request.form.items()}
    form["interests"] = request.form.getlist("interests")
    for key in list(request.form):
        if key.startswith("field_"):
            values = request.form.getlist(key)
            form.setdefault("fields", {})[key[6:]] = values if len(values) > 1 else values[0]
    return form


def _address_key() -> str:
    """Rate-limit key per address (lower-cased as typed; enough to stop a flood)."""
    try:
        data = _payload()
    except ValidationError:
        return "invalid"
    value = data.get("email")
    return "addr:" + (value.strip().lower()[:320] if isinstance(value, str) else "none")


def _list_form(slug: str) -> dict[str, Any]:
    rt = current_runtime()
    with rt.db.session() as s:
        lst = subscriptions.get_list(s, slug)
        # in the order the list chose them
        fields = sorted(
            s.scalars(select(FieldDef).where(FieldDef.key.in_(lst.form_fields or []))),
            key=lambda f: lst.form_fields.index(f.key),
        )
        interests = sorted(
            s.scalars(select(Interest).where(Interest.key.in_(lst.form_interests or []))),
            key=lambda i: lst.form_interests.index(i.key),
        )
        return {"lst": lst, "fields": fields, "interests": interests}


@bp.get("/subscribe/<slug>")
def subscribe_form(slug: str):  # type: ignore[no-untyped-def]
    return render_template("pages/public/subscribe.html", **_list_form(slug), errors={}, values={})


@bp.get("/subscribe/<slug>/embed")
def embed_form(slug: str):  # type: ignore[no-untyped-def]
    """The plain-HTML form to paste into another site (no JavaScript)."""
    html = render_template("pages/public/embed.html", **_list_form(slug))
    return Response(html, mimetype="text/plain")


@bp.route("/subscribe/<slug>", methods=["OPTIONS"])
def subscribe_preflight(slug: str) -> Response:
    resp = Response(status=204)
    resp.headers["Access-Control-Allow-Origin"] = "*"
    resp.headers["Access-Control-Allow-Methods"] = "POST"
    resp.headers["Access-Control-Allow-Headers"] = "Content-Type"
    return resp


@bp.post("/subscribe/<slug>")
@limiter.limit(lambda: current_runtime().settings.subscribe_rate_limit_ip)
@limiter.limit(lambda: current_runtime().settings.subscribe_rate_limit_email, key_func=_address_key)
def subscribe(slug: str):  # type: ignore[no-untyped-def]
    data = _payload()
    as_json = request.is_json
    if data.get(HONEYPOT):
        raise ValidationError(
            "Your sign-up could not be accepted: a field meant to stay empty "
            "was filled in. Please leave it empty and try again.",
            field=HONEYPOT,
            code="honeypot",
        )
    try:
        subscriptions.subscribe(
            current_runtime(),
            list_slug=slug,
            email=data.get("email"),
            name=data.get("name"),
            wording=str(data.get("consent_text") or "")[:2000],
            origin=origin("api" if as_json else ("embed" if request.form.get("embed") else "form")),
            fields=data.get("fields") or None,
            interests=data.get("interests") or None,
        )
    except ValidationError as exc:
        if as_json:
            raise
        ctx = _list_form(slug)
        return render_template(
            "pages/public/subscribe.html",
            **ctx,
            errors={exc.field or "form": exc.message},
            values=data,
        ), 422
    if as_json:
        resp = jsonify(status="ok", message=THANKS)
        resp.headers["Access-Control-Allow-Origin"] = "*"
        return resp, 202
    return render_template("pages/public/message.html", title="Almost done", message=THANKS)


@bp.get("/confirm/<token>")
@limits.token_link()
def confirm_page(token: str):  # type: ignore[no-untyped-def]
    view = subscriptions.confirm_view(current_runtime(), token)
    return render_template("pages/public/confirm.html", view=view, token=token)


@bp.post("/confirm/<token>")
@limits.token_link()
def confirm(token: str):  # type: ignore[no-untyped-def]
    view = subscriptions.confirm(current_runtime(), token, origin=origin("confirm-link"))
    return render_template(
        "pages/public/message.html",
        title="Subscription confirmed",
        message=f"Thank you! You are now subscribed to {view.list_name}.",
    )


@bp.post("/confirm/<token>/resend")
@limiter.limit("10/hour")
def confirm_resend(token: str):  # type: ignore[no-untyped-def]
    subscriptions.resend_confirmation(current_runtime(), token)
    return render_template(
        "pages/public/message.html",
        title="New link on its way",
        message="If the subscription is still waiting for confirmation, a new link is on its way.",
    )


@bp.get("/u/<token>")
@limits.token_link()
def unsubscribe_page(token: str):  # type: ignore[no-untyped-def]
    view = subscriptions.unsubscribe_view(current_runtime(), token)
    return render_template("pages/public/unsubscribe.html", view=view, token=token)


@bp.post("/u/<token>")
@limits.token_link(one_click=True)
def unsubscribe(token: str):  # type: ignore[no-untyped-def]
    """RFC 8058 one-click: no cookie, no CSRF token, no redirect; 200 and idempotent."""
    everything = request.form.get("all") in ("1", "on", "true")
    source = "one-click" if request.form.get("List-Unsubscribe") == "One-Click" else "page"
    view = subscriptions.unsubscribe(
        current_runtime(), token, everything=everything, origin=origin(source)
    )
    return render_template("pages/public/unsubscribed.html", view=view, everything=everything)


@bp.get("/u/request/<token>")
@limits.token_link()
def unsubscribe_request_page(token: str):  # type: ignore[no-untyped-def]
    """Confirm an unsubscribe request that came by e-mail; GET changes nothing (scanners)."""
    view = unsubscribe_requests.view(current_runtime(), token)
    return render_template("pages/public/unsubscribe_request.html", view=view, token=token)


@bp.post("/u/request/<token>")
@limits.token_link()
def unsubscribe_request(token: str):  # type: ignore[no-untyped-def]
    """The person confirms: unsubscribed from all lists at once; repeating it is harmless."""
    view = unsubscribe_requests.confirm(current_runtime(), token, origin=origin("reply-confirmed"))
    return render_template("pages/public/unsubscribe_request.html", view=view, token=token)


@bp.get("/p/<token>")
@limits.token_link()
def preferences(token: str):  # type: ignore[no-untyped-def]
    prefs = subscriptions.preferences(current_runtime(), token)
    return render_template("pages/public/preferences.html", prefs=prefs, token=token, saved=False)


@bp.post("/p/<token>")
@limits.token_link()
def preferences_save(token: str):  # type: ignore[no-untyped-def]
    rt = current_runtime()
    if request.form.get("action") == "unsubscribe_all":
        subscriptions.unsubscribe_all(rt, token, origin=origin("preferences"))
        try:
            prefs = subscriptions.preferences(rt, token)
        except TokenReplaced:  # an old link may still leave, but shows nothing
            return render_template(
                "pages/public/message.html",
                title="You are unsubscribed",
                message="You will get no more mail from any of our lists.",
            )
        return render_template(
            "pages/public/preferences.html", prefs=prefs, token=token, saved=True
        )
    levels = {k[6:]: v for k, v in request.form.items() if k.startswith("level_")}
    # The profile first: it checks the whole form, so a bad value changes nothing.
    _save_profile(rt, token)
    subscriptions.update_lists(
        rt, token, wanted=request.form.getlist("lists"), levels=levels, origin=origin("preferences")
    )
    prefs = subscriptions.preferences(rt, token)
    return render_template("pages/public/preferences.html", prefs=prefs, token=token, saved=True)


def _save_profile(rt, token: str) -> None:  # type: ignore[no-untyped-def]
    """Fields, interests, pause and consents from the preference form."""
    people.update_from_preferences(rt, token, request.form, origin=origin("preferences"))


@bp.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    with current_runtime().db.session() as s:
        s.execute(text("SELECT 1"))
    return jsonify(status="ok")


# Export, erase and "forget my old links" live beside these pages, on the same blueprint.
from listmgr.web import data_rights  # noqa: E402,F401
