"""What an erasure does beyond the person's own rows: every other table is searched for their
address and name in any spelling (free text, JSON, stored mail, uploads) and blotted out.

Every table of the schema has one entry in TABLES saying how it can hold the person, so a new
table cannot be forgotten (a test checks the schema against it)."""

from __future__ import annotations

import io
import json
from typing import Any

from sqlalchemy import JSON, LargeBinary, String, Table, delete, select, text, update
from sqlalchemy.orm import Mapped, Session
from sqlmodel import col

from listmgr.db import rows_changed
from listmgr.mail.redact import parties, redact
from listmgr.models import DevMail, ImportJob, InboundMessage, SQLModel, id_of, utcnow
from listmgr.runtime import Runtime
from listmgr.traces import Traces

SWEPT = "swept"  # every text and JSON column of every row searched and blotted out
# The same for the tables of many rows a person holds (values people and integrations type):
# searched for the plain, URL, JSON and HTML spellings, not for mail's transfer encodings.
TYPED = "swept for typed spellings"
# How each table can hold a person besides their own rows (which privacy.erase deletes).
TABLES: dict[str, str] = {
    "mailing_list": SWEPT,
    "field_def": SWEPT,
    "interest": SWEPT,
    "suppression": SWEPT,
    "outbox": SWEPT,
    "segment": SWEPT,
    "campaign": SWEPT,
    "campaign_link": SWEPT,
    "campaign_template": SWEPT,
    "audit_log": SWEPT,
    "import_job": SWEPT,
    "upload": SWEPT,
    "upload_chunk": "uploaded files: those waiting deleted, a queued import's blotted out "
    "(erasure.uploads)",
    "setting_value": SWEPT,
    "subscriber": TYPED,
    "membership": TYPED,
    "subscriber_interest": TYPED,
    "subscriber_field_value": "subscriber.fields as the database copies them: rewritten with "
    "the fields they come from (sweeping subscriber rewrites them), deleted with the person",
    "consent_event": TYPED,
    "activity_event": TYPED,
    "engagement": TYPED,
    "repermission": TYPED,
    "inbound_message": "mail: the person's own deleted, others' that name them redacted",
    "dev_mail": "mail: captured mail that names the person deleted",
    "delivery": "ledger: the person's rows anonymised; other rows hold only other "
    "recipients' SMTP replies",
    "app_user": "staff accounts: a colleague's login is not a subscriber's data",
    "api_token": "staff tokens: hashes and names only",
    "login_throttle": "staff sign-in counters: keyed hashes only",
    "domain_backoff": "receiving domains that asked us to slow down: domains, never addresses",
    "domain_slot": "sending jobs' slots per receiving domain: domains and job names only",
    "send_volume": "messages sent per day: counts only",
    "privacy_notice": "the published notices: built from the configuration, never a person",
    "worker_process": "heartbeats of worker processes: host names and process ids only",
}
# Columns never rewritten: another subscriber's name is their own, even when it is the erased
# person's too; digests, file paths, IP addresses and the product's action names hold no
# address or name.
KEYS = {
    ("subscriber", "email"),
    ("subscriber", "email_hash"),
    ("subscriber", "name"),
    ("suppression", "email_hash"),
    ("import_job", "path"),
    ("consent_event", "ip"),
    ("audit_log", "ip"),
    ("audit_log", "action"),
}
REDACTED_UNPROCESSED = "redacted by an erasure before it was processed: left for a human"


def _escape(needle: str) -> str:
    return "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _holds_any(s: Session, columns: list[Any], needles: list[str]) -> Any:
    """Some column contains one of the (lower-case) needles, ignoring case. Written as SQL
    text: compiling hundreds of LIKE expressions a table cost more than running them."""
    params = {f"n{i}": _escape(n) for i, n in enumerate(needles)}
    names = [f'CAST({c.table.name}."{c.name}" AS TEXT)' for c in columns]
    if s.get_bind().dialect.name == "postgresql":
        # The row's columns as one lower-case text, every pattern matched against it
        # (backslash is the default LIKE escape there).
        row = " || chr(1) || ".join(f"coalesce({n}, '')" for n in names)
        patterns = ", ".join(f":{k}" for k in params)
        clause = f"lower({row}) LIKE ANY (ARRAY[{patterns}])"
    else:
        # SQLite's LIKE ignores the case of ASCII letters by itself (the needles carry the
        # other letters in both cases); it would build a joined text again for each pattern.
        clause = " OR ".join(f"{n} LIKE :{k} ESCAPE '\\'" for n in names for k in params)
    return text(clause).bindparams(**params)


def _text_columns(table: Table) -> list[Any]:
    def textual(kind: Any) -> bool:
        kind = getattr(kind, "impl_instance", kind)  # SQLModel's strings are decorated
        # Columns of at most 32 characters hold the product's own codes (status, kind, role).
        short = isinstance(kind, String) and kind.length is not None and kind.length <= 32
        return isinstance(kind, (String, JSON)) and not isinstance(kind, LargeBinary) and not short

    return [
        c
        for c in table.columns
        if not c.primary_key and (table.name, c.name) not in KEYS and textual(c.type)
    ]


def sweep(s: Session, traces: Traces) -> int:
    """Blot the person out of every swept table's text and JSON; returns the rows changed."""
    needles = {SWEPT: traces.needles(), TYPED: traces.needles(encoded=False)}
    changed = 0
    for table in SQLModel.metadata.sorted_tables:
        columns = _text_columns(table)
        how = TABLES.get(table.name, "")
        if how not in needles or not columns:
            continue
        keys = list(table.primary_key.columns)
        query = select(*keys, *columns).where(_holds_any(s, columns, needles[how]))
        updates = []
        for row in s.execute(query).all():
            values = {}
            for column in columns:
                value = row._mapping[column]
                if value is None or not traces.found(value, near=traces.found_address(value)):
                    continue
                new = traces.scrub(value)
                length = getattr(column.type, "length", None)
                if isinstance(new, str) and length:
                    new = new[:length]
                values[column.name] = new
            if values:
                updates.append(([row._mapping[k] for k in keys], values))
        for ident, values in updates:
            s.execute(
                update(table)
                .where(*(k == v for k, v in zip(keys, ident, strict=False)))
                .values(**values)
            )
        changed += len(updates)
    return changed


# -- stored mail ---------------------------------------------------------------------------
def _about(traces: Traces, sid: int, row: Any) -> bool:
    """Mail from, to or about the person (deleted whole), rather than mail of others that
    merely names them (redacted)."""
    if (
        row.subscriber_id == sid
        or traces.found_address(row.envelope_from)
        or traces.found_address(row.envelope_to)
    ):
        return True
    if traces.found_address(" ".join(parties(bytes(row.raw)))):
        return True
    recipients = (row.evidence or {}).get("recipients") or []
    if traces.found_address(" ".join(str(r) for r in recipients)):
        return True
    # An unattributed bounce, complaint or unsubscribe naming them is about them.
    return row.subscriber_id is None and row.kind in ("bounce", "complaint", "unsubscribe")


_INBOUND: tuple[Mapped[Any], ...] = (
    col(InboundMessage.id),
    col(InboundMessage.raw),
    col(InboundMessage.envelope_from),
    col(InboundMessage.envelope_to),
    col(InboundMessage.subscriber_id),
    col(InboundMessage.evidence),
    col(InboundMessage.kind),
    col(InboundMessage.status),
    col(InboundMessage.message_id),
    col(InboundMessage.action),
    col(InboundMessage.error),
)


def _naming(traces: Traces, row: Any) -> bool:
    texts = (
        row.envelope_from,
        row.envelope_to,
        row.message_id,
        row.action,
        row.error,
        json.dumps(row.evidence or {}, ensure_ascii=False),
    )
    if not traces.may_hold(bytes(row.raw) + "\n".join(texts).encode()):
        return False  # one quick look at the whole row: most mail names nobody erased
    return any(traces.found(v) for v in (row.raw, *texts))


def _scan(s: Session, query: Any, traces: Traces, sid: int) -> tuple[list[int], list[int]]:
    """(ids of the person's own mail, ids of others' mail naming them), reading in batches."""
    own: list[int] = []
    others: list[int] = []
    for row in s.execute(query.execution_options(yield_per=200)):
        if row.subscriber_id == sid or _naming(traces, row):
            (own if _about(traces, sid, row) else others).append(id_of(row))
    return own, others


def unprocessed_naming(rt: Runtime, traces: Traces, sid: int) -> list[int]:
    """Others' mail naming the person that is not yet processed (it is processed before the
    erasure redacts it, so nothing it asks for is lost)."""
    with rt.db.session() as s:
        return _scan(
            s, select(*_INBOUND).where(col(InboundMessage.status) != "processed"), traces, sid
        )[1]


def stored_mail(s: Session, traces: Traces, sid: int) -> None:
    """Delete the person's own inbound and captured mail; redact others' mail naming them."""
    own, others = _scan(s, select(*_INBOUND), traces, sid)
    if own:
        s.execute(
            delete(InboundMessage).where(col(InboundMessage.id).in_(own)),
            execution_options={"synchronize_session": False},
        )
    now = utcnow()
    for mid in others:
        row = s.get(InboundMessage, mid)
        assert row is not None
        near = traces.found_address(row.raw)
        row.raw = redact(bytes(row.raw), traces)
        row.size = len(row.raw)
        row.redacted_at = now
        for name in ("envelope_from", "envelope_to", "message_id", "action", "error"):
            setattr(row, name, traces.scrub_text(getattr(row, name), near=near))
        row.evidence = traces.scrub(dict(row.evidence or {}), near=near)
        if row.status != "processed":
            row.status, row.processed_at = "processed", now
            row.kind = row.kind or "other"
            row.action, row.handled = REDACTED_UNPROCESSED, False
    captured = [
        id_of(r)
        for r in s.execute(
            select(
                col(DevMail.id),
                col(DevMail.raw),
                col(DevMail.rcpt_to),
                col(DevMail.mail_from),
                col(DevMail.subject),
            ).execution_options(yield_per=200)
        )
        if any(traces.found(v) for v in (r.raw, r.rcpt_to, r.mail_from, r.subject))
    ]
    if captured:
        s.execute(
            delete(DevMail).where(col(DevMail.id).in_(captured)),
            execution_options={"synchronize_session": False},
        )


# -- uploads --------------------------------------------------------------------------------
def uploads(rt: Runtime, traces: Traces) -> None:
    """Uploads waiting for their mapping go (they may hold the person); a queued import not yet
    started gets its file with the person blotted out (the row then fails as a bad address).
    A running import keeps reading its copy, refuses the address (it is suppressed) and
    deletes the upload when it ends."""
    from listmgr.services import uploads as stored

    stored.forget(rt, older_than=None)
    with rt.db.session() as s:
        waiting = s.execute(
            select(col(ImportJob.id), col(ImportJob.upload_id), col(ImportJob.filename)).where(
                col(ImportJob.status) == "queued",
                col(ImportJob.last_row) == 0,
                col(ImportJob.upload_id).is_not(None),
            )
        ).all()
    for job_id, upload_id, filename in waiting:
        assert upload_id is not None  # (selected so)
        data = stored.content(rt, upload_id)
        if not traces.found(data):
            continue
        codec = "utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else "utf-8"
        try:
            content = data.decode(codec)
        except UnicodeDecodeError:
            codec, content = "latin-1", data.decode("latin-1")
        clean = "\n".join(
            traces.scrub_text(line, near=traces.found_address(line)) for line in content.split("\n")
        ).encode(codec, "replace")
        # A new upload, never one rewritten in place: a worker that has just claimed the job
        # reads one or the other complete.
        spare = stored.store(rt, io.BytesIO(clean), filename=filename)
        with rt.db.session() as s:
            swapped = rows_changed(
                s,
                update(ImportJob)
                .where(
                    col(ImportJob.id) == job_id,
                    col(ImportJob.status) == "queued",
                    col(ImportJob.upload_id) == upload_id,
                )
                .values(upload_id=spare.id, total_bytes=spare.size),
            )
        stored.remove(rt, upload_id if swapped else spare.id)
