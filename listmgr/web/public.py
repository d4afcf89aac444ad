"""Public pages: subscribe, confirm, one-click unsubscribe, preferences, health."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, render_template, request, url_for
from flask.typing import ResponseReturnValue

from listmgr import notice
from listmgr.errors import TokenReplaced, ValidationError
from listmgr.services import (
    health,
    lists,
    notices,
    repermission,
    subscriptions,
    unsubscribe_requests,
    unsubscribe_undo,
)
from listmgr.web import limits, preference_form
from listmgr.web.extensions import (
    csrf,
    current_runtime,
    limiter,
    settings_in_force,
    visitor_origin,
)

bp = Blueprint("public", __name__)
csrf.exempt(bp)  # public forms are embedded on other sites; tokens in URLs authenticate
HONEYPOT = "website"
THANKS = (
    "Thank you! If this address can receive our mail, a message is on its way. "
    "Please open it and confirm your subscription."
)


def _payload() -> dict[str, Any]:
    if request.is_json:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise ValidationError("The body must be a JSON object.")
        return data
    form: dict[str, Any] = {k: v for k, v in request.form.items()}
    form["interests"] = request.form.getlist("interests")
    if request.form.get("consent_tracking"):  # the box, unticked unless the person ticks it
        form["consents"] = {"tracking": True}
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


def _short_notice(slug: str, list_name: str) -> dict[str, Any]:
    """The layered notice under a form: its lines and the full notice's address."""
    return {
        "notice_lines": notice.summary(settings_in_force(), list_name),
        "notice_url": url_for("public.privacy_notice", slug=slug, _external=False),
    }


def _list_form(slug: str) -> dict[str, Any]:
    form = lists.signup_form(current_runtime(), slug)
    return {
        "lst": form.lst,
        "fields": form.fields,
        "interests": form.interests,
        # asked only while tracking is on: a box that changes nothing would mislead
        "tracking_box": subscriptions.SIGNUP_WORDING["tracking"]
        if settings_in_force().tracking
        else "",
        **_short_notice(form.lst.slug, form.lst.name),
    }


@bp.get("/subscribe/<slug>")
def subscribe_form(slug: str) -> ResponseReturnValue:
    return render_template("pages/public/subscribe.html", **_list_form(slug), errors={}, values={})


def embed_html(slug: str) -> str:
    """The plain-HTML form to paste into another site (no JavaScript)."""
    return render_template("pages/public/embed.html", **_list_form(slug))


@bp.get("/subscribe/<slug>/embed")
def embed_form(slug: str) -> ResponseReturnValue:
    return Response(embed_html(slug), mimetype="text/plain")


@bp.route("/subscribe/<slug>", methods=["OPTIONS"])
def subscribe_preflight(slug: str) -> Response:
    resp = Response(status=204)
    resp.headers["Access-Control-Allow-Origin"] = "*"
    resp.headers["Access-Control-Allow-Methods"] = "POST"
    resp.headers["Access-Control-Allow-Headers"] = "Content-Type"
    return resp


@bp.post("/subscribe/<slug>")
@limiter.limit(lambda: settings_in_force().subscribe_rate_limit_ip)
@limiter.limit(lambda: settings_in_force().subscribe_rate_limit_email, key_func=_address_key)
def subscribe(slug: str) -> ResponseReturnValue:
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
            origin=visitor_origin(
                "api" if as_json else ("embed" if request.form.get("embed") else "form")
            ),
            fields=data.get("fields") or None,
            interests=data.get("interests") or None,
            settings=settings_in_force(),
            consents=data.get("consents"),
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
def confirm_page(token: str) -> ResponseReturnValue:
    view = subscriptions.confirm_view(current_runtime(), token)
    return render_template(
        "pages/public/confirm.html",
        view=view,
        token=token,
        **_short_notice(view.list_slug, view.list_name),
    )


@bp.post("/confirm/<token>")
@limits.token_link()
def confirm(token: str) -> ResponseReturnValue:
    view = subscriptions.confirm(
        current_runtime(),
        token,
        origin=visitor_origin("confirm-link"),
        settings=settings_in_force(),
    )
    return render_template(
        "pages/public/message.html",
        title="Subscription confirmed",
        message=f"Thank you! You are now subscribed to {view.list_name}.",
    )


@bp.post("/confirm/<token>/resend")
@limiter.limit("10/hour")
def confirm_resend(token: str) -> ResponseReturnValue:
    subscriptions.resend_confirmation(current_runtime(), token)
    return render_template(
        "pages/public/message.html",
        title="New link on its way",
        message="If the subscription is still waiting for confirmation, a new link is on its way.",
    )


@bp.get("/u/<token>")
@limits.token_link()
def unsubscribe_page(token: str) -> ResponseReturnValue:
    view = subscriptions.unsubscribe_view(current_runtime(), token)
    return render_template("pages/public/unsubscribe.html", view=view, token=token)


@bp.post("/u/<token>")
@limits.token_link(one_click=True)
def unsubscribe(token: str) -> ResponseReturnValue:
    """RFC 8058 one-click: no cookie, no CSRF token, no redirect; 200 and idempotent."""
    everything = request.form.get("all") in ("1", "on", "true")
    source = "one-click" if request.form.get("List-Unsubscribe") == "One-Click" else "page"
    # The undo is for the person on the page; a mail client's one-click post gets none.
    view = subscriptions.unsubscribe(
        current_runtime(),
        token,
        everything=everything,
        origin=visitor_origin(source),
        undo=source == "page",
    )
    return render_template(
        "pages/public/unsubscribed.html",
        view=view,
        everything=everything,
        undo=view.undo_token,
        undo_minutes=current_runtime().settings.unsubscribe_undo_minutes,
    )


@bp.post("/u/undo/<token>")
@limits.token_link()
def unsubscribe_undo_post(token: str) -> ResponseReturnValue:
    """The undo form of the page shown after unsubscribing (a short while only)."""
    names = unsubscribe_undo.undo(current_runtime(), token, origin=visitor_origin("undo"))
    return render_template(
        "pages/public/message.html",
        title="You are subscribed again",
        message="Welcome back: you get " + ", ".join(names) + " again, as before.",
    )


@bp.get("/u/request/<token>")
@limits.token_link()
def unsubscribe_request_page(token: str) -> ResponseReturnValue:
    """Confirm an unsubscribe request that came by e-mail; GET changes nothing (scanners)."""
    view = unsubscribe_requests.view(current_runtime(), token)
    return render_template("pages/public/unsubscribe_request.html", view=view, token=token)


@bp.post("/u/request/<token>")
@limits.token_link()
def unsubscribe_request(token: str) -> ResponseReturnValue:
    """The person confirms: unsubscribed from all lists at once; repeating it is harmless."""
    view = unsubscribe_requests.confirm(
        current_runtime(), token, origin=visitor_origin("reply-confirmed")
    )
    return render_template("pages/public/unsubscribe_request.html", view=view, token=token)


@bp.get("/keep/<token>")
@limits.token_link()
def keep_page(token: str) -> ResponseReturnValue:
    """A re-permission request's "keep me subscribed"; GET changes nothing (scanners)."""
    view = repermission.view(current_runtime(), token)
    return render_template("pages/public/keep.html", view=view, token=token)


@bp.post("/keep/<token>")
@limits.token_link()
def keep(token: str) -> ResponseReturnValue:
    """The person confirms they still want the mail; repeating it is harmless."""
    view = repermission.keep(current_runtime(), token, origin=visitor_origin("repermission"))
    return render_template("pages/public/keep.html", view=view, token=token)


@bp.get("/p/<token>")
@limits.token_link()
def preferences(token: str) -> ResponseReturnValue:
    prefs = subscriptions.preferences(current_runtime(), token)
    return render_template("pages/public/preferences.html", prefs=prefs, token=token, saved=False)


@bp.post("/p/<token>")
@limits.token_link()
def preferences_save(token: str) -> ResponseReturnValue:
    rt = current_runtime()
    if request.form.get("action") == "unsubscribe_all":
        undo = subscriptions.unsubscribe_all(rt, token, origin=visitor_origin("preferences"))
        try:
            prefs = subscriptions.preferences(rt, token)
        except TokenReplaced:  # an old link may still leave, but shows nothing
            return render_template(
                "pages/public/message.html",
                title="You are unsubscribed",
                message="You will get no more mail from any of our lists.",
            )
        return render_template(
            "pages/public/preferences.html",
            prefs=prefs,
            token=token,
            saved=True,
            undo=undo,
            undo_minutes=rt.settings.unsubscribe_undo_minutes,
        )
    answers = preference_form.read(request.form)
    if answers.profile is not None:
        # The profile first: it checks the whole form, so a bad value changes nothing.
        subscriptions.update_profile(
            rt,
            token,
            name=answers.profile.name,
            fields=answers.profile.fields,
            interests=answers.profile.interests,
            pause=answers.profile.pause,
            consents=answers.profile.consents,
            lists=answers.lists,
            levels=answers.levels,
            origin=visitor_origin("preferences"),
        )
    subscriptions.update_lists(
        rt, token, wanted=answers.lists, levels=answers.levels, origin=visitor_origin("preferences")
    )
    prefs = subscriptions.preferences(rt, token)
    return render_template("pages/public/preferences.html", prefs=prefs, token=token, saved=True)


@bp.get("/privacy/<slug>")
def privacy_notice(slug: str) -> ResponseReturnValue:
    shown = notices.published(current_runtime(), settings_in_force(), slug)
    return render_template("pages/public/privacy.html", shown=shown)


@bp.get("/privacy/<slug>.json")
def privacy_notice_json(slug: str) -> ResponseReturnValue:
    shown = notices.published(current_runtime(), settings_in_force(), slug)
    return jsonify(shown.as_json())


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    health.check(current_runtime())
    return jsonify(status="ok")
