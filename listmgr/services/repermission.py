"""Re-permission: flagged people get a mail with a signed "keep me subscribed" link. Pressing
its button (POST: link scanners only GET) records a fresh confirmation; whoever has not by the
deadline (setting repermission_days) is unsubscribed from the list (or from every list the
request named none) by the worker's sweep, with the reason recorded."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col

from listmgr.models import (
    MailingList,
    Membership,
    MemberStatus,
    Outbox,
    Repermission,
    Subscriber,
    by_id,
    id_of,
    utcnow,
)
from listmgr.runtime import Runtime
from listmgr.services import flags, notices, settings_store
from listmgr.services.subscriptions import Origin, record, unsubscribe_subscriber

KIND = "repermission"  # the outbox kind (templates/email/repermission)
EXPIRED_SOURCE = "repermission-expired"


def ask(
    rt: Runtime,
    flag: str,
    *,
    actor: str,
    list_id: int | None = None,
    ids: list[int] | None = None,
    now: datetime | None = None,
) -> int:
    """Mail each flagged person a "keep me subscribed" link; returns how many were asked."""
    settings = settings_store.effective(rt)
    now = now or utcnow()
    deadline = now + timedelta(days=settings.repermission_days)
    origin = Origin(source="reputation", actor=actor[:100])
    outbox: list[int] = []
    with rt.db.session() as s:
        for sub in flags.chosen(s, settings, flag, list_id, ids):
            req = Repermission(
                subscriber_id=id_of(sub),
                list_id=list_id,
                flag=flag,
                asked_at=now,
                deadline=deadline,
                created_by=actor[:320],
            )
            s.add(req)
            s.flush()
            mail = Outbox(
                kind=KIND,
                to_email=sub.email,
                subscriber_id=sub.id,
                list_id=list_id,
                payload={
                    "repermission_id": id_of(req),
                    "deadline": deadline.strftime("%d %B %Y"),
                },
            )
            s.add(mail)
            s.flush()
            outbox.append(id_of(mail))
            record(
                s,
                kind="repermission_asked",
                subscriber_id=sub.id,
                list_id=list_id,
                origin=origin,
                detail={"flag": flag, "repermission_id": req.id, "deadline": deadline.isoformat()},
            )
    for oid in outbox:
        rt.enqueue("send_outbox", oid)
    return len(outbox)


@dataclass(frozen=True)
class KeepView:
    email: str
    list_name: str  # "" when the request was about every list
    state: str  # waiting, kept, ended (not confirmed in time), gone (erased)
    deadline: str


def _state(req: Repermission) -> str:
    if req.confirmed_at is not None:
        return "kept"
    return "ended" if req.ended_at is not None else "waiting"


def _view(s: Session, req: Repermission | None) -> KeepView:
    if req is None:
        return KeepView("", "", "gone", "")
    sub = s.get(Subscriber, req.subscriber_id)
    lst = s.get(MailingList, req.list_id) if req.list_id else None
    return KeepView(
        sub.email if sub else "",
        lst.name if lst else "",
        _state(req),
        req.deadline.strftime("%d %B %Y"),
    )


def view(rt: Runtime, token: str) -> KeepView:
    """What the "keep me subscribed" page shows; changes nothing."""
    request_id = rt.tokens.read_repermission(token)
    with rt.db.session() as s:
        return _view(s, by_id(s, Repermission, request_id))


def _confirmed_lists(s: Session, req: Repermission) -> list[int]:
    query = select(col(Membership.list_id)).where(
        col(Membership.subscriber_id) == req.subscriber_id,
        col(Membership.status) == MemberStatus.confirmed.value,
    )
    if req.list_id is not None:
        query = query.where(col(Membership.list_id) == req.list_id)
    return list(s.scalars(query))


def keep(rt: Runtime, token: str, *, origin: Origin, now: datetime | None = None) -> KeepView:
    """The person confirms they want the mail: a fresh confirmation per list they are on;
    repeating it is harmless, and after the deadline's sweep it changes nothing."""
    request_id = rt.tokens.read_repermission(token)
    now = now or utcnow()
    settings = settings_store.effective(rt)  # the notice each confirmation is recorded under
    with rt.db.session() as s:
        req = by_id(s, Repermission, request_id)
        if req is None or req.ended_at is not None:
            return _view(s, req)
        req.confirmed_at = req.ended_at = now
        for lid in _confirmed_lists(s, req):
            lst = s.get(MailingList, lid)
            record(
                s,
                kind="confirm",
                subscriber_id=req.subscriber_id,
                list_id=lid,
                origin=origin,
                privacy_notice_id=id_of(notices.current(s, settings, lst)) if lst else None,
                detail={"repermission_id": req.id, "flag": req.flag},
            )
        return _view(s, req)


def sweep(rt: Runtime, now: datetime | None = None) -> int:
    """Unsubscribe whoever let a request's deadline pass; returns how many requests ended."""
    now = now or utcnow()
    origin = Origin(source=EXPIRED_SOURCE, actor="system")
    with rt.db.session() as s:
        due = list(
            s.scalars(
                select(Repermission)
                .where(col(Repermission.ended_at).is_(None), col(Repermission.deadline) < now)
                .order_by(col(Repermission.id))
                .limit(10000)
                .with_for_update(skip_locked=True)
            )
        )
        for req in due:
            req.ended_at = now
            sub = s.get(Subscriber, req.subscriber_id)
            if sub is None:
                continue
            for lid in _confirmed_lists(s, req):
                unsubscribe_subscriber(
                    s,
                    sub,
                    list_id=lid,
                    origin=origin,
                    detail={
                        "reason": "did not confirm a re-permission request in time",
                        "repermission_id": req.id,
                        "flag": req.flag,
                    },
                )
        return len(due)
