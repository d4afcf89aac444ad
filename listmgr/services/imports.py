"""CSV imports as jobs: check the file and mapping, then stream it in chunks into the database
(one transaction per chunk, resumable), with progress and a row-numbered report."""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import logging
import multiprocessing
import queue
import sys
import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from listmgr import csvfiles, importrows
from listmgr.db import rows_changed
from listmgr.errors import ListmgrError, NotFound, ValidationError
from listmgr.models import FieldDef, ImportJob, Interest, MailingList, Upload, id_of, utcnow
from listmgr.runtime import Runtime
from listmgr.services import audit, exports, uploads
from listmgr.services.importstage import Outcome, Writer, bulk_settings
from listmgr.traces import ERASED

log = logging.getLogger(__name__)
MODES = ("upsert", "add", "suppress")
CHUNK_ROWS = 40_000  # rows a transaction: SQLite writes the index pages a commit touched
PIECE_ROWS = 10_000  # rows validated and written at once (memory stays flat)
READER_THREAD = "listmgr-import-reader"
READER_SWITCH_SECONDS = 0.001  # the interpreter's switch interval while the reader thread runs
HELPER_AHEAD = 2  # chunks the helper may validate ahead of the writer
MAX_REPORT_LINES = 100_000
REPORT_HEADER = "row,line,email,result,reason\r\n"
Progress = Callable[["ImportInfo"], None]


@dataclass(frozen=True)
class ImportInfo:
    id: int
    status: str
    filename: str
    list: str | None
    mode: str
    total_bytes: int
    processed_bytes: int
    rows: int
    inserted: int
    updated: int
    skipped: int
    errors: int
    columns: dict[str, str]
    ignored_columns: builtins.list[str]  # (the field `list` hides the builtin here)
    error: str
    created_by: str
    created_at: str
    finished_at: str | None


def _definitions(s: Any) -> tuple[dict[str, importrows.FieldInfo], frozenset[str]]:
    fields = {
        d.key: importrows.FieldInfo(d.key, d.type, d.label, tuple(d.choices or ()))
        for d in s.scalars(select(FieldDef))
    }
    return fields, frozenset(s.scalars(select(col(Interest.key))))


def _header(
    path: Path, explicit: dict[str, str], fields: dict[str, importrows.FieldInfo]
) -> tuple[csvfiles.CsvFormat, list[str], dict[int, str], list[str]]:
    try:
        fmt = csvfiles.detect(path)
        with csvfiles.CsvReader(path, fmt) as reader:
            header = reader.header
        mapping, ignored = importrows.resolve(header, explicit, fields)
    except csvfiles.CsvFileError as exc:
        raise ValidationError(f"The file cannot be read: {exc}.", field="file") from None
    except importrows.MappingError as exc:
        raise ValidationError(str(exc), field=exc.field) from None
    return fmt, header, mapping, ignored


def create_job(
    rt: Runtime,
    *,
    path: str | Path | None = None,
    upload_id: int | None = None,
    filename: str = "",
    list_slug: str | None,
    mapping: str | dict[str, str] | None = None,
    mode: str = "upsert",
    consent: str = "",
    actor: str = "",
) -> int:
    """Check the file, list, mode, consent and mapping; store a queued job (nothing imported).
    The file is a stored upload, or a local path that is stored as one (any host's worker may
    run or resume the job)."""
    if mode not in MODES:
        raise ValidationError(f"mode must be one of {', '.join(MODES)}", field="mode")
    consent = " ".join((consent or "").split())
    if mode != "suppress" and not consent:
        raise ValidationError(
            "Say on what basis these people agreed to hear from you, e.g. "
            "'existing customers, consent recorded on 2024-05-01'.",
            field="consent",
        )
    try:
        explicit = importrows.parse_mapping(mapping)
    except importrows.MappingError as exc:
        raise ValidationError(str(exc), field="mapping") from None
    with rt.db.session() as s:
        list_id = None
        if mode != "suppress" or list_slug:
            if not list_slug:
                raise ValidationError("Choose the list to import into.", field="list")
            lst = s.scalar(select(MailingList).where(col(MailingList.slug) == list_slug))
            if lst is None:
                raise ValidationError(f"There is no list {list_slug!r}.", field="list")
            list_id = lst.id
        fields, _ = _definitions(s)
    if path is not None:
        path = Path(path)
        filename = filename or path.name
        _, header, resolved, ignored = _header(path, explicit, fields)
        with path.open("rb") as fh:
            upload_id = uploads.store(rt, fh, filename=filename).id
    else:
        assert upload_id is not None, "a path or an upload"
        with uploads.local_copy(rt, upload_id) as copy:
            _, header, resolved, ignored = _header(copy, explicit, fields)
    with rt.db.session() as s:
        job = ImportJob(
            list_id=list_id,
            filename=filename[:500],
            upload_id=upload_id,
            mode=mode,
            consent=consent,
            created_by=actor[:320],
            total_bytes=s.scalar(select(col(Upload.size)).where(col(Upload.id) == upload_id)) or 0,
            report=REPORT_HEADER,
            mapping={
                "explicit": explicit,
                "columns": {header[i]: t for i, t in resolved.items()},
                "ignored": ignored,
            },
        )
        s.add(job)
        s.flush()
        job_id = id_of(job)
    audit.record(
        rt,
        actor=actor,
        action="people.import",
        target_type="import",
        target_id=job_id,
        detail={"file": filename, "list": list_slug, "mode": mode, "consent": consent},
    )
    return job_id


def _info(job: ImportJob, slug: str | None) -> ImportInfo:
    m = job.mapping or {}
    return ImportInfo(
        id_of(job),
        job.status,
        job.filename,
        slug,
        job.mode,
        job.total_bytes,
        job.processed_bytes,
        job.rows,
        job.inserted,
        job.updated,
        job.skipped,
        job.errors,
        dict(m.get("columns", {})),
        list(m.get("ignored", [])),
        job.error,
        job.created_by,
        job.created_at.isoformat(),
        job.finished_at.isoformat() if job.finished_at else None,
    )


def get(rt: Runtime, job_id: int) -> ImportInfo:
    with rt.db.session() as s:
        job = s.get(ImportJob, job_id)
        if job is None:
            raise NotFound(f"there is no import {job_id}")
        slug = s.scalar(select(col(MailingList.slug)).where(col(MailingList.id) == job.list_id))
        return _info(job, slug)


def all_jobs(rt: Runtime, *, offset: int = 0, limit: int = 50) -> tuple[list[ImportInfo], int]:
    with rt.db.session() as s:
        total = s.scalar(select(func.count()).select_from(ImportJob)) or 0
        rows = s.execute(
            select(ImportJob, col(MailingList.slug))
            .outerjoin(MailingList, col(MailingList.id) == ImportJob.list_id)
            .order_by(col(ImportJob.id).desc())
            .offset(offset)
            .limit(limit)
        ).all()
        return [_info(job, slug) for job, slug in rows], total


def report(rt: Runtime, job_id: int) -> str:
    """The CSV report: every row that was skipped or had an error, with the reason."""
    with rt.db.session() as s:
        text = s.scalar(select(col(ImportJob.report)).where(col(ImportJob.id) == job_id))
        if text is None:
            raise NotFound(f"there is no import {job_id}")
        return text


def requeue(rt: Runtime) -> int:
    """Enqueue queued jobs and jobs whose worker stopped beating (they resume where they were)."""
    stale = utcnow() - timedelta(seconds=rt.settings.lease_seconds)
    with rt.db.session() as s:
        s.execute(
            update(ImportJob)
            .where(col(ImportJob.status) == "running", col(ImportJob.heartbeat_at) < stale)
            .values(status="queued")
        )
        ids = list(s.scalars(select(col(ImportJob.id)).where(col(ImportJob.status) == "queued")))
    for job_id in ids:
        rt.enqueue("run_import", job_id)
    return len(ids)


def _claim(rt: Runtime, job_id: int) -> bool:
    with rt.db.session() as s:
        claimed = rows_changed(
            s,
            update(ImportJob)
            .where(col(ImportJob.id) == job_id, col(ImportJob.status) == "queued")
            .values(status="running", heartbeat_at=utcnow()),
        )
        return bool(claimed)


def _finish(rt: Runtime, job_id: int, status: str, error: str = "") -> None:
    with rt.db.session() as s:
        job = s.get(ImportJob, job_id)
        if job is None:
            return
        job.status, job.error, job.finished_at = status, error[:1000], utcnow()
        if status == "done":
            job.processed_bytes = job.total_bytes
        upload_id = job.upload_id
    if upload_id is not None:
        uploads.remove(rt, upload_id)  # an uploaded copy holds personal data: not kept


def run_job(
    rt: Runtime,
    job_id: int,
    *,
    progress: Progress | None = None,
    workers: int = 0,
    chunk_rows: int = CHUNK_ROWS,
) -> ImportInfo | None:
    """Run a queued job to the end (or resume a stale one); harmless when run twice."""
    if not _claim(rt, job_id):
        return None
    try:
        with importrows.fewer_collections():
            _execute(rt, job_id, progress, workers, chunk_rows)
    except ListmgrError as exc:
        _finish(rt, job_id, "failed", exc.message)
    except (OSError, csvfiles.CsvFileError, importrows.MappingError, UnicodeDecodeError) as exc:
        _finish(rt, job_id, "failed", f"The file cannot be read: {exc}")
    except Exception as exc:
        log.exception("import %s failed", job_id)
        _finish(
            rt,
            job_id,
            "failed",
            f"The import stopped on an internal error ({exc}); rows before it were imported",
        )
        raise
    else:
        _finish(rt, job_id, "done")
    info = get(rt, job_id)
    if progress:
        progress(info)
    return info


def _validated(
    ctx: importrows.Context, path: Path, fmt: csvfiles.CsvFormat, size: int, workers: int
) -> Generator[importrows.Checked]:
    """Validated chunks in order, read and validated ahead of the writes: by a thread of this
    process (it runs while the database works, the drivers let go of the interpreter then), or
    by a helper process (a core of its own)."""
    if workers <= 0:
        results: Any = queue.Queue(HELPER_AHEAD)  # back-pressure: memory stays flat
        stop: Any = threading.Event()
        helper: Any = threading.Thread(
            target=importrows.helper_run,
            daemon=True,
            name=READER_THREAD,
            args=(ctx, path, fmt, size, results, stop),
        )
        switching: Any = _quick_switching()
    else:
        # spawn, not fork: this process has threads (workers, pools) that fork would copy
        # mid-lock.
        mp = multiprocessing.get_context("spawn")
        results = mp.Queue(HELPER_AHEAD)
        stop = mp.Event()
        helper = mp.Process(
            target=importrows.helper_process,
            daemon=True,
            args=(ctx, path, fmt, size, results, stop),
        )
        switching = nullcontext()
    with switching:
        helper.start()
        try:
            while (item := _next(results, helper)) is not None:
                yield item
        finally:
            stop.set()
            while helper.is_alive():  # a helper blocked on a full queue sees stop once it can
                with contextlib.suppress(queue.Empty):  # go on
                    results.get(timeout=0.1)
            helper.join()


_switching_lock = threading.Lock()
_switching_users = [0, 0.0]  # readers running in this process, the interval before the first


@contextmanager
def _quick_switching() -> Iterator[None]:
    """A short switch interval while any import's reader thread runs in this process: the
    writer mostly waits for the database and needs the interpreter back the moment a statement
    returns, where by default it would wait up to 5 ms behind the busy reader, ten times a
    piece (measured: 1 ms makes SQLite imports about 9% faster)."""
    with _switching_lock:
        if not _switching_users[0]:
            _switching_users[1] = sys.getswitchinterval()
            sys.setswitchinterval(min(_switching_users[1], READER_SWITCH_SECONDS))
        _switching_users[0] += 1
    try:
        yield
    finally:
        with _switching_lock:
            _switching_users[0] -= 1
            if not _switching_users[0]:
                sys.setswitchinterval(_switching_users[1])


def _next(results: Any, helper: Any) -> importrows.Checked | None:
    """The helper's next chunk; its exception is raised here, and so is its death."""
    while True:
        try:
            item = results.get(timeout=1)
        except queue.Empty:
            if not helper.is_alive():
                raise RuntimeError("the helper validating the rows stopped") from None
            continue
        if isinstance(item, BaseException):
            raise item
        return item


def _hash_key(rt: Runtime) -> bytes:
    return hashlib.sha256(b"suppression:" + rt.settings.secret_key.encode()).digest()


def _execute(
    rt: Runtime, job_id: int, progress: Progress | None, workers: int, chunk_rows: int
) -> None:
    with rt.db.session() as s:
        job = s.get(ImportJob, job_id)
        assert job is not None
        fields, interests = _definitions(s)
        slug = s.scalar(select(col(MailingList.slug)).where(col(MailingList.id) == job.list_id))
        if job.mode != "suppress" and slug is None:
            raise ValidationError("the list of this import was deleted", field="list")
    source = (
        uploads.local_copy(rt, job.upload_id)
        if job.upload_id is not None
        else nullcontext(Path(job.path))
    )
    with source as path:
        _run_file(rt, job, path, fields, interests, progress, workers, chunk_rows)


def _run_file(
    rt: Runtime,
    job: ImportJob,
    path: Path,
    fields: dict[str, importrows.FieldInfo],
    interests: frozenset[str],
    progress: Progress | None,
    workers: int,
    chunk_rows: int,
) -> None:
    job_id = id_of(job)
    fmt, header, mapping, _ = _header(path, dict((job.mapping or {}).get("explicit", {})), fields)
    ctx = importrows.Context(
        mapping,
        fields,
        interests,
        _hash_key(rt),
        len(header),
        copy_text=rt.db.dialect == "postgresql",
    )
    counts = {k: getattr(job, k) for k in ("rows", "inserted", "updated", "skipped", "errors")}
    done = counts, counts["skipped"] + counts["errors"]  # counts and report lines so far
    pieces = _validated(ctx, path, fmt, min(chunk_rows, PIECE_ROWS), workers)
    # closing: the helper stops as soon as this does, even while an exception is handled
    with closing(pieces), rt.db.engine.connect() as conn, bulk_settings(conn):
        with conn.begin():
            writer = Writer(conn)
        while True:
            group: list[importrows.Checked] = []  # this transaction's pieces, for a retry
            for attempt in range(3):
                try:
                    with conn.begin():
                        writer.begin_chunk()
                        now_done = done
                        for piece in _group(group, pieces, chunk_rows):
                            now_done = _write(conn, writer, job, piece, *now_done)
                    break
                except IntegrityError:
                    # Someone signed up with one of these addresses in between: look again.
                    if attempt == 2:
                        raise
            if not group:
                break
            done = now_done
            if progress:
                progress(get(rt, job_id))
        with conn.begin():
            writer.drop()


def _group(
    group: list[importrows.Checked], pieces: Iterator[importrows.Checked], rows: int
) -> Iterator[importrows.Checked]:
    """The pieces of one transaction (about `rows` rows in all): those of group (an earlier
    attempt's), then the next ones as they come, added to group. Each is written as soon as it
    is validated: waiting for a whole transaction's pieces first would leave the database idle
    while the helper, only HELPER_AHEAD pieces ahead, validates the rest."""
    yield from group
    while not group or group[-1].last - group[0].first + 1 < rows:
        piece = next(pieces, None)
        if piece is None:
            return
        group.append(piece)
        yield piece


def _write(
    conn: Any,
    writer: Writer,
    job: ImportJob,
    piece: importrows.Checked,
    counts: dict[str, int],
    report_lines: int,
) -> tuple[dict[str, int], int]:
    """One piece of a chunk's transaction; the job's counts and report lines after it."""
    # Rows an earlier run committed are only remembered (so their repeats are still found).
    staged = writer.stage(
        piece.people,
        piece.people_count,
        piece.first,
        job.last_row if piece.first <= job.last_row else 0,
    )
    if piece.last <= job.last_row:
        return counts, report_lines
    bad = [b for b in piece.bad if b[0] > job.last_row]
    repeats = [r for r in piece.repeats if r[0] > job.last_row]
    out = _apply(writer, job, staged, bad, repeats)
    counts = dict(
        counts,
        rows=counts["rows"] + staged + len(repeats) + len(bad),
        errors=counts["errors"] + len(bad),
    )
    for key in ("inserted", "updated", "skipped"):
        counts[key] += getattr(out, key)
    lines, report_lines = _report_lines(out, piece, report_lines)
    conn.execute(
        update(ImportJob)
        .where(col(ImportJob.id) == job.id)
        .values(
            processed_bytes=piece.bytes_read,
            last_row=piece.last,
            heartbeat_at=utcnow(),
            report=ImportJob.report + lines,
            **counts,
        )
    )
    return counts, report_lines


def _apply(
    writer: Writer,
    job: ImportJob,
    staged: int,
    bad: list[importrows.Bad],
    repeats: list[importrows.Repeat],
) -> Outcome:
    out = Outcome()
    for row, email, reason in bad:
        out.lines.append((row, email, "error", reason))
    for row, email, first in repeats:
        out.skip(row, email, f"the same address as row {first}")
    now = utcnow()
    actor = job.created_by or "import"
    if job.mode == "suppress":
        writer.suppress(out, staged, now=now, actor=actor, wording=job.consent, job_id=id_of(job))
    else:
        assert job.list_id is not None  # every other mode imports into a list
        writer.apply(
            out,
            staged,
            list_id=job.list_id,
            mode=job.mode,
            now=now,
            actor=actor,
            wording=job.consent,
            job_id=id_of(job),
        )
    return out


def _report_lines(out: Outcome, chunk: importrows.Checked, written: int) -> tuple[str, int]:
    """The chunk's report lines as CSV, in row order, up to MAX_REPORT_LINES in all."""
    # An erased person's address is never written down again, not even as a refused row.
    lines = sorted(
        (row, ERASED if email in out.erased else email, result, reason)
        for row, email, result, reason in out.lines
    )
    room = MAX_REPORT_LINES - written
    if not lines or room <= 0:
        return "", written + len(lines)
    text = "".join(
        csvfiles.write_row(
            [row, chunk.line(row), exports.safe_cell(email), result, exports.safe_cell(reason)]
        )
        for row, email, result, reason in lines[:room]
    )
    if len(lines) > room:
        text += csvfiles.write_row(
            [
                "",
                "",
                "",
                "",
                f"more than {MAX_REPORT_LINES} rows were "
                "skipped or had errors; only the first are listed",
            ]
        )
    return text, written + len(lines)
