"""Custom fields and interests: their definitions (the vocabulary forms, the API and segments
use) and the values subscribers hold in them, checked against the definitions and written."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session
from sqlmodel import col

from listmgr import segments as compiler
from listmgr.errors import Conflict, NotFound, ValidationError
from listmgr.fieldvalues import (
    TYPES,
    FieldValueError,
    check_choices,
    check_key,
    coerce,
    sentence,
)
from listmgr.models import FieldDef, Interest, MailingList, Subscriber, SubscriberInterest, utcnow
from listmgr.runtime import Runtime
from listmgr.services import segments
from listmgr.services.notice_follow import changes_notices


@dataclass(frozen=True)
class FieldInfo:
    id: int
    key: str
    label: str
    type: str
    choices: list[str]
    editable: bool


@dataclass(frozen=True)
class InterestInfo:
    id: int
    key: str
    label: str


# -- definitions -------------------------------------------------------------------------------
def interest_info(i: Interest) -> InterestInfo:
    """An interest as callers outside a session see it."""
    assert i.id is not None  # a stored row
    return InterestInfo(i.id, i.key, i.label)


def _label(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("label is required", field="label")
    if any(c in value for c in "\r\n\x00") or len(value.strip()) > 200:
        raise ValidationError("label must be one line of up to 200 characters", field="label")
    return value.strip()


def _key(value: Any) -> str:
    try:
        return check_key(value)
    except FieldValueError as exc:
        raise ValidationError(f"key: {exc}", field="key") from None


def field_info(d: FieldDef) -> FieldInfo:
    """A definition as callers outside a session see it."""
    assert d.id is not None  # a stored row
    return FieldInfo(d.id, d.key, d.label, d.type, list(d.choices or []), bool(d.editable))


@changes_notices
def create_field(
    rt: Runtime,
    *,
    key: str,
    label: str,
    type: str,
    choices: list[str] | None = None,
    editable: bool = True,
) -> int:
    """Define a custom field."""
    key, label = _key(key), _label(label)
    if type not in TYPES:
        raise ValidationError(f"type must be one of {', '.join(TYPES)}", field="type")
    try:
        choices = check_choices(type, choices)
    except FieldValueError as exc:
        raise ValidationError(sentence(exc), field="choices") from None
    if not isinstance(editable, bool):
        raise ValidationError("editable must be true or false", field="editable")
    with rt.db.session() as s:
        if s.scalar(select(col(FieldDef.id)).where(col(FieldDef.key) == key)) is not None:
            raise Conflict(f"a field {key!r} already exists", field="key")
        row = FieldDef(key=key, label=label, type=type, choices=choices, editable=editable)
        s.add(row)
        s.flush()
        assert row.id is not None  # set by the flush
        return row.id


def list_fields(rt: Runtime) -> list[FieldInfo]:
    with rt.db.session() as s:
        return [field_info(d) for d in s.scalars(select(FieldDef).order_by(col(FieldDef.id)))]


def _get_field(s: Session, key: str) -> FieldDef:
    row = s.scalar(select(FieldDef).where(col(FieldDef.key) == key))
    if row is None:
        raise NotFound(f"there is no field {key!r}", field="key")
    return row


def get_field(rt: Runtime, key: str) -> FieldInfo:
    with rt.db.session() as s:
        return field_info(_get_field(s, key))


def _holders(s: Session, key: str, removed: set[str]) -> int:
    """How many subscribers hold one of these choices in this field."""
    count = 0
    query = select(col(Subscriber.fields)).where(col(Subscriber.fields)[key].is_not(None))
    for values in s.execute(query.execution_options(yield_per=2000)).scalars():
        value = (values or {}).get(key)
        held = set(value) if isinstance(value, list) else {value}
        count += bool(held & removed)
    return count


@changes_notices
def update_field(
    rt: Runtime,
    key: str,
    *,
    label: str | None = None,
    choices: list[str] | None = None,
    editable: bool | None = None,
    type: str | None = None,
) -> FieldInfo:
    """Change a field's label, choices or editability (its type and key are fixed)."""
    with rt.db.session() as s:
        row = _get_field(s, key)
        if type is not None and type != row.type:
            raise ValidationError(
                "the type of a field cannot change; create a new field instead", field="type"
            )
        if label is not None:
            row.label = _label(label)
        if choices is not None:
            try:
                new = check_choices(row.type, choices)
            except FieldValueError as exc:
                raise ValidationError(sentence(exc), field="choices") from None
            removed = set(row.choices or []) - set(new)
            held = _holders(s, key, removed) if removed else 0
            if held:
                raise Conflict(
                    f"{held} subscriber(s) hold a choice you removed "
                    f"({', '.join(sorted(removed))}); change their values first",
                    field="choices",
                )
            gone = {(key, choice) for choice in removed}
            users = (
                segments.users_of(s, lambda rules: bool(gone & compiler.values_named(rules)))
                if removed
                else ""
            )
            if users:
                raise Conflict(
                    f"{users} name a choice you removed "
                    f"({', '.join(sorted(removed))}): change their rules first",
                    field="choices",
                )
            row.choices = new
        if editable is not None:
            if not isinstance(editable, bool):
                raise ValidationError("editable must be true or false", field="editable")
            row.editable = editable
        return field_info(row)


def _strip_key(s: Session, key: str) -> None:
    """Remove one key from every subscriber's fields, in one statement where we can."""
    dialect = s.get_bind().dialect.name
    if dialect == "sqlite":
        s.execute(
            text(
                "UPDATE subscriber SET fields = json_remove(fields, :path) "
                "WHERE json_type(fields, :path) IS NOT NULL"
            ),
            {"path": f"$.{key}"},
        )
    elif dialect == "postgresql":
        s.execute(
            text(
                "UPDATE subscriber SET fields = (fields::jsonb - :key)::json "
                "WHERE jsonb_exists(fields::jsonb, :key)"
            ),
            {"key": key},
        )
    else:
        for sub in s.scalars(select(Subscriber).where(col(Subscriber.fields)[key].is_not(None))):
            sub.fields = {k: v for k, v in (sub.fields or {}).items() if k != key}


def _refuse_in_use(s: Session, what: str, key: str, users: str) -> None:
    if users:
        raise Conflict(
            f"the {what} {key!r} is used by {users}: change their rules first "
            "(a segment naming it would stop working, and a campaign's audience "
            "could not be worked out)",
            field="key",
        )


@changes_notices
def delete_field(rt: Runtime, key: str) -> None:
    """Delete a field and every value held in it; forms stop offering it."""
    with rt.db.session() as s:
        row = _get_field(s, key)
        _refuse_in_use(
            s,
            "field",
            key,
            segments.users_of(s, lambda rules: key in compiler.references(rules)[0]),
        )
        _strip_key(s, key)
        for lst in s.scalars(select(MailingList)):
            if key in (lst.form_fields or []):
                lst.form_fields = [k for k in lst.form_fields if k != key]
        s.delete(row)


@changes_notices
def create_interest(rt: Runtime, *, key: str, label: str) -> int:
    """Add an interest to the vocabulary lists and forms offer."""
    key, label = _key(key), _label(label)
    with rt.db.session() as s:
        if s.scalar(select(col(Interest.id)).where(col(Interest.key) == key)) is not None:
            raise Conflict(f"an interest {key!r} already exists", field="key")
        row = Interest(key=key, label=label)
        s.add(row)
        s.flush()
        assert row.id is not None  # set by the flush
        return row.id


def list_interests(rt: Runtime) -> list[InterestInfo]:
    with rt.db.session() as s:
        return [
            interest_info(i)
            for i in s.scalars(select(Interest).order_by(col(Interest.label), col(Interest.key)))
        ]


@changes_notices
def update_interest(rt: Runtime, key: str, *, label: str) -> InterestInfo:
    with rt.db.session() as s:
        row = s.scalar(select(Interest).where(col(Interest.key) == key))
        if row is None:
            raise NotFound(f"there is no interest {key!r}", field="key")
        row.label = _label(label)
        return interest_info(row)


@changes_notices
def delete_interest(rt: Runtime, key: str) -> None:
    """Delete an interest and every subscriber's choice of it; forms stop offering it."""
    with rt.db.session() as s:
        row = s.scalar(select(Interest).where(col(Interest.key) == key))
        if row is None:
            raise NotFound(f"there is no interest {key!r}", field="key")
        _refuse_in_use(
            s,
            "interest",
            key,
            segments.users_of(s, lambda rules: key in compiler.references(rules)[1]),
        )
        s.execute(delete(SubscriberInterest).where(col(SubscriberInterest.interest) == key))
        for lst in s.scalars(select(MailingList)):
            if key in (lst.form_interests or []):
                lst.form_interests = [k for k in lst.form_interests if k != key]
        s.delete(row)


# -- values ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Profile:
    """Validated custom field values (None: remove the value) and interest keys."""

    fields: dict[str, Any]
    interests: tuple[str, ...]


class ProfileValidator:
    """The definitions read once, to check many profiles (a CSV import checks every row)."""

    def __init__(
        self,
        s: Session,
        allowed_fields: list[str] | None = None,
        allowed_interests: list[str] | None = None,
    ) -> None:
        self.defs = {
            d.key: (d.label, d.type, list(d.choices or [])) for d in s.scalars(select(FieldDef))
        }
        self.known: set[str] | None = None
        self.session = s
        self.allowed_fields = None if allowed_fields is None else set(allowed_fields)
        self.allowed_interests = None if allowed_interests is None else set(allowed_interests)

    def __call__(self, fields: Any, interests: Any) -> Profile:
        """Values as given (a mapping of field keys to values, a list of interest keys; anything
        else is refused), checked against the definitions."""
        if not isinstance(fields, Mapping):
            raise ValidationError(
                "fields must be an object of field keys and values", field="fields"
            )
        out: dict[str, Any] = {}
        for key, raw in fields.items():
            fd = self.defs.get(key) if isinstance(key, str) else None
            if fd is None:
                raise ValidationError(f"There is no field {key!r}.", field=f"fields.{key}")
            label, type_, choices = fd
            if self.allowed_fields is not None and key not in self.allowed_fields:
                raise ValidationError(f"{label} cannot be set here.", field=f"fields.{key}")
            try:
                out[key] = coerce(type_, choices, raw, label)
            except FieldValueError as exc:
                raise ValidationError(sentence(exc), field=f"fields.{key}") from None
        if interests is None:
            interests = []
        if not isinstance(interests, (list, tuple)):
            raise ValidationError("interests must be a list of interest keys", field="interests")
        if interests and self.known is None:
            self.known = set(self.session.scalars(select(col(Interest.key))))
        for item in interests:
            if not isinstance(item, str) or item not in (self.known or ()):
                raise ValidationError(f"There is no interest {item!r}.", field="interests")
            if self.allowed_interests is not None and item not in self.allowed_interests:
                raise ValidationError(
                    f"The interest {item!r} cannot be chosen here.", field="interests"
                )
        return Profile(out, tuple(dict.fromkeys(interests)))


def validate_profile(
    s: Session,
    fields: Any,
    interests: Any,
    allowed_fields: list[str] | None = None,
    allowed_interests: list[str] | None = None,
) -> Profile:
    """Check values against the definitions; a ValidationError naming the field otherwise."""
    return ProfileValidator(s, allowed_fields, allowed_interests)(fields, interests)


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b  # True == 1, but a boolean is not a number


def write_fields(sub: Subscriber, values: dict[str, Any]) -> list[str]:
    """Merge values into the subscriber (None removes); returns the keys that changed."""
    current = dict(sub.fields or {})
    changed = []
    for key, value in values.items():
        if value is None:
            if key in current:
                del current[key]
                changed.append(key)
        elif not _same(current.get(key), value):
            current[key] = value
            changed.append(key)
    if changed:
        sub.fields = current  # a new object: JSON columns do not track in-place changes
        sub.updated_at = utcnow()
    return changed


def write_interests(s: Session, sid: int, wanted: Iterable[str]) -> tuple[list[str], list[str]]:
    """Replace a subscriber's interests; returns (added, removed)."""
    wanted = list(dict.fromkeys(wanted))
    current = set(
        s.scalars(
            select(col(SubscriberInterest.interest)).where(
                col(SubscriberInterest.subscriber_id) == sid
            )
        )
    )
    removed = sorted(current - set(wanted))
    added = [i for i in wanted if i not in current]
    if removed:
        s.execute(
            delete(SubscriberInterest).where(
                col(SubscriberInterest.subscriber_id) == sid,
                col(SubscriberInterest.interest).in_(removed),
            )
        )
    for key in added:
        s.add(SubscriberInterest(subscriber_id=sid, interest=key))
    return added, removed


def apply_profile(s: Session, sub: Subscriber, profile: Profile) -> None:
    """Write validated values (merging) and replace the interests."""
    write_fields(sub, profile.fields)
    s.flush()
    assert sub.id is not None  # set by the flush
    write_interests(s, sub.id, profile.interests)
