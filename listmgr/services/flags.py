"""Subscribers the reputation page flags for a marketer to suppress or ask again: addresses
that keep soft-bouncing, role addresses (listmgr.role_addresses) and people who never engaged
after several campaigns. Only people still confirmed somewhere, not suppressed and not asked
already are flagged; someone who confirmed a re-permission request for a reason is not
flagged for it again."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, exists, func, or_, select
from sqlalchemy.orm import Session
from sqlmodel import col

from listmgr import role_addresses
from listmgr.errors import ValidationError
from listmgr.models import (
    Delivery,
    DeliveryStatus,
    Engagement,
    Membership,
    MemberStatus,
    Repermission,
    Subscriber,
    Suppression,
    id_of,
)
from listmgr.runtime import Runtime
from listmgr.services import settings_store
from listmgr.services.subscriptions import Origin, record, suppress
from listmgr.settings import Settings

FLAGS = {
    "soft_bounce": "keeps soft-bouncing",
    "role": "role address",
    "never_engaged": "never opened or clicked",
}
SUPPRESSION_REASON = "flagged"


@dataclass(frozen=True)
class Flagged:
    id: int
    email: str
    name: str
    soft_bounces: int


@dataclass(frozen=True)
class Summary:
    """How many people each flag holds, and who cannot be judged."""

    counts: dict[str, int]
    untracked: int  # received enough campaigns but do not allow tracking: not judged
    tracking_on: bool  # false: opens and clicks are recorded for nobody (no one is judged)
    waiting: int  # asked to confirm, deadline not reached
    soft_bounces: int  # the settings the flags use
    campaigns: int


def check_flag(flag: str) -> str:
    if flag not in FLAGS:
        raise ValidationError(f"flag must be one of {', '.join(FLAGS)}", field="flag")
    return flag


def _received_at_least(n: int) -> Any:
    return (
        select(col(Delivery.subscriber_id))
        .where(col(Delivery.status) == DeliveryStatus.sent.value)
        .group_by(col(Delivery.subscriber_id))
        .having(func.count() >= n)
    )


def _eligible(list_id: int | None) -> list[Any]:
    """Confirmed (on the list, if one), not suppressed, no request waiting."""
    member = select(col(Membership.id)).where(
        col(Membership.subscriber_id) == col(Subscriber.id),
        col(Membership.status) == MemberStatus.confirmed.value,
    )
    if list_id is not None:
        member = member.where(col(Membership.list_id) == list_id)
    return [
        exists(member),
        ~exists(
            select(col(Suppression.id)).where(
                col(Suppression.email_hash) == col(Subscriber.email_hash)
            )
        ),
        ~exists(
            select(col(Repermission.id)).where(
                col(Repermission.subscriber_id) == col(Subscriber.id),
                col(Repermission.ended_at).is_(None),
            )
        ),
    ]


def query(settings: Settings, flag: str, list_id: int | None = None) -> Select[Any]:
    """The subscribers this flag holds now (of one list's confirmed members, if given)."""
    check_flag(flag)
    conditions = _eligible(list_id)
    conditions.append(
        ~exists(
            select(col(Repermission.id)).where(
                col(Repermission.subscriber_id) == col(Subscriber.id),
                col(Repermission.flag) == flag,
                col(Repermission.confirmed_at).is_not(None),
            )
        )
    )
    if flag == "soft_bounce":
        conditions.append(col(Subscriber.soft_bounces) >= settings.flag_soft_bounces)
    elif flag == "role":
        email = col(Subscriber.email)
        conditions.append(or_(*(email.startswith(p) for p in role_addresses.prefixes())))
    else:
        conditions += [
            col(Subscriber.consent_tracking).is_(True),
            col(Subscriber.id).in_(_received_at_least(settings.flag_never_engaged_campaigns)),
            ~exists(
                select(col(Engagement.id)).where(
                    col(Engagement.subscriber_id) == col(Subscriber.id),
                    col(Engagement.machine).is_(False),
                )
            ),
        ]
        if not settings.tracking:
            conditions.append(col(Subscriber.id).is_(None))  # nobody can be judged
    return select(Subscriber).where(*conditions)


def _count(s: Session, q: Select[Any]) -> int:
    return s.scalar(select(func.count()).select_from(q.subquery())) or 0


def summary(rt: Runtime, *, list_id: int | None = None) -> Summary:
    """The count of each flag, those who cannot be judged, and the requests waiting."""
    settings = settings_store.effective(rt)
    with rt.db.session() as s:
        counts = {flag: _count(s, query(settings, flag, list_id)) for flag in FLAGS}
        untracked = _count(
            s,
            select(col(Subscriber.id)).where(
                *_eligible(list_id),
                col(Subscriber.consent_tracking).is_(False),
                col(Subscriber.id).in_(_received_at_least(settings.flag_never_engaged_campaigns)),
            ),
        )
        waiting = _count(
            s, select(col(Repermission.id)).where(col(Repermission.ended_at).is_(None))
        )
    return Summary(
        counts,
        untracked,
        settings.tracking,
        waiting,
        settings.flag_soft_bounces,
        settings.flag_never_engaged_campaigns,
    )


def members(
    rt: Runtime, flag: str, *, list_id: int | None = None, offset: int = 0, limit: int = 50
) -> tuple[list[Flagged], int]:
    """The people one flag holds, by address."""
    settings = settings_store.effective(rt)
    q = query(settings, flag, list_id)
    with rt.db.session() as s:
        total = _count(s, q)
        rows = s.scalars(q.order_by(col(Subscriber.email)).offset(offset).limit(limit))
        return [Flagged(id_of(r), r.email, r.name, r.soft_bounces) for r in rows], total


def chosen(
    s: Session, settings: Settings, flag: str, list_id: int | None, ids: list[int] | None
) -> list[Subscriber]:
    """The flagged people an action applies to: all of them, or those of `ids` still flagged
    (an id that is not, or no longer, flagged is left alone)."""
    q = query(settings, flag, list_id)
    if ids is not None:
        q = q.where(col(Subscriber.id).in_(ids))
    return list(s.scalars(q.order_by(col(Subscriber.id))))


def suppress_flagged(
    rt: Runtime,
    flag: str,
    *,
    actor: str,
    list_id: int | None = None,
    ids: list[int] | None = None,
) -> int:
    """Put the flagged people on the suppression list; returns how many."""
    settings = settings_store.effective(rt)
    origin = Origin(source="reputation", actor=actor[:100])
    with rt.db.session() as s:
        people = chosen(s, settings, flag, list_id, ids)
        for sub in people:
            suppress(s, sub, SUPPRESSION_REASON, f"flagged: {FLAGS[flag]}")
            record(
                s,
                kind="suppressed",
                subscriber_id=sub.id,
                list_id=None,
                origin=origin,
                detail={"flag": flag},
            )
        return len(people)
