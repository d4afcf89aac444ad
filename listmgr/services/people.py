"""Subscriber profiles: validated field values and interests, consents, the preference center's
profile section, and admin edits (definitions live in fielddefs and are re-exported here)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from listmgr.addresses import clean_name
from listmgr.errors import NotFound, ValidationError
from listmgr.fieldvalues import FieldValueError, coerce, sentence
from listmgr.models import (
    ActivityEvent,
    AuditLog,
    Engagement,
    FieldDef,
    Interest,
    MailingList,
    Subscriber,
    SubscriberInterest,
    utcnow,
)
from listmgr.runtime import Runtime
from listmgr.services.fielddefs import (  # noqa: F401
    FieldInfo,
    InterestInfo,
    create_field,
    create_interest,
    delete_field,
    delete_interest,
    get_field,
    list_fields,
    list_interests,
    update_field,
    update_interest,
)
from listmgr.services.subscriptions import Origin, record, subscriber_for_link

TEMPLATE = "pages/public/_profile.html"
FORM_MARKER = "profile_form"  # present only when the profile section was on the page
PAUSE_DAYS = (30, 90)
WORDING = {
    "profiling": "Use what I read and do (activity such as products viewed or documents "
    "downloaded) to send me mail that fits my interests. Unticking this deletes "
    "the activity stored so far.",
    "tracking": "Record when I open your mail and which links I click. Unticking this "
    "deletes the opens and clicks recorded so far.",
}


@dataclass(frozen=True)
class Profile:
    """Validated custom field values (None: remove the value) and interest keys."""

    fields: dict[str, Any]
    interests: tuple[str, ...]


# -- values ------------------------------------------------------------------------------------
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

    def __call__(self, fields: Mapping[str, Any], interests: list[str] | None) -> Profile:
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
            self.known = set(self.session.scalars(select(Interest.key)))
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
    fields: dict,
    interests: list[str],
    allowed_fields: list[str] | None = None,
    allowed_interests: list[str] | None = None,
) -> Profile:
    """Check values against the definitions; a ValidationError naming the field otherwise."""
    return ProfileValidator(s, allowed_fields, allowed_interests)(fields, interests)


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b  # True == 1, but a boolean is not a number


def _write_fields(sub: Subscriber, values: dict[str, Any]) -> list[str]:
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


def _write_interests(s: Session, sid: int, wanted: Iterable[str]) -> tuple[list[str], list[str]]:
    """Replace a subscriber's interests; returns (added, removed)."""
    wanted = list(dict.fromkeys(wanted))
    current = set(
        s.scalars(
            select(SubscriberInterest.interest).where(SubscriberInterest.subscriber_id == sid)
        )
    )
    removed = sorted(current - set(wanted))
    added = [i for i in wanted if i not in current]
    if removed:
        s.execute(
            delete(SubscriberInterest).where(
                SubscriberInterest.subscriber_id == sid, SubscriberInterest.interest.in_(removed)
            )
        )
    for key in added:
        s.add(SubscriberInterest(subscriber_id=sid, interest=key))
    return added, removed


def apply_profile(s: Session, sub: Subscriber, profile: Profile) -> None:
    """Write validated values (merging) and replace the interests."""
    _write_fields(sub, profile.fields)
    s.flush()
    _write_interests(s, int(sub.id), profile.interests)  # type: ignore[arg-type]


def set_consents(
    s: Session,
    sub: Subscriber,
    consents: Mapping[str, Any],
    origin: Origin,
    wording: str | None = None,
) -> list[str]:
    """Give or withdraw profiling/tracking consent, with an event each; withdrawal deletes."""
    changed = []
    for key, given in consents.items():
        if key not in WORDING or not isinstance(given, bool):
            raise ValidationError(
                "consents takes booleans 'profiling' and 'tracking'", field=f"consents.{key}"
            )
    for key, given in consents.items():
        attr = f"consent_{key}"
        if getattr(sub, attr) == given:
            continue
        setattr(sub, attr, given)
        detail: dict[str, Any] = {"given": given}
        if not given:
            table = ActivityEvent if key == "profiling" else Engagement
            gone = s.execute(delete(table).where(table.subscriber_id == sub.id)).rowcount
            detail["activity_deleted" if key == "profiling" else "engagement_deleted"] = gone
        record(
            s,
            kind=attr,
            subscriber_id=sub.id,
            list_id=None,
            origin=origin,
            wording=WORDING[key] if wording is None else wording,
            detail=detail,
        )
        changed.append(key)
    if changed:
        sub.updated_at = utcnow()
    return changed


# -- preference center -------------------------------------------------------------------------
def preference_extras(s: Session, sub: Subscriber) -> dict:
    """What the preference center's profile section shows (rendered by TEMPLATE)."""
    values = sub.fields or {}
    mine = set(
        s.scalars(
            select(SubscriberInterest.interest).where(SubscriberInterest.subscriber_id == sub.id)
        )
    )
    fields = [
        {
            "key": d.key,
            "label": d.label,
            "type": d.type,
            "choices": list(d.choices or []),
            "value": values.get(d.key),
        }
        for d in s.scalars(
            select(FieldDef).where(FieldDef.editable.is_(True)).order_by(FieldDef.id)
        )
    ]
    interests = [
        {"key": i.key, "label": i.label, "checked": i.key in mine}
        for i in s.scalars(select(Interest).order_by(Interest.label, Interest.key))
    ]
    paused = sub.paused_until if sub.paused_until and sub.paused_until > utcnow() else None
    return {
        "template": TEMPLATE,
        "fields": fields,
        "interests": interests,
        "paused_until": paused.date().isoformat() if paused else None,
        "pause_days": list(PAUSE_DAYS),
        "consent_profiling": bool(sub.consent_profiling),
        "consent_tracking": bool(sub.consent_tracking),
        "wording": dict(WORDING),
        "marker": FORM_MARKER,
    }


def _checked(form: Any, name: str) -> bool:
    return str(form.get(name, "")).strip().lower() in ("1", "on", "true", "yes")


def _pause(raw: Any, current: Any) -> tuple[bool, Any]:
    """(changed, new paused_until) from the pause select: "", "keep" or a number of days."""
    if raw is None or raw == "keep":
        return False, current
    if raw == "":
        return current is not None, None
    if raw not in {str(d) for d in PAUSE_DAYS}:
        raise ValidationError("Please choose how long to pause from the list.", field="pause")
    return True, utcnow() + timedelta(days=int(raw))


def _check_lists(s: Session, form: Any) -> None:
    """Refuse unknown lists and frequencies before anything is saved (the list part of the same
    form is applied after the profile by subscriptions.update_lists)."""
    lists = {lst.slug: lst for lst in s.scalars(select(MailingList))}
    for slug in form.getlist("lists"):
        if slug not in lists:
            raise ValidationError(f"Unknown list {slug!r}.", field="lists")
    for name in form:
        if name.startswith("level_"):
            lst, level = lists.get(name[6:]), form.get(name)
            if lst is not None and level and level not in (lst.opt_in_levels or []):
                raise ValidationError(f"Unknown frequency {level!r} for {lst.name}.", field=name)


def update_from_preferences(rt: Runtime, manage_token: str, form: Any, *, origin: Origin) -> None:
    """Save the profile section: editable fields, interests, pause and consents."""
    if form.get(FORM_MARKER) != "1":
        return  # another form (no profile section): absent checkboxes mean nothing
    with rt.db.session() as s:
        sub = subscriber_for_link(s, rt, manage_token, lock=True)
        sid = int(sub.id)  # type: ignore[arg-type]
        editable = {
            d.key: d for d in s.scalars(select(FieldDef).where(FieldDef.editable.is_(True)))
        }
        raw: dict[str, Any] = {}
        for name in form:
            if name.startswith("field_"):
                values = form.getlist(name)
                raw[name[6:]] = values if len(values) > 1 else values[0]
        current = sub.fields or {}
        for key, d in editable.items():
            if key not in raw and d.type == "multi_choice":
                raw[key] = []
            elif key not in raw and d.type == "boolean":
                # An unticked box: "no" once there was an answer, otherwise still no answer.
                raw[key] = False if current.get(key) is not None else None
        profile = validate_profile(s, raw, form.getlist("interests"), allowed_fields=list(editable))
        pause_changed, paused_until = _pause(form.get("pause"), sub.paused_until)
        _check_lists(s, form)
        changed = _write_fields(sub, profile.fields)
        added, removed = _write_interests(s, sid, profile.interests)
        if changed or added or removed:
            record(
                s,
                kind="preference",
                subscriber_id=sid,
                list_id=None,
                origin=origin,
                detail={"fields": changed, "interests_added": added, "interests_removed": removed},
            )
        if pause_changed:
            sub.paused_until = paused_until
            record(
                s,
                kind="pause",
                subscriber_id=sid,
                list_id=None,
                origin=origin,
                detail={"paused_until": paused_until.isoformat() if paused_until else None},
            )
        set_consents(
            s,
            sub,
            {
                "profiling": _checked(form, "consent_profiling"),
                "tracking": _checked(form, "consent_tracking"),
            },
            origin,
        )


# -- admin and API edits -----------------------------------------------------------------------
def update_subscriber(
    rt: Runtime,
    subscriber_id: int,
    *,
    name: Any = None,
    fields: dict[str, Any] | None = None,
    interests: list[str] | None = None,
    consents: dict[str, bool] | None = None,
    wording: str = "",
    origin: Origin = Origin(source="api", actor="api"),
) -> None:
    """Edit a subscriber's name, field values (merging; null removes), interests, consents."""
    with rt.db.session() as s:
        sub = s.get(Subscriber, subscriber_id, with_for_update=True)
        if sub is None:
            raise NotFound("no such subscriber")
        display = clean_name(name) if name is not None else None
        profile = validate_profile(s, fields or {}, list(interests or []))
        if consents is not None and not isinstance(consents, Mapping):
            raise ValidationError(
                "consents takes booleans 'profiling' and 'tracking'", field="consents"
            )
        renamed = display is not None and display != sub.name
        if renamed:
            sub.name = display  # type: ignore[assignment]
            sub.updated_at = utcnow()
        changed = _write_fields(sub, profile.fields)
        added: list[str] = []
        removed: list[str] = []
        if interests is not None:
            added, removed = _write_interests(s, subscriber_id, profile.interests)
        if renamed or changed or added or removed:
            record(
                s,
                kind="profile",
                subscriber_id=subscriber_id,
                list_id=None,
                origin=origin,
                detail={
                    "name": renamed,
                    "fields": changed,
                    "interests_added": added,
                    "interests_removed": removed,
                },
            )
        given = set_consents(s, sub, consents or {}, origin, wording=wording)
        s.add(
            AuditLog(
                actor=origin.actor[:320],
                action="subscriber.edit",
                target_type="subscriber",
                target_id=str(subscriber_id),
                ip=origin.ip[:64],
                detail={
                    "name": renamed,
                    "fields": changed,
                    "interests": bool(added or removed),
                    "consents": given,
                },
            )
        )
