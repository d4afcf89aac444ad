"""The minimal API of lists and subscribers, with bearer tokens and JSON errors."""

from __future__ import annotations

from sqlalchemy import func, select

from listmgr.models import Membership, Outbox, Subscriber
from tests.conftest import drain


def test_lists_create_get_and_errors(api, client):
    resp = api.post("/api/lists", json={"slug": "news", "name": "News", "opt_in": "double"})
    assert resp.status_code == 201 and isinstance(resp.json["id"], int)
    assert api.get("/api/lists/news").json["name"] == "News"
    assert [x["slug"] for x in api.get("/api/lists").json["items"]] == ["news"]
    dup = api.post("/api/lists", json={"slug": "news", "name": "Again"})
    assert dup.status_code == 409 and dup.json["error"]["field"] == "slug"
    bad = api.post("/api/lists", json={"slug": "Bad Slug!", "name": "x"})
    assert bad.status_code == 422 and bad.json["error"]["field"] == "slug"
    bad = api.post("/api/lists", json={"slug": "x", "name": "x", "opt_in": "triple"})
    assert bad.status_code == 422 and bad.json["error"]["field"] == "opt_in"
    bad = api.post("/api/lists", json={"slug": "x", "name": "Evil\r\nBcc: a@b.c"})
    assert bad.status_code == 422
    assert api.get("/api/lists/nope").status_code == 404
    assert api.get("/api/lists/nope").json["error"]["code"] == "not_found"
    assert [x["slug"] for x in api.get("/api/lists").json["items"]] == ["news"]


def test_auth_is_required_and_checked(client, api, rt):
    from listmgr.services import accounts

    assert client.get("/api/lists").status_code == 401
    assert client.get("/api/lists").json["error"]["code"] == "unauthorized"
    wrong = client.get("/api/lists", headers={"Authorization": "Bearer lm_nope"})
    assert wrong.status_code == 401
    analyst = accounts.create_token(rt, role="analyst")
    resp = client.post(
        "/api/lists",
        json={"slug": "a", "name": "A"},
        headers={"Authorization": f"Bearer {analyst}"},
    )
    assert resp.status_code == 403
    assert (
        client.get("/api/lists", headers={"Authorization": f"Bearer {analyst}"}).status_code == 200
    )
    assert (
        client.get(
            "/api/subscribers?email=a@example.org", headers={"Authorization": f"Bearer {analyst}"}
        ).status_code
        == 403
    )


def test_subscribers_create_search_and_status(api, rt, sink):
    api.post("/api/lists", json={"slug": "news", "name": "News"})
    api.post("/api/lists", json={"slug": "staff", "name": "Staff", "opt_in": "single"})
    resp = api.post(
        "/api/subscribers",
        json={
            "email": "Ada@Example.org",
            "name": "Ada",
            "lists": ["news"],
            "status": "confirmed",
            "consent": "signed paper form, 2024-01-05",
            "consents": {"profiling": True},
        },
    )
    assert resp.status_code == 201 and isinstance(resp.json["id"], int)
    pending = api.post(
        "/api/subscribers", json={"email": "bo@example.org", "lists": ["news"], "status": "pending"}
    )
    assert pending.status_code == 201
    drain(rt)
    assert [m.rcpt_tos for m in sink.wait_for(1)] == [["bo@example.org"]]
    found = api.get("/api/subscribers?email=ada@example.org").json
    assert found["total"] == 1
    item = found["items"][0]
    assert item["email"] == "ada@example.org" and item["name"] == "Ada"
    assert item["lists"] == [{"slug": "news", "status": "confirmed"}]
    bo = api.get("/api/subscribers?email=bo@example.org").json["items"][0]
    assert bo["lists"] == [{"slug": "news", "status": "pending"}]
    assert api.get("/api/subscribers?email=nobody@example.org").json["items"] == []
    assert api.get(f"/api/subscribers/{item['id']}").json["consents"]["profiling"] is True


def test_subscriber_errors_change_nothing(api, rt):
    api.post("/api/lists", json={"slug": "news", "name": "News"})
    api.post("/api/subscribers", json={"email": "a@example.org", "lists": ["news"], "consent": "x"})
    cases = [
        ({"email": "not an address", "lists": ["news"], "consent": "x"}, 422, "email"),
        ({"email": "b@example.org", "lists": ["nope"], "consent": "x"}, 422, "lists"),
        ({"email": "b@example.org", "lists": ["news"], "status": "bogus"}, 422, "status"),
        ({"email": "b@example.org", "lists": ["news"]}, 422, "consent"),
        ({"email": "A@example.org", "lists": ["news"], "consent": "x"}, 409, "email"),
        (
            {"email": "b@example.org", "name": "x\ny", "lists": ["news"], "consent": "x"},
            422,
            "name",
        ),
        ({"lists": ["news"]}, 422, "email"),
        ({"email": "b@example.org", "surprise": 1}, 422, "surprise"),
    ]
    with rt.db.session() as s:
        before = (
            s.scalar(select(func.count(Subscriber.id))),
            s.scalar(select(func.count(Membership.id))),
            s.scalar(select(func.count(Outbox.id))),
        )
    for body, status, field in cases:
        resp = api.post("/api/subscribers", json=body)
        assert resp.status_code == status, (body, resp.json)
        assert resp.json["error"]["field"] == field and resp.json["error"]["message"]
    resp = api.post("/api/subscribers", data="not json", content_type="application/json")
    assert resp.status_code == 422
    with rt.db.session() as s:
        after = (
            s.scalar(select(func.count(Subscriber.id))),
            s.scalar(select(func.count(Membership.id))),
            s.scalar(select(func.count(Outbox.id))),
        )
    assert after == before


def test_healthz(client):
    assert client.get("/healthz").json == {"status": "ok"}
