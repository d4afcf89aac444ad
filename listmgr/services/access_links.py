"""Links that reach a person's data: the single-use, one-hour export/erase link mailed to the
address, and ending every older link of a subscriber ("forget my old links").

A preference link (/p/TOKEN) is in every mail, so it leaks with any forwarded or stolen mail: it
may change preferences and leave, but downloading or erasing the data needs a link mailed to the
address on request. Links carry the subscriber's link epoch; forgetting moves the epoch on, so
older preference links open nothing (older unsubscribe links still unsubscribe, see
subscriptions.unsubscribe)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import or_, update
from sqlalchemy.orm import Session
from sqlmodel import col

from listmgr.db import rows_changed
from listmgr.errors import NotFound, TokenInvalid, TokenReplaced, TokenUsed
from listmgr.models import MAX_ID, Outbox, Subscriber, utcnow
from listmgr.runtime import Runtime
from listmgr.services import audit
from listmgr.services.subscriptions import REPLACED, Origin, new_nonce, subscriber_for_link

USED = (
    "This link was already used: each link to download or erase your data works once. "
    "Please ask for a new one from the preferences link in any of our emails."
)


@dataclass(frozen=True)
class Access:
    """What a /p/TOKEN/export or /p/TOKEN/erase link is."""

    fresh: bool  # a mailed single-use link (else a preference link, which may only ask)
    email: str


def _audit(s: Session, sub: Subscriber, action: str, origin: Origin, **detail: object) -> None:
    s.add(
        audit.entry(
            actor=origin.actor,
            action=action,
            target_type="subscriber",
            target_id=sub.id,
            ip=origin.ip,
            detail={"source": origin.source, **detail},
        )
    )


def _data_subject(s: Session, rt: Runtime, token: str, *, lock: bool = False) -> Subscriber | None:
    """The subscriber of a still unused data link (None when they were erased)."""
    tok = rt.tokens.read_data_link(token)
    if not 1 <= tok.subscriber_id <= MAX_ID:
        raise TokenInvalid("This link is not valid.")
    sub = s.get(Subscriber, tok.subscriber_id, with_for_update=lock)
    if sub is None:
        return None
    if tok.epoch != sub.link_epoch:
        raise TokenReplaced(REPLACED)
    if not sub.access_nonce or sub.access_nonce != tok.nonce:
        raise TokenUsed(USED)
    return sub


def inspect(rt: Runtime, token: str) -> Access:
    """Which kind of link this is, changing nothing (link scanners fetch links)."""
    try:
        rt.tokens.read_data_link(token)
    except TokenInvalid:
        with rt.db.session() as s:  # not a data link: then it must be a current preference link
            return Access(False, subscriber_for_link(s, rt, token).email)
    with rt.db.session() as s:
        sub = _data_subject(s, rt, token)
        if sub is None:
            raise TokenInvalid("This link no longer works: there is no data held for it.")
        return Access(True, sub.email)


def use_data_link(s: Session, rt: Runtime, token: str, *, lock: bool = False) -> Subscriber | None:
    """Spend a data link inside the caller's unit of work (export or erase follows in it);
    None when the person was erased already."""
    sub = _data_subject(s, rt, token, lock=lock)
    if sub is None:
        return None
    # Of two simultaneous uses of one link, one wins: the nonce is cleared only once.
    spent = rows_changed(
        s,
        update(Subscriber)
        .where(
            col(Subscriber.id) == sub.id,
            col(Subscriber.link_epoch) == sub.link_epoch,
            col(Subscriber.access_nonce) == sub.access_nonce,
        )
        .values(access_nonce="")
        .execution_options(synchronize_session=False),
    )
    if spent != 1:
        raise TokenUsed(USED)
    return sub


def request_data_link(rt: Runtime, manage_token: str, *, origin: Origin) -> None:
    """Mail a fresh export/erase link to the subscriber's own address; at most one per window
    (the caller answers the same either way)."""
    now = utcnow()
    window = now - timedelta(minutes=rt.settings.data_link_window_minutes)
    oid = None
    with rt.db.session() as s:
        sub = subscriber_for_link(s, rt, manage_token)
        # One statement decides: two requests at once mail one link.
        claimed = rows_changed(
            s,
            update(Subscriber)
            .where(
                col(Subscriber.id) == sub.id,
                col(Subscriber.link_epoch) == sub.link_epoch,
                or_(
                    col(Subscriber.access_sent_at).is_(None),
                    col(Subscriber.access_sent_at) <= window,
                ),
            )
            .values(access_nonce=new_nonce(), access_sent_at=now)
            .execution_options(synchronize_session=False),
        )
        _audit(s, sub, "subscriber.data_link", origin, mailed=bool(claimed))
        if claimed == 1:
            row = Outbox(kind="data_link", to_email=sub.email, subscriber_id=sub.id)
            s.add(row)
            s.flush()
            oid = row.id
    if oid:
        rt.enqueue("send_outbox", oid)


def _forget(s: Session, sub: Subscriber, origin: Origin, *, notify: bool) -> int | None:
    """Move the link epoch on (every older preference and data link stops working); the
    outbox id of the mail with the new preference link, when one is to go out."""
    s.execute(
        update(Subscriber)
        .where(col(Subscriber.id) == sub.id)
        .values(link_epoch=Subscriber.link_epoch + 1, access_nonce="")
        .execution_options(synchronize_session=False)
    )
    _audit(s, sub, "subscriber.links_forgotten", origin, mailed=notify)
    if not notify:
        return None
    row = Outbox(kind="new_link", to_email=sub.email, subscriber_id=sub.id)
    s.add(row)
    s.flush()
    return row.id


def forget_links(rt: Runtime, manage_token: str, *, origin: Origin) -> None:
    """The person ends all their older links; the new preference link goes to their address
    only (never to the page: whoever holds an old link must not get a new one)."""
    with rt.db.session() as s:
        sub = subscriber_for_link(s, rt, manage_token, lock=True)
        oid = _forget(s, sub, origin, notify=True)
    if oid:
        rt.enqueue("send_outbox", oid)


def forget_links_of(
    rt: Runtime, subscriber_id: int, *, origin: Origin, notify: bool = True
) -> None:
    """An admin ends all older links of one subscriber (optionally mailing a new one)."""
    with rt.db.session() as s:
        sub = (
            s.get(Subscriber, subscriber_id, with_for_update=True)
            if 1 <= subscriber_id <= MAX_ID
            else None
        )
        if sub is None:
            raise NotFound("no such subscriber")
        oid = _forget(s, sub, origin, notify=notify)
    if oid:
        rt.enqueue("send_outbox", oid)
