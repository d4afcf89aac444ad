"""Sample data for a first look."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import col

from listmgr.models import MailingList
from listmgr.runtime import Runtime
from listmgr.services import lists, subscribers
from listmgr.services.subscriptions import Origin

PEOPLE = [
    ("ada@example.org", "Ada Lovelace"),
    ("grace@example.org", "Grace Hopper"),
    ("alan@example.org", "Alan Turing"),
    ("katherine@example.org", "Katherine Johnson"),
    ("edsger@example.org", "Edsger Dijkstra"),
]


def load(rt: Runtime) -> str:
    """Create the 'newsletter' list and confirmed sample subscribers (idempotent)."""
    with rt.db.session() as s:
        exists = s.scalar(select(col(MailingList.id)).where(col(MailingList.slug) == "newsletter"))
    if exists is None:
        lists.create(
            rt,
            slug="newsletter",
            name="Monthly Newsletter",
            description="News from our project, once a month.",
            consent_wording="Yes, send me the monthly newsletter. I can unsubscribe "
            "at any time with one click.",
            opt_in_levels=["monthly digest only", "important only"],
        )
    added = 0
    for email, name in PEOPLE:
        found, _ = subscribers.search(rt, email=email)
        if found:
            continue
        subscribers.create(
            rt,
            email=email,
            name=name,
            lists=["newsletter"],
            status="confirmed",
            consent="demo data",
            origin=Origin(source="demo", actor="cli"),
        )
        added += 1
    return (
        f"demo list 'newsletter' ready with {added} new sample subscribers; "
        f"sign-up form at {rt.settings.base_url}/subscribe/newsletter"
    )
