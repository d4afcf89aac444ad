"""Typed custom fields and interests: definitions, and values checked on every write path (the
public form, the API, the preference center), with bad values refused and nothing changed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from listmgr.models import ConsentEvent, MailingList, Subscriber, SubscriberInterest, utcnow
from tests.profile_support import (
    API_BAD,
    API_GOOD,
    FORM_CASES,
    counts,
    define_everything,
    make_list,
    snapshot,
)

FORM_KEYS = ["nickname", "height", "birthday", "vip", "plan", "topics"]


def _form(email: str = "ada@example.org", **override) -> dict:
    data = {
        "email": email,
        "name": "Ada",
        **{f"field_{k}": FORM_CASES[k][0] for k in FORM_KEYS},
        "interests": ["python", "rust"],
    }
    data.update(override)
    return data


def _stored(rt, email: str):
    with rt.db.session() as s:
        sub = s.scalar(select(Subscriber).where(Subscriber.email == email))
        assert sub is not None
        interests = set(
            s.scalars(
                select(SubscriberInterest.interest).where(
                    SubscriberInterest.subscriber_id == sub.id
                )
            )
        )
        return sub, interests


@pytest.fixture
def setup(rt):
    define_everything(rt)
    make_list(rt, form_fields=FORM_KEYS, form_interests=["python", "rust"])
    return rt


# -- definitions ---------------------------------------------------------------------------------
def test_field_definitions_through_the_api(rt, api):
    for body in (
        {"key": "city", "label": "City", "type": "text"},
        {"key": "size", "label": "Size", "type": "choice", "choices": ["S", "M", "L"]},
        {
            "key": "tags",
            "label": "Tags",
            "type": "multi_choice",
            "choices": ["a", "b"],
            "editable": False,
        },
        {"key": "score", "label": "Score", "type": "number"},
        {"key": "since", "label": "Customer since", "type": "date"},
        {"key": "beta", "label": "Beta tester", "type": "boolean"},
    ):
        resp = api.post("/api/fields", json=body)
        assert resp.status_code == 201, resp.json
        assert resp.json["key"] == body["key"] and resp.json["type"] == body["type"]
    listed = api.get("/api/fields").json["items"]
    assert [f["key"] for f in listed] == ["city", "size", "tags", "score", "since", "beta"]
    assert listed[2]["editable"] is False and listed[1]["choices"] == ["S", "M", "L"]

    before = counts(rt)
    for body, field in [
        ({"key": "city", "label": "Town", "type": "text"}, "key"),  # duplicate
        ({"key": "email", "label": "Mail", "type": "text"}, "key"),  # built-in name
        ({"key": "Bad Key", "label": "X", "type": "text"}, "key"),
        ({"key": "colour", "label": "Colour", "type": "colour"}, "type"),
        ({"key": "colour", "label": "Colour", "type": "choice"}, "choices"),  # no choices
        ({"key": "colour", "label": "Colour", "type": "choice", "choices": ["a", "a"]}, "choices"),
        ({"key": "colour", "label": "Colour", "type": "text", "choices": ["a"]}, "choices"),
        ({"key": "colour", "label": "", "type": "text"}, "label"),
        ({"key": "colour", "label": "Line\nbreak", "type": "text"}, "label"),
        ({"key": "colour", "label": "Colour", "type": "text", "editable": "yes"}, "editable"),
    ]:
        resp = api.post("/api/fields", json=body)
        assert resp.status_code in (409, 422), (body, resp.json)
        assert resp.json["error"]["field"] == field, (body, resp.json)
    assert counts(rt) == before

    resp = api.patch(
        "/api/fields/size", json={"label": "Shirt size", "choices": ["S", "M", "L", "XL"]}
    )
    assert resp.status_code == 200 and resp.json["label"] == "Shirt size"
    resp = api.patch("/api/fields/size", json={"type": "text"})
    assert resp.status_code == 422 and resp.json["error"]["field"] == "type"
    assert api.patch("/api/fields/nope", json={"label": "x"}).status_code == 404

    resp = api.post("/api/interests", json={"key": "python", "label": "Python"})
    assert resp.status_code == 201 and resp.json["key"] == "python"
    assert api.post("/api/interests", json={"key": "python", "label": "Again"}).status_code == 409
    assert (
        api.post("/api/interests", json={"key": "no spaces", "label": "X"}).json["error"]["field"]
        == "key"
    )
    assert [i["key"] for i in api.get("/api/interests").json["items"]] == ["python"]
    assert (
        api.patch("/api/interests/python", json={"label": "Python 3"}).json["label"] == "Python 3"
    )


def test_choice_in_use_cannot_be_removed_and_deleting_a_field_removes_values(setup, api):
    rt = setup
    resp = api.post(
        "/api/subscribers",
        json={
            "email": "ada@example.org",
            "lists": ["news"],
            "consent": "asked in person",
            "fields": {"plan": "pro", "topics": ["news"], "height": 170},
            "interests": ["python"],
        },
    )
    assert resp.status_code == 201
    sid = resp.json["id"]
    before = counts(rt)
    resp = api.patch("/api/fields/plan", json={"choices": ["free"]})
    assert resp.status_code == 409 and "pro" in resp.json["error"]["message"]
    resp = api.patch("/api/fields/topics", json={"choices": ["tips", "events"]})
    assert resp.status_code == 409 and resp.json["error"]["field"] == "choices"
    assert api.get("/api/fields/plan").json["choices"] == ["free", "pro"]
    assert counts(rt) == before
    # A choice nobody holds can go.
    resp = api.patch("/api/fields/topics", json={"choices": ["news", "tips"]})
    assert resp.status_code == 200 and resp.json["choices"] == ["news", "tips"]

    assert api.delete("/api/fields/plan").status_code == 204
    assert api.delete("/api/interests/python").status_code == 204
    got = api.get(f"/api/subscribers/{sid}").json
    assert got["fields"] == {"topics": ["news"], "height": 170}
    assert got["interests"] == []
    with rt.db.session() as s:
        lst = s.scalar(select(MailingList).where(MailingList.slug == "news"))
        assert "plan" not in lst.form_fields and "python" not in lst.form_interests
    assert api.get("/api/fields/plan").status_code == 404


def test_fields_api_needs_permission(rt, client):
    from listmgr.services import accounts

    analyst = accounts.create_token(rt, role="analyst", name="a")
    editor = accounts.create_token(rt, role="editor", name="e")
    body = {"key": "city", "label": "City", "type": "text"}
    assert client.post("/api/fields", json=body).status_code == 401
    assert (
        client.get("/api/fields", headers={"Authorization": f"Bearer {analyst}"}).status_code == 403
    )
    assert (
        client.get("/api/fields", headers={"Authorization": f"Bearer {editor}"}).status_code == 200
    )
    assert (
        client.post(
            "/api/fields", json=body, headers={"Authorization": f"Bearer {editor}"}
        ).status_code
        == 403
    )
    assert counts(rt)["field_def"] == 0


# -- the public sign-up form -----------------------------------------------------------------
def test_form_stores_every_type(setup, client):
    rt = setup
    page = client.get("/subscribe/news")
    for key in FORM_KEYS:
        assert f'name="field_{key}"'.encode() in page.data
    assert b'name="field_account_id"' not in page.data
    where = [page.data.index(f'name="field_{key}"'.encode()) for key in FORM_KEYS]
    assert where == sorted(where)  # in the order the list chose, not by key
    resp = client.post("/subscribe/news", data=_form())
    assert resp.status_code == 200, resp.data
    sub, interests = _stored(rt, "ada@example.org")
    assert sub.fields == {
        "nickname": "Ada",
        "height": 172.5,
        "birthday": "1990-12-10",
        "vip": True,
        "plan": "pro",
        "topics": ["news", "events"],
    }
    assert isinstance(sub.fields["height"], float) and sub.fields["vip"] is True
    assert interests == {"python", "rust"}


def test_form_leaves_empty_inputs_out(setup, client):
    rt = setup
    data = {"email": "bo@example.org", **{f"field_{k}": "" for k in FORM_KEYS}}
    data["field_height"] = "7"
    assert client.post("/subscribe/news", data=data).status_code == 200
    sub, interests = _stored(rt, "bo@example.org")
    assert sub.fields == {"height": 7} and isinstance(sub.fields["height"], int)
    assert interests == set()


@pytest.mark.parametrize("key", FORM_KEYS)
def test_form_refuses_a_bad_value_of_each_type(setup, client, key):
    rt = setup
    before = counts(rt)
    resp = client.post("/subscribe/news", data=_form(**{f"field_{key}": FORM_CASES[key][2]}))
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    label = {
        "nickname": "Nickname",
        "height": "Height in cm",
        "birthday": "Birthday",
        "vip": "VIP",
        "plan": "Plan",
        "topics": "Topics",
    }[key]
    assert label in page and FORM_CASES[key][3] in page, page
    assert counts(rt) == before


def test_a_refused_form_shows_what_was_entered_again(setup, client):
    resp = client.post(
        "/subscribe/news", data=_form(email="not an address", field_nickname='<b>"Ada"</b>')
    )
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    assert 'name="field_nickname" value="&lt;b&gt;&#34;Ada&#34;&lt;/b&gt;"' in page
    assert 'name="field_height" step="any" value="172.5"' in page
    assert 'name="field_birthday" value="1990-12-10"' in page
    assert 'name="field_vip" value="true" checked' in page
    assert '<option value="pro" selected>' in page and '<option value="free">' in page
    assert 'name="field_topics" value="news" checked' in page
    assert 'name="field_topics" value="events" checked' in page
    assert 'name="interests" value="python" checked' in page
    fresh = client.get("/subscribe/news").get_data(as_text=True)
    assert " checked" not in fresh and " selected" not in fresh


def test_form_refuses_fields_and_interests_it_does_not_offer(setup, client):
    rt = setup
    before = counts(rt)
    resp = client.post("/subscribe/news", data=_form(field_account_id="A-1"))
    assert resp.status_code == 422 and "Account number cannot be set here" in resp.get_data(
        as_text=True
    )
    resp = client.post("/subscribe/news", data=_form(interests=["gardening"]))
    assert resp.status_code == 422 and "gardening" in resp.get_data(as_text=True)
    resp = client.post("/subscribe/news", data=_form(field_shoe_size="44"))
    assert resp.status_code == 422 and "shoe_size" in resp.get_data(as_text=True)
    assert counts(rt) == before


def test_json_sign_up_names_the_field(setup, client):
    rt = setup
    before = counts(rt)
    resp = client.post(
        "/subscribe/news", json={"email": "cy@example.org", "fields": {"birthday": "31.12.1990"}}
    )
    assert resp.status_code == 422
    assert resp.json["error"]["field"] == "fields.birthday"
    assert "Birthday" in resp.json["error"]["message"]
    assert counts(rt) == before


# -- the API ------------------------------------------------------------------------------------
def test_api_stores_every_type(setup, api):
    resp = api.post(
        "/api/subscribers",
        json={
            "email": "ada@example.org",
            "name": "Ada",
            "lists": ["news"],
            "consent": "in person",
            "fields": {k: v[0] for k, v in API_GOOD.items()} | {"account_id": "A-1"},
            "interests": ["gardening", "python"],
        },
    )
    assert resp.status_code == 201, resp.json
    expected = {k: v[1] for k, v in API_GOOD.items()} | {"account_id": "A-1"}
    assert resp.json["fields"] == expected
    assert sorted(resp.json["interests"]) == ["gardening", "python"]
    sub, interests = _stored(setup, "ada@example.org")
    assert sub.fields == expected and sub.fields["vip"] is False
    assert type(sub.fields["height"]) is int


@pytest.mark.parametrize("key,bad", [(k, v) for k, values in API_BAD.items() for v in values])
def test_api_refuses_a_bad_value(setup, api, key, bad):
    rt = setup
    before = counts(rt)
    resp = api.post(
        "/api/subscribers",
        json={
            "email": "ada@example.org",
            "lists": ["news"],
            "consent": "in person",
            "fields": {"nickname": "Ada", key: bad},
        },
    )
    assert resp.status_code == 422, resp.json
    assert resp.json["error"]["field"] == f"fields.{key}"
    assert counts(rt) == before


def test_api_refuses_unknown_fields_and_interests(setup, api):
    rt = setup
    before = counts(rt)
    resp = api.post(
        "/api/subscribers", json={"email": "ada@example.org", "fields": {"shoe_size": 44}}
    )
    assert resp.status_code == 422 and resp.json["error"]["field"] == "fields.shoe_size"
    resp = api.post(
        "/api/subscribers", json={"email": "ada@example.org", "interests": ["python", "knitting"]}
    )
    assert resp.status_code == 422 and resp.json["error"]["field"] == "interests"
    assert "knitting" in resp.json["error"]["message"]
    assert counts(rt) == before


def test_api_profile_edit(setup, api):
    rt = setup
    sid = api.post(
        "/api/subscribers",
        json={
            "email": "ada@example.org",
            "name": "Ada",
            "fields": {"nickname": "Ada", "height": 170},
            "interests": ["python"],
        },
    ).json["id"]
    resp = api.patch(
        f"/api/subscribers/{sid}",
        json={
            "name": "Ada Lovelace",
            "fields": {"height": "171.5", "nickname": None, "vip": True},
            "interests": ["rust", "gardening"],
            "consents": {"profiling": True},
            "consent": "asked on the phone",
        },
    )
    assert resp.status_code == 200, resp.json
    assert resp.json["name"] == "Ada Lovelace"
    assert resp.json["fields"] == {"height": 171.5, "vip": True}
    assert sorted(resp.json["interests"]) == ["gardening", "rust"]
    assert resp.json["consents"] == {"profiling": True, "tracking": False}
    with rt.db.session() as s:
        events = [
            (e.kind, e.detail.get("given"), e.wording)
            for e in s.scalars(
                select(ConsentEvent)
                .where(ConsentEvent.subscriber_id == sid)
                .order_by(ConsentEvent.id)
            )
        ]
    assert events[-2:] == [("profile", None, ""), ("consent_profiling", True, "asked on the phone")]
    # Interests left out stay as they are.
    assert api.patch(f"/api/subscribers/{sid}", json={"fields": {"plan": "pro"}}).json[
        "interests"
    ] == ["gardening", "rust"]

    before, rows = counts(rt), snapshot(rt)
    for body, field in [
        ({"fields": {"height": "very"}}, "fields.height"),
        ({"fields": {"plan": "pro"}, "interests": ["nope"]}, "interests"),
        ({"name": "Ada\r\nBcc: x@example.org"}, "name"),
        ({"consents": {"profiling": "yes"}}, "consents.profiling"),
    ]:
        resp = api.patch(f"/api/subscribers/{sid}", json=body)
        assert resp.status_code == 422 and resp.json["error"]["field"] == field, resp.json
    assert counts(rt) == before and snapshot(rt) == rows
    assert api.patch("/api/subscribers/999999", json={"name": "X"}).status_code == 404


# -- the preference center -------------------------------------------------------------------
def _member(api, **extra):
    body = {
        "email": "ada@example.org",
        "name": "Ada",
        "lists": ["news"],
        "consent": "form",
        "fields": {
            "nickname": "Ada",
            "birthday": "1990-12-10",
            "account_id": "A-1",
            "topics": ["news"],
        },
        "interests": ["python"],
    }
    body.update(extra)
    resp = api.post("/api/subscribers", json=body)
    assert resp.status_code == 201, resp.json
    return resp.json["id"]


def _prefs_form(**override):
    data = {
        "action": "save",
        "profile_form": "1",
        "lists": ["news"],
        "field_nickname": "Ada L.",
        "field_height": "180",
        "field_birthday": "",
        "field_vip": "true",
        "field_plan": "free",
        "field_topics": ["tips", "events"],
        "interests": ["rust"],
        "pause": "30",
        "consent_profiling": "1",
    }
    data.update(override)
    return {k: v for k, v in data.items() if v is not None}


def test_preference_center_shows_and_saves_the_profile(setup, api, client):
    rt = setup
    sid = _member(api)
    token = rt.tokens.manage(sid)
    page = client.get(f"/p/{token}").get_data(as_text=True)
    assert 'name="field_nickname" value="Ada"' in page
    assert 'name="field_birthday" value="1990-12-10"' in page
    assert 'value="news" checked' in page  # topics
    assert 'name="interests" value="python" checked' in page
    assert "field_account_id" not in page  # not editable by the subscriber
    assert 'name="consent_profiling"' in page and "deletes" in page

    resp = client.post(f"/p/{token}", data=_prefs_form())
    assert resp.status_code == 200, resp.data
    sub, interests = _stored(rt, "ada@example.org")
    assert sub.fields == {
        "nickname": "Ada L.",
        "height": 180,
        "vip": True,
        "plan": "free",
        "topics": ["tips", "events"],
        "account_id": "A-1",
    }
    assert interests == {"rust"}
    assert sub.consent_profiling is True and sub.consent_tracking is False
    assert abs(sub.paused_until - (utcnow() + timedelta(days=30))) < timedelta(minutes=5)
    with rt.db.session() as s:
        events = {
            e.kind: e
            for e in s.scalars(
                select(ConsentEvent).where(
                    ConsentEvent.subscriber_id == sid, ConsentEvent.source == "preferences"
                )
            )
        }
    assert set(events) == {"preference", "pause", "consent_profiling"}
    assert sorted(events["preference"].detail["fields"]) == [
        "birthday",
        "height",
        "nickname",
        "plan",
        "topics",
        "vip",
    ]
    assert events["preference"].detail["interests_added"] == ["rust"]
    assert events["consent_profiling"].detail == {"given": True}
    assert "activity" in events["consent_profiling"].wording
    assert events["consent_profiling"].ip == "127.0.0.1"

    # The page shows the saved state; saving it unchanged writes no event.
    page = client.get(f"/p/{token}").get_data(as_text=True)
    assert 'value="keep" selected' in page and 'id="consent_profiling" checked' in page
    n = counts(rt)["consent_event"]
    same = _prefs_form(field_nickname="Ada L.", pause="keep")
    assert client.post(f"/p/{token}", data=same).status_code == 200
    assert counts(rt)["consent_event"] == n

    # Unticking a box answered before stores "no"; clearing the pause resumes mail.
    assert (
        client.post(
            f"/p/{token}", data=_prefs_form(field_vip=None, pause="", consent_profiling=None)
        ).status_code
        == 200
    )
    sub, _ = _stored(rt, "ada@example.org")
    assert sub.fields["vip"] is False and sub.paused_until is None
    assert sub.consent_profiling is False


def test_preference_center_refuses_bad_values_and_changes_nothing(setup, api, client):
    rt = setup
    sid = _member(api)
    token = rt.tokens.manage(sid)
    before, rows = counts(rt), snapshot(rt)
    cases = [({f"field_{k}": FORM_CASES[k][2]}, FORM_CASES[k][3]) for k in FORM_KEYS]
    cases += [
        ({"field_account_id": "B-2"}, "Account number cannot be set here"),
        ({"interests": ["knitting"]}, "knitting"),
        ({"pause": "7"}, "pause"),
        ({"lists": ["news", "nope"]}, "nope"),
        ({"field_nickname": "x" * 1001}, "longer than 1000"),
    ]
    for override, words in cases:
        # Leaving the list in the same form must not happen either.
        resp = client.post(f"/p/{token}", data=_prefs_form(**{"lists": [], **override}))
        assert resp.status_code == 422, override
        assert words in resp.get_data(as_text=True), (override, resp.get_data(as_text=True))
        assert counts(rt) == before and snapshot(rt) == rows, override


def test_a_form_without_the_profile_section_leaves_consents_alone(setup, api, client):
    rt = setup
    sid = _member(api, consents={"profiling": True, "tracking": True})
    token = rt.tokens.manage(sid)
    resp = client.post(f"/p/{token}", data={"action": "save", "lists": ["news"]})
    assert resp.status_code == 200
    sub, interests = _stored(rt, "ada@example.org")
    assert sub.consent_profiling and sub.consent_tracking and interests == {"python"}
