"""API: /api/imports (CSV upload as a background job, progress, report) and
/api/lists/<slug>/export (a list as CSV, streamed)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from flask import Response, jsonify, request
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ConfigDict, Field

from listmgr import jsonin
from listmgr.errors import ValidationError
from listmgr.services import exports, imports, uploads
from listmgr.web.api.base import DbId, Page, actor, paginated, parse_query, route, schema_of
from listmgr.web.extensions import client_ip, current_runtime


class _Progress(BaseModel):
    progress: float


@schema_of(imports.ImportInfo)
class ImportOut(_Progress):
    pass


class ExportQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fields: str | None = None
    segment: DbId | None = None
    status: str | None = None


def _out(info: imports.ImportInfo) -> dict[str, Any]:
    body = asdict(info)
    body["progress"] = (
        round(info.processed_bytes / info.total_bytes, 4)
        if info.total_bytes
        else (1.0 if info.status == "done" else 0.0)
    )
    return body


def _mapping(raw: str) -> str | dict[str, str]:
    raw = raw.strip()
    if not raw.startswith("{"):
        return raw
    try:
        value = jsonin.loads(raw)
    except ValueError:
        raise ValidationError(
            "mapping: send Column=target pairs or a JSON object", field="mapping"
        ) from None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValidationError("mapping: a JSON object of column: target", field="mapping")
    # JSON keeps the last of two equal keys: a column named twice is refused instead
    columns = [k.strip().lower() for k, _ in json.loads(raw, object_pairs_hook=lambda p: p)]
    if len(set(columns)) != len(columns):
        twice = next(c for c in columns if columns.count(c) > 1)
        raise ValidationError(f"mapping: the column {twice!r} is named twice", field="mapping")
    return value


class ImportForm(BaseModel):
    """The multipart form of an upload."""

    file: bytes = Field(
        description="the CSV file (any common encoding and delimiter)",
        json_schema_extra={"format": "binary"},
    )
    list: str | None = Field(None, description="the list's slug (optional with mode suppress)")
    mapping: str | None = Field(
        None,
        description="Column=target pairs separated by commas, or a JSON object of column: target",
    )
    mode: str = Field("upsert", description="upsert, add or suppress")
    consent: str = Field(
        "", description="the consent basis of these people (required but for mode suppress)"
    )


@route(
    "/imports",
    ["POST"],
    permission="people:write",
    body=ImportForm,
    form=True,
    response=ImportOut,
    status=202,
    tag="imports",
)
def create_import() -> ResponseReturnValue:
    """Upload a CSV and import it in the background (202; poll GET /api/imports/ID).

    The body is a multipart form: file, list, mapping, mode, consent."""
    rt = current_runtime()
    # The app caps form bodies small; an upload may be large (it is spooled to disk, not RAM,
    # then stored in the database in pieces).
    request.max_content_length = rt.settings.max_import_bytes
    # The multipart parser's buffer must hold one read of the file part, whatever the limit
    # for plain form fields is elsewhere.
    request.max_form_memory_size = max(request.max_form_memory_size or 0, 1024 * 1024)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ValidationError("send the CSV as the multipart field 'file'", field="file")
    form = request.form
    mapping = _mapping(form.get("mapping", ""))
    stored = uploads.store(rt, upload.stream, filename=Path(upload.filename).name)
    try:
        job_id = imports.create_job(
            rt,
            upload_id=stored.id,
            filename=stored.filename,
            list_slug=form.get("list"),
            mapping=mapping,
            mode=form.get("mode", "upsert"),
            consent=form.get("consent", ""),
            actor=actor(),
        )
    except BaseException:
        uploads.remove(rt, stored.id)
        raise
    rt.enqueue("run_import", job_id)
    resp = jsonify(_out(imports.get(rt, job_id)))
    resp.headers["Location"] = f"/api/imports/{job_id}"
    return resp, 202


@route("/imports", permission="people:write", query=Page, tag="imports")
def all_imports() -> ResponseReturnValue:
    """Import jobs, newest first."""
    page = parse_query(Page)
    offset, limit = page.bounds()
    items, total = imports.all_jobs(current_runtime(), offset=offset, limit=limit)
    return paginated([_out(x) for x in items], total, page)


@route("/imports/<int:job_id>", permission="people:write", response=ImportOut, tag="imports")
def get_import(job_id: int) -> ResponseReturnValue:
    """An import's status and progress (bytes read, rows, inserted, updated, skipped, errors)."""
    return jsonify(_out(imports.get(current_runtime(), job_id)))


@route("/imports/<int:job_id>/report", permission="people:write", tag="imports")
def import_report(job_id: int) -> ResponseReturnValue:
    """The report as CSV: every skipped or broken row with its row number and the reason."""
    text = imports.report(current_runtime(), job_id)
    return Response(
        text,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="import-{job_id}-report.csv"'},
    )


@route("/lists/<slug>/export", permission="people:export", query=ExportQuery, tag="lists")
def export_list(slug: str) -> ResponseReturnValue:
    """A list's members as CSV, streamed (fields=a,b chooses columns; segment=ID narrows)."""
    q = parse_query(ExportQuery)
    rt = current_runtime()
    export = exports.prepare(
        rt,
        list_slug=slug,
        fields=q.fields,
        segment_id=q.segment,
        status=q.status,
        actor=actor(),
        ip=client_ip(),
    )
    return Response(
        exports.rows(rt, export),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{export.list_slug}.csv"'},
    )
