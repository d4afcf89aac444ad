"""Admin changes to one person's memberships: unsubscribe from a list or from everything."""

from __future__ import annotations

from sqlalchemy import select

from listmgr.errors import NotFound
from listmgr.models import MailingList, Subscriber
from listmgr.runtime import Runtime
from listmgr.services.subscriptions import Origin, unsubscribe_subscriber


def unsubscribe(
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
            list_id = s.scalar(select(MailingList.id).where(MailingList.slug == list_slug))
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
