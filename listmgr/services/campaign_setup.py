"""What a campaign's renderer is built from: its lists, sender identity, settings in force and the
DKIM key (shared by the campaign service and the delivery workers).

A campaign's content is checked and built (Markdown, layout, CSS inlining, text part, every part
compiled and rendered with sample data) once per version: at save, then again only when what
it is built from changed. Sending, previews and tests take the build from COMPILED.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col

from listmgr.errors import ConfigError, NotFound, ValidationError
from listmgr.mail import campaign as fast
from listmgr.mail import content
from listmgr.mail.dkim import DkimSigner, load_key
from listmgr.mail.tracking import trackable_links
from listmgr.models import Campaign, FieldDef, MailingList, id_of
from listmgr.runtime import Runtime
from listmgr.settings import Settings

# What a campaign's message is made of (the text of its form, its format included).
CONTENT_FIELDS = (
    "name",
    "subject",
    "preheader",
    "from_name",
    "from_email",
    "reply_to",
    "content_format",
    "body",
    "text",
    "layout",
)
SAMPLES = {"text": "Sample text", "number": 42, "date": "2024-01-31", "boolean": True}


def get_row(s: Session, campaign_id: int, *, lock: bool = False) -> Campaign:
    query = select(Campaign).where(col(Campaign.id) == campaign_id)
    row = s.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise NotFound(f"there is no campaign {campaign_id}")
    return row


def limits(settings: Settings) -> content.Limits:
    """The template budget in force (every render: save check, preview, test, send)."""
    return content.Limits(seconds=settings.template_seconds, output=settings.template_max_chars)


def resolve_lists(s: Session, slugs: Sequence[str]) -> dict[int, MailingList]:
    """The campaign's lists by id, in the order given; unknown slugs are an error."""
    found = {
        lst.slug: lst
        for lst in s.scalars(select(MailingList).where(col(MailingList.slug).in_(list(slugs))))
    }
    for i, slug in enumerate(slugs):
        if slug not in found:
            raise ValidationError(f"there is no list {slug!r}", field=f"lists[{i}]")
    return {id_of(found[slug]): found[slug] for slug in slugs}


def list_rows(settings: Settings, lists: dict[int, MailingList]) -> dict[int, fast.ListView]:
    postal = settings.default_postal_address
    return {
        lid: fast.ListView(lid, lst.name, lst.slug, lst.description, lst.postal_address or postal)
        for lid, lst in lists.items()
    }


def sample_list(settings: Settings) -> dict[int, fast.ListView]:
    """The list a message is shown for before any list is chosen (previews, templates)."""
    return {0: fast.ListView(0, "Your list", "your-list", "", settings.default_postal_address)}


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


class CompileCache:
    """Checked campaign builds by campaign id and version (a digest of the content and of the
    sample context it was checked with), the least recently used dropped beyond `size`."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self.compiles = 0  # builds made (cache misses): what a test counts
        self.rule_compiles = 0  # segment rules compiled (never cached: they depend on the time)
        self._items: OrderedDict[tuple[int, str], content.Built] = OrderedDict()
        self._lock = threading.Lock()

    def built(
        self,
        campaign_id: int,
        source: content.Content,
        context: dict[str, Any],
        limits: content.Limits,
        version: str,
    ) -> content.Built:
        """The checked build of this version; a template error is raised, never cached."""
        key = (campaign_id, version)
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
        built = content.check(source, context, limits)
        with self._lock:
            self.compiles += 1
            self._items[key] = built
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return built

    def rules(self, s: Session, rules: Any) -> Any:
        """The segment rules as an expression, checked against this database (unknown
        fields, interests, lists); no list condition (the ledger's INSERT adds it)."""
        from listmgr.services import segments

        with self._lock:
            self.rule_compiles += 1
        return segments.expression(s, lists=[], rules=rules)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


COMPILED = CompileCache()


def checked(
    s: Session,
    settings: Settings,
    *,
    campaign_id: int | None,
    name: str,
    source: content.Content,
    views: dict[int, fast.ListView],
) -> content.Built:
    """The content checked with a sample recipient and built (once per version: see COMPILED)."""
    fields = sample_fields(list(s.scalars(select(FieldDef))))
    budget = limits(settings)
    context = fast.sample_context(
        views,
        campaign_id=campaign_id or 0,
        campaign_name=name,
        base_url=settings.base_url,
        fields=fields,
    )
    inputs = (source, sorted(views.items()), sorted(fields.items()), name, settings.base_url)
    version = hashlib.sha256(repr((inputs, budget)).encode()).hexdigest()
    return COMPILED.built(campaign_id or 0, source, context, budget, version)


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


def source_of(row: Campaign) -> content.Content:
    """What the campaign's own message is made of (an A/B test's variant A)."""
    return content.Content(
        subject=row.subject,
        body=row.body,
        content_format=row.content_format,
        text=row.text,
        preheader=row.preheader,
        layout=row.layout,
    )


def renderer(
    rt: Runtime,
    s: Session,
    row: Campaign,
    settings: Settings,
    source: content.Content | None = None,
    *,
    sending: bool = False,
) -> tuple[fast.CampaignRenderer, list[int]]:
    """The compiled per-campaign renderer (of `source`, an A/B test variant, else of the
    campaign's own content) and the campaign's list ids (settings_store.effective(rt) is
    read before the session opens: on SQLite a second session would wait for the first).
    sending=True: for the campaign's real messages, with its links registered for tracking
    (previews and tests never track)."""
    lists = resolve_lists(s, list(row.lists or []))
    views = list_rows(settings, lists) or sample_list(settings)
    first = next(iter(lists.values()), None)
    setup = fast.Setup(
        campaign_id=row.id or 0,  # 0: content not saved yet (a preview)
        campaign_name=row.name,
        content=source or source_of(row),
        from_name=row.from_name or (first and first.from_name) or settings.default_from_name,
        from_email=row.from_email or (first and first.from_email) or settings.default_from_email,
        reply_to=row.reply_to or (first.reply_to if first else ""),
        lists=views,
        mail_domain=settings.mail_domain,
        base_url=settings.base_url,
        stamp=row.created_at.strftime("%Y%m%d%H%M%S"),
        limits=limits(settings),
    )
    built = checked(
        s, settings, campaign_id=setup.campaign_id, name=row.name, source=setup.content, views=views
    )
    if sending and settings.tracking:
        from listmgr.services import tracking

        text = built.text if not built.text_from_html else ""
        urls = trackable_links(built.html, text, settings.base_url)
        setup = replace(
            setup, tracking=True, link_ids=tracking.register_links(s, setup.campaign_id, urls)
        )
    return fast.CampaignRenderer(setup, built, rt.tokens, signer(settings)), list(views)
