"""Segment rules read as words on the segments page, never as raw JSON."""

from __future__ import annotations

import pytest

from listmgr.segment_words import MAX_WORDS, describe
from listmgr.services import lists, segments
from tests.admin_support import accounts_by_role, session_login  # noqa: F401


@pytest.mark.parametrize(
    ("rules", "words"),
    [
        ({"all": []}, "everyone"),
        ({"all": [{"field": "city", "op": "eq", "value": "Berlin"}]}, "city is Berlin"),
        (
            {
                "all": [
                    {"field": "plan", "op": "in", "value": ["pro", "team"]},
                    {
                        "any": [
                            {"engagement": "opened", "within_days": 30},
                            {"interests": "has_any", "value": ["books", "films"]},
                        ]
                    },
                ]
            },
            "plan is one of pro, team and (opened a campaign in the last 30 days or has any of "
            "the interests books, films)",
        ),
        ({"not": {"list": "news", "status": "any"}}, "not (is on list news)"),
        ({"list": "news"}, "is confirmed on list news"),
        ({"field": "age", "op": "between", "value": [18, 30]}, "age is between 18 and 30"),
        ({"field": "vip", "op": "exists", "value": False}, "vip is not set"),
        (
            {"field": "created_at", "op": "within_last_days", "value": 7},
            "created_at is within the last 7 days",
        ),
        (
            {
                "event": "viewed",
                "where": {"properties.sku": "A1"},
                "at_least": 2,
                "within_days": 14,
            },
            "did viewed where properties.sku is A1 at least 2 times in the last 14 days",
        ),
        ({"engagement": "clicked", "at_least": 3}, "clicked in a campaign at least 3 times"),
        ({"any": []}, "no one"),
    ],
)
def test_rules_read_as_words(rules, words):
    assert describe(rules) == words


def test_a_long_tree_is_cut_with_an_ellipsis():
    rules = {"any": [{"field": f"f{i}", "op": "eq", "value": "x" * 20} for i in range(50)]}
    text = describe(rules)
    assert len(text) == MAX_WORDS and text.endswith("…")


def test_the_segments_page_shows_rules_in_words_escaped(client, rt, accounts_by_role):
    lists.create(rt, slug="news", name="News")
    rules = {"all": [{"field": "name", "op": "contains", "value": "<script>x</script>"}]}
    segments.create(rt, name="Scripted", lists=["news"], rules=rules)
    session_login(client, rt, accounts_by_role["owner"])
    page = client.get("/admin/segments").text
    assert "name contains &lt;script&gt;x&lt;/script&gt;" in page
    assert '{"all"' not in page and "<script>x" not in page
