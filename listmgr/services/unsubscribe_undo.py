"""Undoing an unsubscribe: for a short while after leaving (the page's signed undo form), the
memberships that unsubscribe ended come back as they were, each with its consent event."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col

from listmgr.errors import TokenInvalid, TokenUsed
from listmgr.models import (
    MAX_ID,
    MailingList,
    Membership,
    MemberStatus,
    Subscriber,
    id_of,
    utcnow,
)
from listmgr.runtime import Runtime
from listmgr.services import notices, settings_store
from listmgr.services.subscriptions import Origin, record, suppression_of
from listmgr.settings import Settings

WORDING = "resubscribed by undo"
DONE = (
    "This was already undone, or your subscriptions changed since. Nothing was changed now. "
    "You can choose your lists again from the preferences link in any of our emails."
)
SUPPRESSED = (
    "This can no longer be undone: our mail to this address cannot be delivered, or was "
    "reported. Nothing was changed."
)


def undo(rt: Runtime, token: str, *, origin: Origin) -> list[str]:
    """Bring back the confirmed memberships the token's unsubscribe ended (and, for an
    unsubscribe from everything, lift its suppression); the names of the lists back."""
    tok = rt.tokens.read_unsubscribe_undo(token)
    settings = settings_store.effective(rt)  # the notice each list comes back under
    with rt.db.session() as s:
        # Locked: of two posts of one form, the second finds the memberships back already.
        sub = (
            s.get(Subscriber, tok.subscriber_id, with_for_update=True)
            if 1 <= tok.subscriber_id <= MAX_ID
            else None
        )
        if sub is None:
            raise TokenInvalid("This link no longer works: there is no data held for it.")
        members = [
            m
            for m in s.scalars(
                select(Membership).where(
                    col(Membership.subscriber_id) == sub.id,
                    col(Membership.list_id).in_(tok.list_ids),
                    col(Membership.status) == MemberStatus.unsubscribed.value,
                )
            )
            if m.unsubscribed_at is not None and m.unsubscribed_at.isoformat() == tok.at
        ]
        if not members:
            raise TokenUsed(DONE)
        held = suppression_of(s, sub)
        if held is not None:
            # Only the unsubscribe-from-everything being undone is lifted; a bounce or a
            # complaint since (or a later leaving of everything) stays.
            if held.reason != "unsubscribed_all" or not tok.everything:
                raise TokenUsed(SUPPRESSED)
            s.delete(held)
        now = utcnow()
        for m in members:
            m.status = MemberStatus.confirmed.value
            m.unsubscribed_at = None
            m.updated_at = now
            record(
                s,
                kind="resubscribe",
                subscriber_id=sub.id,
                list_id=m.list_id,
                origin=origin,
                wording=WORDING,
                privacy_notice_id=_notice_id(s, settings, m.list_id),
                detail={"undo_of": tok.at, "lifted_suppression": bool(held)},
            )
        names = s.scalars(
            select(col(MailingList.name))
            .where(col(MailingList.id).in_([m.list_id for m in members]))
            .order_by(col(MailingList.name))
        )
        return list(names)


def _notice_id(s: Session, settings: Settings, list_id: int) -> int | None:
    lst = s.get(MailingList, list_id)
    return id_of(notices.current(s, settings, lst)) if lst is not None else None
