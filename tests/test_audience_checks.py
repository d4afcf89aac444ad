"""What a list offers and what a profile holds is checked the same way on every path: lists
name only defined fields and interests and distinct opt-in levels; the admin profile edit
refuses what the public form refuses; numbers are finite and at most 2**53 - 1."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from listmgr.errors import ValidationError
from listmgr.fieldvalues import FieldValueError, coerce
from listmgr.models import Subscriber
from listmgr.services import lists, subscribers
from tests.admin_support import accounts_by_role, post_form, session_login  # noqa: F401
from tests.profile_support import counts, define_everything, make_list, snapshot

BIGGEST = 2**53 - 1


@pytest.fixture
def owner(client, rt, accounts_by_role):
    session_login(client, rt, accounts_by_role["owner"])
    return client


@pytest.fixture
def defined(rt):
    define_everything(rt)
    return rt


def _fields(rt, sid: int) -> dict[str, Any]:
    with rt.db.session() as s:
        return dict(s.get(Subscriber, sid).fields or {})


# -- 1. lists: offered fields and interests, opt-in levels --------------------------------------
BAD_LISTS = [
    ({"form_fields": ["nosuch"]}, "form_fields[0]", "there is no field 'nosuch'"),
    ({"form_fields": ["nickname", "nosuch"]}, "form_fields[1]", "there is no field 'nosuch'"),
    ({"form_fields": ["vip", "vip"]}, "form_fields[1]", "appears twice"),
    ({"form_interests": ["nosuch"]}, "form_interests[0]", "there is no interest 'nosuch'"),
    ({"form_interests": ["python", "nosuch"]}, "form_interests[1]", "no interest 'nosuch'"),
    ({"opt_in_levels": ["a", "a"]}, "opt_in_levels[1]", "opt-in levels must be unique"),
    ({"opt_in_levels": ["weekly", " weekly "]}, "opt_in_levels[1]", "must be unique"),
    (
        {"opt_in_levels": [""]},
        "opt_in_levels[0]",
        "an opt-in level must be one line of 1 to 64 characters",
    ),
    ({"opt_in_levels": ["weekly", "   "]}, "opt_in_levels[1]", "one line of 1 to 64"),
    ({"opt_in_levels": ["x" * 65]}, "opt_in_levels[0]", "one line of 1 to 64"),
    ({"opt_in_levels": ["weekly\nor daily"]}, "opt_in_levels[0]", "one line of 1 to 64"),
    ({"opt_in_levels": ["weekly\u2028or daily"]}, "opt_in_levels[0]", "one line of 1 to 64"),
    ({"opt_in_levels": ["weekly\x85daily"]}, "opt_in_levels[0]", "one line of 1 to 64"),
    ({"opt_in_levels": [f"level {i}" for i in range(21)]}, "opt_in_levels", "at most 20"),
]


@pytest.mark.parametrize("body,field,message", BAD_LISTS)
def test_api_refuses_a_list_offering_what_does_not_exist(defined, api, body, field, message):
    rt = defined
    before = counts(rt)
    resp = api.post("/api/lists", json={"slug": "bad1", "name": "B", **body})
    assert resp.status_code == 422, resp.json
    assert resp.json["error"]["field"] == field
    assert message in resp.json["error"]["message"]
    assert counts(rt) == before


@pytest.mark.parametrize("body,field,message", BAD_LISTS)
def test_api_refuses_the_same_on_update_and_changes_nothing(defined, api, body, field, message):
    rt = defined
    make_list(
        rt, "news", form_fields=["nickname"], form_interests=["rust"], opt_in_levels=["weekly"]
    )
    kept = lists.get(rt, "news")
    resp = api.patch("/api/lists/news", json=body)
    assert resp.status_code == 422, resp.json
    assert resp.json["error"]["field"] == field
    assert message in resp.json["error"]["message"]
    assert lists.get(rt, "news") == kept


def test_defined_fields_interests_and_good_levels_are_stored(defined, api):
    longest = "y" * 64
    resp = api.post(
        "/api/lists",
        json={
            "slug": "good",
            "name": "Good",
            "form_fields": ["nickname", "vip"],
            "form_interests": ["python"],
            "opt_in_levels": [" monthly digest only ", longest],
        },
    )
    assert resp.status_code == 201, resp.json
    assert (resp.json["form_fields"], resp.json["form_interests"], resp.json["opt_in_levels"]) == (
        ["nickname", "vip"],
        ["python"],
        ["monthly digest only", longest],
    )
    resp = api.patch("/api/lists/good", json={"form_fields": [], "opt_in_levels": []})
    assert resp.status_code == 200, resp.json
    assert (resp.json["form_fields"], resp.json["opt_in_levels"]) == ([], [])


def test_admin_list_form_shows_the_error_and_stores_nothing(defined, owner):
    rt = defined
    before = counts(rt)
    resp = post_form(
        owner,
        "/admin/lists/new",
        "/admin/lists/new",
        {"slug": "bad1", "name": "B", "opt_in": "double", "form_fields": "nickname\nnosuch"},
    )
    assert resp.status_code == 422
    assert "there is no field &#39;nosuch&#39;" in resp.text
    assert counts(rt) == before

    make_list(rt, "kept", opt_in_levels=["weekly"])
    kept = lists.get(rt, "kept")
    for form, words in [
        ({"form_interests": "gardening\nknitting"}, "there is no interest &#39;knitting&#39;"),
        ({"opt_in_levels": "daily\ndaily"}, "opt-in levels must be unique"),
    ]:
        resp = post_form(
            owner,
            "/admin/lists/kept",
            "/admin/lists/kept",
            {"name": "Changed", "opt_in": "single", **form},
        )
        assert resp.status_code == 422 and words in resp.text, resp.text
        assert lists.get(rt, "kept") == kept


def test_preference_center_labels_the_default_level_apart_from_the_lists_own(defined, client):
    rt = defined
    make_list(rt, "news", opt_in_levels=["everything", "monthly digest only"])
    sid = subscribers.create(rt, email="ada@example.org", lists=["news"], consent="in person")
    page = client.get(f"/p/{rt.tokens.manage(sid)}")
    assert page.status_code == 200, page.text
    assert ">All mail (the default)</option>" in page.text
    assert page.text.count(">everything</option>") == 1
    assert ">Everything</option>" not in page.text


# -- 2. the admin profile edit checks values like every other path ------------------------------
@pytest.fixture
def person(defined):
    rt = defined
    make_list(rt, "news", form_fields=["vip", "height"])
    return subscribers.create(
        rt,
        email="ada@example.org",
        name="Ada",
        lists=["news"],
        consent="in person",
        fields={"vip": True, "height": 170, "nickname": "Ada"},
    )


@pytest.mark.parametrize(
    "form,label,words",
    [
        ({"field_vip": "maybe"}, "VIP", "must be yes or no"),
        ({"field_vip": "2"}, "VIP", "must be yes or no"),
        ({"field_vip": ["true", "false"]}, "VIP", "takes one value, not 2"),
        ({"field_nosuch": "1"}, "nosuch", "There is no field"),
    ],
)
def test_admin_edit_refuses_what_it_does_not_understand(defined, owner, person, form, label, words):
    rt = defined
    page = f"/admin/subscribers/{person}"
    before, rows = counts(rt), snapshot(rt)
    resp = post_form(
        owner,
        page,
        f"{page}/edit",
        {
            "name": "Ada Changed",
            "field_vip": "true",
            "field_height": "170",
            "field_nickname": "Ada",
            **form,
        },
    )
    assert resp.status_code == 422, resp.text
    assert label in resp.text and words in resp.text, resp.text
    assert counts(rt) == before and snapshot(rt) == rows
    assert _fields(rt, person) == {"vip": True, "height": 170, "nickname": "Ada"}


def test_admin_edit_takes_the_booleans_the_public_form_takes(defined, owner, person):
    rt = defined
    page = f"/admin/subscribers/{person}"
    html = owner.get(page).text  # the page's select sends "", "true" or "false"
    assert 'name="field_vip"' in html and 'value="true"' in html and 'value="false"' in html
    spellings = [
        ("true", True),
        ("1", True),
        ("yes", True),
        ("TRUE", True),
        ("on", True),
        ("Y", True),
        ("false", False),
        ("0", False),
        ("No", False),
        ("off", False),
        ("", None),
    ]
    for i, (spelling, value) in enumerate(spellings):
        resp = post_form(
            owner,
            page,
            f"{page}/edit",
            {"name": "Ada", "field_vip": spelling, "field_height": "170"},
        )
        assert resp.status_code == 302, (spelling, resp.text)
        assert _fields(rt, person).get("vip") is value, spelling
        # The public sign-up form reads the same spelling the same way.
        email = f"bo{i}@example.org"
        resp = owner.post("/subscribe/news", data={"email": email, "field_vip": spelling})
        assert resp.status_code == 200, (spelling, resp.text)
        with rt.db.session() as s:
            bo = s.scalar(select(Subscriber).where(Subscriber.email == email))
            assert (bo.fields or {}).get("vip") is value, spelling
    # Every other input of the page still saves.
    resp = post_form(
        owner,
        page,
        f"{page}/edit",
        {
            "name": "Ada",
            "field_vip": "false",
            "field_height": "180.5",
            "field_nickname": "",
            "field_topics": ["news", "tips"],
            "field_plan": "pro",
            "field_birthday": "1990-12-10",
        },
    )
    assert resp.status_code == 302, resp.text
    assert _fields(rt, person) == {
        "vip": False,
        "height": 180.5,
        "topics": ["news", "tips"],
        "plan": "pro",
        "birthday": "1990-12-10",
    }


# -- 3. one rule for large numbers --------------------------------------------------------------
def test_api_takes_numbers_up_to_2_53_minus_1_and_refuses_larger(defined, api):
    rt = defined
    before = counts(rt)
    for value in (1e308, float(2**53), 2**53, -(2**53), 2**70, -1.5e16):
        resp = api.post(
            "/api/subscribers", json={"email": "ada@example.org", "fields": {"height": value}}
        )
        assert resp.status_code == 422, (value, resp.json)
        assert resp.json["error"] == {
            "code": "invalid",
            "field": "fields.height",
            "message": "Height in cm is too large.",
        }, value
        assert counts(rt) == before
    for i, value in enumerate((BIGGEST, -BIGGEST, float(BIGGEST), 1.5e15, 0.5)):
        resp = api.post(
            "/api/subscribers", json={"email": f"ada{i}@example.org", "fields": {"height": value}}
        )
        assert resp.status_code == 201, (value, resp.json)
        assert resp.json["fields"]["height"] == value


@pytest.mark.parametrize(
    "text",
    [
        "99999999999999999999999999",
        "9007199254740992",
        "-9007199254740992",
        "1e308",
        "1e400",
        "9.1e15",
        "0" * 5 + "9" * 20,
        "9" * 5000,
    ],
)
def test_forms_refuse_numbers_beyond_2_53(defined, owner, person, text):
    rt = defined
    before, rows = counts(rt), snapshot(rt)
    page = f"/admin/subscribers/{person}"
    resp = post_form(
        owner, page, f"{page}/edit", {"name": "Ada", "field_vip": "true", "field_height": text}
    )
    assert resp.status_code == 422 and "Height in cm is too large." in resp.text, resp.text
    resp = owner.post("/subscribe/news", data={"email": "bo@example.org", "field_height": text})
    assert resp.status_code == 422 and "Height in cm is too large." in resp.text, resp.text
    assert counts(rt) == before and snapshot(rt) == rows


def test_forms_keep_whole_numbers_up_to_2_53_minus_1_exactly(defined, client):
    rt = defined
    make_list(rt, "news", form_fields=["height"])
    for i, (text, stored) in enumerate(
        [
            ("9007199254740991", BIGGEST),
            ("-9007199254740991", -BIGGEST),
            ("0009007199254740991", BIGGEST),
            ("1234567890123456", 1234567890123456),
            ("9.0e15", 9.0e15),
            ("172.5", 172.5),
        ]
    ):
        email = f"bo{i}@example.org"
        resp = client.post("/subscribe/news", data={"email": email, "field_height": text})
        assert resp.status_code == 200, (text, resp.text)
        with rt.db.session() as s:
            height = s.scalar(select(Subscriber).where(Subscriber.email == email)).fields["height"]
        assert height == stored and type(height) is type(stored), (text, height)


def test_one_rule_for_every_number() -> None:
    """CSV imports use the same parser as the forms and the API."""
    for value, words in [
        (float("inf"), "is too large"),
        (float("-inf"), "is too large"),
        (1e308, "is too large"),
        ("1e308", "is too large"),
        (2**53, "is too large"),
        ("9" * 100_000, "is too large"),
        (float("nan"), "finite"),
        ("Infinity", "must be a number"),
        ("12 cm", "must be a number"),
    ]:
        with pytest.raises(FieldValueError, match=words):
            coerce("number", [], value, "Age")
    assert coerce("number", [], " -9007199254740991 ", "Age") == -BIGGEST


def test_update_subscriber_refuses_large_numbers(defined, person):
    rt = defined
    with pytest.raises(ValidationError, match="too large") as caught:
        subscribers.update(rt, person, fields={"height": 1e300})
    assert caught.value.field == "fields.height"
    assert _fields(rt, person)["height"] == 170
