"""The dashboard's growth chart ends where its headline count stands, whatever made people
leave: an unsubscribe, a hard bounce, a complaint or an erasure."""

from __future__ import annotations

from listmgr.models import Subscriber
from listmgr.services import dashboard, lists, privacy, subscribers, subscriptions
from listmgr.services.bounces import hard_bounce
from listmgr.services.subscriptions import Origin

ADMIN = Origin(source="admin", actor="owner@example.org")


def test_growth_chart_and_totals_agree_after_people_leave(rt):
    lists.create(rt, slug="news", name="News")
    ids = [
        subscribers.create(
            rt,
            email=f"p{i}@example.org",
            lists=["news"],
            consent="ticked the box at checkout",
            origin=ADMIN,
        )
        for i in range(8)
    ]
    assert dashboard.totals(rt).confirmed == 8
    assert dashboard.growth(rt).series["News"][-1] == 8

    subscriptions.unsubscribe_by_id(rt, ids[0], list_slug="news", origin=ADMIN)
    with rt.db.session() as s:
        sub = s.get(Subscriber, ids[1])
        hard_bounce(s, sub, origin=ADMIN, reason="550 5.1.1 no such user", list_id=None)
    subscriptions.unsubscribe_by_id(rt, ids[2], list_slug=None, origin=ADMIN)  # a complaint's way
    privacy.erase_subscriber(rt, ids[3], origin=ADMIN)

    confirmed = dashboard.totals(rt).confirmed
    assert confirmed == 4
    assert dashboard.growth(rt).series["News"][-1] == confirmed
