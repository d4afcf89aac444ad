"""Activity events (product viewed, document downloaded, ...): kept only with profiling consent."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import any_, bindparam, insert, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlmodel import col

from listmgr.addresses import normalize_email
from listmgr.errors import ValidationError
from listmgr.fieldvalues import MAX_NUMBER
from listmgr.models import MAX_ID, ActivityEvent, Subscriber, utcnow
from listmgr.runtime import Runtime

MAX_BATCH = 10_000
MAX_PROPERTIES_BYTES = 8_000
TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}$")
_ITEM_KEYS = frozenset({"email", "subscriber_id", "type", "properties", "at"})
_CHUNK = 900  # values per IN (...) list: well under SQLite's parameter limit
_ATOM = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
# A plain ASCII address normalizes to its lower-case form; only others need the full parser
# (which costs ~25 us an address, a quarter of a second for a batch of 10,000).
_PLAIN = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*\.[a-z]{{2,63}}")


@dataclass(frozen=True)
class Outcome:
    kept: int
    dropped: int


@dataclass(frozen=True)
class _Event:
    email: str | None
    subscriber_id: int | None
    type: str
    properties: dict[str, Any]
    at: datetime


EARLIEST = datetime(1990, 1, 1)  # before it, a timestamp is a mistake, not history


def _too_large(value: Any, path: str) -> str | None:
    """The path of the first number in value beyond MAX_NUMBER, or None."""
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, dict):
            stack.extend((v, f"{where}.{k}") for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(item))
        elif (
            isinstance(item, (int, float)) and not isinstance(item, bool) and abs(item) > MAX_NUMBER
        ):
            return where
    return None


def _at(value: Any, where: str, now: datetime) -> datetime:
    if value is None:
        return now
    if not isinstance(value, str):
        raise ValidationError(f"{where}: a timestamp like 2024-05-31T12:00:00Z", field=where)
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(
            f"{where}: {value!r} is not an ISO 8601 timestamp", field=where
        ) from None
    if parsed.tzinfo is not None:  # stored as naive UTC; naive input is taken as UTC
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    if parsed > now + timedelta(days=1):  # a day for clocks that are off
        raise ValidationError(f"{where}: the event lies in the future", field=where)
    if parsed < EARLIEST:
        raise ValidationError(f"{where}: the event lies before {EARLIEST.year}", field=where)
    return parsed


def _address(raw: Any, where: str) -> str:
    """The normalized address; a plain one that no subscriber has is simply not found."""
    if isinstance(raw, str):
        low = raw.strip().lower()
        if len(low) <= 254 and _PLAIN.fullmatch(low) and low.index("@") <= 64:
            return low
    try:
        return normalize_email(raw)
    except ValidationError as exc:
        raise ValidationError(f"{where}: {exc.message}", field=where) from None


def _parse(item: Any, prefix: str, now: datetime) -> _Event:
    """One event, checked; errors name the item, e.g. events[3].type."""
    dot = f"{prefix}." if prefix else ""
    if not isinstance(item, dict):
        raise ValidationError(
            f"{prefix or 'body'}: an event must be an object", field=prefix or None
        )
    unknown = sorted(set(item) - _ITEM_KEYS)
    if unknown:
        raise ValidationError(f"{dot}{unknown[0]}: unknown property", field=f"{dot}{unknown[0]}")
    has_email, has_id = item.get("email") is not None, item.get("subscriber_id") is not None
    if has_email == has_id:
        raise ValidationError(
            f"{dot}email: give either email or subscriber_id", field=f"{dot}email"
        )
    email = sid = None
    if has_email:
        email = _address(item["email"], f"{dot}email")
    else:
        sid = item["subscriber_id"]
        if not isinstance(sid, int) or isinstance(sid, bool) or not 1 <= sid <= MAX_ID:
            raise ValidationError(
                f"{dot}subscriber_id: a whole number from 1 to {MAX_ID}",
                field=f"{dot}subscriber_id",
            )
    kind = item.get("type")
    if not isinstance(kind, str) or not TYPE.match(kind):
        raise ValidationError(
            f"{dot}type: 1-64 letters, digits and _ . : / - (like product_viewed)",
            field=f"{dot}type",
        )
    props = item.get("properties", {})
    if props is None:
        props = {}
    if not isinstance(props, dict):
        raise ValidationError(f"{dot}properties: an object", field=f"{dot}properties")
    try:
        size = len(json.dumps(props, allow_nan=False))
    except (TypeError, ValueError):
        raise ValidationError(
            f"{dot}properties: plain JSON values only", field=f"{dot}properties"
        ) from None
    if size > MAX_PROPERTIES_BYTES:
        raise ValidationError(
            f"{dot}properties: larger than {MAX_PROPERTIES_BYTES} bytes", field=f"{dot}properties"
        )
    big = _too_large(props, f"{dot}properties")
    if big:
        raise ValidationError(
            f"{big}: a number may be at most {MAX_NUMBER} in size (what "
            "every database and JSON reader keeps exactly)",
            field=big,
        )
    return _Event(email, sid, kind, props, _at(item.get("at"), f"{dot}at", now))


def parse_body(body: Any) -> list[_Event]:
    """A single event or {"events": [...]}; the whole call is refused on the first bad item."""
    now = utcnow()
    if isinstance(body, dict) and "events" in body:
        if set(body) != {"events"}:
            raise ValidationError('a batch is {"events": [...]} and nothing else', field="events")
        items = body["events"]
        if not isinstance(items, list):
            raise ValidationError("events must be a list", field="events")
        if len(items) > MAX_BATCH:
            raise ValidationError(
                f"at most {MAX_BATCH} events per call (got {len(items)})", field="events"
            )
        return [_parse(item, f"events[{i}]", now) for i, item in enumerate(items)]
    return [_parse(body, "", now)]


def _among(s: Session, column: Any, values: Sequence[Any]) -> Iterator[Any]:
    """Conditions "column in values": one array parameter on PostgreSQL, chunks elsewhere."""
    if not values:
        return
    if s.get_bind().dialect.name == "postgresql":
        yield column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
        return
    for i in range(0, len(values), _CHUNK):
        yield column.in_(values[i : i + _CHUNK])


def record(rt: Runtime, events: Sequence[_Event]) -> Outcome:
    """Store the events of consenting subscribers with one multi-row insert; count the rest."""
    emails = sorted({e.email for e in events if e.email})
    ids = sorted({e.subscriber_id for e in events if e.subscriber_id})
    with rt.db.session() as s:
        by_email: dict[str, int | None] = {}
        consenting: set[int | None] = set()
        # FOR SHARE (PostgreSQL) holds off a concurrent withdrawal until these rows are in, so
        # its delete sees them; SQLite serializes writers anyway.
        for among in _among(s, Subscriber.email, emails):
            for sid, email, ok in s.execute(
                select(col(Subscriber.id), col(Subscriber.email), col(Subscriber.consent_profiling))
                .where(among)
                .order_by(col(Subscriber.id))
                .with_for_update(read=True)
            ):
                by_email[email] = sid
                if ok:
                    consenting.add(sid)
        for among in _among(s, Subscriber.id, ids):
            consenting.update(
                s.scalars(
                    select(col(Subscriber.id))
                    .where(among, col(Subscriber.consent_profiling).is_(True))
                    .order_by(col(Subscriber.id))
                    .with_for_update(read=True)
                )
            )
        rows = []
        for e in events:
            sid = by_email.get(e.email) if e.email else e.subscriber_id
            if sid is not None and sid in consenting:
                rows.append(
                    {"subscriber_id": sid, "type": e.type, "properties": e.properties, "at": e.at}
                )
        if rows:
            s.execute(insert(ActivityEvent), rows)
    return Outcome(kept=len(rows), dropped=len(events) - len(rows))


def ingest(rt: Runtime, body: Any) -> Outcome:
    """Validate a request body (one event or a batch) and store what consent allows."""
    return record(rt, parse_body(body))
