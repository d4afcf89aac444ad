"""An unsubscribe link always answers, whoever and whatever it names: a person on several
lists leaves only the link's list (or all of them, asked so), once, with one consent event a
list however often the link is posted; a correctly signed link naming a person or a list that
is gone, or an id no database column holds, still answers 200 and changes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from listmgr.models import ConsentEvent, Membership, Suppression
from tests.profile_support import make_list


def _person(api, email: str, lists: list[str]) -> int:
    return api.post(
        "/api/subscribers", json={"email": email, "lists": lists, "consent": "form"}
    ).json["id"]


def _statuses(rt, sid: int) -> dict[int, str]:
    with rt.db.session() as s:
        rows = s.execute(
            select(Membership.list_id, Membership.status).where(Membership.subscriber_id == sid)
        )
        return dict(rows.all())


def _events(rt, sid: int) -> list[tuple[str, int | None]]:
    with rt.db.session() as s:
        return list(
            s.execute(
                select(ConsentEvent.kind, ConsentEvent.list_id)
                .where(
                    ConsentEvent.subscriber_id == sid,
                    ConsentEvent.kind.in_(("unsubscribe", "unsubscribe_all")),
                )
                .order_by(ConsentEvent.id)
            ).all()
        )


def test_one_click_leaves_the_links_list_only_and_once(rt, api, client):
    news, tips, deals = make_list(rt, "news"), make_list(rt, "tips"), make_list(rt, "deals")
    sid = _person(api, "many.lists@example.org", ["news", "tips", "deals"])
    other = _person(api, "bystander@example.org", ["news"])
    token = rt.tokens.unsubscribe(sid, tips)
    for _ in range(3):
        resp = client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
        assert resp.status_code == 200
    assert _statuses(rt, sid) == {news: "confirmed", tips: "unsubscribed", deals: "confirmed"}
    assert _events(rt, sid) == [("unsubscribe", tips)]
    assert _statuses(rt, other) == {news: "confirmed"}
    page = client.get(f"/u/{token}").get_data(as_text=True)
    assert "tips" in page.lower()


def test_leaving_everything_ends_every_list_with_an_event_each(rt, api, client):
    ids = [make_list(rt, slug) for slug in ("news", "tips", "deals")]
    sid = _person(api, "leaving@example.org", ["news", "tips", "deals"])
    client.post(f"/u/{rt.tokens.unsubscribe(sid, ids[0])}")  # one list first, from the page
    resp = client.post(f"/u/{rt.tokens.unsubscribe(sid, ids[1])}", data={"all": "1"})
    assert resp.status_code == 200
    assert set(_statuses(rt, sid).values()) == {"unsubscribed"}
    # the first list had already ended: the events name the two that changed, in list order
    assert _events(rt, sid) == [
        ("unsubscribe", ids[0]),
        ("unsubscribe_all", ids[1]),
        ("unsubscribe_all", ids[2]),
    ]
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Suppression)) == 1


@pytest.mark.parametrize("who", ["erased", "never existed", "list gone", "list id 0"])
def test_a_signed_link_to_nothing_answers_and_changes_nothing(rt, api, client, who):
    news = make_list(rt, "news")
    sid = _person(api, "kept@example.org", ["news"])
    gone = _person(api, "gone@example.org", ["news"])
    assert api.post(f"/api/subscribers/{gone}/erase").status_code == 200
    subscriber, list_id = {
        "erased": (gone, news),
        "never existed": (sid + 1000, news),
        "list gone": (sid, news + 1000),
        "list id 0": (sid, 0),
    }[who]
    token = rt.tokens.unsubscribe(subscriber, list_id)
    with rt.db.session() as s:
        before = s.scalar(select(func.count()).select_from(ConsentEvent))
    assert client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert client.post(f"/u/{token}").status_code == 200  # the page's own button
    assert client.get(f"/u/{token}").status_code == 200
    assert _statuses(rt, sid) == {news: "confirmed"}
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(ConsentEvent)) == before
    # Leaving everything through such a link: a person who is there leaves every list.
    assert client.post(f"/u/{token}", data={"all": "1"}).status_code == 200
    assert _statuses(rt, sid) == {news: "unsubscribed" if subscriber == sid else "confirmed"}


BIG = 2**31 + 5  # no id column holds it: PostgreSQL refuses it in a comparison


@pytest.mark.parametrize(
    ("method", "link"),
    [
        ("GET", lambda t: f"/u/{t.unsubscribe(BIG, BIG)}"),
        ("POST", lambda t: f"/u/{t.unsubscribe(BIG, BIG)}"),
        ("GET", lambda t: f"/p/{t.manage(BIG)}"),
        ("POST", lambda t: f"/p/{t.manage(BIG)}"),
        ("GET", lambda t: f"/confirm/{t.confirm(BIG, BIG)}"),
        ("POST", lambda t: f"/confirm/{t.confirm(BIG, BIG)}"),
        ("POST", lambda t: f"/confirm/{t.confirm(BIG, BIG)}/resend"),
        ("GET", lambda t: f"/o/{t.open(BIG, BIG)}.gif"),
        ("GET", lambda t: f"/t/{t.campaign_ref(BIG)}/{t.click(BIG, BIG, BIG)}"),
        ("GET", lambda t: f"/w/{t.webview(BIG, BIG, BIG)}"),
        ("GET", lambda t: f"/w/c/{t.campaign_ref(BIG)}"),
        ("GET", lambda t: f"/u/request/{t.unsubscribe_request(BIG, BIG)}"),
        ("POST", lambda t: f"/u/request/{t.unsubscribe_request(BIG, BIG)}"),
        ("GET", lambda t: f"/keep/{t.repermission(BIG)}"),
        ("POST", lambda t: f"/keep/{t.repermission(BIG)}"),
    ],
)
def test_a_signed_link_with_ids_past_any_row_is_not_valid(rt, api, client, method, link):
    """Signed with our key yet naming ids beyond 32 bits (never made by listmgr): refused as
    a link that is not valid, or for a pixel and a click answered as for any bad link; never
    a server error, and nothing changes."""
    make_list(rt, "news")
    sid = _person(api, "kept@example.org", ["news"])
    resp = client.open(link(rt.tokens), method=method)
    assert resp.status_code < 500, resp.get_data(as_text=True)[:300]
    assert set(_statuses(rt, sid).values()) == {"confirmed"}
