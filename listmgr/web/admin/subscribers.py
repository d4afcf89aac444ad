"""Subscribers: search, detail (profile, memberships, consent history, activity, deliveries),
add, edit, unsubscribe, erase, end old links."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

from flask import Response, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from listmgr.errors import ListmgrError, ValidationError
from listmgr.services import (
    campaign_subject,
    exports,
    fielddefs,
    notices,
    privacy,
    subscriptions,
)
from listmgr.services import lists as lists_service
from listmgr.services import subscribers as subscribers_service
from listmgr.services.subscriptions import Origin
from listmgr.web.admin import bp, ui
from listmgr.web.auth import principal, record, require
from listmgr.web.extensions import client_ip, current_runtime

STATUSES = ("confirmed", "pending", "unsubscribed", "bounced")
COUNT_AHEAD = 10_000


def origin(source: str = "admin") -> Origin:
    p = principal()
    return Origin(
        source=source,
        ip=client_ip(),
        actor=p.label if p else "admin",
        user_agent=request.headers.get("User-Agent", "")[:500],
    )


@bp.get("/subscribers")
@require("people:read")
def subscribers() -> ResponseReturnValue:
    """Search by email or name prefix (or exact email), filtered by list and status."""
    page = ui.page_number()
    q = (request.args.get("q") or "").strip()[:320]
    list_slug = (request.args.get("list") or "").strip() or None
    status = (request.args.get("status") or "").strip() or None
    if status and status not in STATUSES:
        raise ValidationError("status must be one of " + ", ".join(STATUSES), field="status")
    exact = "@" in q and " " not in q and not q.endswith("@")
    rt = current_runtime()
    fields = fielddefs.list_fields(rt)
    field, op, value = _field_filter(fields)
    rules = {"field": field, "op": op, "value": value} if field else None
    offset = (page - 1) * ui.PER_PAGE
    # Counting a million rows costs more than the page: count up to a bound past this page.
    bound = offset + COUNT_AHEAD
    items, total = subscribers_service.search(
        rt,
        email=q if exact else None,
        q=None if exact else (q or None),
        list_slug=list_slug,
        status=status,
        offset=offset,
        limit=ui.PER_PAGE,
        count_limit=bound,
        rules=rules,
    )
    if exact and not items and not list_slug and not status and not rules:
        # Not an exact address after all: fall back to the prefix search.
        items, total = subscribers_service.search(
            rt, q=q, offset=offset, limit=ui.PER_PAGE, count_limit=bound
        )
    return render_template(
        "pages/admin/subscribers.html",
        items=items,
        q=q,
        list_slug=list_slug or "",
        status=status or "",
        lists=lists_service.names(rt),
        statuses=STATUSES,
        fields=fields,
        field=field,
        op=op,
        value=request.args.get("value", ""),
        ops=FIELD_OPS,
        pager=ui.pager(
            min(total, bound),
            "admin.subscribers",
            page,
            q=q,
            list=list_slug,
            status=status,
            field=field,
            op=op if field else None,
            value=request.args.get("value") if field else None,
            more=total > bound,
        ),
        title="Subscribers",
    )


FIELD_OPS = {
    "contains": "contains",
    "eq": "is",
    "ne": "is not",
    "gt": "is more than",
    "lt": "is less than",
    "exists": "has a value",
}


def _field_filter(fields: list[Any]) -> tuple[str, str, Any]:
    """The field condition of the search form, typed for the field (errors name the field)."""
    field = (request.args.get("field") or "").strip()
    if not field:
        return "", "contains", ""
    op = request.args.get("op") or "contains"
    if op not in FIELD_OPS:
        raise ValidationError("choose how to compare the field", field="op")
    raw = (request.args.get("value") or "").strip()
    kinds = {f.key: f.type for f in fields}
    value: Any = raw
    if op == "exists":
        value = True
    elif kinds.get(field) == "number":
        try:
            value = float(raw) if "." in raw else int(raw)
        except ValueError:
            raise ValidationError(f"{field} holds numbers: give a number", field="value") from None
    elif kinds.get(field) == "boolean":
        value = raw.lower() in ("1", "true", "yes", "on")
    return field, op, value


def _detail_context(subscriber_id: int) -> dict[str, Any]:
    rt = current_runtime()
    sub = subscribers_service.get(rt, subscriber_id)
    history = privacy.history(rt, subscriber_id)
    return {
        "sub": sub,
        "lists": lists_service.all_lists(rt),
        "fields": fielddefs.list_fields(rt),
        "interests": fielddefs.list_interests(rt),
        "history": history,
        "subjects": campaign_subject.sample_subjects(
            rt, [d["campaign_id"] for d in history["deliveries"] if d["campaign_id"]]
        ),
    }


@bp.get("/subscribers/<int:subscriber_id>")
@require("people:read")
def subscriber_detail(subscriber_id: int) -> ResponseReturnValue:
    """Everything held about one person (the view is recorded in the audit log)."""
    ctx = _detail_context(subscriber_id)
    record("subscriber.view", "subscriber", subscriber_id)
    return render_template("pages/admin/subscriber.html", **ctx, errors={}, title=ctx["sub"].email)


@bp.get("/subscribers/<int:subscriber_id>/consent")
@require("people:read")
def subscriber_consent(subscriber_id: int) -> ResponseReturnValue:
    """The consent history as a printable proof of consent."""
    ctx = _detail_context(subscriber_id)
    record("subscriber.view", "subscriber", subscriber_id, page="proof of consent")
    return render_template(
        "pages/admin/consent_proof.html",
        **ctx,
        notices=notices.shown_to(current_runtime(), subscriber_id),
        title=f"Proof of consent: {ctx['sub'].email}",
    )


@bp.route("/subscribers/new", methods=["GET", "POST"])
@require("people:write")
def subscriber_new() -> ResponseReturnValue:
    """Add one person to lists, confirmed with a consent basis or pending (mailed)."""
    rt = current_runtime()
    values: dict[str, Any] = {"status": "pending", "lists": []}
    if request.method == "POST":
        values = {
            "email": ui.text("email"),
            "name": ui.text("name"),
            "lists": request.form.getlist("lists"),
            "status": ui.text("status", "pending"),
            "consent": ui.text("consent"),
        }
        try:
            sid = subscribers_service.create(rt, **values, origin=origin())
        except ListmgrError as exc:
            return render_template(
                "pages/admin/subscriber_new.html",
                values=values,
                lists=lists_service.all_lists(rt),
                errors={exc.field or "form": exc.message},
                title="Add subscriber",
            ), exc.status
        record(
            "subscriber.create", "subscriber", sid, status=values["status"], lists=values["lists"]
        )
        flash(
            "Subscriber added."
            + (" A confirmation mail is on its way." if values["status"] == "pending" else "")
        )
        return redirect(url_for("admin.subscriber_detail", subscriber_id=sid))
    return render_template(
        "pages/admin/subscriber_new.html",
        values=values,
        errors={},
        lists=lists_service.all_lists(rt),
        title="Add subscriber",
    )


def _posted_fields(rt: Any) -> dict[str, Any]:
    """Every field_* input as sent (the service checks each value and refuses unknown keys,
    as on every other write path); a defined field the form left out loses its value."""
    fields: dict[str, Any] = {f.key: None for f in fielddefs.list_fields(rt)}
    for name in request.form:
        if name.startswith("field_"):
            values = request.form.getlist(name)
            fields[name[6:]] = values if len(values) > 1 else values[0]
    return fields


@bp.post("/subscribers/<int:subscriber_id>/edit")
@require("people:write")
def subscriber_edit(subscriber_id: int) -> ResponseReturnValue:
    """Save name, field values, interests and consents (each change is a consent event)."""
    rt = current_runtime()
    try:
        subscribers_service.update(
            rt,
            subscriber_id,
            name=request.form.get("name", ""),
            fields=_posted_fields(rt),
            interests=request.form.getlist("interests"),
            consents={
                "profiling": ui.checked("consent_profiling"),
                "tracking": ui.checked("consent_tracking"),
            },
            wording="changed by an admin",
            origin=origin(),
        )
    except ListmgrError as exc:
        ctx = _detail_context(subscriber_id)
        return render_template(
            "pages/admin/subscriber.html",
            **ctx,
            errors={exc.field or "form": exc.message},
            title=ctx["sub"].email,
        ), exc.status
    flash("Subscriber saved.")
    return redirect(url_for("admin.subscriber_detail", subscriber_id=subscriber_id))


@bp.route("/subscribers/<int:subscriber_id>/erase", methods=["GET", "POST"])
@require("people:erase")
def subscriber_erase(subscriber_id: int) -> ResponseReturnValue:
    """Erase a person after typed confirmation; only a keyed hash stays on the suppression list."""
    rt = current_runtime()
    sub = subscribers_service.get(rt, subscriber_id)
    if request.method == "GET" or ui.text("confirm_email").lower() != sub.email:
        error = (
            None
            if request.method == "GET"
            else "Type the subscriber's email address exactly to confirm the erasure."
        )
        return render_template(
            "pages/admin/subscriber_erase.html", sub=sub, error=error, title=f"Erase {sub.email}"
        ), 200 if error is None else 422
    privacy.erase_subscriber(rt, subscriber_id, origin=origin())
    flash(
        "The subscriber's personal data was erased. A keyed hash of the address stays on "
        "the suppression list."
    )
    return redirect(url_for("admin.subscribers"))


@bp.get("/subscribers/<int:subscriber_id>/export")
@require("people:export")
def subscriber_export(subscriber_id: int) -> ResponseReturnValue:
    """Download everything held about one person as JSON (recorded in the audit log)."""
    p = principal()
    data = privacy.export_subscriber(
        current_runtime(), subscriber_id, actor=p.label if p else "", ip=client_ip()
    )
    resp = jsonify(data)
    resp.headers["Content-Disposition"] = f'attachment; filename="subscriber-{subscriber_id}.json"'
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.post("/subscribers/<int:subscriber_id>/unsubscribe")
@require("people:write")
def subscriber_unsubscribe(subscriber_id: int) -> ResponseReturnValue:
    """Unsubscribe from one list, or from everything (which also suppresses the address)."""
    slug = ui.text("list") or None
    changed = subscriptions.unsubscribe_by_id(
        current_runtime(), subscriber_id, list_slug=slug, origin=origin()
    )
    record("subscriber.unsubscribe", "subscriber", subscriber_id, list=slug or "all")
    flash(
        (
            "Unsubscribed from everything and suppressed."
            if slug is None
            else f"Unsubscribed from {slug}."
        )
        if changed or slug is None
        else "Nothing changed."
    )
    return redirect(url_for("admin.subscriber_detail", subscriber_id=subscriber_id))


@bp.post("/subscribers/<int:subscriber_id>/forget-links")
@require("people:write")
def subscriber_forget_links(subscriber_id: int) -> ResponseReturnValue:
    """End every earlier preference and data link of the person (e.g. a forwarded mail)."""
    from listmgr.services import access_links

    notify = ui.checked("notify")
    access_links.forget_links_of(current_runtime(), subscriber_id, origin=origin(), notify=notify)
    flash(
        "Every earlier link to this person's preferences stopped working."
        + (" A new link is on its way to them." if notify else "")
    )
    return redirect(url_for("admin.subscriber_detail", subscriber_id=subscriber_id))


# -- bulk actions on the people ticked in the search results -------------------------------------
ALL_LISTS = "*"  # the "unsubscribe from" choice meaning every list (never a slug)


def _chosen() -> list[str]:
    return request.form.getlist("ids")


def _back_to_search() -> ResponseReturnValue:
    """Back to the search the action was started from (its query string, rebuilt)."""
    query = urlencode(parse_qsl(request.form.get("back", ""))[:20])
    return redirect(url_for("admin.subscribers") + ("?" + query if query else ""))


@bp.post("/subscribers/bulk/add")
@require("people:write")
def subscribers_add_to_list() -> ResponseReturnValue:
    """Put the chosen people on a list, confirmed (consent basis) or asked to confirm by mail."""
    slug, status = ui.text("to_list"), ui.text("status", "confirmed")
    done = subscriptions.add_to_list(
        current_runtime(),
        _chosen(),
        list_slug=slug,
        status=status,
        consent=ui.text("consent"),
        origin=origin(),
    )
    record(
        "subscribers.add_to_list",
        "list",
        slug,
        status=status,
        chosen=done.chosen,
        added=done.changed,
        ids=subscriptions.selection(_chosen())[:1000],
    )
    flash(
        f"Added {done.changed} of {done.chosen} to {slug}"
        + (" (a confirmation link is on its way to each)" if status == "pending" else "")
        + "."
        + (f" {done.unchanged} were already on it." if done.unchanged else "")
        + (
            f" {done.skipped} were not added back: they are on the suppression list or left "
            "the list before (only their own sign-up can bring them back)."
            if done.skipped
            else ""
        )
    )
    return _back_to_search()


@bp.post("/subscribers/bulk/unsubscribe")
@require("people:write")
def subscribers_unsubscribe() -> ResponseReturnValue:
    """Unsubscribe the chosen people from one list, or from every list (and suppress them)."""
    choice = ui.text("from_list")
    if not choice:
        raise ValidationError("Choose the list to unsubscribe them from.", field="from_list")
    slug = None if choice == ALL_LISTS else choice
    done = subscriptions.unsubscribe_many(
        current_runtime(), _chosen(), list_slug=slug, origin=origin()
    )
    record(
        "subscribers.unsubscribe",
        "list",
        slug or "all",
        chosen=done.chosen,
        changed=done.changed,
        ids=subscriptions.selection(_chosen())[:1000],
    )
    where = "every list (their addresses are now suppressed)" if slug is None else slug
    flash(
        f"Unsubscribed {done.changed} of {done.chosen} from {where}."
        + (f" {done.unchanged} were not on it." if done.unchanged and slug else "")
    )
    return _back_to_search()


@bp.post("/subscribers/bulk/export")
@require("people:export")
def subscribers_export() -> ResponseReturnValue:
    """Download the chosen people as CSV (their lists in one column; audited once)."""
    p = principal()
    rt = current_runtime()
    prepared = exports.prepare_people(rt, _chosen(), actor=p.label if p else "", ip=client_ip())
    return Response(
        exports.rows(rt, prepared),
        mimetype="text/csv",
        headers={
            "Content-Disposition": 'attachment; filename="subscribers.csv"',
            "Cache-Control": "no-store",
        },
    )
