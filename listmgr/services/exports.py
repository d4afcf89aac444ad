"""Exporting a list (optionally narrowed by a saved segment) as CSV, streamed page by page."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from listmgr.errors import NotFound, ValidationError
from listmgr.importrows import FORMULA_STARTS
from listmgr.models import (
    FieldDef,
    MailingList,
    Membership,
    MemberStatus,
    Segment,
    Subscriber,
    SubscriberInterest,
    Suppression,
    by_id,
    id_of,
)
from listmgr.runtime import Runtime
from listmgr.services import audit, segments

PAGE = 2000
BUILTIN = (
    "email",
    "name",
    "status",
    "suppressed",
    "paused_until",
    "opt_in_level",
    "subscribed_at",
    "created_at",
    "source",
    "interests",
)
# suppressed: the suppression reason (unsubscribed from all, bounced, complained, ...) of people
# whose membership still reads confirmed: whoever mails the export elsewhere must see it.
DEFAULT = ("email", "name", "status", "suppressed", "subscribed_at", "created_at", "source")


@dataclass(frozen=True)
class Export:
    """A checked export: its columns and the means to stream its rows."""

    list_id: int
    list_slug: str
    columns: tuple[str, ...]
    custom: dict[str, str]  # column -> field key
    status: str | None
    segment_id: int | None
    segment_rules: dict[str, Any] | None


def prepare(
    rt: Runtime,
    *,
    list_slug: str,
    fields: str | list[str] | None = None,
    segment_id: int | None = None,
    status: str | None = None,
    actor: str = "",
    ip: str = "",
) -> Export:
    """Check the list, columns, segment and status before anything is streamed; audit it."""
    wanted = (
        [f.strip() for f in fields.split(",")] if isinstance(fields, str) else list(fields or [])
    )
    wanted = [f for f in wanted if f]
    if status is not None and status not in [s.value for s in MemberStatus]:
        raise ValidationError(
            "status must be pending, confirmed, unsubscribed or bounced", field="status"
        )
    with rt.db.session() as s:
        lst = s.scalar(select(MailingList).where(col(MailingList.slug) == list_slug))
        if lst is None:
            raise NotFound(f"there is no list {list_slug!r}", field="list")
        keys = list(s.scalars(select(col(FieldDef.key)).order_by(col(FieldDef.id))))
        rules = None
        if segment_id is not None:
            seg = by_id(s, Segment, segment_id)
            if seg is None:
                raise NotFound(f"there is no segment {segment_id}", field="segment")
            rules = dict(seg.rules or {})
            segments.expression(s, lists=[], rules=rules)  # still valid against the fields?
    columns = wanted or list(DEFAULT) + keys + ["interests"]
    custom: dict[str, str] = {}
    for column in columns:
        key = column[7:] if column.startswith("fields.") else column
        if column in BUILTIN:
            continue
        if key not in keys:
            raise ValidationError(
                f"unknown column {column!r}: choose from {', '.join(BUILTIN + tuple(keys))}",
                field="fields",
            )
        custom[column] = key
    if len(set(columns)) != len(columns):
        raise ValidationError("a column is named twice", field="fields")
    audit.record(
        rt,
        actor=actor,
        action="people.export",
        target_type="list",
        target_id=lst.id,
        ip=ip,
        detail={"list": lst.slug, "segment": segment_id, "status": status, "columns": columns},
    )
    return Export(
        id_of(lst),
        lst.slug,
        tuple(columns),
        custom,
        status,
        segment_id,
        rules,
    )


def safe_cell(value: str) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula (imports strip the ')."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _text(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        value = "|".join(str(v) for v in value)
    return safe_cell(value) if isinstance(value, str) else value


def rows(rt: Runtime, export: Export) -> Iterator[str]:
    """The CSV text: a header line, then members page by page (each page one short query)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(export.columns)
    yield out.getvalue()
    last = 0
    while True:
        out.seek(0)
        out.truncate()
        with rt.db.session() as s:
            where: list[ColumnElement[bool]] = [col(Subscriber.id) > last]
            if export.segment_rules:
                where.append(segments.expression(s, lists=[], rules=export.segment_rules))
            if export.status:
                where.append(col(Membership.status) == export.status)
            page = s.execute(
                select(
                    col(Subscriber.id),
                    col(Subscriber.email),
                    col(Subscriber.name),
                    col(Subscriber.fields),
                    col(Subscriber.source),
                    col(Subscriber.created_at),
                    col(Membership.status),
                    col(Membership.opt_in_level),
                    col(Membership.confirmed_at),
                    col(Suppression.reason),
                    col(Subscriber.paused_until),
                )
                .join(
                    Membership,
                    (col(Membership.subscriber_id) == Subscriber.id)
                    & (col(Membership.list_id) == export.list_id),
                )
                .outerjoin(Suppression, col(Suppression.email_hash) == Subscriber.email_hash)
                .where(*where)
                .order_by(col(Subscriber.id))
                .limit(PAGE)
            ).all()
            if not page:
                return
            interests: dict[int, list[str]] = {}
            if "interests" in export.columns:
                for sid, key in s.execute(
                    select(col(SubscriberInterest.subscriber_id), col(SubscriberInterest.interest))
                    .where(col(SubscriberInterest.subscriber_id).in_([r.id for r in page]))
                    .order_by(SubscriberInterest.interest)
                ):
                    interests.setdefault(sid, []).append(key)
        for r in page:
            values = {
                "email": r.email,
                "name": r.name,
                "status": r.status,
                "suppressed": r.reason or "",
                "paused_until": r.paused_until.isoformat(timespec="seconds")
                if r.paused_until
                else "",
                "opt_in_level": r.opt_in_level,
                "source": r.source,
                "created_at": r.created_at.isoformat(timespec="seconds"),
                "subscribed_at": r.confirmed_at.isoformat(timespec="seconds")
                if r.confirmed_at
                else "",
                "interests": interests.get(r.id, []),
            }
            fields = r.fields or {}
            writer.writerow(
                [
                    _text(fields.get(export.custom[c]) if c in export.custom else values[c])
                    for c in export.columns
                ]
            )
        last = page[-1].id
        yield out.getvalue()
