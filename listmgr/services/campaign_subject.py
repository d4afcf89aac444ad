"""Campaign subjects as a sample subscriber reads them, for the pages that name a campaign by
its subject (lists, confirmations, stats): rendered once per campaign version."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable

from sqlalchemy import select
from sqlmodel import col

from listmgr.mail import campaign as fast
from listmgr.mail.subject import Subject, rendered
from listmgr.models import Campaign, FieldDef, MailingList, id_of
from listmgr.runtime import Runtime
from listmgr.services import settings_store
from listmgr.services.campaign_setup import limits, list_rows, sample_fields

CACHE_SIZE = 1024
_cache: OrderedDict[tuple[int, str], Subject] = OrderedDict()
_lock = threading.Lock()


def sample_subjects(rt: Runtime, campaign_ids: Iterable[int]) -> dict[int, Subject]:
    """Each campaign's subject rendered for the sample person its save-time check uses (lists
    deleted since are left out of the sample; a subject that fails is shown as written)."""
    return {cid: both[0] for cid, both in _samples(rt, campaign_ids, variants=False).items()}


def variant_subjects(rt: Runtime, campaign_id: int) -> list[Subject]:
    """The subject of each variant of the campaign's A/B test (A, the campaign's own, first)
    rendered for the same sample person; just A when there is no test."""
    return _samples(rt, [campaign_id], variants=True).get(campaign_id, [])


def _samples(
    rt: Runtime, campaign_ids: Iterable[int], *, variants: bool
) -> dict[int, list[Subject]]:
    ids = sorted(set(campaign_ids))
    if not ids:
        return {}
    settings = settings_store.effective(rt)
    with rt.db.session() as s:
        rows = list(s.scalars(select(Campaign).where(col(Campaign.id).in_(ids))))
        slugs = {slug for row in rows for slug in row.lists or []}
        found = {
            lst.slug: lst
            for lst in s.scalars(select(MailingList).where(col(MailingList.slug).in_(slugs)))
        }
        fields = sample_fields(list(s.scalars(select(FieldDef))))
    budget = limits(settings)
    out: dict[int, list[Subject]] = {}
    for row in rows:
        cid = id_of(row)
        views = list_rows(
            settings, {id_of(found[x]): found[x] for x in row.lists or [] if x in found}
        )
        subjects = [row.subject]
        if variants:
            subjects += [
                str(v.get("subject", "")) for v in (row.ab_test or {}).get("alternatives", [])
            ]
        context = None
        shown = []
        for subject in subjects:
            inputs = (subject, row.name, sorted(views.items()), sorted(fields.items()))
            version = hashlib.sha256(repr((inputs, settings.base_url, budget)).encode()).hexdigest()
            with _lock:
                hit = _cache.get((cid, version))
                if hit is not None:
                    _cache.move_to_end((cid, version))
            if hit is None:
                if context is None:
                    context = fast.sample_context(
                        views,
                        campaign_id=cid,
                        campaign_name=row.name,
                        base_url=settings.base_url,
                        fields=fields,
                    )
                hit = rendered(subject, context, budget)
                with _lock:
                    _cache[cid, version] = hit
                    while len(_cache) > CACHE_SIZE:
                        _cache.popitem(last=False)
            shown.append(hit)
        out[cid] = shown
    return out
