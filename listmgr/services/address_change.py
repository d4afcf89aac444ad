"""A person corrects their own address: the new address gets a confirmation link, and only
following it changes the address; the old address then gets a notice.

The answer to a request is the same whatever happens (an address of someone else, or one on
the suppression list, gets no mail), so the page reveals no other subscriber."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlmodel import col

from listmgr.addresses import normalize_email
from listmgr.errors import TokenInvalid, TokenReplaced, TokenUsed, ValidationError
from listmgr.models import MAX_ID, Outbox, Subscriber, Suppression, utcnow
from listmgr.runtime import Runtime
from listmgr.services import audit
from listmgr.services.subscriptions import REPLACED, Origin, record, subscriber_for_link
from listmgr.tokens import AddressToken

USED = "This link was already used, or your address changed since. Nothing was changed now."
REFUSED = (
    "This address cannot be used for your subscription. Nothing was changed: your "
    "subscription stays with your current address."
)


def masked(email: str) -> str:
    """An address as the notice to the old one names it: enough to recognise, not to use."""
    local, _, domain = email.rpartition("@")
    return f"{local[:1]}***@{domain}"


@dataclass(frozen=True)
class AddressView:
    """What the confirmation page shows."""

    old_email: str
    new_email: str


def _free(s: Session, rt: Runtime, sub: Subscriber, email: str) -> bool:
    """Nobody else has the address and it is not on the suppression list."""
    taken = s.scalar(
        select(col(Subscriber.id)).where(
            col(Subscriber.email) == email, col(Subscriber.id) != sub.id
        )
    )
    held = s.scalar(
        select(col(Suppression.id)).where(col(Suppression.email_hash) == rt.email_hash(email))
    )
    return taken is None and held is None


def request_change(rt: Runtime, manage_token: str, new_email: object, *, origin: Origin) -> None:
    """Mail a confirmation link to the new address (at most one per window per person; none
    for an address that cannot be used). A malformed address is the one error shown."""
    new = normalize_email(new_email)
    window = utcnow() - timedelta(minutes=rt.settings.data_link_window_minutes)
    oid = None
    with rt.db.session() as s:
        sub = subscriber_for_link(s, rt, manage_token, lock=True)
        if new == sub.email:
            raise ValidationError("This is already your address.", field="email")
        recent = s.scalar(
            select(col(Outbox.id))
            .where(
                col(Outbox.subscriber_id) == sub.id,
                col(Outbox.kind) == "address_confirm",
                col(Outbox.created_at) > window,
            )
            .limit(1)
        )
        mailed = recent is None and _free(s, rt, sub, new)
        s.add(
            audit.entry(
                actor=origin.actor,
                action="subscriber.address_requested",
                target_type="subscriber",
                target_id=sub.id,
                ip=origin.ip,
                detail={"source": origin.source, "mailed": mailed},
            )
        )
        if mailed:
            row = Outbox(kind="address_confirm", to_email=new, subscriber_id=sub.id)
            s.add(row)
            s.flush()
            oid = row.id
    if oid:
        rt.enqueue("send_outbox", oid)


def _target(
    s: Session, rt: Runtime, token: str, *, lock: bool = False
) -> tuple[Subscriber, AddressToken]:
    tok = rt.tokens.read_address_change(token)
    sub = (
        s.get(Subscriber, tok.subscriber_id, with_for_update=lock)
        if 1 <= tok.subscriber_id <= MAX_ID
        else None
    )
    if sub is None:
        raise TokenInvalid("This link no longer works: there is no data held for it.")
    if tok.epoch != sub.link_epoch:
        raise TokenReplaced(REPLACED)
    if sub.email != tok.old_email:
        raise TokenUsed(USED)
    return sub, tok


def view(rt: Runtime, token: str) -> AddressView:
    """Read a link without changing anything (link scanners fetch links)."""
    with rt.db.session() as s:
        sub, tok = _target(s, rt, token)
        return AddressView(sub.email, tok.new_email)


def confirm_change(rt: Runtime, token: str, *, origin: Origin) -> AddressView:
    """Change the address as the link says, if it can still be used; the old address gets a
    notice. An unsubscribe-from-everything follows the person to the new address."""
    with rt.db.session() as s:
        sub, tok = _target(s, rt, token, lock=True)
        new = normalize_email(tok.new_email)
        if not _free(s, rt, sub, new):
            raise ValidationError(REFUSED, field="email")
        old = sub.email
        old_hash = sub.email_hash
        left = s.scalar(select(Suppression).where(col(Suppression.email_hash) == old_hash))
        sub.email, sub.email_hash, sub.updated_at = new, rt.email_hash(new), utcnow()
        try:
            s.flush()
        except IntegrityError:  # the address was taken a moment ago
            raise ValidationError(REFUSED, field="email") from None
        if left is not None and left.reason == "unsubscribed_all":
            s.add(Suppression(email_hash=sub.email_hash, email=new, reason=left.reason))
        # Only keyed hashes of the addresses: an erasure later finds nothing of the old one.
        detail = {"old_email_hash": old_hash, "new_email_hash": sub.email_hash}
        record(
            s,
            kind="address_change",
            subscriber_id=sub.id,
            list_id=None,
            origin=origin,
            detail=detail,
        )
        s.add(
            audit.entry(
                actor=origin.actor,
                action="subscriber.address_change",
                target_type="subscriber",
                target_id=sub.id,
                ip=origin.ip,
                detail={"source": origin.source, **detail},
            )
        )
        notice = Outbox(
            kind="address_changed",
            to_email=old,
            subscriber_id=sub.id,
            payload={"new_address": masked(new)},
        )
        s.add(notice)
        s.flush()
        oid = notice.id
    rt.enqueue("send_outbox", oid)
    return AddressView(old, new)
