"""The published versions of each list's privacy notice.

The notice is computed (listmgr.notice.compose) after every change that can alter it
(services/notice_follow), at the worker's start, whenever it is shown and whenever a consent
is recorded; when its digest differs from the list's latest stored version, a new version is stored with
its date. Consent events point at the version in force, so a proof of consent shows the text
the person was given even after the configuration changed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlmodel import col

from listmgr import notice
from listmgr.errors import NotFound
from listmgr.models import (
    SLUG,
    ConsentEvent,
    FieldDef,
    Interest,
    MailingList,
    Membership,
    MemberStatus,
    PrivacyNotice,
    id_of,
)
from listmgr.runtime import Runtime
from listmgr.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Published:
    """One version of a list's notice as shown."""

    version: int
    published_at: datetime
    digest: str
    content: dict[str, Any]

    @property
    def text(self) -> str:
        return notice.as_text(self.content)

    def as_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "published_at": self.published_at.isoformat() + "Z",
            "digest": self.digest,
            "notice": self.content,
        }


def _published(row: PrivacyNotice) -> Published:
    return Published(row.version, row.created_at, row.digest, row.content)


def _facts(s: Session, lst: MailingList) -> notice.ListFacts:
    keys, wanted = list(lst.form_fields or []), list(lst.form_interests or [])
    fields = (
        {f.key: f.label for f in s.scalars(select(FieldDef).where(col(FieldDef.key).in_(keys)))}
        if keys
        else {}
    )
    interests = (
        {i.key: i.label for i in s.scalars(select(Interest).where(col(Interest.key).in_(wanted)))}
        if wanted
        else {}
    )
    return notice.ListFacts(
        slug=lst.slug,
        name=lst.name,
        postal_address=lst.postal_address,
        field_labels=tuple(fields[k] for k in keys if k in fields),
        interest_labels=tuple(interests[k] for k in wanted if k in interests),
    )


def _latest(s: Session, list_id: int) -> PrivacyNotice | None:
    return s.scalar(
        select(PrivacyNotice)
        .where(col(PrivacyNotice.list_id) == list_id)
        .order_by(col(PrivacyNotice.version).desc())
        .limit(1)
    )


def current(s: Session, settings: Settings, lst: MailingList) -> PrivacyNotice:
    """The list's notice in force, stored as a new version if the configuration changed it."""
    content = notice.compose(settings, _facts(s, lst))
    digest = notice.digest(content)
    list_id = id_of(lst)
    latest = _latest(s, list_id)
    if latest is not None and latest.digest == digest:
        return latest
    row = PrivacyNotice(
        list_id=list_id,
        version=(latest.version + 1) if latest else 1,
        content=content,
        digest=digest,
    )
    try:
        with s.begin_nested():  # another process may store the same version at this moment
            s.add(row)
    except IntegrityError:
        stored = _latest(s, list_id)
        assert stored is not None  # the row that won
        return stored
    return row


def for_person(
    s: Session, settings: Settings, subscriber_id: int | None, joining: Iterable[str] = ()
) -> list[PrivacyNotice]:
    """The notices in force for a consent that belongs to no one list (profiling, tracking).

    Those of the lists the person is on (confirmed or waiting for confirmation), in the order
    the preference center shows them and links their notices (by name); when they are on
    none, those of the lists they are joining (`joining`, slugs) in the same order. The first
    is the one a consent event names; every list's notice states the same about these
    consents, since they come from settings, not from one list."""
    on = (
        select(col(Membership.list_id))
        .where(
            col(Membership.subscriber_id) == subscriber_id,
            col(Membership.status).in_((MemberStatus.confirmed.value, MemberStatus.pending.value)),
        )
        .scalar_subquery()
    )
    query = select(MailingList).order_by(col(MailingList.name), col(MailingList.id))
    found = list(s.scalars(query.where(col(MailingList.id).in_(on)))) if subscriber_id else []
    wanted = [slug for slug in joining if isinstance(slug, str)]
    if not found and wanted:
        found = list(s.scalars(query.where(col(MailingList.slug).in_(wanted))))
    return [current(s, settings, lst) for lst in found]


def follow_change(rt: Runtime, settings: Settings) -> int:
    """After a committed change of the configuration (settings, lists, fields, interests):
    compute the notice in force of every list now, storing a new dated version where the
    content changed, so two changes make two versions even when nobody looks at the notice in
    between; returns how many were stored. A failure is logged, not raised: the change is
    already saved, and a notice still gets its new version when next shown or recorded."""
    stored = 0
    try:
        with rt.db.session() as s:
            for lst in s.scalars(select(MailingList).order_by(col(MailingList.id))):
                before = _latest(s, id_of(lst))
                if current(s, settings, lst) is not before:
                    stored += 1
    except Exception:
        log.exception("storing the new privacy notice versions failed")
        return 0
    return stored


def published(rt: Runtime, settings: Settings, slug: str) -> Published:
    """The notice in force for the list with this slug; NotFound for any other slug."""
    with rt.db.session() as s:
        lst = None
        if SLUG.match(slug):  # anything else names no list (and never reaches the database)
            lst = s.scalar(select(MailingList).where(col(MailingList.slug) == slug))
        if lst is None:
            raise NotFound(f"There is no list called {slug!r}.", field="list")
        return _published(current(s, settings, lst))


@dataclass(frozen=True)
class Shown:
    """A notice version some of a person's consent events were given under."""

    list_name: str
    notice: Published
    event_ids: list[int]


def shown_to(rt: Runtime, subscriber_id: int) -> list[Shown]:
    """The notice versions a subscriber's sign-ups and confirmations were recorded under."""
    with rt.db.session() as s:
        rows = s.execute(
            select(ConsentEvent, PrivacyNotice, col(MailingList.name))
            .join(PrivacyNotice, col(PrivacyNotice.id) == col(ConsentEvent.privacy_notice_id))
            .join(MailingList, col(MailingList.id) == col(PrivacyNotice.list_id))
            .where(col(ConsentEvent.subscriber_id) == subscriber_id)
            .order_by(col(ConsentEvent.id))
        ).all()
        out: dict[int, Shown] = {}
        for event, row, list_name in rows:
            shown = out.setdefault(id_of(row), Shown(list_name, _published(row), []))
            shown.event_ids.append(id_of(event))
        return list(out.values())
