"""The reputation page (rates against the bulk-sender thresholds, time to unsubscribe) and the
flagged subscribers with one-click suppress or re-permission."""

from __future__ import annotations

from flask import Response, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from listmgr.errors import ValidationError
from listmgr.services import flags, lists, repermission
from listmgr.services import reputation as rep
from listmgr.web.admin import bp, charts, ui
from listmgr.web.auth import principal, record, require, withholds
from listmgr.web.extensions import current_runtime

ACTIONS = ("suppress", "repermission")


def percent(rate: float | None, digits: int = 2) -> str:
    """A rate as the page prints it ("–" when there was no mail)."""
    return "–" if rate is None else f"{100 * rate:.{digits}f}%"


def duration(seconds: float | None) -> str:
    """Seconds as the page prints them: s, min, h or days."""
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


@bp.get("/reputation")
@require("stats")
def reputation() -> ResponseReturnValue:
    """Rates per list and receiving domain over 7 and 30 days, and time to unsubscribe."""
    report = rep.report(current_runtime())
    return render_template(
        "pages/admin/reputation.html",
        report=report,
        windows=rep.WINDOWS,
        paths=rep.PATHS,
        judged=rep.JUDGED_PATHS,
        level=rep.level,
        percent=percent,
        duration=duration,
        withholds=withholds,
        fewer_than=current_runtime().settings.aggregate_min_count,
        limits={
            "good": percent(rep.COMPLAINT_GOOD, 1),
            "limit": percent(rep.COMPLAINT_LIMIT, 1),
            "bounce": percent(rep.BOUNCE_LIMIT, 0),
        },
        title="Reputation",
    )


@bp.get("/charts/reputation.svg")
@require("stats")
def chart_reputation() -> Response:
    """Daily complaint and hard-bounce rates over 30 days, with the thresholds."""
    days = rep.daily(current_runtime())
    labels = [d.day[5:] for d in days]

    def share(part: int, whole: int) -> float | None:
        # a day with too few messages for this role to see is left blank
        return None if not whole or withholds(whole) else round(100 * part / whole, 3)

    return charts.svg(
        charts.line(
            "Complaints (left, %) and hard bounces (right, %) per day",
            labels,
            {
                "complaint rate": [share(d.complaints, d.handed_over) for d in days],
                "recommended (0.1%)": [100 * rep.COMPLAINT_GOOD] * len(days),
                "limit (0.3%)": [100 * rep.COMPLAINT_LIMIT] * len(days),
            },
            secondary={
                "hard-bounce rate": [share(d.hard_bounces, d.handed_over) for d in days],
                "bounce limit (5%)": [100 * rep.BOUNCE_LIMIT] * len(days),
            },
            unit="%",
        )
    )


def _list_id() -> tuple[str, int | None]:
    slug = (request.values.get("list") or "").strip()
    return slug, (lists.get(current_runtime(), slug).id if slug else None)


@bp.get("/reputation/flags")
@require("people:read")
def reputation_flags() -> ResponseReturnValue:
    """Flagged subscribers per reason, with the actions."""
    rt = current_runtime()
    flag = flags.check_flag(request.args.get("flag") or "soft_bounce")
    slug, list_id = _list_id()
    page = ui.page_number()
    items, total = flags.members(
        rt, flag, list_id=list_id, offset=(page - 1) * ui.PER_PAGE, limit=ui.PER_PAGE
    )
    return render_template(
        "pages/admin/reputation_flags.html",
        summary=flags.summary(rt, list_id=list_id),
        names=flags.FLAGS,
        flag=flag,
        items=items,
        list_slug=slug,
        list_names=lists.names(rt),
        repermission_days=rt.settings.repermission_days,
        pager=ui.pager(total, "admin.reputation_flags", page, flag=flag, list=slug),
        title="Flagged subscribers",
    )


@bp.post("/reputation/flags")
@require("people:write")
def reputation_flags_act() -> ResponseReturnValue:
    """Suppress every subscriber a flag holds, or ask each to confirm (re-permission)."""
    rt = current_runtime()
    flag = flags.check_flag(request.form.get("flag") or "")
    action = request.form.get("action") or ""
    if action not in ACTIONS:
        raise ValidationError(f"action must be one of {', '.join(ACTIONS)}", field="action")
    slug, list_id = _list_id()
    p = principal()
    actor = p.label if p else "anonymous"
    if action == "suppress":
        n = flags.suppress_flagged(rt, flag, actor=actor, list_id=list_id)
        flash(f"{n} suppressed.")
    else:
        n = repermission.ask(rt, flag, actor=actor, list_id=list_id)
        flash(f"{n} asked to confirm within {rt.settings.repermission_days} days.")
    record(f"reputation.{action}", "flag", flag, list=slug or None, count=n)
    return redirect(url_for("admin.reputation_flags", flag=flag, list=slug or None))
