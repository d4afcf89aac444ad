"""What a campaign's renderer is built from: its lists, sender identity, settings in force and the
DKIM key (shared by the campaign service and the delivery workers)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from listmgr.errors import ConfigError, NotFound, ValidationError
from listmgr.mail import campaign as fast
from listmgr.mail import content
from listmgr.mail.dkim import DkimSigner, load_key
from listmgr.models import Campaign, FieldDef, MailingList
from listmgr.runtime import Runtime
from listmgr.services import settings_store
from listmgr.settings import Settings

SAMPLES = {"text": "Sample text", "number": 42, "date": "2024-01-31", "boolean": True}


def get_row(s: Session, campaign_id: int, *, lock: bool = False) -> Campaign:
    query = select(Campaign).where(Campaign.id == campaign_id)
    row = s.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise NotFound(f"there is no campaign {campaign_id}")
    return row


def settings_of(rt: Runtime) -> Settings:
    """The settings in force, including changes made in the admin (SMTP, DKIM, identity)."""
    return settings_store.effective(rt)


def limits(settings: Settings) -> content.Limits:
    """The template budget in force (every render: save check, preview, test, send)."""
    return content.Limits(seconds=settings.template_seconds, output=settings.template_max_chars)


def resolve_lists(s: Session, slugs: Sequence[str]) -> dict[int, MailingList]:
    """The campaign's lists by id, in the order given; unknown slugs are an error."""
    found = {
        lst.slug: lst
        for lst in s.scalars(select(MailingList).where(MailingList.slug.in_(list(slugs))))
    }
    for i, slug in enumerate(slugs):
        if slug not in found:
            raise ValidationError(f"there is no list {slug!r}", field=f"lists[{i}]")
    return {int(found[slug].id): found[slug] for slug in slugs}  # type: ignore[arg-type]


def list_rows(settings: Settings, lists: dict[int, MailingList]) -> dict[int, fast.ListView]:
    postal = settings.default_postal_address
    return {
        lid: fast.ListView(lid, lst.name, lst.slug, lst.description, lst.postal_address or postal)
        for lid, lst in lists.items()
    }


def sample_fields(defs: list[FieldDef]) -> dict[str, Any]:
    """A plausible value for every custom field (save-time checks render with these)."""
    out: dict[str, Any] = {}
    for d in defs:
        choices = list(d.choices or [])
        if d.type == "choice":
            out[d.key] = choices[0] if choices else "choice"
        elif d.type == "multi_choice":
            out[d.key] = choices[:1] or ["choice"]
        else:
            out[d.key] = SAMPLES.get(d.type, "Sample")
    return out


def signer(settings: Settings) -> DkimSigner | None:
    """The DKIM signer when a selector and a key are configured."""
    if not settings.dkim_selector or not settings.dkim_private_key_path:
        return None
    path = Path(settings.dkim_private_key_path)
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the DKIM key {path}: {exc.strerror}") from None
    return DkimSigner(
        load_key(settings.dkim_domain or settings.mail_domain, settings.dkim_selector, pem)
    )


def renderer(
    rt: Runtime, s: Session, row: Campaign, settings: Settings
) -> tuple[fast.CampaignRenderer, list[int]]:
    """The compiled per-campaign renderer and the campaign's list ids (settings_of(rt) is
    read before the session opens: on SQLite a second session would wait for the first)."""
    lists = resolve_lists(s, list(row.lists or []))
    views = list_rows(settings, lists)
    first = next(iter(lists.values()))
    setup = fast.Setup(
        campaign_id=int(row.id),
        campaign_name=row.name,  # type: ignore[arg-type]
        content=content.Content(
            subject=row.subject,
            body=row.body,
            content_format=row.content_format,
            text=row.text,
            preheader=row.preheader,
            layout=row.layout,
        ),
        from_name=row.from_name or first.from_name or settings.default_from_name,
        from_email=row.from_email or first.from_email or settings.default_from_email,
        reply_to=row.reply_to or first.reply_to,
        lists=views,
        mail_domain=settings.mail_domain,
        base_url=settings.base_url,
        stamp=row.created_at.strftime("%Y%m%d%H%M%S"),
        limits=limits(settings),
    )
    ctx = fast.sample_context(
        views,
        campaign_id=setup.campaign_id,
        campaign_name=row.name,
        base_url=settings.base_url,
        fields=sample_fields(list(s.scalars(select(FieldDef)))),
    )
    built = content.check(setup.content, ctx, setup.limits)
    return fast.CampaignRenderer(setup, built, rt.tokens, signer(settings)), list(lists)
