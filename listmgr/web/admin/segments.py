"""Segments: saved audiences built with a rule builder (field / operator / value rows, nested
groups) and a live count."""

from __future__ import annotations

import json
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from listmgr import jsonin, segment_words
from listmgr import segments as compiler
from listmgr.errors import ListmgrError, ValidationError
from listmgr.services import fielddefs
from listmgr.services import lists as lists_service
from listmgr.services import segments as segments_service
from listmgr.web.admin import bp, ui
from listmgr.web.auth import personal, record, require, shown_count
from listmgr.web.extensions import current_runtime


def vocabulary() -> dict[str, Any]:
    """What the rule builder offers: fields with types and operators, interests, lists."""
    rt = current_runtime()
    fields = [
        {"key": k, "label": k.replace("_", " "), "type": t, "choices": []}
        for k, t in compiler.BUILTINS.items()
    ]
    fields += [
        {"key": f.key, "label": f.label, "type": f.type, "choices": f.choices}
        for f in fielddefs.list_fields(rt)
    ]
    interests = [{"key": i.key, "label": i.label} for i in fielddefs.list_interests(rt)]
    return {
        "fields": fields,
        "ops": {k: list(v) for k, v in compiler.OPS.items()},
        "interests": interests,
        "lists": [{"slug": x.slug, "name": x.name} for x in lists_service.all_lists(rt)],
        "statuses": [*list(compiler.STATUSES), "any"],
        "engagement": list(compiler.ENGAGEMENT),
    }


def _form() -> tuple[dict[str, Any], Any]:
    values = {"name": ui.text("name"), "lists": request.form.getlist("lists")}
    raw = request.form.get("rules", "").strip() or "{}"
    try:
        rules = jsonin.loads(raw, root="rules")
    except jsonin.BadJSON as exc:
        raise ValidationError(f"{exc.path}: {exc.msg}", field="rules") from None
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"rules: not valid JSON ({exc.msg}, line {exc.lineno})", field="rules"
        ) from None
    rules, left_out = compiler.without_incomplete(rules)
    if left_out:
        flash(
            f"{left_out} condition{'s' if left_out > 1 else ''} without a value "
            f"{'were' if left_out > 1 else 'was'} left out."
        )
    return values, rules


def _render(
    segment: Any,
    values: dict[str, Any],
    rules: Any,
    *,
    errors: dict[str, str],
    count: Any = None,
    status: int = 200,
) -> ResponseReturnValue:
    return render_template(
        "pages/admin/segment_form.html",
        segment=segment,
        values=values,
        rules_json=rules
        if isinstance(rules, str)
        else json.dumps(rules or {}, indent=2, ensure_ascii=False),
        vocab=vocabulary(),
        errors=errors,
        count=count,
        rules_error=next(
            (
                f"{f}: {m}" if f.startswith("rules.") else m
                for f, m in errors.items()
                if f.startswith("rules")
            ),
            None,
        ),
        general=[m for f, m in errors.items() if not f.startswith(("rules", "name", "lists"))],
        title=segment.name if segment else "New segment",
    ), status


@bp.get("/segments")
@require("segments:read")
def segments() -> ResponseReturnValue:
    """Saved segments."""
    page = ui.page_number()
    items, total = segments_service.all_segments(
        current_runtime(), offset=(page - 1) * ui.PER_PAGE, limit=ui.PER_PAGE, personal=personal()
    )
    return render_template(
        "pages/admin/segments.html",
        items=items,
        in_words={s.id: segment_words.describe(s.rules) for s in items},
        pager=ui.pager(total, "admin.segments", page),
        title="Segments",
    )


@bp.get("/segments/new")
@require("segments:read")
def segment_new() -> ResponseReturnValue:
    """An empty rule builder."""
    return _render(None, {"name": "", "lists": []}, {"all": []}, errors={})


@bp.get("/segments/<int:segment_id>")
@require("segments:read")
def segment_detail(segment_id: int) -> ResponseReturnValue:
    """A saved segment in the rule builder, with its count now."""
    rt = current_runtime()
    mine = personal()
    seg = segments_service.get(rt, segment_id)
    shown = seg if mine else segments_service.get(rt, segment_id, personal=False)
    try:
        count = shown_count(
            segments_service.count(rt, lists=seg.lists, rules=seg.rules, personal=mine)
        )
    except ListmgrError as exc:  # it can still be opened, to be fixed
        return _render(
            shown,
            {"name": seg.name, "lists": seg.lists},
            shown.rules,
            errors={exc.field or "form": exc.message},
        )
    return _render(
        shown, {"name": seg.name, "lists": seg.lists}, shown.rules, errors={}, count=count
    )


@bp.post("/segments/count")
@require("segments:read")
def segment_count() -> ResponseReturnValue:
    """Count without saving (the builder's button when scripts are off)."""
    seg_id = request.form.get("segment_id", type=int)
    seg = segments_service.get(current_runtime(), seg_id, personal=personal()) if seg_id else None
    try:
        values, rules = _form()
        count = shown_count(
            segments_service.count(
                current_runtime(), lists=values["lists"], rules=rules, personal=personal()
            )
        )
    except ListmgrError as exc:
        return _render(
            seg,
            {"name": ui.text("name"), "lists": request.form.getlist("lists")},
            request.form.get("rules", ""),
            errors={exc.field or "form": exc.message},
            status=exc.status,
        )
    return _render(seg, values, rules, errors={}, count=count)


def _save(seg: segments_service.SegmentInfo | None) -> Any:
    """Create (seg None) or update a segment from the form; the form again on a bad value."""
    rt = current_runtime()
    try:
        values, rules = _form()
        if seg is None:
            sid = segments_service.create(rt, rules=rules, **values)
        else:
            sid = seg.id
            segments_service.update(rt, sid, rules=rules, **values)
    except ListmgrError as exc:
        return _render(
            seg,
            {"name": ui.text("name"), "lists": request.form.getlist("lists")},
            _loose(),
            errors={exc.field or "form": exc.message},
            status=exc.status,
        )
    record("segment.create" if seg is None else "segment.edit", "segment", sid)
    flash("Segment saved.")
    return redirect(url_for("admin.segment_detail", segment_id=sid))


@bp.post("/segments/new")
@require("segments:write")
def segment_create() -> ResponseReturnValue:
    """Save a new segment."""
    return _save(None)


@bp.post("/segments/<int:segment_id>")
@require("segments:write")
def segment_update(segment_id: int) -> ResponseReturnValue:
    """Save changes to a segment."""
    return _save(segments_service.get(current_runtime(), segment_id))


@bp.post("/segments/<int:segment_id>/delete")
@require("segments:write")
def segment_delete(segment_id: int) -> ResponseReturnValue:
    """Delete a saved segment (campaigns keep the rules they were sent with)."""
    segments_service.delete(current_runtime(), segment_id)
    record("segment.delete", "segment", segment_id)
    flash("Segment deleted.")
    return redirect(url_for("admin.segments"))


def _loose() -> Any:
    """The rules as typed, for showing them again after an error."""
    raw = request.form.get("rules", "")
    try:
        return jsonin.loads(raw)
    except ValueError:
        return raw
