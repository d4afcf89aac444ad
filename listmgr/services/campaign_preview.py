"""Preview a campaign as a chosen subscriber and send it as a test (links name nobody)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlmodel import col

from listmgr.addresses import normalize_email
from listmgr.errors import NotFound, TemplateError, ValidationError
from listmgr.mail import campaign as fast
from listmgr.mail import content
from listmgr.mail.compose import clean_header
from listmgr.models import (
    Campaign,
    Membership,
    Subscriber,
    SubscriberInterest,
    by_id,
    id_of,
)
from listmgr.runtime import Runtime
from listmgr.services import audit, settings_store
from listmgr.services.campaign_setup import CONTENT_FIELDS, get_row, renderer

MAX_TEST_RECIPIENTS = 10
MAX_TEXT = 1_000_000
UNSAVED_TEXT = CONTENT_FIELDS


@dataclass(frozen=True)
class Preview:
    subject: str
    html: str
    text: str
    from_header: str
    to: str
    list: str


def _recipient(
    s: Session,
    row: Campaign,
    list_ids: list[int],
    subscriber_id: int | None,
    email: str | None,
    to: str | None = None,
) -> fast.Recipient:
    sub = None
    if subscriber_id is not None:
        sub = by_id(s, Subscriber, subscriber_id)
    elif email:
        sub = s.scalar(select(Subscriber).where(col(Subscriber.email) == normalize_email(email)))
    if (subscriber_id is not None or email) and sub is None:
        raise NotFound(
            "there is no such subscriber", field="subscriber_id" if email is None else "email"
        )
    if sub is None:
        return fast.Recipient(
            0, 0, to or "someone@example.org", "Sample Person", list_ids[0], {}, ()
        )
    lid = (
        s.scalar(
            select(func.min(Membership.list_id)).where(
                col(Membership.subscriber_id) == sub.id, col(Membership.list_id).in_(list_ids)
            )
        )
        or list_ids[0]
    )
    tags = tuple(
        s.scalars(
            select(col(SubscriberInterest.interest)).where(
                col(SubscriberInterest.subscriber_id) == sub.id
            )
        )
    )
    return fast.Recipient(
        0,
        id_of(sub),
        to or sub.email,
        sub.name,
        int(lid),
        dict(sub.fields or {}),
        tags,
    )


def _unbuildable(exc: fast.RenderError) -> TemplateError:
    """A message that cannot be built for this recipient (as sending would find)."""
    return TemplateError(
        f"the message cannot be built for this recipient: {exc}", detail={"message": str(exc)}
    )


def preview(
    rt: Runtime, campaign_id: int, *, subscriber_id: int | None = None, email: str | None = None
) -> Preview:
    """The message as a chosen subscriber (or a sample person) would get it; links are inert."""
    settings = settings_store.effective(rt)
    with rt.db.session() as s:
        row = get_row(s, campaign_id)
        r, list_ids = renderer(rt, s, row, settings)
        who = _recipient(s, row, list_ids, subscriber_id, email)
    return _shown(r, who)


def _unsaved_text(values: dict[str, Any], key: str) -> str:
    value = values.get(key) or ""
    if not isinstance(value, str):
        raise ValidationError(f"{key} must be text", field=key)
    if len(value) > MAX_TEXT:
        raise ValidationError(f"{key} is too large", field=key)
    return value


def unsaved_row(values: dict[str, Any], *, campaign_id: int | None = None) -> Campaign:
    """A campaign row that is never stored, from what the composer holds now: a missing name,
    subject or list is no error yet (a sample list and subject stand in)."""
    fields = {k: _unsaved_text(values, k) for k in UNSAVED_TEXT}
    fmt = fields["content_format"] or "html"
    if fmt not in content.FORMATS:
        raise ValidationError(content.FORMAT_ERROR, field="content_format")
    lists = values.get("lists") or []
    if not isinstance(lists, list) or not all(isinstance(x, str) for x in lists):
        raise ValidationError("lists must be a list of list slugs", field="lists")
    for key in ("from_email", "reply_to"):
        try:
            fields[key] = normalize_email(fields[key]) if fields[key].strip() else ""
        except ValidationError as exc:
            raise ValidationError(f"{key}: {exc.message}", field=key) from None
    fields["from_name"] = clean_header(fields["from_name"].strip(), "from_name")
    return Campaign(
        id=campaign_id,
        name=fields["name"].strip() or "New campaign",
        subject=fields["subject"] if fields["subject"].strip() else "(no subject yet)",
        preheader=fields["preheader"],
        from_name=fields["from_name"],
        from_email=fields["from_email"],
        reply_to=fields["reply_to"],
        content_format=fmt,
        body=fields["body"],
        text=fields["text"],
        layout=fields["layout"],
        lists=list(dict.fromkeys(lists)),
    )


def preview_values(
    rt: Runtime,
    values: dict[str, Any],
    *,
    campaign_id: int | None = None,
    email: str | None = None,
) -> Preview:
    """The message as it would be built from these values, before they are saved: nothing is
    stored, and every template is checked as saving would."""
    row = unsaved_row(values, campaign_id=campaign_id)
    settings = settings_store.effective(rt)
    with rt.db.session() as s:
        r, list_ids = renderer(rt, s, row, settings)
        who = _recipient(s, row, list_ids, None, email)
    return _shown(r, who)


def _shown(r: fast.CampaignRenderer, who: fast.Recipient) -> Preview:
    unsub, manage, _ = r.tokens_for(who, test=True)
    try:
        subject, text, html = r.parts(r.context(who, unsubscribe_token=unsub, manage_token=manage))
    except fast.RenderError as exc:
        raise _unbuildable(exc) from None
    return Preview(
        subject,
        html,
        text,
        r.from_header,
        fast.mailbox(who.name, who.email),
        r.setup.lists[who.list_id].slug,
    )


def send_test(
    rt: Runtime,
    campaign_id: int,
    *,
    to: Sequence[str],
    subscriber_id: int | None = None,
    email: str | None = None,
    actor: str = "",
    detailed: bool = True,
) -> list[dict[str, Any]]:
    """Send the message, marked as a test, to these addresses now; one result per address.
    detailed=False: a failure says no more than the server's reply code (for people who may
    not change the SMTP settings)."""
    from listmgr.mail.transport import PermanentFailure, TemporaryFailure, describe_failure
    from listmgr.services.outbox import transport

    if not isinstance(to, (list, tuple)) or not to:
        raise ValidationError("give at least one address to send the test to", field="to")
    if len(to) > MAX_TEST_RECIPIENTS:
        raise ValidationError(f"at most {MAX_TEST_RECIPIENTS} test addresses", field="to")
    addresses = [normalize_email(a) for a in to]
    settings = settings_store.effective(rt)
    with rt.db.session() as s:
        row = get_row(s, campaign_id)
        r, list_ids = renderer(rt, s, row, settings)
        try:
            messages = [
                r.message(_recipient(s, row, list_ids, subscriber_id, email, to=addr), test=True)
                for addr in addresses
            ]
        except fast.RenderError as exc:
            raise _unbuildable(exc) from None
        s.add(
            audit.entry(
                actor=actor or "system",
                action="campaign.test",
                target_type="campaign",
                target_id=campaign_id,
                detail={"to": addresses},
            )
        )
    results = []
    for addr, out in zip(addresses, messages, strict=False):
        try:
            transport(rt, settings).send_one(out.envelope_from, addr, out.data)
            results.append({"to": addr, "sent": True, "error": ""})
        except (PermanentFailure, TemporaryFailure) as exc:
            results.append(
                {"to": addr, "sent": False, "error": describe_failure(exc, detailed=detailed)}
            )
    return results
