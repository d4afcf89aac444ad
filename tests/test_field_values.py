"""The indexed field values (subscriber_field_value) stay in step with subscriber.fields on every
way a profile is written — the API and admin, a sign-up, the preference center, CSV imports
(PostgreSQL's COPY path too), deleting a field definition, erasure — and with what plain SQL
(an older release, a hand-made fix) writes, odd types, long and unicode text included; and the
segment counts over odd values are those of the values as stored."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import create_engine, select, text, update

from listmgr import schema
from listmgr.models import LONG_TEXT, FieldDef, Subscriber, SubscriberFieldValue
from listmgr.services import fielddefs, imports, lists, privacy, segments, subscribers
from listmgr.services.subscriptions import Origin, manage_token, subscribe, update_profile
from tests.conftest import drain
from tests.test_migrate import empty_url  # noqa: F401

CONSENT = "imported: existing customers, consent recorded on 2024-05-01"
FIELDS = {
    "t": ("text", []),
    "n": ("number", []),
    "d": ("date", []),
    "b": ("boolean", []),
    "c": ("choice", ["red", "blue"]),
    "m": ("multi_choice", ["x", "y", "z"]),
}
LONG = "ü" * (LONG_TEXT // 2 + 1)  # more bytes than the index holds


def _text(value: str) -> tuple[str | None, str | None]:
    return (value, None) if len(value.encode()) <= LONG_TEXT else (None, value)


def expected(sid: int, fields: Any) -> set[tuple[Any, ...]]:
    """The rows the database keeps for one subscriber's fields (the triggers' Python twin)."""
    rows: set[tuple[Any, ...]] = set()
    if not isinstance(fields, dict):
        return rows
    for key, value in fields.items():
        if len(key.encode()) > 64:
            continue
        if isinstance(value, bool):
            rows.add((sid, key, 0, "boolean", None, None, None, value))
        elif isinstance(value, (int, float)):
            rows.add((sid, key, 0, "number", None, None, float(value), None))
        elif isinstance(value, str):
            rows.add((sid, key, 0, "string", *_text(value), None, None))
        elif isinstance(value, list):
            for i, item in enumerate(value, 1):
                held = _text(item) if isinstance(item, str) else (None, None)
                rows.add((sid, key, i, "item", *held, None, None))
    return rows


def assert_in_step(rt: Any) -> None:
    with rt.db.session() as s:
        rows_in_step(s)


def rows_in_step(s: Any) -> None:
    """Every subscriber's rows are those of its fields (s: a session or a connection)."""
    want = set()
    for sid, fields in s.execute(select(Subscriber.id, Subscriber.fields)):
        want |= expected(sid, fields)
    got = set(
        s.execute(
            select(
                SubscriberFieldValue.subscriber_id,
                SubscriberFieldValue.key,
                SubscriberFieldValue.position,
                SubscriberFieldValue.kind,
                SubscriberFieldValue.value_text,
                SubscriberFieldValue.value_long,
                SubscriberFieldValue.value_number,
                SubscriberFieldValue.value_bool,
            )
        ).all()
    )
    assert got == want


@pytest.fixture
def world(rt):
    lists.create(rt, slug="news", name="News")
    with rt.db.session() as s:
        for key, (kind, choices) in FIELDS.items():
            s.add(FieldDef(key=key, label=key.upper(), type=kind, choices=choices))
    return rt


def _id(rt: Any, email: str) -> int:
    with rt.db.session() as s:
        sid = s.scalar(select(Subscriber.id).where(Subscriber.email == email))
    assert sid is not None
    return sid


def test_every_write_path_keeps_the_values_in_step(world, tmp_path: Path):
    rt = world
    admin = Origin(source="admin", actor="owner")
    ada = subscribers.create(
        rt,
        email="ada@example.org",
        lists=["news"],
        consent="asked in person",
        fields={
            "t": "Zoë  ",
            "n": "007",
            "d": "2024-05-31",
            "b": "yes",
            "c": "red",
            "m": ["y", "x"],
        },
        origin=admin,
    )
    assert_in_step(rt)
    subscribers.update(rt, ada, fields={"t": None, "n": 2.5, "m": ["z"]}, origin=admin)
    assert_in_step(rt)

    subscribe(rt, list_slug="news", email="bo@example.org", fields={"t": "Straße", "b": "no"})
    drain(rt)
    assert_in_step(rt)
    with rt.db.session() as s:
        bo = s.scalar(select(Subscriber).where(Subscriber.email == "bo@example.org"))
        assert bo is not None
        token = manage_token(rt, bo)
    update_profile(
        rt,
        token,
        fields={"t": "", "n": "-3", "c": "blue", "m": ["x", "z"]},
        interests=[],
        pause=None,
        consents={},
        origin=Origin(source="preferences"),
    )
    assert_in_step(rt)

    csv = tmp_path / "people.csv"
    csv.write_text(
        "email,t,n,d,b,c,m\n"
        "bo@example.org,new text,42,2025-01-02,true,red,y\n"
        "cy@example.org,\u2603 \\N,1e3,,0,,x|y\n"
        "di@example.org,,,,,,\n",
        encoding="utf-8",
    )
    job = imports.create_job(rt, path=csv, list_slug="news", consent=CONSENT, actor="t")
    info = imports.run_job(rt, job)
    assert info is not None and info.status == "done", info
    assert_in_step(rt)

    fielddefs.delete_field(rt, "m")
    assert_in_step(rt)
    with rt.db.session() as s:
        assert not s.scalars(
            select(SubscriberFieldValue).where(SubscriberFieldValue.key == "m")
        ).all()

    erased = _id(rt, "bo@example.org")
    privacy.erase_subscriber(rt, erased, origin=admin)
    assert_in_step(rt)
    with rt.db.session() as s:
        left = select(SubscriberFieldValue).where(SubscriberFieldValue.subscriber_id == erased)
        assert s.scalar(left) is None


ODD: list[Any] = [
    {"t": LONG, "c": "red", "m": ["x", LONG, 3, None, ["x"], {"x": 1}, "x"]},
    {"t": "", "n": True, "b": 1, "d": "not a date", "c": 3, "m": []},
    {"n": 12345678901234567, "b": False, "t": None, "m": "x"},
    {"t": {"nested": "x"}, "n": [1], "d": "2024-02-30", "c": "RED", "m": [""]},
    {"k" * 65: "too long a key", "ключ": "значение", "t": "a'b\"c\\d%_", "n": 1e301},
    {"t": "\u2603 snow", "n": -0.5, "d": "2020-01-01", "b": True, "c": "blue", "m": ["z", "y"]},
    [1, 2],
    "just text",
    None,
    {},
]


@pytest.fixture
def odd(world):
    """People whose fields were written by plain SQL: anything JSON can hold."""
    rt = world
    ids = [
        subscribers.create(rt, email=f"p{i}@example.org", lists=["news"], consent="x")
        for i in range(len(ODD))
    ]
    with rt.db.session() as s:
        for sid, fields in zip(ids, ODD, strict=True):
            s.execute(update(Subscriber).where(Subscriber.id == sid).values(fields=fields))
    return rt, ids


def test_values_written_by_plain_sql_are_in_step(odd):
    rt, ids = odd
    assert_in_step(rt)
    with rt.db.session() as s:  # a bulk rewrite of every row, as a field's removal does
        s.execute(text("UPDATE subscriber SET name = 'x'"))
        s.execute(update(Subscriber).where(Subscriber.id == ids[0]).values(fields={"t": "short"}))
    assert_in_step(rt)
    with rt.db.session() as s:
        s.execute(update(Subscriber).where(Subscriber.id == ids[0]).values(fields=ODD[0]))
        s.execute(text("DELETE FROM subscriber WHERE id = :i"), {"i": ids[1]})
    assert_in_step(rt)


@pytest.mark.parametrize(
    "rule,matching",
    [
        ({"field": "t", "op": "eq", "value": LONG}, {0}),
        ({"field": "t", "op": "contains", "value": "üü"}, {0}),
        ({"field": "t", "op": "contains", "value": "Ü"}, set()),  # only ASCII letters fold
        ({"field": "t", "op": "contains", "value": "%_"}, {4}),
        ({"field": "t", "op": "contains", "value": "A'B"}, {4}),
        ({"field": "t", "op": "exists"}, {0, 4, 5}),
        ({"field": "t", "op": "ne", "value": "x"}, {0, 1, 4, 5}),
        ({"field": "t", "op": "in", "value": ["", "\u2603 snow"]}, {1, 5}),
        ({"field": "n", "op": "exists"}, {2, 4, 5}),
        ({"field": "n", "op": "gt", "value": 0}, {2, 4}),
        ({"field": "n", "op": "eq", "value": -0.5}, {5}),
        # a list that starts with an integer still compares fractions as fractions
        ({"field": "n", "op": "in", "value": [1, -0.5]}, {5}),
        ({"field": "n", "op": "between", "value": [-1, -0.25]}, {5}),
        ({"field": "b", "op": "eq", "value": False}, {2}),
        ({"field": "b", "op": "exists", "value": False}, set(range(10)) - {2, 5}),
        ({"field": "d", "op": "before", "value": "2021-01-01"}, {5}),
        ({"field": "d", "op": "after", "value": "2021-01-01"}, {1, 3}),
        ({"field": "c", "op": "eq", "value": "red"}, {0}),
        ({"field": "m", "op": "in", "value": ["x"]}, {0}),
        ({"field": "m", "op": "contains", "value": ["y", "z"]}, {5}),
        ({"field": "m", "op": "exists"}, {0, 3, 5}),
        ({"not": {"field": "m", "op": "exists"}}, set(range(10)) - {0, 3, 5}),
    ],
)
def test_counts_over_odd_values(odd, rule, matching):
    rt, ids = odd
    with rt.db.session() as s:
        where = segments.expression(s, lists=[], rules=rule)
        got = set(s.scalars(select(Subscriber.id).where(where)))
    assert got == {ids[i] for i in matching}


def test_the_migration_writes_the_values_of_people_already_there(empty_url):
    """Upgrading fills the table from the profiles written before it existed."""
    command.upgrade(schema.alembic_config(empty_url), "u18g")
    engine = create_engine(empty_url)
    with engine.begin() as conn:
        for i, fields in enumerate(ODD, 1):
            conn.execute(
                text(
                    "INSERT INTO subscriber (id, email, email_hash, name, fields, source, "
                    "consent_profiling, consent_tracking, soft_bounces, created_at, updated_at)"
                    " VALUES (:i, :e, :h, '', :f, '', false, false, 0, :at, :at)"
                ),
                {
                    "i": i,
                    "e": f"p{i}@example.org",
                    "h": f"h{i}",
                    "f": json.dumps(fields),
                    "at": datetime(2026, 1, 1),
                },
            )
    command.upgrade(schema.alembic_config(empty_url), "head")
    with engine.connect() as conn:
        rows_in_step(conn)
        assert conn.scalar(text("SELECT count(*) FROM subscriber_field_value")) > 10
    engine.dispose()
