"""Uploaded files kept in the database, so that a worker on any host reads what a web process
on another took in: stored in pieces, copied out to a private temporary file to be read, and
deleted when their import ends or nobody claimed them in time."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import IO

from sqlalchemy import delete, exists, func, insert, select
from sqlmodel import col

from listmgr.errors import ValidationError
from listmgr.models import ImportJob, Upload, UploadChunk, id_of, utcnow
from listmgr.runtime import Runtime

CHUNK_BYTES = 1 << 20  # one row of upload_chunk: what is in memory at once, either way
KEEP = timedelta(hours=2)  # an upload waiting for its column mapping, at most
GONE = "the upload is gone; please upload the file again"


@dataclass(frozen=True)
class Stored:
    id: int
    token: str
    filename: str
    size: int


def store(rt: Runtime, stream: IO[bytes], *, filename: str) -> Stored:
    """Read the stream to its end into the database (one transaction: all of it or nothing)."""
    token = uuid.uuid4().hex
    size = 0
    with rt.db.session() as s:
        upload = Upload(token=token, filename=filename[:500])
        s.add(upload)
        s.flush()
        upload_id = id_of(upload)
        seq = 0
        while piece := stream.read(CHUNK_BYTES):
            s.execute(insert(UploadChunk).values(upload_id=upload_id, seq=seq, data=piece))
            size += len(piece)
            seq += 1
        upload.size = size
    return Stored(upload_id, token, filename[:500], size)


def find(rt: Runtime, token: str) -> Stored:
    """The upload a form names by its token."""
    with rt.db.session() as s:
        upload = s.scalar(select(Upload).where(col(Upload.token) == token))
        if upload is None:
            raise ValidationError(GONE, field="file")
        return Stored(id_of(upload), upload.token, upload.filename, upload.size)


def _pieces(rt: Runtime, upload_id: int) -> Iterator[bytes]:
    """The upload's bytes, one piece at a time (one query each: memory stays flat)."""
    with rt.db.session() as s:
        count = s.scalar(
            select(func.count())
            .select_from(UploadChunk)
            .where(col(UploadChunk.upload_id) == upload_id)
        )
        if not count:
            known = s.scalar(select(exists().where(col(Upload.id) == upload_id)))
            if not known:
                raise ValidationError(GONE, field="file")
        for seq in range(count or 0):
            yield (
                s.scalar(
                    select(col(UploadChunk.data)).where(
                        col(UploadChunk.upload_id) == upload_id, col(UploadChunk.seq) == seq
                    )
                )
                or b""
            )


def content(rt: Runtime, upload_id: int) -> bytes:
    """The whole upload at once (only for an erasure, which rewrites it whole)."""
    return b"".join(_pieces(rt, upload_id))


@contextmanager
def local_copy(rt: Runtime, upload_id: int) -> Iterator[Path]:
    """The upload as a file of this host's own, readable only by this user, removed after:
    the CSV reader seeks and reads parts twice, which a database value cannot offer."""
    fd, name = tempfile.mkstemp(prefix="listmgr-upload-", suffix=".csv")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            for piece in _pieces(rt, upload_id):
                fh.write(piece)
        yield path
    finally:
        path.unlink(missing_ok=True)


def remove(rt: Runtime, upload_id: int) -> None:
    """Delete an upload (it holds personal data: never kept longer than its import)."""
    with rt.db.session() as s:
        s.execute(delete(UploadChunk).where(col(UploadChunk.upload_id) == upload_id))
        s.execute(delete(Upload).where(col(Upload.id) == upload_id))


def forget(rt: Runtime, older_than: timedelta | None = KEEP) -> int:
    """Delete uploads no queued or running import reads (abandoned on the mapping page):
    those older than older_than, or all of them (an erasure: they may hold the address).
    Returns how many."""
    busy = select(col(ImportJob.upload_id)).where(
        col(ImportJob.status).in_(("queued", "running")), col(ImportJob.upload_id).is_not(None)
    )
    query = select(col(Upload.id)).where(col(Upload.id).not_in(busy))
    if older_than is not None:
        query = query.where(col(Upload.created_at) < utcnow() - older_than)
    with rt.db.session() as s:
        ids = list(s.scalars(query))
        if ids:
            s.execute(delete(UploadChunk).where(col(UploadChunk.upload_id).in_(ids)))
            s.execute(delete(Upload).where(col(Upload.id).in_(ids)))
    return len(ids)
