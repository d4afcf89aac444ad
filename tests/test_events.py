"""Activity events: kept only for subscribers who consented to profiling, counted otherwise;
a malformed batch is refused whole, naming the bad item."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from listmgr.models import ActivityEvent, ConsentEvent
from tests.profile_support import counts, make_list


def _sub(api, email: str, profiling: bool) -> int:
    resp = api.post(
        "/api/subscribers",
        json={
            "email": email,
            "lists": ["news"],
            "consent": "form",
            "consents": {"profiling": profiling},
        },
    )
    assert resp.status_code == 201, resp.json
    return int(resp.json["id"])


def _stored(rt, sid: int | None = None) -> list[tuple[str, dict, datetime]]:
    with rt.db.session() as s:
        query = select(ActivityEvent).order_by(ActivityEvent.id)
        if sid is not None:
            query = query.where(ActivityEvent.subscriber_id == sid)
        return [(e.type, e.properties, e.at) for e in s.scalars(query)]


def test_single_event_kept_with_consent_dropped_without(rt, api):
    make_list(rt)
    yes = _sub(api, "yes@example.org", True)
    no = _sub(api, "no@example.org", False)
    resp = api.post(
        "/api/events",
        json={
            "email": "Yes@Example.org",
            "type": "product_viewed",
            "properties": {"sku": "A-1", "price": 9.5},
            "at": "2024-05-01T10:00:00+02:00",
        },
    )
    assert resp.status_code == 200 and resp.json == {"kept": 1, "dropped": 0}
    assert _stored(rt, yes) == [
        ("product_viewed", {"sku": "A-1", "price": 9.5}, datetime(2024, 5, 1, 8, 0))
    ]
    assert api.post("/api/events", json={"subscriber_id": no, "type": "product_viewed"}).json == {
        "kept": 0,
        "dropped": 1,
    }
    assert api.post("/api/events", json={"email": "stranger@example.org", "type": "x"}).json == {
        "kept": 0,
        "dropped": 1,
    }
    assert api.post("/api/events", json={"subscriber_id": 999999, "type": "x"}).json == {
        "kept": 0,
        "dropped": 1,
    }
    assert _stored(rt, no) == [] and len(_stored(rt)) == 1


def test_batch_counts(rt, api):
    make_list(rt)
    a = _sub(api, "a@example.org", True)
    b = _sub(api, "b@example.org", True)
    _sub(api, "c@example.org", False)
    events = (
        [
            {"email": "a@example.org", "type": "page_viewed", "properties": {"n": i}}
            for i in range(5)
        ]
        + [{"subscriber_id": b, "type": "download"}] * 3
        + [{"email": "c@example.org", "type": "page_viewed"}] * 4
        + [{"email": "ghost@example.org", "type": "page_viewed"}] * 2
    )
    resp = api.post("/api/events", json={"events": events})
    assert resp.status_code == 200 and resp.json == {"kept": 8, "dropped": 6}
    assert [p["n"] for t, p, _ in _stored(rt, a)] == [0, 1, 2, 3, 4]
    assert [t for t, _, _ in _stored(rt, b)] == ["download"] * 3
    assert len(_stored(rt)) == 8
    assert api.post("/api/events", json={"events": []}).json == {"kept": 0, "dropped": 0}


def test_large_batch_in_one_call(rt, api):
    make_list(rt)
    ids = [_sub(api, f"p{i}@example.org", i % 2 == 0) for i in range(10)]
    events = [
        {"subscriber_id": ids[i % 10], "type": "page_viewed", "properties": {"i": i}}
        for i in range(10_000)
    ]
    resp = api.post("/api/events", json={"events": events})
    assert resp.json == {"kept": 5_000, "dropped": 5_000}
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(ActivityEvent)) == 5_000
    resp = api.post("/api/events", json={"events": events + events[:1]})
    assert resp.status_code == 422 and resp.json["error"]["field"] == "events"


def test_malformed_batch_is_refused_whole(rt, api):
    make_list(rt)
    _sub(api, "a@example.org", True)
    good = {"email": "a@example.org", "type": "page_viewed"}
    before = counts(rt)
    for bad, field in [
        ({"email": "a@example.org", "type": "has space"}, "events[3].type"),
        ({"email": "a@example.org"}, "events[3].type"),
        ({"type": "x"}, "events[3].email"),
        ({"email": "a@example.org", "subscriber_id": 1, "type": "x"}, "events[3].email"),
        ({"email": "not an address", "type": "x"}, "events[3].email"),
        ({"subscriber_id": "1", "type": "x"}, "events[3].subscriber_id"),
        ({"email": "a@example.org", "type": "x", "properties": [1]}, "events[3].properties"),
        ({"email": "a@example.org", "type": "x", "at": "yesterday"}, "events[3].at"),
        ({"email": "a@example.org", "type": "x", "at": "2999-01-01T00:00:00Z"}, "events[3].at"),
        ({"email": "a@example.org", "type": "x", "at": "0001-01-01T00:00:00Z"}, "events[3].at"),
        ({"email": "a@example.org", "type": "x", "colour": "red"}, "events[3].colour"),
        (
            {"email": "a@example.org", "type": "x", "properties": {"blob": "x" * 9000}},
            "events[3].properties",
        ),
        ("not an object", "events[3]"),
    ]:
        resp = api.post("/api/events", json={"events": [good, good, good, bad, good]})
        assert resp.status_code == 422, (bad, resp.json)
        assert resp.json["error"]["field"] == field, (bad, resp.json)
        assert field in resp.json["error"]["message"]
    for body, field in [
        ({"email": "a@example.org"}, "type"),
        ({"events": "many"}, "events"),
        ({"events": [], "type": "x"}, "events"),
    ]:
        resp = api.post("/api/events", json=body)
        assert resp.status_code == 422 and resp.json["error"]["field"] == field, resp.json
    assert (
        api.post("/api/events", data="[1, 2]", content_type="application/json").status_code == 422
    )
    assert counts(rt) == before


def test_consent_withdrawn_then_given_again(rt, api, client):
    make_list(rt)
    sid = _sub(api, "ada@example.org", True)
    other = _sub(api, "bo@example.org", True)
    event = {
        "email": "ada@example.org",
        "type": "document_downloaded",
        "properties": {"doc": "guide.pdf"},
    }
    assert api.post("/api/events", json=event).json == {"kept": 1, "dropped": 0}
    assert api.post("/api/events", json={"subscriber_id": other, "type": "x"}).json["kept"] == 1

    # Withdrawn in the preference center: stored activity goes, later events are dropped.
    token = rt.tokens.manage(sid)
    resp = client.post(
        f"/p/{token}", data={"action": "save", "profile_form": "1", "lists": ["news"]}
    )
    assert resp.status_code == 200
    assert _stored(rt, sid) == [] and len(_stored(rt, other)) == 1
    with rt.db.session() as s:
        withdrawn = s.scalar(
            select(ConsentEvent).where(
                ConsentEvent.subscriber_id == sid,
                ConsentEvent.kind == "consent_profiling",
                ConsentEvent.source == "preferences",
            )
        )
    assert withdrawn.detail == {"given": False, "activity_deleted": 1}
    assert api.post("/api/events", json=event).json == {"kept": 0, "dropped": 1}
    assert _stored(rt, sid) == []

    # Given again: kept from now on.
    resp = client.post(
        f"/p/{token}",
        data={"action": "save", "profile_form": "1", "lists": ["news"], "consent_profiling": "on"},
    )
    assert resp.status_code == 200
    assert api.post("/api/events", json={"events": [event, event]}).json == {
        "kept": 2,
        "dropped": 0,
    }
    assert len(_stored(rt, sid)) == 2

    # Withdrawn through the API by an admin: the same rule.
    resp = api.patch(f"/api/subscribers/{sid}", json={"consents": {"profiling": False}})
    assert resp.status_code == 200 and _stored(rt, sid) == []
    assert api.post("/api/events", json=event).json == {"kept": 0, "dropped": 1}


def test_events_need_permission(rt, client):
    from listmgr.services import accounts

    editor = accounts.create_token(rt, role="editor", name="e")
    body = {"email": "a@example.org", "type": "x"}
    assert client.post("/api/events", json=body).status_code == 401
    assert (
        client.post(
            "/api/events", json=body, headers={"Authorization": f"Bearer {editor}"}
        ).status_code
        == 403
    )
