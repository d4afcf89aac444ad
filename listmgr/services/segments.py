"""Saved segments (name, lists, rules) and live audience counts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from listmgr import segments as compiler
from listmgr.errors import Conflict, Forbidden, NotFound, ValidationError
from listmgr.models import (
    Campaign,
    CampaignStatus,
    FieldDef,
    Interest,
    MailingList,
    Segment,
    Subscriber,
    by_id,
    id_of,
    utcnow,
)
from listmgr.runtime import Runtime

MAX_NAME = 200


@dataclass(frozen=True)
class SegmentInfo:
    id: int
    name: str
    lists: list[str]
    rules: dict[str, Any]
    created_at: str
    updated_at: str


def definitions(
    s: Session,
) -> tuple[dict[str, compiler.FieldSpec], set[str], dict[str, tuple[str, ...]]]:
    """Field specs, interest keys and list slugs (with their opt-in levels) rules may name."""
    fields = {
        d.key: compiler.FieldSpec(d.type, tuple(d.choices or ()))
        for d in s.scalars(select(FieldDef))
    }
    lists = {
        slug: tuple(levels or ())
        for slug, levels in s.execute(select(col(MailingList.slug), col(MailingList.opt_in_levels)))
    }
    return fields, set(s.scalars(select(col(Interest.key)))), lists


def expression(
    s: Session, *, lists: Sequence[str], rules: Any, now: datetime | None = None
) -> ColumnElement[bool]:
    """The compiled condition over Subscriber for lists + rules, checked against this database.

    With lists: the campaign audience (confirmed on any of them, not suppressed, not paused,
    matching the rules; see listmgr.segments.audience). Without lists: everyone matching.
    """
    fields, interests, slugs = definitions(s)
    now = now or utcnow()
    ids = list_ids(s)
    if lists:
        return compiler.audience(
            _lists(lists),
            rules,
            fields=fields,
            now=now,
            interests=interests,
            known_lists=slugs,
            list_ids=ids,
        )
    return compiler.compile_rules(
        rules, fields=fields, now=now, interests=interests, lists=slugs, list_ids=ids
    )


def list_ids(s: Session) -> dict[str, int]:
    """Every list's id by slug (the compiled rules name lists by id)."""
    rows: list[tuple[str, int | None]] = [
        (r[0], r[1]) for r in s.execute(select(col(MailingList.slug), col(MailingList.id)))
    ]
    return {slug: i for slug, i in rows if i is not None}


def rules_in_force(s: Session, segment_id: int | None, rules: dict[str, Any] | None) -> Any:
    """A campaign's segment rules in force: its inline rules, else its saved segment's."""
    if rules:
        return rules
    if segment_id is not None:
        segment = s.get(Segment, segment_id)
        return dict(segment.rules or {}) if segment is not None else {}
    return {}


COUNT_SECONDS = 30  # PostgreSQL: a live count that takes longer is stopped


IDENTIFYING = frozenset({"email", "name"})


def refuse_identifying(s: Session, rules: Any) -> None:
    """For callers without access to personal data: rules may not test an address, a name or
    a free-text field (a phone number is found digit by digit with "contains", and "not"
    turns any answer into its complement), only whether such a field is filled in."""
    named = compiler.valued(rules, hidden_fields(s))
    if named:
        raise Forbidden(
            f"counting by {', '.join(sorted(named))} needs access to personal "
            "data (without it, a rule may only ask whether such a field exists)",
            field="rules",
        )


def count(rt: Runtime, *, lists: Sequence[str], rules: Any, personal: bool = True) -> int:
    """How many subscribers the lists + rules select right now (personal=False: for a caller
    without access to personal data, see refuse_identifying; the caller shows the number
    through listmgr.aggregates)."""
    with rt.db.session() as s:
        if not personal:
            refuse_identifying(s, rules)
        return counted(s, expression(s, lists=lists, rules=rules))


def counted(s: Session, where: ColumnElement[bool]) -> int:
    """Count the subscribers `where` selects, bounded in time and memory on PostgreSQL (every
    count a caller can ask for while typing goes through here)."""
    prepare_count(s)
    try:
        return int(s.scalar(select(func.count()).select_from(Subscriber).where(where)) or 0)
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) != "57014":  # PostgreSQL's query_canceled
            raise
        raise ValidationError(
            f"counting this audience took longer than {COUNT_SECONDS} s; make its rules simpler",
            field="rules",
        ) from None


def prepare_count(s: Session) -> None:
    """The settings of this transaction for a count (PostgreSQL; nothing on SQLite)."""
    if s.get_bind().dialect.name == "postgresql":
        # A count is asked for while typing, by anyone who may edit segments: it may not
        # hold a connection for long. Counting "at least N events" groups ~100k event
        # rows; 4 MB would spill to disk. One process per count: live counts come often
        # and side by side, and parallel workers only queue for the same cores (measured
        # on 2 cores: 200 ms -> 150 ms).
        s.execute(text(f"SET LOCAL statement_timeout = '{COUNT_SECONDS}s'"))
        s.execute(text("SET LOCAL work_mem = '64MB'"))
        s.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
        # The narrow indexes a count reads (membership by list, the subscriber audience
        # columns, interests, events) are read whole and in order, from memory: priced as
        # random reads from disk, PostgreSQL would rather scan the wide subscriber table and
        # hash a million members than merge the index-only scans.
        s.execute(text("SET LOCAL random_page_cost = 1.1"))


def hidden_fields(s: Session) -> set[str]:
    """Fields whose values in rules are free text or identify someone: masked for readers
    without access to personal data."""
    return set(IDENTIFYING) | set(
        s.scalars(select(col(FieldDef.key)).where(col(FieldDef.type) == "text"))
    )


def shown_rules(s: Session, rules: Any, *, personal: bool) -> Any:
    """Rules as this reader may see them (values on hidden fields masked when not personal)."""
    if personal or not rules:
        return rules
    return compiler.masked(rules, hidden_fields(s))


def _lists(value: Any) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(x, str) for x in value):
        raise ValidationError("lists must be a list of list slugs", field="lists")
    return list(dict.fromkeys(value))


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("name is required", field="name")
    if any(c in value for c in "\r\n\x00") or len(value.strip()) > MAX_NAME:
        raise ValidationError(f"name must be one line of up to {MAX_NAME} characters", field="name")
    return value.strip()


def _check(s: Session, lists: list[str], rules: Any) -> dict[str, Any]:
    if rules is None:
        rules = {}
    if not isinstance(rules, dict):
        raise ValidationError("rules must be an object", field="rules")
    _, _, slugs = definitions(s)
    for i, slug in enumerate(lists):
        if slug not in slugs:
            raise ValidationError(f"unknown list {slug!r}", field=f"lists[{i}]")
    expression(s, lists=[], rules=rules)  # raises SegmentError naming the bad node
    return rules


def _info(row: Segment, rules: Any = None) -> SegmentInfo:
    return SegmentInfo(
        id_of(row),
        row.name,
        list(row.lists or []),
        dict(rules if rules is not None else row.rules or {}),
        row.created_at.isoformat(),
        row.updated_at.isoformat(),
    )


def create(rt: Runtime, *, name: Any, lists: Any = (), rules: Any = None) -> int:
    """Save a segment after checking its rules against the current definitions."""
    name, slugs = _name(name), _lists(list(lists) if isinstance(lists, tuple) else lists)
    with rt.db.session() as s:
        row = Segment(name=name, lists=slugs, rules=_check(s, slugs, rules))
        s.add(row)
        s.flush()
        return id_of(row)


def _get(s: Session, segment_id: int) -> Segment:
    row = by_id(s, Segment, segment_id)
    if row is None:
        raise NotFound(f"there is no segment {segment_id}")
    return row


def get(rt: Runtime, segment_id: int, *, personal: bool = True) -> SegmentInfo:
    """One saved segment (personal=False: values that could name someone masked)."""
    with rt.db.session() as s:
        row = _get(s, segment_id)
        return _info(row, shown_rules(s, row.rules or {}, personal=personal))


def all_segments(
    rt: Runtime, *, offset: int = 0, limit: int = 50, personal: bool = True
) -> tuple[list[SegmentInfo], int]:
    """Saved segments by name (personal=False: values that could name someone masked)."""
    with rt.db.session() as s:
        total = s.scalar(select(func.count()).select_from(Segment)) or 0
        rows = s.scalars(
            select(Segment).order_by(Segment.name, col(Segment.id)).offset(offset).limit(limit)
        )
        return [_info(r, shown_rules(s, r.rules or {}, personal=personal)) for r in rows], total


def update(
    rt: Runtime, segment_id: int, *, name: Any = None, lists: Any = None, rules: Any = None
) -> SegmentInfo:
    """Change a segment's name, lists or rules (rules are checked again)."""
    with rt.db.session() as s:
        row = _get(s, segment_id)
        new_name = _name(name) if name is not None else row.name
        new_lists = _lists(lists) if lists is not None else list(row.lists or [])
        new_rules = rules if rules is not None else dict(row.rules or {})
        new_rules = _check(s, new_lists, new_rules)
        row.name, row.lists, row.rules = new_name, new_lists, new_rules
        row.updated_at = utcnow()
        return _info(row)


def delete(rt: Runtime, segment_id: int) -> None:
    """Delete a saved segment; refused while a draft or scheduled campaign uses it (its
    audience would silently widen to the whole list). Campaigns that started keep a copy of
    the rules they were sent with."""
    with rt.db.session() as s:
        row = _get(s, segment_id)
        users = s.execute(
            select(col(Campaign.name), col(Campaign.status))
            .where(col(Campaign.segment_id) == segment_id, col(Campaign.status).in_(UNSENT))
            .order_by(col(Campaign.id))
        ).all()
        if users:
            raise Conflict(
                f"{_named(users)} use{'s' if len(users) == 1 else ''} this "
                "segment: choose another segment for them, or delete them, first",
                field="segment",
            )
        s.delete(row)


# campaigns whose audience is worked out when they start
UNSENT = (CampaignStatus.draft.value, CampaignStatus.scheduled.value)


def _some(names: Sequence[str], most: int = 5) -> str:
    """Names for a message: 'a, b and 3 more'."""
    more = len(names) - most
    return ", ".join(names[:most]) + (f" and {more} more" if more > 0 else "")


def _named(campaigns: Sequence[Any]) -> str:
    """Campaigns (name, status) for a message: campaign 'Spring' (draft), …"""
    return _some([f"campaign {name!r} ({status})" for name, status in campaigns])


def users_of(s: Session, uses: Callable[[Any], bool]) -> str:
    """The saved segments and unsent campaigns whose rules `uses`, for a message ("" when
    none do)."""
    segs = [
        f"segment {row.name!r}"
        for row in s.scalars(select(Segment).order_by(col(Segment.id)))
        if uses(row.rules)
    ]
    camps = [
        (row.name, row.status)
        for row in s.scalars(
            select(Campaign).where(col(Campaign.status).in_(UNSENT)).order_by(col(Campaign.id))
        )
        if uses(row.segment_rules)
    ]
    return "; ".join(part for part in (_some(segs), _named(camps)) if part)
