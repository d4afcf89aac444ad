"""CSV files broken the ways real files are: a UTF-8 file (with or without a byte order mark)
with a stray byte of another encoding, a quote that is never closed, a NUL byte, a cell over the
size limit. The rows that can be read land; each broken one is reported with its row, line and a
reason that says what happened (and which lines, when it runs over several); a file that cannot
be read at all is refused with a reason; nothing else changes."""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from listmgr import csvfiles
from listmgr.errors import ValidationError
from listmgr.models import FieldDef, Subscriber
from listmgr.services import imports, subscribers
from tests.conftest import SECRET, drain
from tests.test_import import (  # noqa: F401
    CONSENT,
    _members,
    _person,
    report_rows,
    run,
    snapshot,
    world,
    write,
)


def write_bytes(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def report(rt, info) -> dict[int, dict[str, str]]:
    """The import's report by row number."""
    return {int(r["row"]): r for r in report_rows(rt, info.id)}


def people(rt) -> dict[str, str]:
    with rt.db.session() as s:
        return dict(s.execute(select(Subscriber.email, Subscriber.name)).all())


def landed(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The people an import added, after checking it changed no one who was there before."""
    old = set(map(repr, before["people"]))
    assert old <= set(map(repr, after["people"]))
    return [p for p in after["people"] if repr(p) not in old]


def with_bystander(rt) -> dict[str, Any]:
    """Someone on another list, who no import here may touch; the state to compare with."""
    subscribers.create(
        rt,
        email="bystander@example.org",
        name="By Stander",
        lists=["other"],
        consent="form",
        fields={"age": 50},
    )
    return snapshot(rt)


def untouched(rt) -> None:
    assert _members(rt, "bystander@example.org") == {"other": "confirmed"}
    by = _person(rt, "bystander@example.org")
    assert by.name == "By Stander" and by.fields == {"age": 50}


# -- a UTF-8 file with stray bytes -----------------------------------------------------------------
@pytest.mark.parametrize("workers", [0, 1])  # read by a thread / by a process
def test_mostly_utf8_file_with_stray_bytes(world, tmp_path, workers):
    rt = world
    before = with_bystander(rt)
    rows = [f"mix{i}@example.com,Müller {i}".encode() for i in range(3000)]
    rows[1500] = b"mix1500@example.com,Jos\xe9"  # row 1502: Latin-1
    rows[2200] = b'mix2200@example.com,"Fran\xe7ois\r\nand Ren\xe9e",x'  # rows 2202, two lines
    rows[2998] = b"bad\xff\xfe@example.com,B\xfcrger"  # row 3000, bytes in email
    data = b"email,name,notes\r\n" + b"\r\n".join(rows) + b"\r\n"
    path = write_bytes(tmp_path, "mostly-utf8.csv", data)
    assert csvfiles.detect_encoding(path) == "utf-8"

    info = run(rt, path, workers=workers, chunk_rows=1000)
    assert (info.rows, info.inserted, info.errors, info.skipped) == (3000, 2997, 3, 0)
    bad = report(rt, info)
    assert sorted(bad) == [1502, 2202, 3000]
    assert bad[1502]["line"] == "1502" and bad[1502]["email"] == "mix1500@example.com"
    assert bad[1502]["reason"] == (
        "this row is not valid UTF-8 text (the rest of the file is UTF-8): byte 0xE9"
    )
    assert bad[2202]["reason"] == (
        "this row is not valid UTF-8 text (the rest of the file is "
        "UTF-8): bytes 0xE7, 0xE9 (the row spans lines 2202-2203)"
    )
    assert bad[3000]["line"] == "3001" and bad[3000]["email"] == "bad\ufffd\ufffd@example.com"
    assert "bytes 0xFF, 0xFE, 0xFC" in bad[3000]["reason"]
    assert {r["result"] for r in bad.values()} == {"error"}

    new = landed(before, snapshot(rt))
    expected = {
        f"mix{i}@example.com": f"Müller {i}" for i in range(3000) if i not in (1500, 2200, 2998)
    }
    assert {email: name for email, name, _ in new} == expected
    assert people(rt).keys() == expected.keys() | {"bystander@example.org"}
    assert _members(rt, "mix2999@example.com") == {"news": "confirmed"}
    untouched(rt)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "cp1252", "latin-1"])
def test_files_in_one_encoding_are_read_strictly(tmp_path, encoding):
    text = "email,name\r\nzoe@example.org,Zoë Müller\r\nmax@example.org,Mäx\r\n"
    if encoding == "latin-1":
        text += "x@example.org,X\x81\r\n"  # a byte cp1252 leaves undefined
    path = write(tmp_path, "one.csv", text, encoding)
    assert csvfiles.detect(path).errors == "strict"
    assert csvfiles.detect_encoding(path) == encoding


def test_a_latin1_file_with_a_few_utf8_lookalikes_stays_latin1(world, tmp_path):
    # "Ã©" in cp1252 is the bytes of a valid UTF-8 "é"; one such pair in a file full of
    # cp1252 accents does not make it UTF-8.
    rt = world
    text = (
        "email,name\n"
        + "".join(f"p{i}@example.org,Renée Çava {i}\n" for i in range(20))
        + "odd@example.org,CafÃ©\n"
    )
    info = run(rt, write(tmp_path, "latin.csv", text, "cp1252"))
    assert (info.inserted, info.errors) == (21, 0)
    assert _person(rt, "p7@example.org").name == "Renée Çava 7"
    assert _person(rt, "odd@example.org").name == "CafÃ©"


def test_a_stray_byte_in_the_header_does_not_stop_the_import(world, tmp_path):
    rt = world
    data = (
        b"email,name,Stra\xdfe\n"
        + "".join(f"s{i}@example.org,Jürgen {i},x\n" for i in range(10)).encode()
    )
    info = run(rt, write_bytes(tmp_path, "header.csv", data))
    assert (info.inserted, info.errors) == (10, 0)
    assert info.ignored_columns == ["Stra\ufffde"]
    assert _person(rt, "s3@example.org").name == "Jürgen 3"


# -- a UTF-8 file with a byte order mark (Excel's "CSV UTF-8") ------------------------------------
def excel_file(tmp_path: Path, rows: int, latin1: tuple[int, ...]) -> Path:
    """What Excel saves as "CSV UTF-8": a byte order mark, then UTF-8, except for the rows in
    latin1, whose "Jürgen" was pasted in from a Latin-1 file."""
    lines = [f"j{i}@example.org,Jürgen {i}".encode() for i in range(rows)]
    for i in latin1:
        lines[i] = f"j{i}@example.org,Jürgen {i}".encode("latin-1")
    return write_bytes(
        tmp_path, "excel.csv", codecs.BOM_UTF8 + b"email,name\r\n" + b"\r\n".join(lines) + b"\r\n"
    )


def test_a_bom_file_with_stray_bytes_is_read_as_utf8(world, tmp_path):
    rt = world
    before = with_bystander(rt)
    path = excel_file(tmp_path, 3000, (50, 2900))  # rows 52 and 2902
    assert path.read_bytes().rindex(b"\xfc") > csvfiles.SAMPLE_BYTES
    fmt = csvfiles.detect(path)
    assert (fmt.encoding, fmt.errors) == ("utf-8-sig", csvfiles.NOT_UTF8)

    info = run(rt, path, chunk_rows=1000)
    assert (info.rows, info.inserted, info.errors) == (3000, 2998, 2)
    assert info.columns == {"email": "email", "name": "name"}
    bad = report(rt, info)
    assert sorted(bad) == [52, 2902]
    assert (bad[52]["line"], bad[52]["email"]) == ("52", "j50@example.org")
    assert bad[2902]["reason"] == (
        "this row is not valid UTF-8 text (the rest of the file is UTF-8): byte 0xFC"
    )
    new = {email: name for email, name, _ in landed(before, snapshot(rt))}
    assert new == {f"j{i}@example.org": f"Jürgen {i}" for i in range(3000) if i not in (50, 2900)}
    untouched(rt)


def test_the_api_takes_a_bom_file_with_a_stray_byte(world, api, tmp_path):
    rt = world

    def post(data: bytes):
        return api.post(
            "/api/imports",
            data={"file": (io.BytesIO(data), "excel.csv"), "list": "news", "consent": CONSENT},
            content_type="multipart/form-data",
        )

    resp = post(excel_file(tmp_path, 100, (50,)).read_bytes())
    assert resp.status_code == 202, resp.json
    drain(rt)
    status = api.get(f"/api/imports/{resp.json['id']}").json
    assert status["status"] == "done", status
    assert (status["rows"], status["inserted"], status["errors"]) == (100, 99, 1)
    report_text = api.get(f"/api/imports/{resp.json['id']}/report").get_data(as_text=True)
    assert [r["row"] for r in csv.DictReader(io.StringIO(report_text))] == ["52"]

    latin1 = codecs.BOM_UTF8 + "email,name\nm@example.org,Müller\n".encode("latin-1")
    refused = post(latin1)
    assert refused.status_code == 422
    assert refused.json["error"]["field"] == "file"
    assert "byte order mark" in refused.json["error"]["message"]


def test_the_cli_imports_a_bom_file_with_a_stray_byte(world, database_url, tmp_path):
    env = {**os.environ, "LISTMGR_DATABASE_URL": database_url, "LISTMGR_SECRET_KEY": SECRET}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "listmgr",
            "import",
            str(excel_file(tmp_path, 100, (50,))),
            "--list",
            "news",
            "--consent",
            CONSENT,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "99 new" in done.stderr and "1 with errors" in done.stderr
    assert (
        "row 52 (line 52) 'j50@example.org' error: this row is not valid UTF-8 text" in done.stderr
    )
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "data,message",
    [
        (
            codecs.BOM_UTF8
            + b"email,name\n"
            + "".join(f"m{i}@example.org,Müller\n" for i in range(20)).encode("cp1252"),
            (
                "it begins with the mark of a UTF-8 file (a byte order mark), but most of its text is in "
                "another encoding: save it again as UTF-8"
            ),
        ),
        (
            "email,name\nm@example.org,Müller\n".encode("utf-16") + b"x",  # half a character
            (
                "it begins with the mark of a UTF-16 file (a byte order mark), but not all of it is "
                "UTF-16 text: save it again as UTF-8"
            ),
        ),
    ],
    ids=["utf-8 mark", "utf-16 mark"],
)
def test_a_file_unlike_its_byte_order_mark_is_refused(world, tmp_path, data, message):
    rt = world
    before = snapshot(rt)
    with pytest.raises(ValidationError) as err:
        imports.create_job(
            rt, path=write_bytes(tmp_path, "marked.csv", data), list_slug="news", consent=CONSENT
        )
    assert err.value.field == "file"
    assert err.value.message == f"The file cannot be read: {message}."
    assert snapshot(rt) == before


@pytest.mark.parametrize("where", ["header", "rows"])
def test_a_file_that_changes_after_it_was_looked_at_is_named_clearly(tmp_path, where):
    # A file is read in the encoding found when it was looked at; should it be written again
    # in between with bytes of another encoding, reading it says so (the job fails with it).
    rows = "".join(f"c{i}@example.org,Zoë {i}\n" for i in range(5000))
    path = write(tmp_path, "changing.csv", "email,name\n" + rows)
    fmt = csvfiles.detect(path)
    assert (fmt.encoding, fmt.errors) == ("utf-8", "strict")
    if where == "header":
        path.write_bytes(b"email,n\xe4me\n" + rows.encode())
        with pytest.raises(csvfiles.CsvFileError) as err:
            csvfiles.CsvReader(path, fmt)
        assert str(err.value) == (
            "in its header it is not UTF-8 text: byte 0xE4 cannot be read "
            "as UTF-8; save the file again as UTF-8"
        )
    else:
        path.write_bytes(path.read_bytes() + b"late@example.org,Z\xf6e\n")
        with csvfiles.CsvReader(path, fmt) as reader, pytest.raises(csvfiles.CsvFileError) as err:
            list(reader)
        assert re.fullmatch(
            r"after line \d{4} it is not UTF-8 text: byte 0xF6 cannot be read as "
            r"UTF-8; save the file again as UTF-8",
            str(err.value),
        )


# -- quotes that are never closed -----------------------------------------------------------------
def lost_line(line: int, how: str) -> str:
    return (
        f"a quoted value opened on line {line} is never closed: {how}; line {line} was not "
        "imported, the lines after it were read as rows of their own"
    )


@pytest.mark.parametrize("workers,chunk_rows", [(0, 7), (1, 40_000)])
def test_a_quote_never_closed_costs_only_its_line(world, tmp_path, workers, chunk_rows):
    rt = world
    before = with_bystander(rt)
    rows = [f"q{i}@example.org,Name {i},Town" for i in range(100)]
    rows[10] = 'q10@example.org,"Unclosed name,Town'  # row 12, line 12
    rows[60] = "not an address,Name 60,Town"  # row 62: numbered on after it
    path = write(tmp_path, "unclosed.csv", "email,name,city\n" + "\n".join(rows) + "\n")
    info = run(rt, path, workers=workers, chunk_rows=chunk_rows)
    assert (info.rows, info.inserted, info.errors) == (100, 98, 2)
    bad = report(rt, info)
    assert sorted(bad) == [12, 62]
    assert (bad[12]["line"], bad[12]["email"]) == ("12", "q10@example.org")
    assert bad[12]["reason"] == lost_line(12, "it runs to the end of the file (line 101)")
    assert bad[62]["line"] == "62" and "@-sign" in bad[62]["reason"]
    new = {email: name for email, name, _ in landed(before, snapshot(rt))}
    assert new == {f"q{i}@example.org": f"Name {i}" for i in range(100) if i not in (10, 60)}
    untouched(rt)


def test_a_quote_never_closed_near_the_end_costs_only_its_line(world, tmp_path):
    # Row 8 runs over four lines to the end of the file, and ends a chunk of 7 rows as read.
    rt = world
    rows = [f"e{i}@example.org,E {i}\n" for i in range(10)]
    rows[6] = 'e6@example.org,"Never closed\n'  # row 8, line 8
    info = run(rt, write(tmp_path, "end.csv", "email,name\n" + "".join(rows)), chunk_rows=7)
    assert (info.rows, info.inserted, info.errors) == (10, 9, 1)
    bad = report(rt, info)
    assert sorted(bad) == [8]
    assert bad[8]["reason"] == lost_line(8, "it runs to the end of the file (line 11)")
    assert set(people(rt)) == {f"e{i}@example.org" for i in range(10) if i != 6}


def test_a_quote_closed_far_below_costs_only_its_line(world, tmp_path):
    # The quote opened on line 6 is closed by the one on line 37, which, read again as the
    # start of a row, opens a value never closed: the same again.
    rt = world
    before = with_bystander(rt)
    text = (
        "email,name,notes\n"
        'a@example.org,A,"1 Main Street\nSpringfield\nUSA"\n'  # row 2, lines 2-4
        "b@example.org,B,plain\n"  # row 3
        'c@example.org,"Stray quote,x\n'  # row 4, line 6
        + "".join(f"mid{i}@example.org,M{i},x\n" for i in range(30))  # rows 5-34
        + 'q@example.org,"Quote again,x\n'  # row 35, line 37
        + "".join(f"after{i}@example.org,After {i},x\n" for i in range(25))
    )  # 36-60
    info = run(rt, write(tmp_path, "far.csv", text))
    assert (info.rows, info.inserted, info.errors) == (59, 57, 2)
    bad = report(rt, info)
    assert sorted(bad) == [4, 35]
    assert (bad[4]["line"], bad[4]["email"]) == ("6", "c@example.org")
    assert bad[4]["reason"] == lost_line(6, "it runs on to line 37, over more than 20 lines")
    assert (bad[35]["line"], bad[35]["email"]) == ("37", "q@example.org")
    assert bad[35]["reason"] == lost_line(37, "it runs to the end of the file (line 62)")
    new = {email: name for email, name, _ in landed(before, snapshot(rt))}
    assert new == {
        "a@example.org": "A",
        "b@example.org": "B",
        **{f"mid{i}@example.org": f"M{i}" for i in range(30)},
        **{f"after{i}@example.org": f"After {i}" for i in range(25)},
    }
    untouched(rt)


def test_a_quote_never_closed_before_a_huge_cell(world, tmp_path):
    # The huge cell on line 40 is read before the stray quote on line 3 is seen to run over
    # more than 20 lines; the lines after line 3 are read again all the same, in order.
    rt = world
    lines = [f"h{i}@example.org,H {i}\n" for i in range(60)]  # lines 2-61
    lines[1] = 'stray@example.org,"Stray\n'  # line 3
    lines[28] = 'close@example.org,"close" here\n'  # line 30
    lines[38] = f"huge@example.org,{'z' * (csvfiles.FIELD_LIMIT + 5)}\n"  # line 40
    info = run(rt, write(tmp_path, "both.csv", "email,name\n" + "".join(lines)))
    bad = report(rt, info)
    assert sorted(bad) == [3, 40]
    assert bad[3]["reason"] == lost_line(3, "it runs on to line 30, over more than 20 lines")
    assert bad[40]["email"] == "huge@example.org" and "1,048,576" in bad[40]["reason"]
    assert (info.rows, info.inserted, info.errors) == (60, 58, 2)
    assert people(rt)["close@example.org"] == "close here"
    assert set(people(rt)) == {f"h{i}@example.org" for i in range(60) if i not in (1, 28, 38)} | {
        "close@example.org"
    }


def test_records_with_a_few_line_breaks_still_land(world, tmp_path):
    rt = world
    # 20 lines is the most a record may run over; a chunk full of addresses is looked at
    # record by record and all of them land.
    address = "\n".join(f"line {n}" for n in range(20))
    text = "email,name,notes\n" + "".join(
        f'p{i}@example.org,P {i},"{address}"\n' for i in range(300)
    )
    info = run(rt, write(tmp_path, "addresses.csv", text), chunk_rows=100)
    assert (info.rows, info.inserted, info.errors) == (300, 300, 0)
    assert _person(rt, "p299@example.org").name == "P 299"


def test_a_bad_row_over_several_lines_names_them(world, tmp_path):
    rt = world
    text = (
        "email,name,notes\n"
        'ok@example.org,Ok,"two\nlines"\n'  # row 2, lines 2-3
        'not an address,X,"three\nlines\nhere"\n'  # row 3, lines 4-6
        '"new\nline@example.org",Y,\n'  # row 4, lines 7-8
        'name@example.org,"Two\r\nlines",\n'  # row 5, lines 9-10
        "one@example.org,Z,bad\x00\n"  # row 6, line 11
        "no-at-sign,One line,\n"
    )  # row 7, line 12
    info = run(rt, write(tmp_path, "spans.csv", text))
    assert (info.rows, info.inserted, info.errors) == (6, 2, 4)
    bad = report(rt, info)
    assert sorted(bad) == [3, 4, 5, 7]
    assert bad[3]["line"] == "4" and bad[3]["reason"].endswith("(the row spans lines 4-6)")
    assert bad[4]["reason"] == (
        "The email address must not contain line breaks (the row spans lines 7-8)"
    )
    assert bad[5]["reason"] == ("The name must not contain line breaks (the row spans lines 9-10)")
    assert "lines" not in bad[7]["reason"]
    assert set(people(rt)) == {"ok@example.org", "one@example.org"}


def test_a_quote_never_closed_in_the_header_refuses_the_file(world, tmp_path):
    rt = world
    before = snapshot(rt)
    text = 'email,"name\n' + "".join(f"h{i}@example.org,H\n" for i in range(30))
    with pytest.raises(ValidationError) as err:
        imports.create_job(
            rt, path=write(tmp_path, "header.csv", text), list_slug="news", consent="x"
        )
    assert err.value.field == "file" and "never closed" in err.value.message
    assert "line 31" in err.value.message
    assert snapshot(rt) == before


# -- NUL bytes and oversized cells ----------------------------------------------------------------
def test_a_nul_byte_in_a_name_is_called_what_it_is(world, tmp_path):
    rt = world
    text = "email,name\nnul@example.org,Ad\x00a\nok@example.org,Ok\n"
    info = run(rt, write(tmp_path, "nul.csv", text))
    assert (info.rows, info.inserted, info.errors) == (2, 1, 1)
    row = report(rt, info)[2]
    assert row["email"] == "nul@example.org"
    assert row["reason"] == "The name must not contain control characters (it holds a NUL byte)."
    assert set(people(rt)) == {"ok@example.org"}


def test_a_cell_over_the_limit_is_reported_with_its_address(world, tmp_path):
    rt = world
    before = with_bystander(rt)
    huge = "x" * (csvfiles.FIELD_LIMIT + 10)
    text = (
        "email,name,notes\n"
        "a@example.org,A,\n"
        f"big@example.org,Big,{huge}\n"  # row 3
        "b@example.org,B,\n"
        f'quoted@example.org,Q,"two\nlines {huge}"\n'  # row 5, lines 5-6
        "c@example.org,C,\n"
    )
    info = run(rt, write(tmp_path, "huge.csv", text))
    assert (info.rows, info.inserted, info.errors) == (5, 3, 2)
    bad = report(rt, info)
    assert sorted(bad) == [3, 5]
    assert bad[3]["email"] == "big@example.org" and bad[3]["line"] == "3"
    assert bad[3]["reason"] == "a cell is longer than 1,048,576 characters, the most one may hold"
    assert bad[5]["email"] == "quoted@example.org"
    assert bad[5]["reason"].endswith("(the row spans lines 5-6)")
    new = {email for email, _, _ in landed(before, snapshot(rt))}
    assert new == {"a@example.org", "b@example.org", "c@example.org"}
    untouched(rt)


def test_a_stray_quote_in_a_large_file_stops_at_the_limit(world, tmp_path):
    # The quoted value outgrows the cell limit past line 1,000: the reader gives up on it there,
    # and reads the lines after its first again.
    rt = world
    pad = "p" * 1020
    text = 'email,name,notes\nfirst@example.org,"Stray,x\n' + "".join(
        f"r{i}@example.org,R {i},{pad}\n" for i in range(1100)
    )
    info = run(rt, write(tmp_path, "large.csv", text))
    bad = report(rt, info)
    assert sorted(bad) == [2]
    assert bad[2]["email"] == "first@example.org"
    end = int(bad[2]["reason"].split("runs past line ")[1].split()[0])
    assert 1000 < end < 1100
    assert bad[2]["reason"] == lost_line(
        2, f"it runs past line {end} and grows longer than 1,048,576 characters"
    )
    assert set(people(rt)) == {f"r{i}@example.org" for i in range(1100)}
    assert (info.rows, info.inserted, info.errors) == (1101, 1100, 1)
    assert _person(rt, "r1099@example.org").fields == {}
    assert report_rows(rt, info.id)[0]["line"] == "2"


def test_stray_bytes_and_a_huge_cell_in_one_file(world, tmp_path):
    rt = world
    with rt.db.session() as s:
        s.add(FieldDef(key="city", label="City", type="text"))
    huge = b"y" * (csvfiles.FIELD_LIMIT + 1)
    data = (
        b"email,name,city\n"
        + "".join(f"u{i}@example.org,Zoë {i},Köln\n" for i in range(10)).encode()
        + b"w\xe9ird@example.org,W,"
        + huge
        + b"\n"
        + b"last@example.org,L,K\xf6ln\n"
    )
    info = run(rt, write_bytes(tmp_path, "both.csv", data))
    assert (info.inserted, info.errors) == (10, 2)
    bad = report(rt, info)
    assert bad[12]["email"] == "w\ufffdird@example.org" and "1,048,576" in bad[12]["reason"]
    assert bad[13]["reason"].endswith("byte 0xF6")
    assert _person(rt, "u9@example.org").fields == {"city": "Köln"}
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Subscriber)) == 10


def test_bom_file_still_reads(world, tmp_path):
    rt = world
    path = write_bytes(
        tmp_path, "bom.csv", codecs.BOM_UTF8 + "Email;Name\nä@example.org;Ä\n".encode()
    )
    info = run(rt, path)
    assert (info.inserted, info.errors) == (1, 0)
    assert _person(rt, "ä@example.org").name == "Ä"
