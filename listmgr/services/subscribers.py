"""Subscriber records as marketers see them: create with a status, edit (name, field values,
interests, consents), look up, search."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, literal, or_, select
from sqlalchemy.orm import Session
from sqlmodel import col

from listmgr.addresses import clean_name, normalize_email
from listmgr.errors import Conflict, NotFound, Suppressed, ValidationError
from listmgr.models import (
    MailingList,
    Membership,
    MemberStatus,
    Subscriber,
    SubscriberInterest,
    Suppression,
    id_of,
    utcnow,
)
from listmgr.runtime import Runtime
from listmgr.services import audit, notices, segments, settings_store
from listmgr.services.fielddefs import (
    apply_profile,
    validate_profile,
    write_fields,
    write_interests,
)
from listmgr.services.subscriptions import Origin, join_list, record, set_consents

STATUSES = (MemberStatus.confirmed.value, MemberStatus.pending.value)


@dataclass(frozen=True)
class SubscriberInfo:
    id: int
    email: str
    name: str
    created_at: str
    source: str
    lists: list[dict[str, str]]
    fields: dict[str, Any] = field(default_factory=dict)
    interests: list[str] = field(default_factory=list)
    consents: dict[str, bool] = field(default_factory=dict)
    suppressed: str | None = None


def is_suppressed(s: Session, rt: Runtime, email: str) -> str | None:
    """The suppression reason for a normalized address, or None."""
    return s.scalar(
        select(col(Suppression.reason)).where(col(Suppression.email_hash) == rt.email_hash(email))
    )


def create(
    rt: Runtime,
    *,
    email: Any,
    name: Any = "",
    lists: Iterable[str] = (),
    status: str = "confirmed",
    fields: dict[str, Any] | None = None,
    interests: Iterable[str] | None = None,
    consent: str = "",
    consents: dict[str, bool] | None = None,
    origin: Origin = Origin(source="api", actor="api"),
) -> int:
    """Add a subscriber to lists as confirmed (consent basis recorded) or pending (mailed)."""
    address = normalize_email(email)
    display = clean_name(name)
    if status not in STATUSES:
        raise ValidationError("status must be 'confirmed' or 'pending'", field="status")
    if status == "confirmed" and lists and not consent.strip():
        raise ValidationError(
            "a confirmed subscriber needs the consent basis ('consent')", field="consent"
        )
    outbox_ids = []
    settings = settings_store.effective(rt)  # the notices consents are given under
    with rt.db.session() as s:
        reason = is_suppressed(s, rt, address)
        if reason:
            raise Suppressed(
                f"this address is on the suppression list ({reason}); only a "
                "fresh sign-up by the person can add it again",
                field="email",
            )
        if s.scalar(select(col(Subscriber.id)).where(col(Subscriber.email) == address)) is not None:
            raise Conflict("a subscriber with this email already exists", field="email")
        wanted = list(dict.fromkeys(lists))
        found = {
            lst.slug: lst
            for lst in s.scalars(select(MailingList).where(col(MailingList.slug).in_(wanted)))
        }
        missing = [slug for slug in wanted if slug not in found]
        if missing:
            raise ValidationError(f"no list {missing[0]!r}", field="lists")
        profile = None
        if fields or interests:
            profile = validate_profile(s, fields or {}, list(interests or []))
        sub = Subscriber(
            email=address, email_hash=rt.email_hash(address), name=display, source=origin.source
        )
        consents = consents or {}
        for key in consents:
            if key not in ("profiling", "tracking") or not isinstance(consents[key], bool):
                raise ValidationError(
                    "consents takes booleans 'profiling' and 'tracking'", field=f"consents.{key}"
                )
        sub.consent_profiling = consents.get("profiling", False)
        sub.consent_tracking = consents.get("tracking", False)
        s.add(sub)
        s.flush()
        sid = sub.id
        assert sid is not None  # set by the flush
        if profile is not None:
            apply_profile(s, sub, profile)
        for slug in wanted:
            oid = join_list(
                s,
                rt,
                sub,
                found[slug],
                pending=status == "pending",
                wording=consent or found[slug].consent_wording,
                origin=origin,
            )
            if oid:
                outbox_ids.append(oid)
        shown = notices.for_person(s, settings, None, wanted) if consents else []
        for key, value in consents.items():
            detail: dict[str, Any] = {"given": value}
            if len(shown) > 1:
                detail["privacy_notice_ids"] = [id_of(row) for row in shown]
            record(
                s,
                kind=f"consent_{key}",
                subscriber_id=sub.id,
                list_id=None,
                origin=origin,
                wording=consent,
                detail=detail,
                privacy_notice_id=id_of(shown[0]) if shown else None,
            )
    for oid in outbox_ids:
        rt.enqueue("send_outbox", oid)
    return sid


def update(
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
    settings = settings_store.effective(rt)  # the notices consents are given under
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
        if display is not None and renamed:
            sub.name = display
            sub.updated_at = utcnow()
        changed = write_fields(sub, profile.fields)
        added: list[str] = []
        removed: list[str] = []
        if interests is not None:
            added, removed = write_interests(s, subscriber_id, profile.interests)
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
        given = set_consents(s, sub, consents or {}, origin, wording=wording, settings=settings)
        s.add(
            audit.entry(
                actor=origin.actor,
                action="subscriber.edit",
                target_type="subscriber",
                target_id=subscriber_id,
                ip=origin.ip,
                detail={
                    "name": renamed,
                    "fields": changed,
                    "interests": bool(added or removed),
                    "consents": given,
                },
            )
        )


def _memberships(s: Session, ids: list[int]) -> dict[int, list[dict[str, str]]]:
    out: dict[int, list[dict[str, str]]] = {i: [] for i in ids}
    for sid, slug, status in s.execute(
        select(col(Membership.subscriber_id), col(MailingList.slug), col(Membership.status))
        .join(MailingList, col(MailingList.id) == col(Membership.list_id))
        .where(col(Membership.subscriber_id).in_(ids))
        .order_by(col(MailingList.slug))
    ):
        out[sid].append({"slug": slug, "status": status})
    return out


def _interests(s: Session, ids: list[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {i: [] for i in ids}
    for sid, key in s.execute(
        select(col(SubscriberInterest.subscriber_id), col(SubscriberInterest.interest))
        .where(col(SubscriberInterest.subscriber_id).in_(ids))
        .order_by(col(SubscriberInterest.interest))
    ):
        out[sid].append(key)
    return out


def _infos(s: Session, subs: list[Subscriber]) -> list[SubscriberInfo]:
    """The subscribers with memberships, interests and suppression, in a few queries."""
    ids = [x.id for x in subs if x.id is not None]  # every one is a stored row
    members, interests = _memberships(s, ids), _interests(s, ids)
    suppressed = (
        dict(
            s.execute(
                select(col(Suppression.email_hash), col(Suppression.reason)).where(
                    col(Suppression.email_hash).in_({x.email_hash for x in subs})
                )
            ).all()
        )
        if subs
        else {}
    )
    return [
        SubscriberInfo(
            i,
            sub.email,
            sub.name,
            sub.created_at.isoformat(),
            sub.source,
            members[i],
            dict(sub.fields or {}),
            interests[i],
            {"profiling": sub.consent_profiling, "tracking": sub.consent_tracking},
            suppressed.get(sub.email_hash),
        )
        for i, sub in zip(ids, subs, strict=False)
    ]


def get(rt: Runtime, subscriber_id: int) -> SubscriberInfo:
    with rt.db.session() as s:
        sub = s.get(Subscriber, subscriber_id)
        if sub is None:
            raise NotFound("no such subscriber")
        return _infos(s, [sub])[0]


def search(
    rt: Runtime,
    *,
    email: str | None = None,
    q: str | None = None,
    list_slug: str | None = None,
    status: str | None = None,
    offset: int = 0,
    limit: int = 50,
    count_limit: int | None = None,
    rules: dict[str, Any] | None = None,
) -> tuple[list[SubscriberInfo], int]:
    """Exact email, or a prefix of email/name, optionally within a list and status, and
    matching segment rules (e.g. a field condition).

    With count_limit, the total stops at count_limit + 1 (a page of a million rows need not
    count them all: "more than N" is enough).
    """
    query = select(Subscriber)
    if email:
        try:
            address = normalize_email(email)
        except ValidationError:
            address = email.strip().lower()
        query = query.where(col(Subscriber.email) == address)
    if q:
        term = q.strip().lower().replace("\\", "").replace("%", "").replace("_", r"\_")
        term = "".join(c for c in term if c.isprintable())  # no NUL or controls in the SQL
        # The pattern goes into the SQL text: under a prepared statement's generic plan,
        # PostgreSQL cannot use the prefix indexes for LIKE with a bound parameter.
        pattern = literal(f"{term}%", literal_execute=True)
        query = query.where(
            or_(
                col(Subscriber.email).like(pattern, escape="\\"),
                func.lower(col(Subscriber.name)).like(pattern, escape="\\"),
            )
        )
    if list_slug or status:
        member = select(col(Membership.subscriber_id)).join(
            MailingList, col(MailingList.id) == col(Membership.list_id)
        )
        if list_slug:
            member = member.where(col(MailingList.slug) == list_slug)
        if status:
            member = member.where(col(Membership.status) == status)
        query = query.where(col(Subscriber.id).in_(member))
    with rt.db.session() as s:
        if rules:
            query = query.where(segments.expression(s, lists=[], rules=rules))
        counted = query if count_limit is None else query.limit(count_limit + 1)
        total = s.scalar(select(func.count()).select_from(counted.subquery())) or 0
        subs = list(s.scalars(query.order_by(col(Subscriber.id)).offset(offset).limit(limit)))
        return _infos(s, subs), total
