"""Segments: every rule shape the benchmark times (each condition kind alone, all/any/not
combinations, events with where-clauses, counts and time windows), with and without a list
audience, counted through the service (the query a live count runs, with the list ids as
constants) on a fixed small dataset, agrees with a direct Python evaluation."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest

from listmgr.services import segments
from tests import segments_support as sup
from tests.test_segments import world  # noqa: F401

PICK = {"c": {"field": "c", "op": "eq", "value": "red"}}
INTEREST = {"interests": "has_any", "value": ["i1"]}
VIEWED = {"event": "e1", "at_least": 2, "within_days": 7}
SHAPES: list[tuple[str, Any]] = [
    ("everyone", {}),
    ("choice eq", PICK["c"]),
    ("choice in", {"field": "c", "op": "in", "value": ["red", "blue"]}),
    ("choice ne", {"field": "c", "op": "ne", "value": "red"}),
    ("number gt", {"field": "n", "op": "gt", "value": 0}),
    ("number between", {"field": "n", "op": "between", "value": [-1, 1]}),
    ("number eq", {"field": "n", "op": "eq", "value": 1}),
    ("text eq", {"field": "t", "op": "eq", "value": "Ada"}),
    ("text contains", {"field": "t", "op": "contains", "value": "ad"}),
    ("date within", {"field": "d", "op": "within_last_days", "value": 5}),
    ("date before", {"field": "d", "op": "before", "value": sup.TODAY.isoformat()}),
    ("boolean eq", {"field": "b", "op": "eq", "value": True}),
    ("multi in", {"field": "m", "op": "in", "value": ["x"]}),
    ("multi contains", {"field": "m", "op": "contains", "value": ["x", "y"]}),
    ("exists", {"field": "m", "op": "exists"}),
    ("created_at within", {"field": "created_at", "op": "within_last_days", "value": 3}),
    ("source eq", {"field": "source", "op": "eq", "value": "form"}),
    ("email contains", {"field": "email", "op": "contains", "value": "@example.org"}),
    ("interests has_any", INTEREST),
    ("interests has_all", {"interests": "has_all", "value": ["i1", "i2"]}),
    ("interests has_none", {"interests": "has_none", "value": ["i1"]}),
    ("list confirmed", {"list": "l2"}),
    ("list any status", {"list": "l1", "status": "any"}),
    ("list level", {"list": "l1", "status": "any", "opt_in_level": "weekly"}),
    ("event ever", {"event": "e1"}),
    ("event 2x in 7 days", VIEWED),
    ("event where", {"event": "e2", "where": {"properties.k": "a"}}),
    ("event where window", {"event": "e1", "where": {"properties.k": 1}, "within_days": 5}),
    ("engagement opened", {"engagement": "opened", "within_days": 7}),
    ("engagement received 2x", {"engagement": "received", "at_least": 2}),
    ("all", {"all": [PICK["c"], INTEREST, VIEWED]}),
    ("any", {"any": [PICK["c"], INTEREST, VIEWED]}),
    ("not", {"not": PICK["c"]}),
    ("all with not", {"all": [PICK["c"], {"not": INTEREST}]}),
    ("not any", {"not": {"any": [PICK["c"], VIEWED]}}),
    (
        "any of all and not",
        {
            "any": [
                {"all": [PICK["c"], {"field": "n", "op": "gt", "value": 0}]},
                {"not": {"event": "e1", "within_days": 5}},
            ]
        },
    ),
    ("all list and any", {"all": [{"list": "l2"}, {"any": [INTEREST, {"event": "e2"}]}]}),
]


def _people(n: int, seed: int) -> list[sup.Person]:
    rnd = random.Random(seed)
    out = []
    for i in range(1, n + 1):
        values = {
            "t": rnd.choice(sup.TEXTS),
            "c": rnd.choice(["red", "green", "blue", 3]),
            "n": rnd.choice([-2, -1, 0, 1, 2, 0.5, "3"]),
            "d": (sup.TODAY - timedelta(days=rnd.randrange(-2, 12))).isoformat(),
            "b": rnd.choice([True, False, "yes"]),
            "m": rnd.sample(["x", "y", "z"], rnd.randrange(0, 4)),
        }
        out.append(
            sup.Person(
                id=i,
                email=f"p{i}@{rnd.choice(['example.org', 'mail.test'])}",
                name=rnd.choice(sup.TEXTS),
                source=rnd.choice(sup.SOURCES),
                created_at=sup.NOW - timedelta(days=rnd.randrange(0, 6)),
                fields={k: v for k, v in values.items() if rnd.random() < 0.8},
                interests=set(rnd.sample(sup.INTERESTS, rnd.randrange(0, 3))),
                members={
                    slug: (rnd.choice(sup.STATUSES), rnd.choice(sup.LEVELS))
                    for slug in sup.LISTS
                    if rnd.random() < 0.7
                },
                events=[
                    (
                        rnd.choice(["e1", "e2"]),
                        rnd.choice([{}, {"k": "a"}, {"k": 1}, {"k": "b"}]),
                        sup.NOW - timedelta(days=rnd.randrange(0, 10), seconds=rnd.randrange(99)),
                    )
                    for _ in range(rnd.randrange(0, 5))
                ],
                sent=[
                    sup.NOW - timedelta(days=rnd.randrange(0, 9)) for _ in range(rnd.randrange(3))
                ],
                engagement=[
                    (rnd.choice(["open", "click"]), sup.NOW - timedelta(days=rnd.randrange(0, 9)))
                    for _ in range(rnd.randrange(3))
                ],
                suppressed=rnd.random() < 0.1,
                paused_until=rnd.choice([None] * 8 + [sup.NOW + timedelta(days=1), sup.NOW]),
            )
        )
    return out


@pytest.fixture
def people(world):
    persons = _people(80, seed=18)
    with world.db.session() as s:
        sup.store(s, persons)
    return persons


@pytest.mark.parametrize("audience", [[], ["l1"], ["l1", "l2"]], ids=["rules", "l1", "l1+l2"])
def test_every_shape_counts_what_python_finds(world, people, audience):
    wrong = []
    for name, rules in SHAPES:
        expected = sum(
            1
            for p in people
            if (not rules or sup.matches(p, rules))
            and (not audience or sup.in_audience(p, audience))
        )
        with world.db.session() as s:  # what a live count runs, at the dataset's "now"
            got = segments.counted(
                s, segments.expression(s, lists=audience, rules=rules, now=sup.NOW)
            )
        if got != expected:
            wrong.append((name, got, expected))
    assert not wrong
    # the dataset tells the shapes apart: most of them match some people but not all
    telling = [n for n, r in SHAPES if 0 < sum(sup.matches(p, r) for p in people if r) < 80]
    assert len(telling) > len(SHAPES) * 2 // 3
