"""CSV import and export: real files in every common encoding and dialect, bad rows reported by
row number while good rows land, suppressed and unsubscribed people left alone, the API job with
progress, resuming after a crash, a 100,000-row import, and export."""

from __future__ import annotations

import codecs
import csv
import io
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from listmgr import csvfiles, importrows
from listmgr.errors import ValidationError
from listmgr.models import (
    ConsentEvent,
    FieldDef,
    ImportJob,
    Interest,
    MailingList,
    Membership,
    SQLModel,
    Subscriber,
    SubscriberInterest,
    Suppression,
    Upload,
    UploadChunk,
    utcnow,
)
from listmgr.services import exports, imports, lists, segments, subscribers
from tests.conftest import SECRET, drain


def _uploads(rt: Any) -> int:
    """Uploads (and pieces of them) still stored."""
    with rt.db.session() as s:
        return (s.scalar(select(func.count()).select_from(Upload)) or 0) + (
            s.scalar(select(func.count()).select_from(UploadChunk)) or 0
        )


CONSENT = "imported: existing customers, consent recorded on 2024-05-01"


@settings(max_examples=400, deadline=None)
@given(
    kind=st.sampled_from(["text", "number", "date", "boolean", "choice", "multi_choice"]),
    value=st.one_of(
        st.text(min_size=1, max_size=12),
        st.sampled_from(
            [
                "42",
                "007",
                "-3",
                "3.5",
                "1e3",
                "٣",
                "2024-05-31",
                "2024-02-30",
                "2024-W01-1",
                "20240531",
                "pro",
                "Pro",
                "yes",
                "No",
                "a|b",
                "a, c",
                "x" * 1001,
                "tab\there",
            ]
        ),
    ),
)
def test_fast_field_values_are_coerce(kind, value):
    from listmgr.fieldvalues import FieldValueError, coerce

    value = value.strip()
    if not value:
        return
    spec = importrows.FieldInfo(
        "f", kind, "F", ("pro", "free", "a", "b") if "choice" in kind else ()
    )
    try:
        raw = importrows._multi(value, spec.choices) if kind == "multi_choice" else value
        expected: Any = ("ok", coerce(kind, list(spec.choices), raw, "F"))
    except FieldValueError as exc:
        expected = ("error", str(exc))
    try:
        got: Any = ("ok", importrows._coercer(spec)(value))
    except ValueError as exc:
        got = ("error", str(exc))
    assert got == expected and type(got[1]) is type(expected[1])


def test_hasher_is_runtime_email_hash(rt):
    hasher = importrows.EmailHasher(imports._hash_key(rt))
    for address in ("ada@example.org", "jörg@bücher.example", "x" * 300):
        assert hasher(address) == rt.email_hash(address)


# -- files ---------------------------------------------------------------------------------------
def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def snapshot(rt) -> dict[str, Any]:
    """Everything an import may touch, to compare before and after."""
    with rt.db.session() as s:
        counts = {
            t.name: s.scalar(select(func.count()).select_from(t))
            for t in SQLModel.metadata.sorted_tables
            if t.name not in ("audit_log", "import_job", "worker_process")  # heartbeats come and go
        }
        counts["people"] = sorted(
            (x.email, x.name, sorted((x.fields or {}).items()))
            for x in s.scalars(select(Subscriber))
        )
        counts["members"] = sorted(
            s.execute(select(Membership.subscriber_id, Membership.list_id, Membership.status)).all()
        )
    return counts


def report_rows(rt, job_id: int) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(imports.report(rt, job_id))))


def run(rt, path: Path, **kw: Any) -> imports.ImportInfo:
    kw.setdefault("list_slug", "news")
    kw.setdefault("consent", CONSENT)
    run_kw = {k: kw.pop(k) for k in ("workers", "chunk_rows", "progress") if k in kw}
    job_id = imports.create_job(rt, path=path, actor="tester", **kw)
    info = imports.run_job(rt, job_id, **run_kw)
    assert info is not None and info.status == "done", info
    return info


@pytest.fixture
def world(rt):
    lists.create(rt, slug="news", name="News")
    lists.create(rt, slug="other", name="Other")
    with rt.db.session() as s:
        s.add(FieldDef(key="plan", label="Plan", type="choice", choices=["free", "pro"]))
        s.add(FieldDef(key="age", label="Age", type="number"))
        s.add(
            FieldDef(
                key="topics",
                label="Topics",
                type="multi_choice",
                choices=["books", "films", "games"],
            )
        )
        s.add(Interest(key="jazz", label="Jazz"))
        s.add(Interest(key="rock", label="Rock"))
    return rt


def _members(rt, email: str) -> dict[str, str]:
    with rt.db.session() as s:
        return dict(
            s.execute(
                select(MailingList.slug, Membership.status)
                .join(Membership, Membership.list_id == MailingList.id)
                .join(Subscriber, Subscriber.id == Membership.subscriber_id)
                .where(Subscriber.email == email)
            ).all()
        )


def _person(rt, email: str) -> Subscriber | None:
    with rt.db.session() as s:
        return s.scalar(select(Subscriber).where(Subscriber.email == email))


@pytest.mark.parametrize(
    "encoding,delimiter",
    [("utf-8-sig", ";"), ("utf-8", ","), ("latin-1", "\t"), ("cp1252", ";"), ("utf-16", ",")],
)
def test_encodings_and_dialects(world, tmp_path, encoding, delimiter):
    rt = world
    d = delimiter
    name = "Zoë “Z” Müller" if encoding != "latin-1" else "Zoë Müller\x81"
    text = (
        f"E-Mail{d}Name{d}Plan{d}Notes\r\n"
        f'zoe@example.org{d}{name}{d}pro{d}"two\r\nlines{d} and quotes ""x"""\r\n'
        f"max@example.org{d}Max{d}free{d}\r\n"
    )
    path = write(tmp_path, "people.csv", text, encoding)
    if encoding == "latin-1":
        assert csvfiles.detect_encoding(path) == "latin-1"
    info = run(rt, path)
    assert (info.rows, info.inserted, info.errors, info.skipped) == (2, 2, 0, 0)
    assert info.ignored_columns == ["Notes"]
    zoe = _person(rt, "zoe@example.org")
    assert zoe is not None and zoe.name == " ".join(name.split()) and zoe.fields == {"plan": "pro"}
    assert _members(rt, "max@example.org") == {"news": "confirmed"}


def test_bad_rows_are_reported_and_good_rows_land(world, tmp_path):
    rt = world
    subscribers.create(rt, email="left@example.org", lists=["news"], consent="form")
    subscribers.create(
        rt, email="pending@example.org", lists=["news"], status="pending", consent="form"
    )
    subscribers.create(
        rt,
        email="elsewhere@example.org",
        name="Old",
        lists=["other"],
        consent="form",
        fields={"age": 40},
    )
    subscribers.create(rt, email="bystander@example.org", name="By", lists=["news"], consent="form")
    with rt.db.session() as s:
        left = s.scalar(select(Subscriber).where(Subscriber.email == "left@example.org"))
        s.execute(
            update(Membership)
            .where(Membership.subscriber_id == left.id)
            .values(status="unsubscribed")
        )
        s.add(
            Suppression(
                email_hash=rt.email_hash("blocked@example.org"),
                email="blocked@example.org",
                reason="complaint",
            )
        )
        s.add(Suppression(email_hash=rt.email_hash("erased@example.org"), reason="erased"))
    before = snapshot(rt)
    text = (
        "email,first name,last name,plan,age,topics,interests,shoe size\n"  # row 1
        "new@example.org,Ada,Lovelace,pro,36,books|films,jazz rock,42\n"  # 2 lands
        "not-an-address,Bob,,free,,,,\n"  # 3 error
        "NEW@example.org,Ada,Again,,,,,\n"  # 4 duplicate
        "Blocked@Example.org,Bl,,,,,,\n"  # 5 suppressed
        "erased@example.org,Er,,,,,,\n"  # 6 erased
        "left@example.org,Left,,,,,,\n"  # 7 unsubscribed
        "pending@example.org,Pen,,,,,,\n"  # 8 confirmed
        "elsewhere@example.org,New Name,,,41,,jazz,\n"  # 9 updated
        "x@example.org,X,,gold,,,,\n"  # 10 bad choice
        "y@example.org,Y,,,old,,,\n"  # 11 bad number
        "z@example.org,Z,,,,,blues,\n"  # 12 interest
        "\n"  # 13 blank
        '"w@example.org",W,,,,,,,,extra\n'
    )  # 14 cells
    info = run(rt, write(tmp_path, "mixed.csv", text), chunk_rows=4)
    assert (info.rows, info.inserted, info.updated) == (12, 1, 2)
    assert (info.errors, info.skipped) == (5, 4)
    assert info.ignored_columns == ["shoe size"]
    report = {int(r["row"]): (r["result"], r["reason"]) for r in report_rows(rt, info.id)}
    assert sorted(report) == [3, 4, 5, 6, 7, 10, 11, 12, 14]
    assert report[3][0] == "error" and "@-sign" in report[3][1]
    assert report[4] == ("skipped", "the same address as row 2")
    assert "suppression list (complaint)" in report[5][1]
    assert "suppression list (erased)" in report[6][1]
    assert report[7][0] == "skipped" and "never subscribes" in report[7][1]
    assert "choices" in report[10][1] and "number" in report[11][1]
    assert "blues" in report[12][1] and "cells" in report[14][1]

    new = _person(rt, "new@example.org")
    assert new is not None and new.name == "Ada Lovelace" and new.source == "import"
    assert new.fields == {"plan": "pro", "age": 36, "topics": ["books", "films"]}
    assert _members(rt, "new@example.org") == {"news": "confirmed"}
    assert _members(rt, "left@example.org") == {"news": "unsubscribed"}
    assert _members(rt, "pending@example.org") == {"news": "confirmed"}
    assert _members(rt, "elsewhere@example.org") == {"news": "confirmed", "other": "confirmed"}
    moved = _person(rt, "elsewhere@example.org")
    assert moved.name == "New Name" and moved.fields == {"age": 41}
    assert _person(rt, "blocked@example.org") is None
    assert _person(rt, "erased@example.org") is None
    with rt.db.session() as s:
        interests = sorted(
            s.execute(select(Subscriber.email, SubscriberInterest.interest).join(Subscriber)).all()
        )
        events = sorted(
            s.execute(
                select(Subscriber.email, ConsentEvent.wording)
                .join(Subscriber)
                .where(ConsentEvent.kind == "import")
            ).all()
        )
    assert interests == [
        ("elsewhere@example.org", "jazz"),
        ("new@example.org", "jazz"),
        ("new@example.org", "rock"),
    ]
    assert events == [
        (e, CONSENT) for e in ("elsewhere@example.org", "new@example.org", "pending@example.org")
    ]
    after = snapshot(rt)
    assert after["suppression"] == before["suppression"]
    bystander = [p for p in after["people"] if p[0] == "bystander@example.org"]
    assert bystander == [p for p in before["people"] if p[0] == "bystander@example.org"]
    assert after["subscriber"] == before["subscriber"] + 1


def test_awkward_text_lands_unchanged(world, tmp_path):
    rt = world
    with rt.db.session() as s:
        s.add(FieldDef(key="note", label="Note", type="text"))
    subscribers.create(
        rt,
        email="known@example.org",
        name="Known",
        lists=["other"],
        consent="form",
        fields={"age": 7},
    )
    note = 'C:\\temp\\new "quoted" \u2603 \\N'  # backslashes, quotes, COPY's NULL marker
    cell = '"' + note.replace('"', '""') + '"'
    text = (
        "email,name,note\n"
        f'back@example.org,"Back\\slash ""Q"" \u00dcn\u00ef",{cell}\n'
        'tab@example.org,"Tab\tName  \\t",\\N\n'
        f'known@example.org,"Kn\\own",{cell}\n'
    )
    info = run(rt, write(tmp_path, "awkward.csv", text))
    assert (info.inserted, info.updated, info.errors) == (2, 1, 0)
    back = _person(rt, "back@example.org")
    assert back.name == 'Back\\slash "Q" \u00dcn\u00ef' and back.fields == {"note": note}
    tab = _person(rt, "tab@example.org")
    assert tab.name == "Tab Name \\t" and tab.fields == {"note": "\\N"}
    known = _person(rt, "known@example.org")
    assert known.name == "Kn\\own" and known.fields == {"age": 7, "note": note}


def test_mode_add_leaves_existing_people_alone(world, tmp_path):
    rt = world
    subscribers.create(rt, email="old@example.org", name="Old", lists=["other"], consent="x")
    path = write(tmp_path, "add.csv", "email,name\nold@example.org,Changed\nfresh@example.org,F\n")
    info = run(rt, path, mode="add")
    assert (info.inserted, info.updated, info.skipped) == (1, 0, 1)
    assert _person(rt, "old@example.org").name == "Old"
    assert _members(rt, "old@example.org") == {"other": "confirmed"}
    assert report_rows(rt, info.id)[0]["row"] == "2"


@pytest.mark.parametrize("mode", ["upsert", "add", "suppress"])
def test_an_address_again_in_a_later_chunk_is_a_repeat(world, tmp_path, mode):
    rt = world
    subscribers.create(rt, email="old@example.org", name="Old", lists=["other"], consent="x")
    path = write(
        tmp_path,
        "again.csv",
        "email\nfresh@example.org\nold@example.org\na@example.org\nb@example.org\n"
        "Fresh@example.org\nold@example.org\n",
    )
    slug = None if mode == "suppress" else "news"
    info = run(rt, path, mode=mode, list_slug=slug, chunk_rows=2)
    report = {int(r["row"]): (r["result"], r["reason"]) for r in report_rows(rt, info.id)}
    assert report[6] == ("skipped", "the same address as row 2")
    assert report[7] == ("skipped", "the same address as row 3")
    assert info.skipped == (3 if mode == "add" else 2)


def test_mode_suppress(world, tmp_path):
    rt = world
    subscribers.create(rt, email="member@example.org", lists=["news"], consent="x")
    path = write(
        tmp_path,
        "bounces.csv",
        "Email\nmember@example.org\ngone@example.org\ngone@example.org\nnope\n",
    )
    info = run(rt, path, mode="suppress", list_slug=None, consent="old ESP hard bounces")
    assert (info.inserted, info.skipped, info.errors) == (2, 1, 1)
    assert segments.count(rt, lists=["news"], rules=None) == 0
    with rt.db.session() as s:
        assert set(s.scalars(select(Suppression.detail))) == {
            f"import {info.id}: old ESP hard bounces"
        }
    info = run(rt, path, mode="suppress", list_slug=None)
    assert (info.inserted, info.skipped) == (0, 3)  # already suppressed, and the duplicate
    path = write(tmp_path, "more.csv", "Email\nmore@example.org\n")
    info = run(rt, path, mode="suppress", list_slug=None, consent="")
    with rt.db.session() as s:
        assert (
            s.scalar(select(Suppression.detail).where(Suppression.email == "more@example.org"))
            == f"import {info.id}"
        )


@pytest.mark.parametrize(
    "content,kw,field",
    [
        ("name\nAda\n", {}, "mapping"),
        ("email,name\na@example.org,A\n", {"mapping": "Mail=email"}, "mapping"),
        ("email,name\na@example.org,A\n", {"mapping": "name=fields.nope"}, "mapping"),
        ("email,name\na@example.org,A\n", {"mapping": "email=email,name=email"}, "mapping"),
        ("email,name\na@example.org,A\n", {"mapping": "no equals sign"}, "mapping"),
        ("E-Mail,name\na@example.org,A\n", {"mapping": "E-Mail=email,e-mail=name"}, "mapping"),
        ("email,name\na@example.org,A\n", {"list_slug": "nope"}, "list"),
        ("email,name\na@example.org,A\n", {"consent": "  "}, "consent"),
        ("email,name\na@example.org,A\n", {"mode": "replace"}, "mode"),
        ("email,name\na@example.org,A\n", {"list_slug": None}, "list"),
        ("", {}, "file"),
    ],
)
def test_bad_jobs_are_refused_and_change_nothing(world, tmp_path, content, kw, field):
    rt = world
    before = snapshot(rt)
    with pytest.raises(ValidationError) as err:
        imports.create_job(
            rt,
            path=write(tmp_path, "bad.csv", content),
            **{"list_slug": "news", "consent": CONSENT, **kw},
        )
    assert err.value.field == field and err.value.message
    assert snapshot(rt) == before
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(ImportJob)) == 0


def test_resumes_after_a_crash_without_doing_rows_twice(make_runtime, world, tmp_path):
    rt = world
    lines = (
        ["email,name"]
        + [f"p{i}@example.org,P{i}" for i in range(10)]
        + ["p3@example.org,again", "bad,x"]
    )
    path = write(tmp_path, "crash.csv", "\n".join(lines) + "\n")
    job_id = imports.create_job(rt, path=path, list_slug="news", consent=CONSENT, actor="t")

    def crash(info: imports.ImportInfo) -> None:
        if info.rows >= 4:
            raise SystemExit("the worker process died")

    switching = sys.getswitchinterval()
    with pytest.raises(SystemExit) as crashed:
        imports.run_job(rt, job_id, progress=crash, chunk_rows=4)
    # The thread reading ahead stopped with the job, while the exception (and with it the
    # job's frame) is still alive, and the interpreter switches threads as before.
    assert crashed.tb is not None
    assert not [t for t in threading.enumerate() if t.name == imports.READER_THREAD]
    assert sys.getswitchinterval() == switching
    assert imports.get(rt, job_id).status == "running" and imports.get(rt, job_id).rows == 4
    assert imports.run_job(rt, job_id) is None  # a running job is not run twice
    assert imports.requeue(rt) == 0  # its heartbeat is fresh
    with rt.db.session() as s:
        s.execute(update(ImportJob).values(heartbeat_at=utcnow().replace(year=2000)))
    assert imports.requeue(rt) == 1
    drain(rt)
    info = imports.get(rt, job_id)
    assert info.status == "done" and (info.rows, info.inserted, info.skipped, info.errors) == (
        12,
        10,
        1,
        1,
    )
    assert [r["row"] for r in report_rows(rt, job_id)] == ["12", "13"]
    with rt.db.session() as s:
        assert (
            s.scalar(
                select(func.count()).select_from(ConsentEvent).where(ConsentEvent.kind == "import")
            )
            == 10
        )
        assert s.scalar(select(func.count()).select_from(Subscriber)) == 10


def test_imports_side_by_side_leave_the_switch_interval_as_it_was():
    before = sys.getswitchinterval()
    first, second = imports._quick_switching(), imports._quick_switching()
    first.__enter__()
    second.__enter__()
    assert sys.getswitchinterval() == min(before, imports.READER_SWITCH_SECONDS)
    first.__exit__(None, None, None)  # the first import ends while the second goes on
    assert sys.getswitchinterval() == min(before, imports.READER_SWITCH_SECONDS)
    second.__exit__(None, None, None)
    assert sys.getswitchinterval() == before


# -- API -----------------------------------------------------------------------------------------
def test_foreign_keys_are_checked_again_after_an_import(world, tmp_path):
    rt = world
    if rt.db.dialect != "sqlite":
        pytest.skip("SQLite only: the import turns foreign keys off for its own connection")
    run(rt, write(tmp_path, "few.csv", "email\na@example.org\n"))
    with rt.db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_api_upload_runs_as_a_job(world, api, client, tmp_path):
    rt = world
    # Larger than the form limit of other requests (64 KB): uploads may be big.
    body = (
        "Mail;Vorname;Plan\n"
        + "".join(f"u{i}@example.org;U{i};pro\n" for i in range(5000))
        + "broken;X;pro\n"
    )
    resp = api.post(
        "/api/imports",
        data={
            "file": (io.BytesIO(codecs.BOM_UTF8 + body.encode()), "kunden.csv"),
            "list": "news",
            "mapping": "Vorname=first_name",
            "consent": CONSENT,
        },
        content_type="multipart/form-data",
    )
    assert resp.status_code == 202, resp.json
    job_id = resp.json["id"]
    assert resp.headers["Location"] == f"/api/imports/{job_id}"
    assert resp.json["status"] in ("queued", "running", "done")
    drain(rt)
    status = api.get(f"/api/imports/{job_id}").json
    assert status["status"] == "done" and status["progress"] == 1.0
    assert status["processed_bytes"] == status["total_bytes"] > 0
    assert (status["rows"], status["inserted"], status["errors"]) == (5001, 5000, 1)
    assert status["columns"] == {"Mail": "email", "Vorname": "first_name", "Plan": "fields.plan"}
    report = api.get(f"/api/imports/{job_id}/report")
    assert report.status_code == 200 and report.mimetype == "text/csv"
    assert next(iter(csv.DictReader(io.StringIO(report.get_data(as_text=True)))))["row"] == "5002"
    assert _uploads(rt) == 0  # the uploaded copy is gone
    assert api.get("/api/imports").json["total"] == 1

    bad = api.post(
        "/api/imports",
        data={"file": (io.BytesIO(b"name\nx\n"), "x.csv"), "list": "news", "consent": CONSENT},
        content_type="multipart/form-data",
    )
    assert bad.status_code == 422 and bad.json["error"]["field"] == "mapping"
    twice = api.post(
        "/api/imports",
        data={
            "file": (io.BytesIO(b"Mail,City\na@example.org,x\n"), "x.csv"),
            "list": "news",
            "consent": CONSENT,
            "mapping": '{"Mail": "email", "City": "name", "city": "ignore"}',
        },
        content_type="multipart/form-data",
    )
    assert twice.status_code == 422 and "'city' is named twice" in twice.json["error"]["message"]
    assert (
        api.post(
            "/api/imports", data={"list": "news"}, content_type="multipart/form-data"
        ).status_code
        == 422
    )
    assert _uploads(rt) == 0  # refused uploads are not kept
    from listmgr.services import accounts

    editor = accounts.create_token(rt, role="editor", name="e")
    denied = client.get(f"/api/imports/{job_id}", headers={"Authorization": f"Bearer {editor}"})
    assert denied.status_code == 403


# -- export --------------------------------------------------------------------------------------
def test_export_streams_chosen_columns_and_round_trips(world, api, tmp_path):
    rt = world
    subscribers.create(
        rt,
        email="a@example.org",
        name="=HYPERLINK(1)",
        lists=["news"],
        consent="x",
        fields={"plan": "pro", "topics": ["books", "games"]},
        interests=["jazz"],
    )
    subscribers.create(
        rt, email="b@example.org", name="Bea", lists=["news"], consent="x", fields={"plan": "free"}
    )
    subscribers.create(rt, email="c@example.org", lists=["other"], consent="x")
    seg = segments.create(rt, name="Pro", rules={"field": "plan", "op": "eq", "value": "pro"})
    export = exports.prepare(rt, list_slug="news", fields="email,name,plan,topics,interests")
    gen = exports.rows(rt, export)
    assert next(gen) == "email,name,plan,topics,interests\r\n"  # a generator: page by page
    rows = list(csv.reader(io.StringIO("".join(gen))))
    assert rows == [
        ["a@example.org", "'=HYPERLINK(1)", "pro", "books|games", "jazz"],
        ["b@example.org", "Bea", "free", "", ""],
    ]
    resp = api.get(f"/api/lists/news/export?fields=email,fields.plan&segment={seg}")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert resp.get_data(as_text=True) == "email,fields.plan\r\na@example.org,pro\r\n"
    assert api.get("/api/lists/news/export?fields=email,shoe").status_code == 422
    assert api.get("/api/lists/nope/export").status_code == 404
    full = api.get("/api/lists/news/export").get_data(as_text=True)
    assert full.splitlines()[0] == (
        "email,name,status,suppressed,subscribed_at,created_at,source,plan,age,topics,interests"
    )

    # What an export writes, an import reads back unchanged.
    lists.create(rt, slug="copy", name="Copy")
    info = run(rt, write(tmp_path, "export.csv", full), list_slug="copy")
    assert (info.inserted, info.updated, info.errors) == (0, 2, 0)
    again = _person(rt, "a@example.org")
    assert again.name == "=HYPERLINK(1)" and again.fields["topics"] == ["books", "games"]


def test_a_second_column_of_a_kind_is_ignored_and_said_so(world, tmp_path):
    rt = world
    info = run(rt, write(tmp_path, "two.csv", "email,name,E-Mail\na@example.org,A,b@example.org\n"))
    assert info.ignored_columns == ["E-Mail (another column already holds email)"]
    assert info.inserted == 1 and _person(rt, "b@example.org") is None


def test_export_shows_who_is_suppressed_or_paused(world, api):
    rt = world
    for who in ("kept", "gone", "resting"):
        subscribers.create(rt, email=f"{who}@example.org", lists=["news"], consent="x")
    assert api.post("/api/suppression", json={"email": "gone@example.org"}).status_code == 201
    with rt.db.session() as s:
        s.execute(
            update(Subscriber)
            .where(Subscriber.email == "resting@example.org")
            .values(paused_until=utcnow().replace(year=2099, microsecond=0))
        )
    rows = list(
        csv.DictReader(
            io.StringIO(api.get("/api/lists/news/export?status=confirmed").get_data(as_text=True))
        )
    )
    assert {r["email"]: (r["status"], r["suppressed"]) for r in rows} == {
        "kept@example.org": ("confirmed", ""),
        "gone@example.org": ("confirmed", "manual"),
        "resting@example.org": ("confirmed", ""),
    }
    rows = list(
        csv.DictReader(
            io.StringIO(
                api.get("/api/lists/news/export?fields=email,paused_until").get_data(as_text=True)
            )
        )
    )
    assert [r["paused_until"][:4] for r in rows] == ["", "", "2099"]


def test_the_report_never_holds_a_formula(world, api, tmp_path):
    rt = world
    info = run(
        rt,
        write(
            tmp_path,
            "f.csv",
            'email,name\n=HYPERLINK("http://x.example/"),a\n'
            '+cmd@x,b\nok@example.org,c\n"\t=2+2",d\n',
        ),
    )
    assert (info.inserted, info.errors) == (1, 3)
    report = api.get(f"/api/imports/{info.id}/report").get_data(as_text=True)
    emails = [r["email"] for r in csv.DictReader(io.StringIO(report))]
    assert emails == ['\'=HYPERLINK("http://x.example/")', "'+cmd@x", "'\t=2+2"]


def test_cli_import_and_export(world, database_url, tmp_path):
    env = {**os.environ, "LISTMGR_DATABASE_URL": database_url, "LISTMGR_SECRET_KEY": SECRET}
    path = write(tmp_path, "cli.csv", "email,name\ncli@example.org,Cli\nbad,Bad\n")
    report = tmp_path / "report.csv"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "listmgr",
            "import",
            str(path),
            "--list",
            "news",
            "--consent",
            CONSENT,
            "--report",
            str(report),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "1 new" in done.stderr and "1 with errors" in done.stderr
    assert next(iter(csv.DictReader(report.open())))["row"] == "3"
    out = subprocess.run(
        [sys.executable, "-m", "listmgr", "export", "--list", "news", "--fields", "email,name"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and out.stdout.splitlines() == ["email,name", "cli@example.org,Cli"]
    refused = subprocess.run(
        [sys.executable, "-m", "listmgr", "import", str(path), "--list", "news"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 1 and "basis" in refused.stderr


# -- volume --------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 1])  # validated ahead by a thread / by a process
def test_100k_rows(world, tmp_path, workers):
    rt = world
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["email", "name", "plan", "age", "interests"])
        for i in range(100_000):
            email = f"Person.{i}@Example{i % 50}.org" if i % 1000 else f"broken {i}"
            w.writerow([email, f"Person {i}", ("free", "pro")[i % 2], i % 90, "jazz|rock"])
    seen: list[int] = []
    info = run(
        rt,
        path,
        progress=lambda x: seen.append(x.processed_bytes),
        workers=workers,
        chunk_rows=20_000,
    )
    assert (info.rows, info.inserted, info.errors) == (100_000, 99_900, 100)
    assert seen == sorted(seen) and len(seen) > 3
    assert (
        segments.count(
            rt,
            lists=["news"],
            rules={
                "all": [
                    {"field": "plan", "op": "eq", "value": "pro"},
                    {"interests": "has_all", "value": ["jazz", "rock"]},
                ]
            },
        )
        == 50_000
    )
    assert _person(rt, "person.77@example27.org").fields == {"plan": "pro", "age": 77}
