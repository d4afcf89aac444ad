"""The segment editor: a condition row just added (no value yet) is no error; it is left out
of the count and of the saved rules, and said so."""

from __future__ import annotations

import json

import pytest

from listmgr import segments as compiler
from listmgr.services import lists, segments
from tests.admin_support import accounts_by_role, post_form, session_login  # noqa: F401

FULL = {"field": "email", "op": "contains", "value": "@example.org"}
BLANK = {"field": "email", "op": "contains", "value": ""}


@pytest.mark.parametrize(
    "rules, kept, left_out",
    [
        ({"all": [BLANK]}, {}, 1),
        ({"all": [FULL, BLANK]}, {"all": [FULL]}, 1),
        ({"any": [FULL, {"any": [BLANK]}]}, {"any": [FULL]}, 1),
        ({"not": {"any": [BLANK, {"interests": "has_any", "value": []}]}}, {}, 2),
        ({"all": [{"field": "plan", "op": "in", "value": ["", " "]}]}, {}, 1),
        ({"all": [{"field": "", "op": "eq", "value": "x"}]}, {}, 1),
        ({"all": [{"field": "name", "op": "eq"}]}, {}, 1),
        ({"all": [{"event": " ", "at_least": 1}]}, {}, 1),
        ({"all": [{"list": "", "status": "confirmed"}]}, {}, 1),
        # complete ones stay, whatever they hold
        ({"all": [{"field": "name", "op": "exists"}]}, None, 0),
        ({"all": [{"field": "vip", "op": "eq", "value": False}]}, None, 0),
        ({"all": [{"field": "age", "op": "eq", "value": 0}]}, None, 0),
        ({"all": [{"engagement": "opened"}]}, None, 0),
        ({"all": []}, None, 0),  # an empty group as written stays: it means something
        ({"any": []}, None, 0),
        ("not a rule", None, 0),  # for the compiler to refuse
        ({"all": "x"}, None, 0),
    ],
)
def test_incomplete_conditions_are_left_out(rules, kept, left_out):
    assert compiler.without_incomplete(rules) == (rules if kept is None else kept, left_out)


@pytest.fixture
def owner(client, rt, accounts_by_role):
    session_login(client, rt, accounts_by_role["owner"])
    lists.create(rt, slug="news", name="News")
    return client


def test_saving_with_a_new_empty_condition_row_is_no_error(owner, rt):
    rules = json.dumps({"all": [FULL, BLANK]})
    resp = post_form(
        owner,
        "/admin/segments/new",
        "/admin/segments/new",
        {"name": "Example people", "lists": ["news"], "rules": rules},
    )
    assert resp.status_code == 302
    [seg], _ = segments.all_segments(rt)
    assert seg.rules == {"all": [FULL]}
    page = owner.get(resp.headers["Location"])
    assert page.status_code == 200
    assert "1 condition without a value was left out." in page.text


def test_only_an_empty_condition_saves_a_segment_of_everyone_in_the_lists(owner, rt):
    resp = post_form(
        owner,
        "/admin/segments/new",
        "/admin/segments/new",
        {"name": "Started", "lists": ["news"], "rules": json.dumps({"all": [BLANK, BLANK]})},
    )
    assert resp.status_code == 302
    [seg], _ = segments.all_segments(rt)
    assert seg.rules in ({}, None)
    assert "2 conditions without a value were left out." in owner.get(resp.headers["Location"]).text


def test_counting_with_an_empty_condition_row_is_no_error(owner, rt):
    resp = post_form(
        owner,
        "/admin/segments/new",
        "/admin/segments/count",
        {"name": "", "lists": ["news"], "rules": json.dumps({"all": [FULL, BLANK]})},
    )
    assert resp.status_code == 200
    assert "condition without a value was left out" in resp.text
    assert '<p class="error" id="rules-error" role="alert" hidden>' in resp.text


def test_a_wrong_value_is_still_an_error(owner, rt):
    bad = {"all": [FULL, {"field": "nope", "op": "eq", "value": "x"}]}
    resp = post_form(
        owner,
        "/admin/segments/new",
        "/admin/segments/new",
        {"name": "Broken", "lists": ["news"], "rules": json.dumps(bad)},
    )
    assert resp.status_code == 422 and "nope" in resp.text
    assert segments.all_segments(rt)[0] == []
