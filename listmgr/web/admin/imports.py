"""Import (upload, map columns, watch the progress, read the error report) and export."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flask import Response, abort, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from listmgr import csvfiles, importrows
from listmgr.errors import Forbidden, ListmgrError, ValidationError
from listmgr.services import exports, fielddefs, uploads
from listmgr.services import imports as imports_service
from listmgr.services import lists as lists_service
from listmgr.services import segments as segments_service
from listmgr.web.admin import bp, ui
from listmgr.web.auth import may, principal, record, require
from listmgr.web.extensions import client_ip, csrf, current_runtime

UPLOAD = re.compile(r"^[0-9a-f]{32}$")
SAMPLE_ROWS = 5
MODES = {
    "upsert": "Add new people and update known ones",
    "add": "Add new people only (known ones are left as they are)",
    "suppress": "Suppress these addresses (they never get campaign mail)",
}


def _actor() -> str:
    p = principal()
    return p.label if p else "admin"


def _fields() -> list[Any]:
    return fielddefs.list_fields(current_runtime())


def _page(errors: dict[str, str] | None = None, status: int = 200) -> ResponseReturnValue:
    rt = current_runtime()
    page = ui.page_number()
    jobs, total = imports_service.all_jobs(rt, offset=(page - 1) * ui.PER_PAGE, limit=ui.PER_PAGE)
    segments = segments_service.all_segments(rt, limit=500)[0]
    return render_template(
        "pages/admin/imports.html",
        jobs=jobs,
        lists=lists_service.names(rt),
        modes=MODES,
        segments=segments,
        errors=errors or {},
        pager=ui.pager(total, "admin.imports", page),
        title="Import & export",
    ), status


@bp.get("/imports")
@require("people:write")
def imports() -> ResponseReturnValue:
    """Past imports, the upload form and the export form."""
    return _page()


def _column_count(upload_id: int, header: list[str] | None = None) -> int:
    """The posted number of mapped columns: a whole number no larger than the file has."""
    raw = ui.text("columns", "0")
    if raw == "0":
        return 0
    most = len(_inspect(upload_id)["header"] if header is None else header)
    if not raw.isdigit() or int(raw) > most:
        raise ValidationError(
            f"columns must be a whole number from 0 to {most} (the file's columns)", field="columns"
        )
    return int(raw)


def _upload(token: str) -> uploads.Stored:
    if not UPLOAD.match(token or ""):
        raise ValidationError(uploads.GONE, field="file")
    return uploads.find(current_runtime(), token)


def _inspect(upload_id: int, explicit: dict[str, str] | None = None) -> dict[str, Any]:
    """Header, a few rows and the suggested target of each column (pure modules only)."""
    with uploads.local_copy(current_runtime(), upload_id) as path:
        fmt = csvfiles.detect(path)
        with csvfiles.CsvReader(path, fmt) as reader:
            header = list(reader.header)
            rows = []
            for record in reader:
                rows.append(list(record.cells or []))
                if len(rows) >= SAMPLE_ROWS:
                    break
    fields = {
        f.key: importrows.FieldInfo(f.key, f.type, f.label, tuple(f.choices)) for f in _fields()
    }
    try:
        chosen, _ = importrows.resolve(header, explicit or {}, fields)
    except importrows.MappingError:
        chosen = {}
    return {
        "header": header,
        "rows": rows,
        "suggested": {i: chosen.get(i, "ignore") for i in range(len(header))},
    }


@csrf.exempt
@bp.post("/imports")
@require("people:write")
def import_upload() -> ResponseReturnValue:
    """Receive the file (into the database, where every host reads it), then show its columns
    to map."""
    rt = current_runtime()
    # The app caps form bodies small; a CSV may be large. Raise the cap, then check the form
    # token ourselves (the automatic check would have read the body under the small cap).
    request.max_content_length = rt.settings.max_import_bytes
    csrf.protect()
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _page({"file": "Choose a CSV file to upload."}, 422)
    stored = uploads.store(rt, upload.stream, filename=Path(upload.filename).name)
    try:
        info = _inspect(stored.id)
    except (csvfiles.CsvFileError, UnicodeError) as exc:
        uploads.remove(rt, stored.id)
        return _page({"file": f"The file cannot be read: {exc}."}, 422)
    values = {
        "filename": stored.filename,
        "list_slug": ui.text("list"),
        "mode": ui.text("mode", "upsert"),
        "consent": "",
    }
    return _map_page(stored.token, values, info)


FIELD_TYPES = {
    "text": "text",
    "number": "number",
    "date": "date",
    "boolean": "yes or no",
    "choice": "one of a few choices",
    "multi_choice": "some of a few choices",
}


def _new_field_defaults(header: list[str], suggested: dict[int, str]) -> dict[str, Any]:
    """The new-field form starts at the first column nothing holds, keyed after what it
    probably is ('Firma' -> company)."""
    column = next((i for i, c in enumerate(header) if suggested.get(i) == "ignore" and c), 0)
    name = header[column] if header else ""
    kind = importrows.header_kind(name)
    key = kind if kind and kind not in importrows.TARGETS else importrows.header_key(name)
    return {
        "column": column,
        "key": key if key[:1].isalpha() else "",
        "label": name,
        "type": "text",
        "choices": "",
    }


def _map_page(
    token: str,
    values: dict[str, Any],
    info: dict[str, Any],
    errors: dict[str, str] | None = None,
    status: int = 200,
    new_field: dict[str, Any] | None = None,
) -> ResponseReturnValue:
    """The column-mapping step: each column with the proposed target, the list, what to do,
    and a way to define a field for a column on the spot."""
    return render_template(
        "pages/admin/import_map.html",
        token=token,
        filename=values["filename"],
        list_slug=values["list_slug"] or "",
        mode=values["mode"],
        consent=values["consent"],
        modes=MODES,
        lists=lists_service.names(current_runtime()),
        fields=_fields(),
        targets=importrows.TARGETS,
        field_types=FIELD_TYPES,
        new_field=new_field or _new_field_defaults(info["header"], info["suggested"]),
        errors=errors or {},
        **info,
        title="Map the columns",
    ), status


def _posted_values() -> dict[str, Any]:
    return {
        "filename": ui.text("filename")[:500],
        "list_slug": ui.text("list") or None,
        "mode": ui.text("mode", "upsert"),
        "consent": ui.text("consent"),
    }


@bp.post("/imports/new-field")
@require("fields:write")
def import_new_field() -> ResponseReturnValue:
    """Define a custom field while mapping, and map the chosen column to it (the other
    choices on the page are kept)."""
    if not may("people:write"):
        raise Forbidden("Only those who may import can map columns.")
    rt = current_runtime()
    token = ui.text("token")
    upload = _upload(token)
    values = _posted_values()
    info = _inspect(upload.id)
    header = info["header"]
    count = _column_count(upload.id, header)
    chosen = {i: request.form.get(f"map_{i}", "ignore") for i in range(count)}
    raw = ui.text("new_field_column")
    new_field: dict[str, Any] = {
        "column": int(raw) if raw.isdigit() else 0,
        "key": ui.text("new_field_key"),
        "label": ui.text("new_field_label"),
        "type": ui.text("new_field_type", "text"),
        "choices": ui.text("new_field_choices"),
    }
    info["suggested"] = {i: chosen.get(i, "ignore") for i in range(len(header))}
    try:
        if not raw.isdigit() or int(raw) >= len(header):
            raise ValidationError("Choose the column the new field is for.", field="new_field")
        fielddefs.create_field(
            rt,
            key=new_field["key"],
            label=new_field["label"] or header[int(raw)],
            type=new_field["type"],
            choices=ui.lines("new_field_choices") or None,
        )
    except ListmgrError as exc:
        message = exc.message if exc.field in (None, "new_field") else f"{exc.field}: {exc.message}"
        return _map_page(token, values, info, {"new_field": message}, exc.status, new_field)
    record("field.create", "field", new_field["key"], during="import")
    info["suggested"][int(raw)] = f"fields.{new_field['key']}"
    flash(f"Field {new_field['key']} created: the column {header[int(raw)]} goes into it.")
    return _map_page(token, values, info)


@bp.post("/imports/start")
@require("people:write")
def import_start() -> ResponseReturnValue:
    """Create the job with the chosen mapping and start it in the background."""
    rt = current_runtime()
    token = ui.text("token")
    upload = _upload(token)
    values = _posted_values()
    columns: list[str] = []
    mapping: dict[str, str] = {}
    try:
        columns = [request.form.get(f"col_{i}", "") for i in range(_column_count(upload.id))]
        pairs = [
            (col, request.form.get(f"map_{i}", "ignore")) for i, col in enumerate(columns) if col
        ]
        try:  # checked like the API's mapping: a posted form is as untrusted as JSON
            mapping = importrows.parse_mapping(pairs)
        except importrows.MappingError as exc:
            raise ValidationError(str(exc), field="mapping") from None
        job_id = imports_service.create_job(
            rt, upload_id=upload.id, mapping=mapping, actor=_actor(), **values
        )
    except ListmgrError as exc:
        info = _inspect(upload.id, {c: t for c, t in mapping.items()})
        info["suggested"] = {i: mapping.get(c, "ignore") for i, c in enumerate(columns)}
        return _map_page(token, values, info, {exc.field or "form": exc.message}, exc.status)
    rt.enqueue("run_import", job_id)
    return redirect(url_for("admin.import_detail", job_id=job_id))


def _progress(info: imports_service.ImportInfo) -> dict[str, Any]:
    return {
        "status": info.status,
        "processed_bytes": info.processed_bytes,
        "total_bytes": info.total_bytes or 1,
        "rows": info.rows,
        "inserted": info.inserted,
        "updated": info.updated,
        "skipped": info.skipped,
        "errors": info.errors,
        "done": info.status in ("done", "failed"),
    }


@bp.get("/imports/<int:job_id>")
@require("people:write")
def import_detail(job_id: int) -> ResponseReturnValue:
    """A job's live progress, then its counts and the rows it could not take."""
    rt = current_runtime()
    # One reading of the job for the whole page: a job that ends between two readings would
    # show as done with the report of when it was still running (and never reload).
    info = imports_service.get(rt, job_id)
    progress = _progress(info)
    report = imports_service.report(rt, job_id) if progress["done"] else ""
    lines = report.splitlines()
    return render_template(
        "pages/admin/import_detail.html",
        job=info,
        mode=MODES.get(info.mode, info.mode),
        progress=progress,
        report_lines=lines[:201],
        report_more=max(0, len(lines) - 201),
        title=f"Import {job_id}",
    )


@bp.get("/imports/<int:job_id>/progress.json")
@require("people:write")
def import_progress(job_id: int) -> ResponseReturnValue:
    """Counts for the live progress bar."""
    return jsonify(_progress(imports_service.get(current_runtime(), job_id)))


@bp.get("/imports/<int:job_id>/report.csv")
@require("people:write")
def import_report(job_id: int) -> Response:
    """Every skipped or broken row with its row number and the reason, as CSV."""
    return Response(
        imports_service.report(current_runtime(), job_id),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="import-{job_id}-report.csv"'},
    )


@bp.get("/export")
@require("people:export")
def export() -> ResponseReturnValue:
    """A list's members as CSV (optionally one status or a segment), streamed and audited."""
    slug = (request.args.get("list") or "").strip()
    if not slug:
        abort(404)
    raw_segment = request.args.get("segment") or ""
    try:
        segment_id = int(raw_segment) if raw_segment else None
    except ValueError:
        raise ValidationError("segment must be a number", field="segment") from None
    rt = current_runtime()
    prepared = exports.prepare(
        rt,
        list_slug=slug,
        fields=request.args.get("fields") or None,
        segment_id=segment_id,
        status=request.args.get("status") or None,
        actor=_actor(),
        ip=client_ip(),
    )
    return Response(
        exports.rows(rt, prepared),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{prepared.list_slug}.csv"',
            "Cache-Control": "no-store",
        },
    )
