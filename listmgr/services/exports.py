"""Exporting a list (optionally narrowed by a saved segment), or chosen people, as CSV, streamed
page by page."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, null, select
from sqlalchemy.orm import Session
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
from listmgr.services import audit, segments, subscriptions

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
# Chosen people are not seen through one list: their memberships are one column instead.
PEOPLE_BUILTIN = (
    "email",
    "name",
    "lists",
    "suppressed",
    "paused_until",
    "created_at",
    "source",
    "interests",
)
PEOPLE_DEFAULT = ("email", "name", "lists", "suppressed", "created_at", "source")
# suppressed: the suppression reason (unsubscribed from all, bounced, complained, ...) of people
# whose membership still reads confirmed: whoever mails the export elsewhere must see it.
DEFAULT = ("email", "name", "status", "suppressed", "subscribed_at", "created_at", "source")


@dataclass(frozen=True)
class Export:
    """A checked export: its columns and the means to stream its rows."""

    list_id: int | None  # None: the chosen people (ids), whatever their lists
    list_slug: str
    columns: tuple[str, ...]
    custom: dict[str, str]  # column -> field key
    status: str | None
    segment_id: int | None
    segment_rules: dict[str, Any] | None
    ids: tuple[int, ...] = ()


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
    wanted = _wanted(fields)
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
    columns, custom = _columns(wanted, DEFAULT, BUILTIN, keys)
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


def _wanted(fields: str | list[str] | None) -> list[str]:
    wanted = (
        [f.strip() for f in fields.split(",")] if isinstance(fields, str) else list(fields or [])
    )
    return [f for f in wanted if f]


def _columns(
    wanted: list[str], default: tuple[str, ...], builtin: tuple[str, ...], keys: list[str]
) -> tuple[list[str], dict[str, str]]:
    """The columns to write (the default ones and every field unless some are asked for) and
    which of them are custom fields; unknown or repeated columns are refused."""
    columns = wanted or list(default) + keys + ["interests"]
    custom: dict[str, str] = {}
    for column in columns:
        key = column[7:] if column.startswith("fields.") else column
        if column in builtin:
            continue
        if key not in keys:
            raise ValidationError(
                f"unknown column {column!r}: choose from {', '.join(builtin + tuple(keys))}",
                field="fields",
            )
        custom[column] = key
    if len(set(columns)) != len(columns):
        raise ValidationError("a column is named twice", field="fields")
    return columns, custom


def prepare_people(
    rt: Runtime,
    ids: Iterable[Any],
    *,
    fields: str | list[str] | None = None,
    actor: str = "",
    ip: str = "",
) -> Export:
    """Check the chosen people (every id must exist) and the columns; audit it once."""
    chosen = subscriptions.selection(ids)
    wanted = _wanted(fields)
    with rt.db.session() as s:
        found = 0
        for part in subscriptions.chunks(chosen):
            found += (
                s.scalar(select(func.count(col(Subscriber.id))).where(col(Subscriber.id).in_(part)))
                or 0
            )
        if found != len(chosen):
            raise NotFound(
                f"{len(chosen) - found} of the chosen subscribers do not exist (any more); "
                "nothing was exported.",
                field="ids",
            )
        keys = list(s.scalars(select(col(FieldDef.key)).order_by(col(FieldDef.id))))
    columns, custom = _columns(wanted, PEOPLE_DEFAULT, PEOPLE_BUILTIN, keys)
    audit.record(
        rt,
        actor=actor,
        action="people.export",
        target_type="subscriber",
        target_id="",
        ip=ip,
        detail={"subscribers": len(chosen), "ids": chosen[:1000], "columns": columns},
    )
    return Export(None, "subscribers", tuple(columns), custom, None, None, None, tuple(chosen))


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


_PERSON = (
    col(Subscriber.id),
    col(Subscriber.email),
    col(Subscriber.name),
    col(Subscriber.fields),
    col(Subscriber.source),
    col(Subscriber.created_at),
    col(Suppression.reason),
    col(Subscriber.paused_until),
)


def _list_page(s: Session, export: Export, last: int) -> list[Any]:
    """The next page of the list's members after subscriber id `last`."""
    where: list[ColumnElement[bool]] = [col(Subscriber.id) > last]
    if export.segment_rules:
        where.append(segments.expression(s, lists=[], rules=export.segment_rules))
    if export.status:
        where.append(col(Membership.status) == export.status)
    return list(
        s.execute(
            select(
                *_PERSON,
                col(Membership.status),
                col(Membership.opt_in_level),
                col(Membership.confirmed_at),
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
    )


def _people_page(s: Session, ids: list[int]) -> list[Any]:
    """The chosen people with these ids (no list: no membership columns)."""
    return list(
        s.execute(
            select(
                *_PERSON,
                null().label("status"),
                null().label("opt_in_level"),
                null().label("confirmed_at"),
            )
            .outerjoin(Suppression, col(Suppression.email_hash) == Subscriber.email_hash)
            .where(col(Subscriber.id).in_(ids))
            .order_by(col(Subscriber.id))
        ).all()
    )


def _by_person(s: Session, query: Any) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for sid, value in s.execute(query):
        out.setdefault(sid, []).append(value)
    return out


def rows(rt: Runtime, export: Export) -> Iterator[str]:
    """The CSV text: a header line, then people page by page (each page one short query)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(export.columns)
    yield out.getvalue()
    last = 0
    pending = iter(subscriptions.chunks(sorted(export.ids), PAGE))
    while True:
        out.seek(0)
        out.truncate()
        part = next(pending, None) if export.list_id is None else None
        with rt.db.session() as s:
            if export.list_id is not None:
                page = _list_page(s, export, last)
            elif part is not None:
                page = _people_page(s, part)
                if not page:  # erased since the export was checked
                    continue
            else:
                page = []
            if not page:
                return
            ids = [r.id for r in page]
            interests = lists = {}
            if "interests" in export.columns:
                interests = _by_person(
                    s,
                    select(col(SubscriberInterest.subscriber_id), col(SubscriberInterest.interest))
                    .where(col(SubscriberInterest.subscriber_id).in_(ids))
                    .order_by(SubscriberInterest.interest),
                )
            if "lists" in export.columns:
                lists = _by_person(
                    s,
                    select(
                        col(Membership.subscriber_id),
                        col(MailingList.slug) + ":" + col(Membership.status),
                    )
                    .join(MailingList, col(MailingList.id) == col(Membership.list_id))
                    .where(col(Membership.subscriber_id).in_(ids))
                    .order_by(col(MailingList.slug)),
                )
        for r in page:
            values = {
                "email": r.email,
                "name": r.name,
                "status": r.status,
                "lists": lists.get(r.id, []),
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
