"""Campaigns in the browser: a recipient's own web version (the signed "view in browser" link of
every message), the version for no one in particular (where a tracked link cannot be read, and
in a list's public archive) and the archive itself. Never tracked; the version for no one holds
no personal data (empty name and fields, links to the list's sign-up page)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import col

from listmgr.errors import NotFound, TemplateError, TokenInvalid
from listmgr.mail import campaign as fast
from listmgr.mail import content
from listmgr.models import (
    Campaign,
    CampaignStatus,
    Delivery,
    MailingList,
    Subscriber,
    SubscriberInterest,
    id_of,
)
from listmgr.runtime import Runtime
from listmgr.services import abtests, settings_store
from listmgr.services.campaign_setup import renderer, source_of

ARCHIVE_PAGE = 50
GONE = "This message is not available."


@dataclass(frozen=True)
class WebVersion:
    campaign_id: int
    subject: str
    html: str


@dataclass(frozen=True)
class ArchiveEntry:
    campaign_id: int
    subject: str
    sent_at: str


@dataclass(frozen=True)
class Archive:
    slug: str
    name: str
    entries: tuple[ArchiveEntry, ...]
    page: int
    more: bool


def _started(row: Campaign | None) -> Campaign:
    """A campaign that has begun sending (its content went out); drafts stay private."""
    if (
        row is None
        or row.started_at is None
        or row.status
        in (
            CampaignStatus.draft.value,
            CampaignStatus.scheduled.value,
        )
    ):
        raise NotFound(GONE)
    return row


def _parts(r: fast.CampaignRenderer, who: fast.Recipient, *, personal: bool) -> tuple[str, str]:
    unsub, manage, _ = r.tokens_for(who, test=not personal)
    ctx = r.context(who, unsubscribe_token=unsub, manage_token=manage, test=not personal)
    if not personal:  # links that name nobody: the list's sign-up page, this very page
        slug = r.setup.lists[who.list_id].slug
        ctx["unsubscribe_url"] = ctx["manage_url"] = f"{r.setup.base_url}/subscribe/{slug}"
    try:
        subject, _, html = r.parts(ctx)
    except fast.RenderError as exc:
        raise TemplateError(f"this message cannot be shown: {exc}") from None
    return subject, html


def _nobody(list_id: int) -> fast.Recipient:
    return fast.Recipient(0, 0, "", "", list_id)


def _variant_source(row: Campaign, variant: int | None) -> content.Content | None:
    """What an A/B test's variant sent (None: the campaign's own content). Without a known
    variant: the winner once chosen, else the campaign's own (variant A)."""
    if not row.ab_test:
        return None
    chosen = variant if variant is not None else row.ab_winner
    variants = abtests.sources(source_of(row), row.ab_test)
    if chosen is None or not 0 < chosen < len(variants):
        return None
    return variants[chosen]


def personal(rt: Runtime, token: str) -> WebVersion:
    """The web version a recipient's link names: theirs (of the A/B test variant they got), or
    the one for no one when the person is gone or has since replaced their links."""
    cid, sid, lid, epoch = rt.tokens.read_webview(token)
    settings = settings_store.effective(rt)
    with rt.db.session() as s:
        row = _started(s.get(Campaign, cid))
        sub = s.get(Subscriber, sid) if sid else None
        mine = sub is not None and sub.link_epoch == epoch
        variant = (
            s.scalar(
                select(col(Delivery.variant)).where(
                    col(Delivery.campaign_id) == cid, col(Delivery.subscriber_id) == sid
                )
            )
            if mine
            else None
        )
        r, list_ids = renderer(rt, s, row, settings, _variant_source(row, variant))
        lid = lid if lid in r.setup.lists else list_ids[0]
        if sub is None or not mine:
            who = _nobody(lid)
        else:
            tags = tuple(
                s.scalars(
                    select(col(SubscriberInterest.interest)).where(
                        col(SubscriberInterest.subscriber_id) == sid
                    )
                )
            )
            who = fast.Recipient(
                0,
                sid,
                sub.email,
                sub.name,
                lid,
                dict(sub.fields or {}),
                tags,
                link_epoch=sub.link_epoch,
            )
    subject, html = _parts(r, who, personal=mine)
    return WebVersion(cid, subject, html)


def for_no_one(rt: Runtime, campaign_id: int, *, slug: str | None = None) -> WebVersion:
    """The campaign rendered for no one in particular (for `slug`'s archive when given); of an
    A/B test, the winner once chosen."""
    settings = settings_store.effective(rt)
    with rt.db.session() as s:
        row = _started(s.get(Campaign, campaign_id))
        if slug is not None and slug not in (row.lists or []):
            raise NotFound(GONE)
        r, list_ids = renderer(rt, s, row, settings, _variant_source(row, None))
    lid = next((i for i, v in r.setup.lists.items() if v.slug == slug), list_ids[0])
    subject, html = _parts(r, _nobody(lid), personal=False)
    return WebVersion(campaign_id, subject, html)


def campaign_of_ref(rt: Runtime, ref: str) -> int:
    try:
        return rt.tokens.read_campaign_ref(ref)
    except TokenInvalid:
        raise NotFound(GONE) from None


def _archived_list(rt: Runtime, slug: str) -> MailingList:
    with rt.db.session() as s:
        lst = s.scalar(select(MailingList).where(col(MailingList.slug) == slug))
    if lst is None or not lst.archive:
        raise NotFound("This list has no public archive.")
    return lst


def archive(rt: Runtime, slug: str, page: int = 1) -> Archive:
    """The list's sent campaigns, newest first, by subject as sent to no one in particular."""
    lst = _archived_list(rt, slug)
    page = max(1, page)
    with rt.db.session() as s:
        rows = [
            row
            for row in s.scalars(
                select(Campaign)
                .where(col(Campaign.status) == CampaignStatus.sent.value)
                .order_by(col(Campaign.started_at).desc(), col(Campaign.id).desc())
            )
            if slug in (row.lists or [])
        ]
    shown = rows[(page - 1) * ARCHIVE_PAGE : page * ARCHIVE_PAGE]
    entries = []
    for row in shown:
        try:
            subject = for_no_one(rt, id_of(row), slug=slug).subject
        except (TemplateError, NotFound):
            continue
        when = row.started_at.strftime("%Y-%m-%d") if row.started_at else ""
        entries.append(ArchiveEntry(id_of(row), subject, when))
    return Archive(slug, lst.name, tuple(entries), page, len(rows) > page * ARCHIVE_PAGE)


def archived(rt: Runtime, slug: str, campaign_id: int) -> WebVersion:
    """One campaign of the list's public archive (sent campaigns only)."""
    _archived_list(rt, slug)
    with rt.db.session() as s:
        row = s.get(Campaign, campaign_id)
        if row is None or row.status != CampaignStatus.sent.value:
            raise NotFound(GONE)
    return for_no_one(rt, campaign_id, slug=slug)
