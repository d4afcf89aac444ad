"""Uploads live in the database: a worker on another host (another var directory, nothing on
disk shared) runs the import, large files go in pieces, and nothing stays behind."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import func, select

from listmgr.errors import ValidationError
from listmgr.models import Subscriber, Upload, UploadChunk
from listmgr.services import imports, lists, uploads


def _stored(rt) -> tuple[int, int]:
    with rt.db.session() as s:
        return (
            s.scalar(select(func.count()).select_from(Upload)) or 0,
            s.scalar(select(func.count()).select_from(UploadChunk)) or 0,
        )


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_a_worker_on_another_host_imports_what_the_web_host_took_in(make_runtime, tmp_path):
    web = make_runtime(threads=0, var_dir=str(tmp_path / "web-host"))
    worker = make_runtime(threads=0, var_dir=str(tmp_path / "worker-host"))
    lists.create(web, slug="news", name="News")
    rows = 70_000  # about 2.3 MB: three pieces
    body = "Mail;Name\r\n" + "".join(f"p{i}@example.org;Person {i}\r\n" for i in range(rows))
    data = ("\ufeff" + body).encode("utf-8")
    assert len(data) > 2 * uploads.CHUNK_BYTES
    stored = uploads.store(web, io.BytesIO(data), filename="people.csv")
    assert stored.size == len(data) and _stored(web) == (1, 3)
    job = imports.create_job(
        web, upload_id=stored.id, filename="people.csv", list_slug="news", consent="fair"
    )
    assert not _files(tmp_path / "web-host") and not _files(tmp_path / "worker-host")

    before = set(Path(tempfile.gettempdir()).glob("listmgr-upload-*"))
    info = imports.run_job(worker, job)
    assert info is not None and info.status == "done", info
    assert (info.rows, info.inserted, info.processed_bytes) == (rows, rows, len(data))
    with worker.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Subscriber)) == rows
    assert _stored(worker) == (0, 0)  # the upload held personal data: gone with its import
    assert set(Path(tempfile.gettempdir()).glob("listmgr-upload-*")) <= before  # copy removed
    assert not _files(tmp_path / "worker-host")


def test_a_local_file_is_stored_so_any_host_can_resume_the_job(make_runtime, tmp_path):
    cli = make_runtime(threads=0)
    lists.create(cli, slug="news", name="News")
    local = tmp_path / "people.csv"
    local.write_bytes(b"email\nada@example.org\n")
    job = imports.create_job(cli, path=local, list_slug="news", consent="fair")
    local.unlink()  # the host that had the file is gone
    assert imports.get(cli, job).filename == "people.csv"
    other = make_runtime(threads=0, var_dir=str(tmp_path / "other-host"))
    info = imports.run_job(other, job)
    assert info is not None and (info.status, info.inserted) == ("done", 1)


def test_an_upload_that_is_gone_is_a_clear_error(make_runtime):
    rt = make_runtime(threads=0)
    lists.create(rt, slug="news", name="News")
    with pytest.raises(ValidationError, match="upload the file again"):
        uploads.find(rt, "0" * 32)
    with pytest.raises(ValidationError, match="upload the file again"):
        imports.create_job(rt, upload_id=12345, list_slug="news", consent="fair")
    empty = uploads.store(rt, io.BytesIO(b""), filename="empty.csv")
    with pytest.raises(ValidationError, match="cannot be read"):
        imports.create_job(rt, upload_id=empty.id, list_slug="news", consent="fair")
