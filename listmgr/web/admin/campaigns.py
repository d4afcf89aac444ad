"""Campaigns: compose with a live preview as a chosen subscriber and the campaign checklist,
test-send, pick the audience, schedule (in a chosen time zone) or send, copy, delete a draft, follow the progress, read the
stats."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from markupsafe import escape

from listmgr import zonetimes
from listmgr.errors import Blocked, ListmgrError, NotFound, ValidationError
from listmgr.services import abtests as ab_rules
from listmgr.services import (
    campaign_checklist,
    campaign_subject,
    campaign_templates,
    dashboard,
    segments,
)
from listmgr.services import campaigns as campaigns_service
from listmgr.services import lists as lists_service
from listmgr.web import limits
from listmgr.web.admin import abtests, bp, charts, ui
from listmgr.web.auth import (
    may,
    personal,
    principal,
    require,
    shown_count,
    shown_stats,
    withholds,
)
from listmgr.web.extensions import current_runtime
from listmgr.web.mailview import SANDBOX_CSP

STARTER = """<h1>Hello {{ subscriber.name or "there" }},</h1>
<p>Write your message here. Personalize it with {{ subscriber.fields.city | default("") }}.</p>
"""
FINAL = ("sent", "cancelled")
TEXT_FIELDS = (
    "name",
    "subject",
    "preheader",
    "from_name",
    "from_email",
    "reply_to",
    "body",
    "text",
    "content_format",
)


def _actor() -> str:
    p = principal()
    return p.label if p else "admin"


def _segments() -> list[Any]:
    return segments.all_segments(current_runtime(), limit=500)[0]


def _values() -> dict[str, Any]:
    values: dict[str, Any] = {k: request.form.get(k, "") for k in TEXT_FIELDS}
    values["content_format"] = values["content_format"] or "html"
    values["lists"] = request.form.getlist("lists")
    raw = request.form.get("segment_id", "")
    try:
        values["segment_id"] = int(raw) if raw else None
    except ValueError:
        raise ValidationError("choose a segment from the list", field="segment_id") from None
    values["ab_test"] = abtests.from_form()
    return values


def _compose(
    info: Any,
    values: dict[str, Any],
    *,
    errors: dict[str, str] | None = None,
    status: int = 200,
    preview: Any = None,
    who: str = "",
    entered: dict[str, str] | None = None,
) -> ResponseReturnValue:
    rt = current_runtime()
    audience = subject = checklist = None
    if info is not None:
        try:
            audience = shown_count(campaigns_service.audience(rt, info.id))
        except ListmgrError:
            audience = None
        try:
            checklist = campaign_checklist.for_campaign(rt, info.id)
        except ListmgrError:
            checklist = None  # the preview says why the message cannot be built
        subject = campaign_subject.sample_subjects(rt, [info.id])[info.id]
    return render_template(
        "pages/admin/campaign_compose.html",
        campaign=info,
        values=values,
        errors=errors or {},
        lists=lists_service.all_lists(rt),
        segments=_segments(),
        audience=audience,
        checklist=checklist,
        ab=abtests.panel(values),
        preview=preview,
        who=who,
        subject=subject,
        schedule=_schedule_form(info, entered) if info is not None else None,
        zones=zonetimes.zones(),
        title=info.name if info else "New campaign",
    ), status


def _starting_point() -> dict[str, Any]:
    """The body a new draft starts with: a saved template's (?template=ID), a shipped design's
    (?design=KEY), or the starter."""
    raw = request.args.get("template", "")
    if raw:
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 10:
            raise NotFound("there is no such template")
        t = campaign_templates.get(current_runtime(), int(raw))
        return {"body": t.body, "content_format": t.content_format}
    if request.args.get("design"):
        d = campaign_templates.design(request.args["design"])
        return {"body": d.body, "content_format": d.content_format}
    return {"body": STARTER, "content_format": "html"}


def _schedule_form(info: Any, entered: dict[str, str] | None) -> dict[str, Any]:
    """The schedule form: what was typed (kept after an error), else the time in its zone."""
    zone = info.schedule_timezone or zonetimes.DEFAULT_ZONE
    shown = zonetimes.shown(info.scheduled_at_utc, zone) if info.scheduled_at else None
    if entered is not None:
        return {
            "at": entered["at"],
            "timezone": entered["timezone"] if entered["timezone"] in zonetimes.zones() else zone,
            "zone_chosen": True,
            "shown": shown,
        }
    return {
        "at": shown.input_value if shown else "",
        "timezone": zone,
        "zone_chosen": bool(info.schedule_timezone),
        "shown": shown,
    }


@bp.get("/campaigns")
@require("campaigns:read")
def campaigns() -> ResponseReturnValue:
    """Every campaign, newest first, with its progress."""
    page = ui.page_number()
    status = request.args.get("status") or None
    items, total = campaigns_service.all_campaigns(
        current_runtime(), status=status, offset=(page - 1) * ui.PER_PAGE, limit=ui.PER_PAGE
    )
    return render_template(
        "pages/admin/campaigns.html",
        items=items,
        status=status or "",
        withheld={c.id for c in items if withholds(c.stats["audience"])},
        fewer_than=current_runtime().settings.aggregate_min_count,
        subjects=campaign_subject.sample_subjects(current_runtime(), [c.id for c in items]),
        pager=ui.pager(total, "admin.campaigns", page, status=status),
        title="Campaigns",
    )


@bp.route("/campaigns/new", methods=["GET", "POST"])
@require("campaigns:write")
def campaign_new() -> ResponseReturnValue:
    """Start a draft."""
    if request.method == "GET":
        return _compose(None, {**_starting_point(), "lists": []})
    try:
        values = _values()
        cid = campaigns_service.create(current_runtime(), actor=_actor(), **values)
    except ListmgrError as exc:
        return _compose(
            None,
            {**request.form.to_dict(), "lists": request.form.getlist("lists")},
            errors={exc.field or "form": exc.message},
            status=exc.status,
        )
    flash("Draft saved. Preview it, send yourself a test, then send or schedule it.")
    return redirect(url_for("admin.campaign_detail", campaign_id=cid))


@bp.get("/campaigns/<int:campaign_id>")
@require("campaigns:read")
def campaign_detail(campaign_id: int) -> ResponseReturnValue:
    """A draft opens in the composer; anything else on its progress and stats page."""
    from listmgr.permissions import allowed

    info = campaigns_service.get(current_runtime(), campaign_id)
    p = principal()
    if info.status not in ("draft", "scheduled") or not (p and allowed(p.role, "campaigns:write")):
        return redirect(url_for("admin.campaign_stats", campaign_id=campaign_id))
    return _saved(info, (request.args.get("as") or "").strip())


def _saved(
    info: Any,
    who: str,
    *,
    errors: dict[str, str] | None = None,
    entered: dict[str, str] | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    """The composer with the campaign as saved, previewed as `who`."""
    try:
        preview = campaigns_service.preview(current_runtime(), info.id, email=who or None)
        problems = dict(errors or {})
    except ListmgrError as exc:
        preview, problems = None, {"preview": exc.message, **(errors or {})}
    return _compose(
        info,
        {**info.__dict__, "lists": info.lists},
        preview=preview,
        who=who,
        errors=problems,
        entered=entered,
        status=status,
    )


@bp.post("/campaigns/<int:campaign_id>")
@require("campaigns:write")
def campaign_save(campaign_id: int) -> ResponseReturnValue:
    """Save the draft (every template is checked now, never at send time)."""
    rt = current_runtime()
    try:
        values = _values()
        campaigns_service.update(rt, campaign_id, actor=_actor(), **values)
    except ListmgrError as exc:
        info = campaigns_service.get(rt, campaign_id)
        return _compose(
            info,
            {**request.form.to_dict(), "lists": request.form.getlist("lists")},
            errors={exc.field or "form": exc.message},
            status=exc.status,
        )
    flash("Draft saved.")
    who = (request.form.get("as") or "").strip()
    shown_as: dict[str, Any] = {"as": who} if who else {}
    return redirect(url_for("admin.campaign_detail", campaign_id=campaign_id, **shown_as))


def sandboxed(html: str) -> Response:
    """A message's HTML for a sandboxed frame of our own pages: it runs nothing, loads nothing
    from outside and its links are inert."""
    resp = Response(html, mimetype="text/html")
    resp.headers["Content-Security-Policy"] = SANDBOX_CSP
    resp.headers["X-Frame-Options"] = "SAMEORIGIN"
    resp.headers["Cache-Control"] = "no-store"
    return resp


def shown_preview(render: Callable[[], Any]) -> Response:
    """The HTML of render()'s preview in the sandbox, or why it cannot be shown."""
    try:
        html = render().html
    except NotFound:
        html = "<p>There is no subscriber with that address; showing nothing.</p>"
    except ListmgrError as exc:
        html = f"<p>The template cannot be shown: {escape(exc.message)}</p>"
    return sandboxed(html)


@bp.get("/campaigns/<int:campaign_id>/preview.html")
@require("campaigns:write")
def campaign_preview(campaign_id: int) -> Response:
    """The saved HTML as the chosen subscriber gets it."""
    who = (request.args.get("as") or "").strip()
    return shown_preview(
        lambda: campaigns_service.preview(current_runtime(), campaign_id, email=who or None)
    )


def _unsaved(campaign_id: int | None) -> tuple[dict[str, Any], Any]:
    """The composer's values now and the message built from them (nothing is stored)."""
    rt = current_runtime()
    if campaign_id is not None:
        campaigns_service.get(rt, campaign_id)  # an unknown campaign is a 404
    values = _values()
    who = (request.form.get("as") or "").strip() or None
    return values, campaigns_service.preview_values(rt, values, campaign_id=campaign_id, email=who)


@bp.post("/campaigns/preview.html")
@bp.post("/campaigns/<int:campaign_id>/preview.html")
@require("campaigns:write")
def campaign_live_preview(campaign_id: int | None = None) -> Response:
    """The HTML as the composer holds it now, before any save (the preview frame's form)."""
    return shown_preview(lambda: _unsaved(campaign_id)[1])


@bp.post("/campaigns/preview.json")
@bp.post("/campaigns/<int:campaign_id>/preview.json")
@require("campaigns:write")
def campaign_live_preview_json(campaign_id: int | None = None) -> ResponseReturnValue:
    """Subject, sender, recipient, audience and the campaign checklist as the composer holds
    them now; a template, audience or A/B test error as {"error": {...}} naming the field."""
    rt = current_runtime()
    try:
        values, view = _unsaved(campaign_id)
        ab_rules.clean(values["ab_test"], subject=values["subject"], body=values["body"])
        count = (
            campaigns_service.count_audience(
                rt, lists=values["lists"], segment_id=values["segment_id"], personal=personal()
            )
            if values["lists"]
            else 0
        )
        checklist = campaign_checklist.for_values(
            rt, values, campaign_id=campaign_id, audience=count
        )
    except ListmgrError as exc:
        return jsonify(error={"message": exc.message, "field": exc.field}), exc.status
    return jsonify(
        subject=view.subject,
        to=view.to,
        list=view.list,
        audience={**shown_count(count).as_json(), "label": shown_count(count).label},
        checklist=checklist.as_json(),
        **{"from": view.from_header},
    )


@bp.post("/campaigns/<int:campaign_id>/test")
@require("campaigns:write")
@limits.test_send()
def campaign_test(campaign_id: int) -> ResponseReturnValue:
    """Send the message marked as a test to a few addresses."""
    to = ui.lines("to")
    who = ui.text("as") or None
    results = campaigns_service.send_test(
        current_runtime(), campaign_id, to=to, email=who, actor=_actor(), detailed=may("settings")
    )
    for r in results:
        if r["sent"]:
            flash(f"Test sent to {r['to']}.")
        else:
            flash(f"Test to {r['to']} failed: {r['error']}", "error")
    shown_as: dict[str, Any] = {"as": who} if who else {}
    return redirect(url_for("admin.campaign_detail", campaign_id=campaign_id, **shown_as))


@bp.post("/campaigns/<int:campaign_id>/send")
@require("campaigns:write")
def campaign_send(campaign_id: int) -> ResponseReturnValue:
    """Send now: the audience is fixed and the workers start; refused while the checklist
    has blockers."""
    try:
        count = campaigns_service.start(current_runtime(), campaign_id, actor=_actor())
    except Blocked as exc:
        flash(f"Not sent: {exc.message}.", "error")
        return redirect(url_for("admin.campaign_detail", campaign_id=campaign_id))
    flash(f"Sending to {count:,} subscribers." if count else "Nobody to send to: done.")
    return redirect(url_for("admin.campaign_stats", campaign_id=campaign_id))


@bp.post("/campaigns/<int:campaign_id>/schedule")
@require("campaigns:write")
def campaign_schedule(campaign_id: int) -> ResponseReturnValue:
    """Schedule for a date and time in a chosen zone, or back to draft when the time is empty.
    A bad time or zone comes back on the form, with what was typed."""
    rt = current_runtime()
    entered = {"at": ui.text("at"), "timezone": ui.text("timezone")}
    zone = entered["timezone"] if "timezone" in request.form else None
    try:
        at = zonetimes.read(entered["at"]) if entered["at"] else None
        campaigns_service.schedule(rt, campaign_id, at=at, timezone=zone, actor=_actor())
    except ValidationError as exc:
        info = campaigns_service.get(rt, campaign_id)
        return _saved(
            info,
            ui.text("as"),
            errors={exc.field or "at": exc.message},
            entered=entered,
            status=exc.status,
        )
    info = campaigns_service.get(rt, campaign_id)
    if info.scheduled_at_utc is not None:
        shown = zonetimes.shown(info.scheduled_at_utc, info.schedule_timezone)
        flash(f"Scheduled for {shown.label}.")
    else:
        flash("Back to draft.")
    return redirect(url_for("admin.campaign_detail", campaign_id=campaign_id))


@bp.post("/campaigns/<int:campaign_id>/copy")
@require("campaigns:write")
def campaign_copy(campaign_id: int) -> ResponseReturnValue:
    """A new draft with this campaign's content, lists and segment (never its schedule or
    figures); opens in the composer."""
    try:
        cid = campaigns_service.copy(current_runtime(), campaign_id, actor=_actor())
    except ValidationError as exc:
        flash(f"The campaign cannot be copied: {exc.message}", "error")
        return redirect(url_for("admin.campaign_detail", campaign_id=campaign_id))
    flash("Copied into a new draft: check it, then send or schedule it.")
    return redirect(url_for("admin.campaign_detail", campaign_id=cid))


@bp.post("/campaigns/<int:campaign_id>/delete")
@require("campaigns:write")
def campaign_delete(campaign_id: int) -> ResponseReturnValue:
    """Delete a draft (anything else is refused)."""
    rt = current_runtime()
    name = campaigns_service.get(rt, campaign_id).name
    campaigns_service.delete(rt, campaign_id, actor=_actor())
    flash(f"The draft “{name}” was deleted.")
    return redirect(url_for("admin.campaigns"))


@bp.post("/campaigns/<int:campaign_id>/<any(pause, resume, cancel):action>")
@require("campaigns:write")
def campaign_control(campaign_id: int, action: str) -> ResponseReturnValue:
    """Pause, resume or cancel."""
    getattr(campaigns_service, action)(current_runtime(), campaign_id, actor=_actor())
    flash(
        {
            "pause": "Paused after the message in flight.",
            "resume": "Sending again.",
            "cancel": "Cancelled: nothing more is sent.",
        }[action]
    )
    return redirect(url_for("admin.campaign_stats", campaign_id=campaign_id))


def _progress(campaign_id: int) -> dict[str, Any]:
    info = campaigns_service.get(current_runtime(), campaign_id)
    st = info.stats
    done = st["sent"] + st["failed"] + st["skipped"]
    return {
        "status": info.status,
        "audience": st["audience"],
        "sent": st["sent"],
        "failed": st["failed"],
        "skipped": st["skipped"],
        "remaining": st["remaining"],
        "processed": done,
        "done": info.status in FINAL,
    }


@bp.get("/campaigns/<int:campaign_id>/stats")
@require("campaigns:read")
def campaign_stats(campaign_id: int) -> ResponseReturnValue:
    """Progress while sending, then the outcome with charts."""
    rt = current_runtime()
    info = campaigns_service.get(rt, campaign_id)
    return render_template(
        "pages/admin/campaign_stats.html",
        campaign=info,
        subject=campaign_subject.sample_subjects(rt, [campaign_id])[campaign_id],
        stats=campaigns_service.stats(rt, campaign_id),
        comparison=campaigns_service.ab_comparison(rt, campaign_id),
        variant_subjects=campaign_subject.variant_subjects(rt, campaign_id),
        progress=_progress(campaign_id),
        title=info.name,
        withheld=withholds(info.stats["audience"]),
        fewer_than=rt.settings.aggregate_min_count,
    )


@bp.get("/campaigns/<int:campaign_id>/progress.json")
@require("campaigns:read")
def campaign_progress(campaign_id: int) -> ResponseReturnValue:
    """Counts for the live progress bar."""
    return jsonify(shown_stats(_progress(campaign_id)))


@bp.get("/charts/campaign/<int:campaign_id>/timeline.svg")
@require("campaigns:read")
def chart_campaign_timeline(campaign_id: int) -> Response:
    """Messages handled per minute."""
    stats = campaigns_service.stats(current_runtime(), campaign_id)
    buckets = () if withholds(stats.audience) else stats.timeline
    labels = [b["minute"][11:] for b in buckets]
    series = {k: [b.get(k, 0) for b in buckets] for k in ("sent", "failed", "skipped")}
    return charts.svg(charts.line("Messages per minute (UTC)", labels, series if buckets else {}))


@bp.get("/charts/campaign/<int:campaign_id>/engagement.svg")
@require("campaigns:read")
def chart_campaign_engagement(campaign_id: int) -> Response:
    """Opens and clicks by people per hour."""
    stats = campaigns_service.stats(current_runtime(), campaign_id)
    buckets = (
        () if withholds(stats.audience) or not stats.engagement else stats.engagement["over_time"]
    )
    labels = [b["hour"][5:].replace("T", " ") for b in buckets]
    series = {k: [b[k] for b in buckets] for k in ("opens", "clicks")}
    return charts.svg(
        charts.line("Opens and clicks per hour (UTC)", labels, series if buckets else {})
    )


@bp.get("/charts/campaign/<int:campaign_id>/outcome.svg")
@require("campaigns:read")
def chart_campaign_outcome(campaign_id: int) -> Response:
    """What became of the messages, as shares of those sent."""
    r = next(iter(dashboard.campaign_rates(current_runtime(), campaign_ids=[campaign_id])), None)
    if r is None:
        raise NotFound("there is no such campaign")
    names = ("opened", "clicked", "unsubscribed", "bounced", "complained", "failed")
    values = [r.share(n) for n in names]
    return charts.svg(
        charts.bars(
            "Outcome (%; opened and clicked: of those tracked)",
            list(names),
            {} if withholds(r.audience) else {"share": values},
            unit="%",
        )
    )
