"""Subscribe, confirm, unsubscribe and list preferences, each with its consent event."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterable

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from listmgr.errors import NotFound, TokenInvalid, ValidationError
from listmgr.models import (ConsentEvent, Delivery, MailingList, Membership, MemberStatus,
                            OptIn, Outbox, Subscriber, Suppression, utcnow)
from listmgr.runtime import Runtime

MAX_NAME = 200


@dataclass(frozen=True)
class Origin:
    """Where a request came from, for the consent record."""

    source: str = ""
    ip: str = ""
    user_agent: str = ""
    actor: str = "subscriber"


def normalize_email(raw: Any) -> str:
    """Validated, normalized address (no DNS); a clear error naming the field otherwise."""
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationError("Please enter an email address.", field="email")
    if any(c in raw for c in "\r\n\x00"):
        raise ValidationError("The email address must not contain line breaks.", field="email")
    try:
        info = validate_email(raw.strip(), check_deliverability=False, strict=True)
    except EmailNotValidError as exc:
        raise ValidationError(f"That email address is not valid: {exc}", field="email") from None
    # One person, one row: mailbox providers treat the local part case-insensitively.
    return info.normalized.lower()


def clean_name(raw: Any) -> str:
    """A display name: no control characters, bounded length."""
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise ValidationError("The name must be text.", field="name")
    if "\r" in raw or "\n" in raw:
        raise ValidationError("The name must not contain line breaks.", field="name")
    if "\x00" in raw:
        raise ValidationError("The name must not contain control characters (it holds a NUL "
                              "byte).", field="name")
    name = " ".join(raw.split())
    if len(name) > MAX_NAME:
        raise ValidationError(f"The name is longer than {MAX_NAME} characters.", field="name")
    return name


def suppression_of(s: Session, sub: Subscriber) -> Suppression | None:
    """The subscriber's entry on the suppression list, if any."""
    return s.scalar(select(Suppression).where(Suppression.email_hash == sub.email_hash))


def get_list(s: Session, slug: str) -> MailingList:
    row = s.scalar(select(MailingList).where(MailingList.slug == slug))
    if row is None:
        raise NotFound(f"There is no list called {slug!r}.", field="list")
    return row


def record(s: Session, *, kind: str, subscriber_id: int | None, list_id: int | None,
           origin: Origin, wording: str = "", detail: dict[str, Any] | None = None,
           campaign_id: int | None = None, inbound_id: int | None = None) -> None:
    """Append a consent event."""
    s.add(ConsentEvent(kind=kind, subscriber_id=subscriber_id, list_id=list_id,
                       source=origin.source, actor=origin.actor, ip=origin.ip[:64],
                       user_agent=origin.user_agent[:500], wording=wording,
                       detail=detail or {}, campaign_id=campaign_id, inbound_id=inbound_id))


def _queue_mail(s: Session, rt: Runtime, *, kind: str, sub: Subscriber, lst: MailingList,
                payload: dict[str, Any] | None = None) -> int | None:
    """Add an outbox row unless this address got the same kind of mail within the window."""
    window = utcnow() - timedelta(minutes=rt.settings.confirm_window_minutes)
    recent = s.scalar(select(Outbox.id).where(Outbox.to_email == sub.email,
                                              Outbox.kind.in_(("confirm", "already_subscribed")),
                                              Outbox.created_at > window).limit(1))
    if recent is not None:
        return None
    row = Outbox(kind=kind, to_email=sub.email, subscriber_id=sub.id, list_id=lst.id,
                 payload=payload or {})
    s.add(row)
    s.flush()
    return row.id


def find_or_create_subscriber(s: Session, rt: Runtime, email: str, name: str,
                              source: str) -> tuple[Subscriber, bool]:
    sub = s.scalar(select(Subscriber).where(Subscriber.email == email))
    if sub is not None:
        return sub, False
    sub = Subscriber(email=email, email_hash=rt.email_hash(email), name=name, source=source)
    s.add(sub)
    s.flush()
    return sub, True


def subscribe(rt: Runtime, *, list_slug: str, email: Any, name: Any = "", wording: str = "",
              origin: Origin = Origin(source="form"), fields: dict[str, Any] | None = None,
              interests: Iterable[str] | None = None) -> None:
    """Start (or restart) double opt-in; the caller's answer must not depend on the outcome."""
    address = normalize_email(email)
    display = clean_name(name)
    try:
        outbox_ids = _subscribe(rt, list_slug, address, display, wording, origin, fields,
                                interests)
    except IntegrityError:  # the same address signed up at the same moment: now it exists
        outbox_ids = _subscribe(rt, list_slug, address, display, wording, origin, fields,
                                interests)
    for oid in outbox_ids:
        rt.enqueue("send_outbox", oid)


def _subscribe(rt: Runtime, list_slug: str, address: str, display: str, wording: str,
               origin: Origin, fields: dict[str, Any] | None,
               interests: Iterable[str] | None) -> list[int]:
    """One attempt at subscribe(), in one unit of work; the outbox ids to send."""
    outbox_ids: list[int] = []
    with rt.db.session() as s:
        lst = get_list(s, list_slug)
        wording = wording or lst.consent_wording
        profile = None
        if fields or interests:
            from listmgr.services import people

            # as given: a string is refused ("must be a list"), not read letter by letter
            profile = people.validate_profile(s, fields or {},
                                              interests or [],  # type: ignore[arg-type]
                                              allowed_fields=lst.form_fields or None,
                                              allowed_interests=lst.form_interests or None)
        sub, created = find_or_create_subscriber(s, rt, address, display, origin.source)
        if created and profile is not None:
            from listmgr.services import people

            people.apply_profile(s, sub, profile)
        elif not sub.name and display:
            sub.name = display
        member = s.scalar(select(Membership).where(Membership.subscriber_id == sub.id,
                                                   Membership.list_id == lst.id))
        now = utcnow()
        # A suppressed address (erased, unsubscribed from all, complained, bounced, added by
        # hand) comes back only through a confirmed double opt-in, whatever the list's own
        # setting and even where its membership still reads confirmed.
        suppressed = suppression_of(s, sub) is not None
        if member is not None and member.status == MemberStatus.confirmed.value \
                and not suppressed:
            record(s, kind="subscribe_repeat", subscriber_id=sub.id, list_id=lst.id,
                   origin=origin, wording=wording)
            oid = _queue_mail(s, rt, kind="already_subscribed", sub=sub, lst=lst)
        elif lst.opt_in == OptIn.single.value and not suppressed:
            if member is None:
                member = Membership(subscriber_id=sub.id, list_id=lst.id, source=origin.source)
                s.add(member)
            member.status = MemberStatus.confirmed.value
            member.confirmed_at = member.updated_at = now
            member.unsubscribed_at = None
            record(s, kind="subscribe", subscriber_id=sub.id, list_id=lst.id, origin=origin,
                   wording=wording, detail={"opt_in": "single"})
            oid = None
        else:
            if member is None:
                member = Membership(subscriber_id=sub.id, list_id=lst.id, source=origin.source)
                s.add(member)
            if member.status != MemberStatus.confirmed.value:  # (confirmed: it stays so, and
                member.status = MemberStatus.pending.value      # confirming lifts the
                member.updated_at = now                         # suppression)
            s.flush()
            detail = {"opt_in": "double"}
            if suppressed:
                detail["why"] = "the address is on the suppression list"
            record(s, kind="subscribe", subscriber_id=sub.id, list_id=lst.id, origin=origin,
                   wording=wording, detail=detail)
            oid = _queue_mail(s, rt, kind="confirm", sub=sub, lst=lst,
                              payload={"wording": wording})
        if oid:
            outbox_ids.append(oid)
    return outbox_ids


@dataclass(frozen=True)
class ConfirmView:
    """What the confirm page shows."""

    list_name: str
    email: str
    status: str


def _confirm_target(s: Session, rt: Runtime, token: str) -> tuple[Subscriber, MailingList,
                                                                   Membership]:
    sid, lid = rt.tokens.read_confirm(token)
    sub = s.get(Subscriber, sid)
    lst = s.get(MailingList, lid)
    member = None
    if sub is not None and lst is not None:
        member = s.scalar(select(Membership).where(Membership.subscriber_id == sid,
                                                   Membership.list_id == lid))
    if sub is None or lst is None or member is None:
        raise TokenInvalid("This confirmation link is no longer valid.")
    return sub, lst, member


def confirm_view(rt: Runtime, token: str) -> ConfirmView:
    """Read a confirm token without changing anything (link scanners fetch links)."""
    with rt.db.session() as s:
        sub, lst, member = _confirm_target(s, rt, token)
        status = member.status
        if status == MemberStatus.confirmed.value and suppression_of(s, sub) is not None:
            status = MemberStatus.pending.value   # suppressed: confirming is still to do
        return ConfirmView(list_name=lst.name, email=sub.email, status=status)


def confirm(rt: Runtime, token: str, *, origin: Origin = Origin(source="confirm-link")) -> \
        ConfirmView:
    """Confirm a pending membership and record proof of consent; repeating is harmless."""
    with rt.db.session() as s:
        sub, lst, member = _confirm_target(s, rt, token)
        lifted = suppression_of(s, sub)
        if member.status == MemberStatus.confirmed.value and lifted is None:
            return ConfirmView(lst.name, sub.email, member.status)
        if member.status not in (MemberStatus.pending.value, MemberStatus.confirmed.value):
            raise TokenInvalid("This confirmation link is no longer valid: the subscription "
                               "was cancelled after it was sent. Please sign up again.")
        asked = s.scalar(select(ConsentEvent).where(
            ConsentEvent.subscriber_id == sub.id, ConsentEvent.list_id == lst.id,
            ConsentEvent.kind == "subscribe").order_by(ConsentEvent.id.desc()).limit(1))
        now = utcnow()
        member.status = MemberStatus.confirmed.value
        member.confirmed_at = member.updated_at = now
        member.unsubscribed_at = None
        # A fresh, explicit confirmation outweighs an earlier unsubscribe-from-all or erasure.
        if lifted is not None:
            s.delete(lifted)
        record(s, kind="confirm", subscriber_id=sub.id, list_id=lst.id, origin=origin,
               wording=asked.wording if asked else "",
               detail={"subscribe_event_at": asked.at.isoformat() if asked else None,
                       "subscribe_ip": asked.ip if asked else None,
                       "lifted_suppression": lifted.reason if lifted else None})
        return ConfirmView(lst.name, sub.email, member.status)


def resend_confirmation(rt: Runtime, token: str) -> None:
    """Send a fresh confirmation link for a correctly signed but expired token."""
    ids = rt.tokens.read_confirm_unverified_age(token)
    if ids is None:
        raise TokenInvalid("This confirmation link is not valid.")
    oid = None
    with rt.db.session() as s:
        sub, lst = s.get(Subscriber, ids[0]), s.get(MailingList, ids[1])
        if sub is None or lst is None:
            return
        member = s.scalar(select(Membership).where(Membership.subscriber_id == sub.id,
                                                   Membership.list_id == lst.id))
        if member is not None and member.status == MemberStatus.pending.value:
            oid = _queue_mail(s, rt, kind="confirm", sub=sub, lst=lst)
    if oid:
        rt.enqueue("send_outbox", oid)


@dataclass(frozen=True)
class UnsubscribeView:
    list_name: str
    email: str
    status: str
    manage_token: str


def unsubscribe_view(rt: Runtime, token: str) -> UnsubscribeView:
    """What the unsubscribe page shows; changes nothing."""
    tok = rt.tokens.read_unsubscribe(token)
    with rt.db.session() as s:
        sub = s.get(Subscriber, tok.subscriber_id)
        lst = s.get(MailingList, tok.list_id)
        if sub is None or lst is None:
            return UnsubscribeView(lst.name if lst else "", "", "unsubscribed", "")
        member = s.scalar(select(Membership).where(Membership.subscriber_id == sub.id,
                                                   Membership.list_id == lst.id))
        return UnsubscribeView(lst.name, sub.email, member.status if member else "unsubscribed",
                               rt.tokens.manage(sub.id))  # type: ignore[arg-type]


def _unsubscribe_members(s: Session, members: Iterable[Membership]) -> list[int]:
    changed = []
    now = utcnow()
    for member in members:
        if member.status in (MemberStatus.confirmed.value, MemberStatus.pending.value):
            member.status = MemberStatus.unsubscribed.value
            member.unsubscribed_at = member.updated_at = now
            changed.append(member.list_id)
    return changed


SUPPRESSION_STRENGTH = {"complaint": 3, "hard_bounce": 2, "erased": 2}


def suppress(s: Session, sub: Subscriber, reason: str, detail: str = "") -> None:
    """Put an address on the suppression list (idempotent; a stronger reason wins)."""
    existing = suppression_of(s, sub)
    if existing is None:
        s.add(Suppression(email_hash=sub.email_hash, email=sub.email, reason=reason,
                          detail=detail[:500]))
    elif SUPPRESSION_STRENGTH.get(reason, 1) > SUPPRESSION_STRENGTH.get(existing.reason, 1):
        existing.reason = reason
        existing.detail = detail[:500]


def unsubscribe_subscriber(s: Session, sub: Subscriber, *, list_id: int | None,
                           origin: Origin, campaign_id: int | None = None,
                           inbound_id: int | None = None, everything: bool = False,
                           detail: dict[str, Any] | None = None,
                           reason: str = "unsubscribed_all") -> list[int]:
    """Unsubscribe inside an open unit of work; returns the list ids that changed.

    `everything` also puts the address on the suppression list for `reason`."""
    query = select(Membership).where(Membership.subscriber_id == sub.id)
    if not everything:
        query = query.where(Membership.list_id == list_id)
    changed = _unsubscribe_members(s, s.scalars(query))
    if everything:
        suppress(s, sub, reason, origin.source)
    for lid in changed or ([list_id] if everything and not changed else []):
        record(s, kind="unsubscribe_all" if everything else "unsubscribe",
               subscriber_id=sub.id, list_id=lid, origin=origin, detail=detail,
               campaign_id=campaign_id, inbound_id=inbound_id)
    if campaign_id and (changed or everything):
        s.execute(update(Delivery).where(Delivery.campaign_id == campaign_id,
                                         Delivery.subscriber_id == sub.id)
                  .values(unsubscribed=True))
    return changed


def unsubscribe(rt: Runtime, token: str, *, everything: bool = False,
                origin: Origin = Origin(source="one-click")) -> UnsubscribeView:
    """Unsubscribe the token's subscriber from its list (or from all) at once; idempotent."""
    tok = rt.tokens.read_unsubscribe(token)
    with rt.db.session() as s:
        sub = s.get(Subscriber, tok.subscriber_id)
        lst = s.get(MailingList, tok.list_id)
        if sub is None:  # erased: there is nothing left to unsubscribe
            return UnsubscribeView(lst.name if lst else "", "", "unsubscribed", "")
        unsubscribe_subscriber(s, sub, list_id=tok.list_id, origin=origin,
                               campaign_id=tok.campaign_id, everything=everything)
        return UnsubscribeView(lst.name if lst else "", sub.email, "unsubscribed",
                               rt.tokens.manage(sub.id))  # type: ignore[arg-type]


@dataclass(frozen=True)
class ListChoice:
    slug: str
    name: str
    description: str
    status: str       # "" when not a member
    opt_in_level: str
    opt_in_levels: tuple[str, ...]


@dataclass(frozen=True)
class Preferences:
    subscriber_id: int
    email: str
    name: str
    lists: tuple[ListChoice, ...]
    suppressed: bool
    extra: dict[str, Any]


def preferences(rt: Runtime, manage_token: str) -> Preferences:
    """The preference center's view of one subscriber."""
    sid = rt.tokens.read_manage(manage_token)
    with rt.db.session() as s:
        sub = s.get(Subscriber, sid)
        if sub is None:
            raise TokenInvalid("This link no longer works: there is no data held for it.")
        members = {m.list_id: m for m in s.scalars(
            select(Membership).where(Membership.subscriber_id == sid))}
        choices = []
        for lst in s.scalars(select(MailingList).order_by(MailingList.name)):
            m = members.get(lst.id)
            if m is None and lst.opt_in != OptIn.double.value:
                continue  # internal single opt-in lists are not offered to strangers
            choices.append(ListChoice(lst.slug, lst.name, lst.description,
                                      m.status if m else "", m.opt_in_level if m else "",
                                      tuple(lst.opt_in_levels or ())))
        suppressed = suppression_of(s, sub) is not None
        from listmgr.services import people  # people builds on this module

        extra = people.preference_extras(s, sub)
        return Preferences(sid, sub.email, sub.name, tuple(choices), suppressed, extra)


def update_lists(rt: Runtime, manage_token: str, *, wanted: Iterable[str],
                 levels: dict[str, str] | None = None,
                 origin: Origin = Origin(source="preferences")) -> None:
    """Apply the preference center's list choices: leaving is immediate, joining is confirmed."""
    sid = rt.tokens.read_manage(manage_token)
    wanted = set(wanted)
    levels = levels or {}
    outbox_ids = []
    with rt.db.session() as s:
        sub = s.get(Subscriber, sid)
        if sub is None:
            raise TokenInvalid("This link no longer works: there is no data held for it.")
        lists = {lst.slug: lst for lst in s.scalars(select(MailingList))}
        unknown = wanted - set(lists)
        if unknown:
            raise ValidationError(f"Unknown list {sorted(unknown)[0]!r}.", field="lists")
        members = {m.list_id: m for m in s.scalars(
            select(Membership).where(Membership.subscriber_id == sid))}
        for slug, lst in lists.items():
            m = members.get(lst.id)
            active = m is not None and m.status in (MemberStatus.confirmed.value,
                                                    MemberStatus.pending.value)
            if slug in wanted and not active:
                if m is None and lst.opt_in != OptIn.double.value:
                    continue
                if m is None:
                    m = Membership(subscriber_id=sid, list_id=lst.id, source=origin.source)
                    s.add(m)
                m.status = MemberStatus.pending.value
                m.updated_at = utcnow()
                s.flush()
                record(s, kind="subscribe", subscriber_id=sid, list_id=lst.id, origin=origin,
                       wording=lst.consent_wording, detail={"opt_in": "double"})
                oid = _queue_mail(s, rt, kind="confirm", sub=sub, lst=lst)
                if oid:
                    outbox_ids.append(oid)
            elif slug not in wanted and active:
                unsubscribe_subscriber(s, sub, list_id=lst.id, origin=origin)
            if m is not None and slug in levels and levels[slug] != m.opt_in_level:
                level = levels[slug]
                if level and level not in (lst.opt_in_levels or []):
                    raise ValidationError(f"Unknown frequency {level!r} for {lst.name}.",
                                          field=f"level_{slug}")
                m.opt_in_level = level
                record(s, kind="preference", subscriber_id=sid, list_id=lst.id, origin=origin,
                       detail={"opt_in_level": level})
    for oid in outbox_ids:
        rt.enqueue("send_outbox", oid)


def unsubscribe_all(rt: Runtime, manage_token: str, *,
                    origin: Origin = Origin(source="preferences")) -> None:
    """Leave every list and go on the suppression list."""
    sid = rt.tokens.read_manage(manage_token)
    with rt.db.session() as s:
        sub = s.get(Subscriber, sid)
        if sub is None:
            return
        unsubscribe_subscriber(s, sub, list_id=None, origin=origin, everything=True)
