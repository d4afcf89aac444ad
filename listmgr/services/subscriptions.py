"""Subscriptions: subscribe, confirm, unsubscribe, the preference center (lists, profile, pause)
and consents to profiling and tracking, each change with its consent event."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlmodel import col

from listmgr.addresses import clean_name, normalize_email
from listmgr.db import rows_changed
from listmgr.errors import (
    NotFound,
    TokenExpired,
    TokenInvalid,
    TokenReplaced,
    TokenUsed,
    ValidationError,
)
from listmgr.models import (
    MAX_ID,
    ActivityEvent,
    ConsentEvent,
    Delivery,
    Engagement,
    FieldDef,
    Interest,
    MailingList,
    Membership,
    MemberStatus,
    OptIn,
    Outbox,
    PrivacyNotice,
    Subscriber,
    SubscriberInterest,
    Suppression,
    by_id,
    id_of,
    utcnow,
)
from listmgr.runtime import Runtime
from listmgr.services import notices, settings_store
from listmgr.services.fielddefs import (
    apply_profile,
    validate_profile,
    write_fields,
    write_interests,
)
from listmgr.settings import Settings

TEMPLATE = "pages/public/_profile.html"
PAUSE_DAYS = (30, 90)
WORDING = {
    "profiling": "Use what I read and do (activity such as products viewed or documents "
    "downloaded) to send me mail that fits my interests. Unticking this deletes "
    "the activity stored so far.",
    "tracking": "Record when I open your mail and which links I click. Unticking this "
    "deletes the opens and clicks recorded so far.",
}


@dataclass(frozen=True)
class Origin:
    """Where a request came from, for the consent record."""

    source: str = ""
    ip: str = ""
    user_agent: str = ""
    actor: str = "subscriber"


def suppression_of(s: Session, sub: Subscriber) -> Suppression | None:
    """The subscriber's entry on the suppression list, if any."""
    return s.scalar(select(Suppression).where(col(Suppression.email_hash) == sub.email_hash))


def get_list(s: Session, slug: str) -> MailingList:
    row = s.scalar(select(MailingList).where(col(MailingList.slug) == slug))
    if row is None:
        raise NotFound(f"There is no list called {slug!r}.", field="list")
    return row


def record(
    s: Session,
    *,
    kind: str,
    subscriber_id: int | None,
    list_id: int | None,
    origin: Origin,
    wording: str = "",
    detail: dict[str, Any] | None = None,
    campaign_id: int | None = None,
    inbound_id: int | None = None,
    privacy_notice_id: int | None = None,
    requested_at: datetime | None = None,
) -> None:
    """Append a consent event (sign-ups and confirmations name the privacy notice in force;
    unsubscribes when the person asked, where that is known)."""
    s.add(
        ConsentEvent(
            kind=kind,
            at=utcnow(),  # the same clock as the change it records (and its requested_at)
            subscriber_id=subscriber_id,
            list_id=list_id,
            source=origin.source,
            actor=origin.actor,
            ip=origin.ip[:64],
            user_agent=origin.user_agent[:500],
            wording=wording,
            detail=detail or {},
            campaign_id=campaign_id,
            inbound_id=inbound_id,
            privacy_notice_id=privacy_notice_id,
            requested_at=requested_at,
        )
    )


def new_nonce() -> str:
    """A random value that makes one single-use link (16 characters)."""
    return secrets.token_urlsafe(12)


def queue_mail(
    s: Session,
    rt: Runtime,
    *,
    kind: str,
    sub: Subscriber,
    lst: MailingList,
    payload: dict[str, Any] | None = None,
    member: Membership | None = None,
) -> int | None:
    """Add an outbox row unless this address got the same kind of mail within the window.
    member: the membership a confirmation is for, when the caller holds it (not read again;
    a new one is stored with its confirmation nonce in one statement)."""
    window = utcnow() - timedelta(minutes=rt.settings.confirm_window_minutes)
    with s.no_autoflush:  # pending rows are written once, below, with what is set here
        recent = s.scalar(
            select(col(Outbox.id))
            .where(
                col(Outbox.to_email) == sub.email,
                col(Outbox.kind).in_(("confirm", "already_subscribed")),
                col(Outbox.created_at) > window,
            )
            .limit(1)
        )
    if recent is not None:
        return None
    if kind == "confirm":
        _await_confirmation(s, sub, lst, member)
    row = Outbox(
        kind=kind, to_email=sub.email, subscriber_id=sub.id, list_id=lst.id, payload=payload or {}
    )
    s.add(row)
    s.flush()
    return row.id


def _await_confirmation(
    s: Session, sub: Subscriber, lst: MailingList, member: Membership | None
) -> None:
    """A new confirmation link is about to be mailed: it alone confirms from now on (the links
    of earlier mails stop working), and it can lift only suppressions older than itself."""
    if member is None:
        member = s.scalar(
            select(Membership).where(
                col(Membership.subscriber_id) == sub.id, col(Membership.list_id) == lst.id
            )
        )
    if member is not None:
        member.confirm_nonce = new_nonce()
        member.confirm_requested_at = utcnow()
        s.flush()


def find_or_create_subscriber(
    s: Session, rt: Runtime, email: str, name: str, source: str
) -> tuple[Subscriber, bool]:
    sub = s.scalar(select(Subscriber).where(col(Subscriber.email) == email))
    if sub is not None:
        return sub, False
    sub = Subscriber(email=email, email_hash=rt.email_hash(email), name=name, source=source)
    s.add(sub)
    s.flush()
    return sub, True


def subscribe(
    rt: Runtime,
    *,
    list_slug: str,
    email: Any,
    name: Any = "",
    wording: str = "",
    origin: Origin = Origin(source="form"),
    fields: dict[str, Any] | None = None,
    interests: Iterable[str] | None = None,
    settings: Settings | None = None,
    consents: Any = None,
) -> None:
    """Start (or restart) double opt-in; the caller's answer must not depend on the outcome.
    settings: those in force (for the privacy notice recorded); read here when not given.
    consents: {"tracking": bool, "profiling": bool} as ticked on the form; like the profile
    they are given to a new subscriber only (a sign-up never changes a known person)."""
    address = normalize_email(email)
    display = clean_name(name)
    wanted = signup_consents(consents)
    settings = settings or settings_store.effective(rt)
    args = (rt, settings, list_slug, address, display, wording, origin, fields, interests, wanted)
    try:
        outbox_ids = _subscribe(*args)
    except IntegrityError:  # the same address signed up at the same moment: now it exists
        outbox_ids = _subscribe(*args)
    for oid in outbox_ids:
        rt.enqueue("send_outbox", oid)


def _subscribe(
    rt: Runtime,
    settings: Settings,
    list_slug: str,
    address: str,
    display: str,
    wording: str,
    origin: Origin,
    fields: dict[str, Any] | None,
    interests: Iterable[str] | None,
    consents: Mapping[str, bool],
) -> list[int]:
    """One attempt at subscribe(), in one unit of work; the outbox ids to send."""
    outbox_ids: list[int] = []
    with rt.db.session() as s:
        lst = get_list(s, list_slug)
        wording = wording or lst.consent_wording
        shown = id_of(notices.current(s, settings, lst))
        profile = None
        if fields or interests:
            # as given: a string is refused ("must be a list"), not read letter by letter
            profile = validate_profile(
                s,
                fields or {},
                interests or [],
                allowed_fields=lst.form_fields or None,
                allowed_interests=lst.form_interests or None,
            )
        sub, created = find_or_create_subscriber(s, rt, address, display, origin.source)
        assert sub.id is not None and lst.id is not None  # stored rows
        if created and profile is not None:
            apply_profile(s, sub, profile)
        if created and consents:
            for key, given in consents.items():
                set_consents(
                    s,
                    sub,
                    {key: given},
                    origin,
                    wording=SIGNUP_WORDING[key],
                    settings=settings,
                    joining=[list_slug],
                )
        if not created and not sub.name and display:
            sub.name = display
        member = (
            None  # a person stored just now is on no list yet
            if created
            else s.scalar(
                select(Membership).where(
                    col(Membership.subscriber_id) == sub.id, col(Membership.list_id) == lst.id
                )
            )
        )
        now = utcnow()
        # A suppressed address (erased, unsubscribed from all, complained, bounced, added by
        # hand) comes back only through a confirmed double opt-in, whatever the list's own
        # setting and even where its membership still reads confirmed.
        suppressed = suppression_of(s, sub) is not None
        if member is not None and member.status == MemberStatus.confirmed.value and not suppressed:
            record(
                s,
                kind="subscribe_repeat",
                subscriber_id=sub.id,
                list_id=lst.id,
                origin=origin,
                wording=wording,
                privacy_notice_id=shown,
            )
            oid = queue_mail(s, rt, kind="already_subscribed", sub=sub, lst=lst)
        elif lst.opt_in == OptIn.single.value and not suppressed:
            if member is None:
                member = Membership(subscriber_id=sub.id, list_id=lst.id, source=origin.source)
                s.add(member)
            member.status = MemberStatus.confirmed.value
            member.confirmed_at = member.updated_at = now
            member.unsubscribed_at = None
            member.confirm_nonce = ""  # nothing left to confirm
            record(
                s,
                kind="subscribe",
                subscriber_id=sub.id,
                list_id=lst.id,
                origin=origin,
                wording=wording,
                privacy_notice_id=shown,
                detail={"opt_in": "single"},
            )
            oid = None
        else:
            if member is None:
                member = Membership(subscriber_id=sub.id, list_id=lst.id, source=origin.source)
                s.add(member)
            if member.status != MemberStatus.confirmed.value:  # (confirmed: it stays so, and
                member.status = MemberStatus.pending.value  # confirming lifts the
                member.updated_at = now  # suppression)
            detail = {"opt_in": "double"}
            if suppressed:
                detail["why"] = "the address is on the suppression list"
            record(
                s,
                kind="subscribe",
                subscriber_id=sub.id,
                list_id=lst.id,
                origin=origin,
                wording=wording,
                privacy_notice_id=shown,
                detail=detail,
            )
            oid = queue_mail(
                s, rt, kind="confirm", sub=sub, lst=lst, payload={"wording": wording}, member=member
            )
        if oid:
            outbox_ids.append(oid)
    return outbox_ids


@dataclass(frozen=True)
class ConfirmView:
    """What the confirm page shows."""

    list_name: str
    email: str
    status: str
    list_slug: str


USED = (
    "This confirmation link was already used, or the subscription changed after it was "
    "sent (confirmed, cancelled, or stopped). It does nothing now. To subscribe again, "
    "please sign up again."
)


def _person_and_list(
    s: Session, subscriber_id: int, list_id: int
) -> tuple[Subscriber | None, MailingList | None]:
    """A link's subscriber and list, in one statement (None for either that is gone)."""
    row = s.execute(
        select(Subscriber, MailingList)
        .outerjoin(MailingList, col(MailingList.id) == list_id)
        .where(col(Subscriber.id) == subscriber_id)
    ).first()
    if row is None:
        return None, by_id(s, MailingList, list_id)
    return row[0], row[1]


def _confirm_target(
    s: Session, rt: Runtime, token: str
) -> tuple[Subscriber, MailingList, Membership]:
    """The membership a confirmation link may still confirm; raises for a used link."""
    tok = rt.tokens.read_confirm(token)
    sub, lst = _person_and_list(s, tok.subscriber_id, tok.list_id)
    member = None
    if sub is not None and lst is not None:
        member = s.scalar(
            select(Membership).where(
                col(Membership.subscriber_id) == sub.id, col(Membership.list_id) == lst.id
            )
        )
    if sub is None or lst is None or member is None:
        raise TokenInvalid("This confirmation link is no longer valid.")
    suppressed = suppression_of(s, sub)
    # Pending, or confirmed but suppressed (signing up again asks to confirm once more).
    awaiting = member.status == MemberStatus.pending.value or (
        member.status == MemberStatus.confirmed.value and suppressed is not None
    )
    if not tok.nonce:
        # A link from before single-use links: a new one is offered while still pending.
        if member.status == MemberStatus.pending.value and suppressed is None:
            raise TokenExpired("This confirmation link has expired.")
        raise TokenUsed(USED)
    if not awaiting or not member.confirm_nonce or tok.nonce != member.confirm_nonce:
        raise TokenUsed(USED)
    if suppressed is not None and (
        member.confirm_requested_at is None or suppressed.created_at > member.confirm_requested_at
    ):
        # Suppressed after this link was mailed (by hand, by an import): it stays so.
        raise TokenUsed(USED)
    return sub, lst, member


def confirm_view(rt: Runtime, token: str) -> ConfirmView:
    """Read a confirm token without changing anything (link scanners fetch links)."""
    with rt.db.session() as s:
        sub, lst, member = _confirm_target(s, rt, token)
        status = member.status
        if status == MemberStatus.confirmed.value and suppression_of(s, sub) is not None:
            status = MemberStatus.pending.value  # suppressed: confirming is still to do
        return ConfirmView(lst.name, sub.email, status, lst.slug)


def confirm(
    rt: Runtime,
    token: str,
    *,
    origin: Origin = Origin(source="confirm-link"),
    settings: Settings | None = None,
) -> ConfirmView:
    """Confirm a pending membership and record proof of consent (with the privacy notice in
    force under settings, read here when not given); the link works once. A list with a welcome
    mail sends it now (once: the link is spent here)."""
    settings = settings or settings_store.effective(rt)
    welcome = None
    with rt.db.session() as s:
        sub, lst, member = _confirm_target(s, rt, token)
        # Claim the nonce first: of two simultaneous posts of one link, one confirms.
        used = rows_changed(
            s,
            update(Membership)
            .where(
                col(Membership.id) == member.id,
                col(Membership.confirm_nonce) == member.confirm_nonce,
            )
            .values(confirm_nonce=""),
        )
        if used != 1:
            raise TokenUsed(USED)
        s.refresh(member)
        lifted = suppression_of(s, sub)
        asked = s.scalar(
            select(ConsentEvent)
            .where(
                col(ConsentEvent.subscriber_id) == sub.id,
                col(ConsentEvent.list_id) == lst.id,
                col(ConsentEvent.kind) == "subscribe",
            )
            .order_by(col(ConsentEvent.id).desc())
            .limit(1)
        )
        now = utcnow()
        member.status = MemberStatus.confirmed.value
        member.confirmed_at = member.updated_at = now
        member.unsubscribed_at = None
        # A fresh, explicit confirmation outweighs an earlier unsubscribe-from-all or erasure
        # (never a later one: _confirm_target refuses those).
        if lifted is not None:
            s.delete(lifted)
        record(
            s,
            kind="confirm",
            subscriber_id=sub.id,
            list_id=lst.id,
            origin=origin,
            wording=asked.wording if asked else "",
            privacy_notice_id=id_of(notices.current(s, settings, lst)),
            detail={
                "subscribe_event_at": asked.at.isoformat() if asked else None,
                "subscribe_ip": asked.ip if asked else None,
                "lifted_suppression": lifted.reason if lifted else None,
            },
        )
        if lst.welcome_mail:
            row = Outbox(
                kind="welcome",
                to_email=sub.email,
                subscriber_id=sub.id,
                list_id=lst.id,
                payload={"welcome_text": lst.welcome_text},
            )
            s.add(row)
            s.flush()
            welcome = row.id
        view = ConfirmView(lst.name, sub.email, member.status, lst.slug)
    if welcome:
        rt.enqueue("send_outbox", welcome)
    return view


def resend_confirmation(rt: Runtime, token: str) -> None:
    """Send a fresh confirmation link for a correctly signed but expired token."""
    tok = rt.tokens.read_confirm_unverified_age(token)
    if tok is None:
        raise TokenInvalid("This confirmation link is not valid.")
    oid = None
    with rt.db.session() as s:
        sub, lst = _person_and_list(s, tok.subscriber_id, tok.list_id)
        if sub is None or lst is None:
            return
        member = s.scalar(
            select(Membership).where(
                col(Membership.subscriber_id) == sub.id, col(Membership.list_id) == lst.id
            )
        )
        if member is not None and member.status == MemberStatus.pending.value:
            oid = queue_mail(s, rt, kind="confirm", sub=sub, lst=lst)
    if oid:
        rt.enqueue("send_outbox", oid)


@dataclass(frozen=True)
class UnsubscribeView:
    list_name: str
    email: str
    status: str
    manage_token: str
    undo_token: str = ""  # brings back what this unsubscribe ended, for a short while


def _confirmed_lists(s: Session, sub: Subscriber, list_id: int | None) -> list[int]:
    """The lists (one, or all with None) the subscriber is confirmed on, before leaving."""
    query = select(col(Membership.list_id)).where(
        col(Membership.subscriber_id) == sub.id,
        col(Membership.status) == MemberStatus.confirmed.value,
    )
    if list_id is not None:
        query = query.where(col(Membership.list_id) == list_id)
    return list(s.scalars(query))


def _undo_token(
    s: Session, rt: Runtime, sub: Subscriber, confirmed: list[int], everything: bool
) -> str:
    """The undo of an unsubscribe that just ended these confirmed memberships ("" if none)."""
    if not confirmed:
        return ""
    s.flush()
    ended = s.scalar(
        select(col(Membership.unsubscribed_at)).where(
            col(Membership.subscriber_id) == sub.id, col(Membership.list_id) == confirmed[0]
        )
    )
    assert sub.id is not None and ended is not None  # stored, and just unsubscribed
    return rt.tokens.unsubscribe_undo(sub.id, sorted(confirmed), ended.isoformat(), everything)


def manage_token(rt: Runtime, sub: Subscriber) -> str:
    """The subscriber's preference link token, in the current link epoch."""
    assert sub.id is not None  # a stored row
    return rt.tokens.manage(sub.id, sub.link_epoch)


def unsubscribe_view(rt: Runtime, token: str) -> UnsubscribeView:
    """What the unsubscribe page shows; changes nothing."""
    tok = rt.tokens.read_unsubscribe(token)
    with rt.db.session() as s:
        sub, lst = _person_and_list(s, tok.subscriber_id, tok.list_id)
        if sub is None or lst is None:
            return UnsubscribeView(lst.name if lst else "", "", "unsubscribed", "")
        member = s.scalar(
            select(Membership).where(
                col(Membership.subscriber_id) == sub.id, col(Membership.list_id) == lst.id
            )
        )
        status = member.status if member else "unsubscribed"
        if tok.epoch != sub.link_epoch:
            # An old link still unsubscribes (leaving must always work), but it shows neither
            # the address nor a way into the profile: the person ended such links.
            return UnsubscribeView(lst.name, "", status, "")
        return UnsubscribeView(lst.name, sub.email, status, manage_token(rt, sub))


def _unsubscribe_members(s: Session, sub: Subscriber, list_id: int | None) -> list[int]:
    """End the subscriber's confirmed or pending memberships (of one list, or of all with
    None) in one statement; the ids of the lists that changed."""
    now = utcnow()
    query = (
        update(Membership)
        .where(
            col(Membership.subscriber_id) == sub.id,
            col(Membership.status).in_((MemberStatus.confirmed.value, MemberStatus.pending.value)),
        )
        .values(
            status=MemberStatus.unsubscribed.value,
            unsubscribed_at=now,
            updated_at=now,
            confirm_nonce="",  # an earlier confirmation link must not bring it back
        )
        .returning(col(Membership.list_id))
    )
    if list_id is not None:
        query = query.where(col(Membership.list_id) == list_id)
    return sorted(s.scalars(query))


SUPPRESSION_STRENGTH = {"complaint": 3, "hard_bounce": 2, "erased": 2}


def suppress(s: Session, sub: Subscriber, reason: str, detail: str = "") -> None:
    """Put an address on the suppression list (idempotent; a stronger reason wins)."""
    existing = suppression_of(s, sub)
    # No confirmation link mailed before now may lift this suppression.
    s.execute(
        update(Membership)
        .where(col(Membership.subscriber_id) == sub.id, col(Membership.confirm_nonce) != "")
        .values(confirm_nonce="")
    )
    if existing is None:
        s.add(
            Suppression(
                email_hash=sub.email_hash, email=sub.email, reason=reason, detail=detail[:500]
            )
        )
    elif SUPPRESSION_STRENGTH.get(reason, 1) > SUPPRESSION_STRENGTH.get(existing.reason, 1):
        existing.reason = reason
        existing.detail = detail[:500]


def unsubscribe_subscriber(
    s: Session,
    sub: Subscriber,
    *,
    list_id: int | None,
    origin: Origin,
    campaign_id: int | None = None,
    inbound_id: int | None = None,
    everything: bool = False,
    detail: dict[str, Any] | None = None,
    reason: str = "unsubscribed_all",
    requested_at: datetime | None = None,
) -> list[int]:
    """Unsubscribe inside an open unit of work; returns the list ids that changed.

    `everything` also puts the address on the suppression list for `reason`; `requested_at`
    is when the person asked (the reputation page measures how long leaving took)."""
    changed = _unsubscribe_members(s, sub, None if everything else list_id)
    if everything:
        suppress(s, sub, reason, origin.source)
    lids: list[int | None] = list(changed) or ([list_id] if everything else [])
    for lid in lids:
        record(
            s,
            kind="unsubscribe_all" if everything else "unsubscribe",
            subscriber_id=sub.id,
            list_id=lid,
            origin=origin,
            detail=detail,
            campaign_id=campaign_id,
            inbound_id=inbound_id,
            requested_at=requested_at,
        )
    if campaign_id and (changed or everything):
        s.execute(
            update(Delivery)
            .where(col(Delivery.campaign_id) == campaign_id, col(Delivery.subscriber_id) == sub.id)
            .values(unsubscribed=True)
        )
    return changed


def unsubscribe(
    rt: Runtime,
    token: str,
    *,
    everything: bool = False,
    origin: Origin = Origin(source="one-click"),
    undo: bool = False,
) -> UnsubscribeView:
    """Unsubscribe the token's subscriber from its list (or from all) at once; idempotent.

    `undo`: the view carries a token that brings back what this ended, for the person on
    the page (a mail client's one-click post has no use for one, and is spared the reads)."""
    asked = utcnow()  # before waiting for the database: the time to effect includes that
    tok = rt.tokens.read_unsubscribe(token)
    with rt.db.session() as s:
        sub, lst = _person_and_list(s, tok.subscriber_id, tok.list_id)
        if sub is None:  # erased: there is nothing left to unsubscribe
            return UnsubscribeView(lst.name if lst else "", "", "unsubscribed", "")
        confirmed = (
            _confirmed_lists(s, sub, None if everything else tok.list_id)
            if undo and (everything or lst is not None)  # no list: no membership to bring back
            else []
        )
        # Whatever the link's epoch: an unsubscribe link never stops unsubscribing.
        unsubscribe_subscriber(
            s,
            sub,
            list_id=tok.list_id,
            origin=origin,
            campaign_id=tok.campaign_id,
            everything=everything,
            requested_at=asked,
        )
        if tok.epoch != sub.link_epoch:
            return UnsubscribeView(lst.name if lst else "", "", "unsubscribed", "")
        return UnsubscribeView(
            lst.name if lst else "",
            sub.email,
            "unsubscribed",
            manage_token(rt, sub),
            _undo_token(s, rt, sub, confirmed, everything),
        )


@dataclass(frozen=True)
class ListChoice:
    slug: str
    name: str
    description: str
    status: str  # "" when not a member
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


REPLACED = (
    "This link no longer works: all older links to these preferences were ended. "
    "Please use the link in the most recent email from us."
)


def subscriber_for_link(
    s: Session, rt: Runtime, token: str, *, lock: bool = False, any_epoch: bool = False
) -> Subscriber:
    """The subscriber a preference link opens (the one check every /p/ request goes through).

    A link from an earlier link epoch opens nothing, unless `any_epoch` (leaving only)."""
    tok = rt.tokens.read_manage(token)
    sub = (
        s.get(Subscriber, tok.subscriber_id, with_for_update=lock)
        if 1 <= tok.subscriber_id <= MAX_ID
        else None
    )
    if sub is None:
        raise TokenInvalid("This link no longer works: there is no data held for it.")
    if tok.epoch != sub.link_epoch and not any_epoch:
        raise TokenReplaced(REPLACED)
    return sub


def preferences(rt: Runtime, manage_token: str) -> Preferences:
    """The preference center's view of one subscriber."""
    with rt.db.session() as s:
        sub = subscriber_for_link(s, rt, manage_token)
        sid = sub.id
        assert sid is not None  # a stored row
        members = {
            m.list_id: m
            for m in s.scalars(select(Membership).where(col(Membership.subscriber_id) == sid))
        }
        choices = []
        for lst in s.scalars(select(MailingList).order_by(col(MailingList.name))):
            assert lst.id is not None  # a stored row
            m = members.get(lst.id)
            if m is None and lst.opt_in != OptIn.double.value:
                continue  # internal single opt-in lists are not offered to strangers
            choices.append(
                ListChoice(
                    lst.slug,
                    lst.name,
                    lst.description,
                    m.status if m else "",
                    m.opt_in_level if m else "",
                    tuple(lst.opt_in_levels or ()),
                )
            )
        suppressed = suppression_of(s, sub) is not None
        extra = preference_extras(s, sub)
        return Preferences(sid, sub.email, sub.name, tuple(choices), suppressed, extra)


def update_lists(
    rt: Runtime,
    manage_token: str,
    *,
    wanted: Iterable[str],
    levels: dict[str, str] | None = None,
    origin: Origin = Origin(source="preferences"),
) -> None:
    """Apply the preference center's list choices: leaving is immediate, joining is confirmed."""
    wanted = set(wanted)
    levels = levels or {}
    outbox_ids = []
    settings = settings_store.effective(rt)  # the notice each joining is recorded under
    with rt.db.session() as s:
        sub = subscriber_for_link(s, rt, manage_token)
        sid = sub.id
        assert sid is not None  # a stored row
        lists = {lst.slug: lst for lst in s.scalars(select(MailingList))}
        unknown = wanted - set(lists)
        if unknown:
            raise ValidationError(f"Unknown list {sorted(unknown)[0]!r}.", field="lists")
        members = {
            m.list_id: m
            for m in s.scalars(select(Membership).where(col(Membership.subscriber_id) == sid))
        }
        for slug, lst in lists.items():
            assert lst.id is not None  # a stored row
            m = members.get(lst.id)
            active = m is not None and m.status in (
                MemberStatus.confirmed.value,
                MemberStatus.pending.value,
            )
            if slug in wanted and not active:
                if m is None and lst.opt_in != OptIn.double.value:
                    continue
                if m is None:
                    m = Membership(subscriber_id=sid, list_id=lst.id, source=origin.source)
                    s.add(m)
                m.status = MemberStatus.pending.value
                m.updated_at = utcnow()
                s.flush()
                record(
                    s,
                    kind="subscribe",
                    subscriber_id=sid,
                    list_id=lst.id,
                    origin=origin,
                    wording=lst.consent_wording,
                    privacy_notice_id=id_of(notices.current(s, settings, lst)),
                    detail={"opt_in": "double"},
                )
                oid = queue_mail(s, rt, kind="confirm", sub=sub, lst=lst)
                if oid:
                    outbox_ids.append(oid)
            elif slug not in wanted and active:
                unsubscribe_subscriber(s, sub, list_id=lst.id, origin=origin)
            if m is not None and slug in levels and levels[slug] != m.opt_in_level:
                level = levels[slug]
                if level and level not in (lst.opt_in_levels or []):
                    raise ValidationError(
                        f"Unknown frequency {level!r} for {lst.name}.", field=f"level_{slug}"
                    )
                m.opt_in_level = level
                record(
                    s,
                    kind="preference",
                    subscriber_id=sid,
                    list_id=lst.id,
                    origin=origin,
                    detail={"opt_in_level": level},
                )
    for oid in outbox_ids:
        rt.enqueue("send_outbox", oid)


def unsubscribe_all(
    rt: Runtime, manage_token: str, *, origin: Origin = Origin(source="preferences")
) -> str:
    """Leave every list and go on the suppression list (an old link still does this); the
    undo token of what it ended ("" for an old link, or when nothing was confirmed)."""
    asked = utcnow()
    tok = rt.tokens.read_manage(manage_token)  # a bad link is an error; an erased person's not
    with rt.db.session() as s:
        try:
            sub = subscriber_for_link(s, rt, manage_token, any_epoch=True)
        except TokenInvalid:  # erased: there is nothing left to unsubscribe
            return ""
        confirmed = _confirmed_lists(s, sub, None)
        unsubscribe_subscriber(
            s, sub, list_id=None, origin=origin, everything=True, requested_at=asked
        )
        if tok.epoch != sub.link_epoch:
            return ""
        return _undo_token(s, rt, sub, confirmed, True)


# -- consents to profiling and tracking ------------------------------------------------------
# What the sign-up form's boxes say (unticked by default).
SIGNUP_WORDING = {
    "profiling": "Use what I read and do (activity such as products viewed or documents "
    "downloaded) to send me mail that fits my interests.",
    "tracking": "Record when I open your mail and which links I click. You can change this "
    "in your preferences at any time.",
}


def signup_consents(consents: Any) -> dict[str, bool]:
    """The consents given with a sign-up, checked before anything is looked up (so that the
    answer never depends on whether the address is known); only those given."""
    if consents is None:
        return {}
    if not isinstance(consents, dict):
        raise ValidationError(
            "consents takes booleans 'profiling' and 'tracking'", field="consents"
        )
    for key, given in consents.items():
        if key not in WORDING or not isinstance(given, bool):
            raise ValidationError(
                "consents takes booleans 'profiling' and 'tracking'", field=f"consents.{key}"
            )
    return {key: True for key, given in consents.items() if given}


def set_consents(
    s: Session,
    sub: Subscriber,
    consents: Mapping[str, Any],
    origin: Origin,
    wording: str | None = None,
    *,
    settings: Settings,
    joining: Iterable[str] = (),
) -> list[str]:
    """Give or withdraw profiling/tracking consent, with an event each; withdrawal deletes.

    Each event names the privacy notice in force (notices.for_person: that of the first list
    the person is on, by name, else of the first list they are joining, `joining`), and lists
    in its detail every list notice that applied."""
    changed = []
    shown: list[PrivacyNotice] | None = None
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
        if shown is None:
            shown = notices.for_person(s, settings, sub.id, joining)
        detail: dict[str, Any] = {"given": given}
        if len(shown) > 1:
            detail["privacy_notice_ids"] = [id_of(row) for row in shown]
        if not given:
            table = ActivityEvent if key == "profiling" else Engagement
            gone = rows_changed(s, delete(table).where(col(table.subscriber_id) == sub.id))
            detail["activity_deleted" if key == "profiling" else "engagement_deleted"] = gone
        record(
            s,
            kind=attr,
            subscriber_id=sub.id,
            list_id=None,
            origin=origin,
            wording=WORDING[key] if wording is None else wording,
            detail=detail,
            privacy_notice_id=id_of(shown[0]) if shown else None,
        )
        changed.append(key)
    if changed:
        sub.updated_at = utcnow()
    return changed


# -- preference center: the profile section ---------------------------------------------------
def preference_extras(s: Session, sub: Subscriber) -> dict:
    """What the preference center's profile section shows (rendered by TEMPLATE)."""
    values = sub.fields or {}
    mine = set(
        s.scalars(
            select(col(SubscriberInterest.interest)).where(
                col(SubscriberInterest.subscriber_id) == sub.id
            )
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
            select(FieldDef).where(col(FieldDef.editable).is_(True)).order_by(col(FieldDef.id))
        )
    ]
    interests = [
        {"key": i.key, "label": i.label, "checked": i.key in mine}
        for i in s.scalars(select(Interest).order_by(col(Interest.label), col(Interest.key)))
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
    }


def _pause(days: int | None, current: datetime | None) -> tuple[bool, datetime | None]:
    """(changed, new paused_until): None keeps the pause, 0 ends it, days from PAUSE_DAYS."""
    if days is None:
        return False, current
    if days == 0:
        return current is not None, None
    if days not in PAUSE_DAYS:
        raise ValidationError("Please choose how long to pause from the list.", field="pause")
    return True, utcnow() + timedelta(days=days)


def _check_lists(s: Session, lists: Iterable[str], levels: Mapping[str, str]) -> None:
    """Refuse unknown lists and frequencies before anything is saved (the list part of the same
    form is applied after the profile by update_lists)."""
    known = {lst.slug: lst for lst in s.scalars(select(MailingList))}
    for slug in lists:
        if slug not in known:
            raise ValidationError(f"Unknown list {slug!r}.", field="lists")
    for slug, level in levels.items():
        lst = known.get(slug)
        if lst is not None and level and level not in (lst.opt_in_levels or []):
            raise ValidationError(
                f"Unknown frequency {level!r} for {lst.name}.", field=f"level_{slug}"
            )


def update_profile(
    rt: Runtime,
    manage_token: str,
    *,
    name: str | None = None,
    fields: Mapping[str, Any],
    interests: list[str],
    pause: int | None,
    consents: Mapping[str, bool],
    lists: Iterable[str] = (),
    levels: Mapping[str, str] | None = None,
    origin: Origin,
) -> None:
    """Save the preference center's profile section: name (None: not on the form), editable
    fields, interests, pause and consents, as the person answered the whole section.

    An editable field missing from `fields` was left empty: a multi-choice field then holds
    no choice, a yes/no field "no" once it had an answer (otherwise still no answer). `pause`:
    None keeps it as it is, 0 ends it, a number of days from PAUSE_DAYS starts one. `lists`
    and `levels`, the list part of the same form (saved by update_lists afterwards), are
    checked first, so that a bad one changes nothing."""
    settings = settings_store.effective(rt)  # the notices consents are given under
    with rt.db.session() as s:
        sub = subscriber_for_link(s, rt, manage_token, lock=True)
        sid = sub.id
        assert sid is not None  # a stored row
        editable = {
            d.key: d for d in s.scalars(select(FieldDef).where(col(FieldDef.editable).is_(True)))
        }
        raw = dict(fields)
        current = sub.fields or {}
        for key, d in editable.items():
            if key not in raw and d.type == "multi_choice":
                raw[key] = []
            elif key not in raw and d.type == "boolean":
                raw[key] = False if current.get(key) is not None else None
        profile = validate_profile(s, raw, interests, allowed_fields=list(editable))
        new_name = sub.name if name is None else clean_name(name)
        pause_changed, paused_until = _pause(pause, sub.paused_until)
        _check_lists(s, lists, levels or {})
        changed = write_fields(sub, profile.fields)
        if new_name != sub.name:
            sub.name = new_name
            sub.updated_at = utcnow()
            changed = ["name", *changed]
        added, removed = write_interests(s, sid, profile.interests)
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
        set_consents(s, sub, consents, origin, settings=settings, joining=lists)


# -- admin changes to one person's memberships ---------------------------------------------
def unsubscribe_by_id(
    rt: Runtime, subscriber_id: int, *, list_slug: str | None, origin: Origin
) -> list[int]:
    """Unsubscribe from one list (or, without a slug, from all and suppress); idempotent.

    Returns the ids of the lists whose membership changed; each change is a consent event.
    """
    with rt.db.session() as s:
        sub = s.get(Subscriber, subscriber_id, with_for_update=True)
        if sub is None:
            raise NotFound("no such subscriber")
        list_id = None
        if list_slug is not None:
            list_id = s.scalar(
                select(col(MailingList.id)).where(col(MailingList.slug) == list_slug)
            )
            if list_id is None:
                raise NotFound(f"no list {list_slug!r}", field="list")
        return unsubscribe_subscriber(
            s,
            sub,
            list_id=list_id,
            origin=origin,
            everything=list_slug is None,
            detail={"by": origin.actor},
        )


# -- admin changes to many people at once ------------------------------------------------------
MAX_SELECTION = 5000  # people one bulk action may name
CHUNK = 500  # ids per SQL IN list (well under every database's parameter limit)


@dataclass(frozen=True)
class BulkResult:
    """What a bulk action did: how many changed, and how many it left alone (and why)."""

    chosen: int
    changed: int
    unchanged: int = 0
    skipped: int = 0  # suppressed addresses, or people who left the list: not added back


def chunks(ids: list[int], size: int = CHUNK) -> Iterable[list[int]]:
    """The ids in slices short enough for one SQL IN list."""
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def selection(values: Iterable[Any]) -> list[int]:
    """Chosen subscriber ids as sent (text or numbers) -> distinct ids, in order; a clear error
    for none, too many, or anything that is not an id."""
    out: dict[int, None] = {}
    for value in values:
        text = str(value).strip()
        if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_ID:
            raise ValidationError(f"{text[:40]!r} is not a subscriber id", field="ids")
        out[int(text)] = None
    if not out:
        raise ValidationError("Choose at least one subscriber (tick the boxes).", field="ids")
    if len(out) > MAX_SELECTION:
        raise ValidationError(
            f"Choose at most {MAX_SELECTION} subscribers at once ({len(out)} were chosen).",
            field="ids",
        )
    return list(out)


def _chosen(s: Session, ids: list[int]) -> list[Subscriber]:
    """The chosen people, locked, in the order given; NotFound when any id is unknown."""
    found: dict[int, Subscriber] = {}
    for part in chunks(ids):
        for sub in s.scalars(
            select(Subscriber).where(col(Subscriber.id).in_(part)).with_for_update()
        ):
            assert sub.id is not None  # a stored row
            found[sub.id] = sub
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(
            f"{len(missing)} of the chosen subscribers do not exist (any more): "
            f"{', '.join(str(i) for i in missing[:10])}{' …' if len(missing) > 10 else ''}. "
            "Nothing was changed.",
            field="ids",
        )
    return [found[i] for i in ids]


def join_list(
    s: Session,
    rt: Runtime,
    sub: Subscriber,
    lst: MailingList,
    *,
    pending: bool,
    wording: str,
    origin: Origin,
    member: Membership | None = None,
) -> int | None:
    """Put a person on a list as confirmed (an admin's consent basis) or pending (a confirmation
    mail is queued), with its consent event; the outbox id to send, if any."""
    assert sub.id is not None and lst.id is not None  # stored rows
    pending = pending and lst.opt_in == OptIn.double.value
    status = MemberStatus.pending.value if pending else MemberStatus.confirmed.value
    now = utcnow()
    if member is None:
        member = Membership(subscriber_id=sub.id, list_id=lst.id, source=origin.source)
        s.add(member)
    member.status = status
    member.confirmed_at = None if pending else now
    member.unsubscribed_at = None
    member.updated_at = now
    s.flush()
    record(
        s,
        kind="subscribe" if pending else "added",
        subscriber_id=sub.id,
        list_id=lst.id,
        origin=origin,
        wording=wording,
        detail={"status": status},
    )
    if not pending:
        return None
    return queue_mail(s, rt, kind="confirm", sub=sub, lst=lst, payload={"wording": wording})


def add_to_list(
    rt: Runtime,
    ids: Iterable[Any],
    *,
    list_slug: str,
    status: str,
    consent: str = "",
    origin: Origin,
) -> BulkResult:
    """Add the chosen people to a list, confirmed (with the consent basis) or pending (each gets
    a confirmation mail). People already on it stay as they are; suppressed addresses and people
    who left the list are not added back (only their own sign-up can do that)."""
    chosen = selection(ids)
    if not list_slug:
        raise ValidationError("Choose the list to add them to.", field="list")
    if status not in ("confirmed", "pending"):
        raise ValidationError("status must be 'confirmed' or 'pending'", field="status")
    if status == "confirmed" and not consent.strip():
        raise ValidationError(
            "Adding people as confirmed needs the consent basis: how they agreed to hear from you.",
            field="consent",
        )
    outbox_ids: list[int] = []
    changed = unchanged = skipped = 0
    with rt.db.session() as s:
        lst = get_list(s, list_slug)
        people = _chosen(s, chosen)
        members: dict[int, Membership] = {}
        suppressed: set[str] = set()
        for part in chunks(chosen):
            members.update(
                (m.subscriber_id, m)
                for m in s.scalars(
                    select(Membership).where(
                        col(Membership.list_id) == lst.id, col(Membership.subscriber_id).in_(part)
                    )
                )
            )
            suppressed.update(
                s.scalars(
                    select(col(Suppression.email_hash))
                    .join(Subscriber, col(Subscriber.email_hash) == col(Suppression.email_hash))
                    .where(col(Subscriber.id).in_(part))
                )
            )
        for sub in people:
            assert sub.id is not None  # a stored row
            member = members.get(sub.id)
            if member is not None and member.status in (
                MemberStatus.confirmed.value,
                MemberStatus.pending.value,
            ):
                unchanged += 1
                continue
            if member is not None or sub.email_hash in suppressed:
                skipped += 1
                continue
            oid = join_list(
                s,
                rt,
                sub,
                lst,
                pending=status == "pending",
                wording=consent.strip() or lst.consent_wording,
                origin=origin,
            )
            changed += 1
            if oid:
                outbox_ids.append(oid)
    for oid in outbox_ids:
        rt.enqueue("send_outbox", oid)
    return BulkResult(len(chosen), changed, unchanged, skipped)


def unsubscribe_many(
    rt: Runtime, ids: Iterable[Any], *, list_slug: str | None, origin: Origin
) -> BulkResult:
    """Unsubscribe the chosen people from one list, or (no slug) from every list with their
    addresses suppressed; each change is a consent event, as for one person."""
    chosen = selection(ids)
    changed = 0
    with rt.db.session() as s:
        list_id = None
        if list_slug is not None:
            list_id = get_list(s, list_slug).id
        for sub in _chosen(s, chosen):
            lids = unsubscribe_subscriber(
                s,
                sub,
                list_id=list_id,
                origin=origin,
                everything=list_slug is None,
                detail={"by": origin.actor, "bulk": True},
            )
            changed += bool(lids)
    return BulkResult(len(chosen), changed, len(chosen) - changed)
