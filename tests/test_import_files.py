"""CSV files broken the ways real files are: a UTF-8 file with a stray byte of another encoding,
a quote that is never closed, a NUL byte, a cell over the size limit. The rows that can be read
land; each broken one is reported with its row, line and a reason that says what happened
(and which lines, when it runs over several); nothing else changes."""
from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from listmgr import csvfiles
from listmgr.models import FieldDef, Subscriber
from listmgr.services import subscribers
from tests.test_import import _members, _person, report_rows, run, snapshot, world, write  # noqa: F401


def write_bytes(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def report(rt, info) -> dict[int, dict[str, str]]:  # type: ignore[no-untyped-def]
    """The import's report by row number."""
    return {int(r["row"]): r for r in report_rows(rt, info.id)}


def people(rt) -> dict[str, str]:  # type: ignore[no-untyped-def]
    with rt.db.session() as s:
        return dict(s.execute(select(Subscriber.email, Subscriber.name)).all())


def landed(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The people an import added, after checking it changed no one who was there before."""
    old = set(map(repr, before["people"]))
    assert old <= set(map(repr, after["people"]))
    return [p for p in after["people"] if repr(p) not in old]


def with_bystander(rt) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Someone on another list, who no import here may touch; the state to compare with."""
    subscribers.create(rt, email="bystander@example.org", name="By Stander", lists=["other"],
                       consent="form", fields={"age": 50})
    return snapshot(rt)


def untouched(rt) -> None:  # type: ignore[no-untyped-def]
    assert _members(rt, "bystander@example.org") == {"other": "confirmed"}
    by = _person(rt, "bystander@example.org")
    assert by.name == "By Stander" and by.fields == {"age": 50}


# -- a UTF-8 file with stray bytes -----------------------------------------------------------------
@pytest.mark.parametrize("workers", [0, 1])   # read by a thread / by a process
def test_mostly_utf8_file_with_stray_bytes(world, tmp_path, workers):  # type: ignore[no-untyped-def]  # noqa: F811
    rt = world
    before = with_bystander(rt)
    rows = [f"mix{i}@example.com,Müller {i}".encode() for i in range(3000)]
    rows[1500] = b"mix1500@example.com,Jos\xe9"                        # row 1502: Latin-1
    rows[2200] = b'mix2200@example.com,"Fran\xe7ois\r\nand Ren\xe9e",x'  # rows 2202, two lines
    rows[2998] = b"bad\xff\xfe@example.com,B\xfcrger"                  # row 3000, bytes in email
    data = b"email,name,notes\r\n" + b"\r\n".join(rows) + b"\r\n"
    path = write_bytes(tmp_path, "mostly-utf8.csv", data)
    assert csvfiles.detect_encoding(path) == "utf-8"

    info = run(rt, path, workers=workers, chunk_rows=1000)
    assert (info.rows, info.inserted, info.errors, info.skipped) == (3000, 2997, 3, 0)
    bad = report(rt, info)
    assert sorted(bad) == [1502, 2202, 3000]
    assert bad[1502]["line"] == "1502" and bad[1502]["email"] == "mix1500@example.com"
    assert bad[1502]["reason"] == ("this row is not valid UTF-8 text (the rest of the file is "
                                   "UTF-8): byte 0xE9")
    assert bad[2202]["reason"] == ("this row is not valid UTF-8 text (the rest of the file is "
                                   "UTF-8): bytes 0xE7, 0xE9 (the row spans lines 2202-2203)")
    assert bad[3000]["line"] == "3001" and bad[3000]["email"] == "bad\ufffd\ufffd@example.com"
    assert "bytes 0xFF, 0xFE, 0xFC" in bad[3000]["reason"]
    assert {r["result"] for r in bad.values()} == {"error"}

    new = landed(before, snapshot(rt))
    expected = {f"mix{i}@example.com": f"Müller {i}" for i in range(3000)
                if i not in (1500, 2200, 2998)}
    assert {email: name for email, name, _ in new} == expected
    assert people(rt).keys() == expected.keys() | {"bystander@example.org"}
    assert _members(rt, "mix2999@example.com") == {"news": "confirmed"}
    untouched(rt)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "cp1252", "latin-1"])
def test_files_in_one_encoding_are_read_strictly(tmp_path, encoding):  # type: ignore[no-untyped-def]
    text = "email,name\r\nzoe@example.org,Zoë Müller\r\nmax@example.org,Mäx\r\n"
    if encoding == "latin-1":
        text += "x@example.org,X\x81\r\n"   # a byte cp1252 leaves undefined
    path = write(tmp_path, "one.csv", text, encoding)
    assert csvfiles.detect(path).errors == "strict"
    assert csvfiles.detect_encoding(path) == encoding


def test_a_latin1_file_with_a_few_utf8_lookalikes_stays_latin1(world, tmp_path):  # type: ignore[no-untyped-def]  # noqa: F811
    # "Ã©" in cp1252 is the bytes of a valid UTF-8 "é"; one such pair in a file full of
    # cp1252 accents does not make it UTF-8.
    rt = world
    text = "email,name\n" + "".join(f"p{i}@example.org,Renée Çava {i}\n" for i in range(20)) + \
        "odd@example.org,CafÃ©\n"
    info = run(rt, write(tmp_path, "latin.csv", text, "cp1252"))
    assert (info.inserted, info.errors) == (21, 0)
    assert _person(rt, "p7@example.org").name == "Renée Çava 7"
    assert _person(rt, "odd@example.org").name == "CafÃ©"


def test_a_stray_byte_in_the_header_does_not_stop_the_import(world, tmp_path):  # type: ignore[no-untyped-def]  # noqa: F811
    rt = world
    data = b"email,name,Stra\xdfe\n" + "".join(f"s{i}@example.org,Jürgen {i},x\n"
                                              for i in range(10)).encode()
    info = run(rt, write_bytes(tmp_path, "header.csv", data))
    assert (info.inserted, info.errors) == (10, 0)
    assert info.ignored_columns == ["Stra\ufffde"]
    assert _person(rt, "s3@example.org").name == "Jürgen 3"


# -- quotes that are never closed -----------------------------------------------------------------
def test_a_stray_quote_is_reported_with_the_lines_it_swallowed(world, tmp_path):  # type: ignore[no-untyped-def]  # noqa: F811
    rt = world
    before = with_bystander(rt)
    text = 'email,name\nuq0@example.org,"Stray quote\n' + \
        "".join(f"uq{i}@example.org,{i} {i}\n" for i in range(1, 500))
    info = run(rt, write(tmp_path, "stray.csv", text))
    assert (info.rows, info.inserted, info.errors) == (1, 0, 1)
    [(row, line, email, result, reason)] = [tuple(r.values()) for r in report_rows(rt, info.id)]
    assert (row, line, email, result) == ("2", "2", "uq0@example.org", "error")
    assert reason == ("a quoted value opened on line 2 runs to the end of the file (line 501) "
                      "without a closing quote; lines 2-501 were not imported")
    assert snapshot(rt) == before


def test_a_quote_closed_far_below_is_reported_and_the_rest_lands(world, tmp_path):  # type: ignore[no-untyped-def]  # noqa: F811
    rt = world
    before = with_bystander(rt)
    text = ("email,name,notes\n"
            'a@example.org,A,"1 Main Street\nSpringfield\nUSA"\n'              # rows 2, 3 land
            'b@example.org,B,plain\n'
            'c@example.org,"Stray quote,x\n'                                     # row 4: 6-37
            + "".join(f"lost{i}@example.org,L{i},x\n" for i in range(30))
            + 'q@example.org,"closing" quote,x\n'
            + "".join(f"after{i}@example.org,After {i},x\n" for i in range(5)))  # rows 5-9
    info = run(rt, write(tmp_path, "far.csv", text))
    assert (info.rows, info.inserted, info.errors) == (8, 7, 1)
    assert report(rt, info)[4]["reason"] == (
        "a quoted value opened on line 6 runs to line 37: probably a quote that is never "
        "closed; lines 6-37 were not imported")
    assert report(rt, info)[4]["line"] == "6"
    new = {email: name for email, name, _ in landed(before, snapshot(rt))}
    assert new == {"a@example.org": "A", "b@example.org": "B",
                   **{f"after{i}@example.org": f"After {i}" for i in range(5)}}
    untouched(rt)


def test_records_with_a_few_line_breaks_still_land(world, tmp_path):  # type: ignore[no-untyped-def]  # noqa: F811
    rt = world
    # 20 lines is the most a record may run over; a chunk full of addresses is looked at
    # record by record and all of them land.
    address = "\n".join(f"line {n}" for n in range(20))
    text = "email,name,notes\n" + "".join(f'p{i}@example.org,P {i},"{address}"\n'
                                          for i in range(300))
    info = run(rt, write(tmp_path, "addresses.csv", text), chunk_rows=100)
    assert (info.rows, info.inserted, info.errors) == (300, 300, 0)
    assert _person(rt, "p299@example.org").name == "P 299"


def test_a_bad_row_over_several_lines_names_them(world, tmp_path):  # type: ignore[no-untyped-def]  # noqa: F811
    rt = world
    text = ("email,name,notes\n"
            'ok@example.org,Ok,"two\nlines"\n'                         # row 2, lines 2-3
            'not an address,X,"three\nlines\nhere"\n'                  # row 3, lines 4-6
            '"new\nline@example.org",Y,\n'                             # row 4, lines 7-8
            'name@example.org,"Two\r\nlines",\n'                       # row 5, lines 9-10
            "one@example.org,Z,bad\x00\n"                              # row 6, line 11
            "no-at-sign,One line,\n")                                  # row 7, line 12
    info = run(rt, write(tmp_path, "spans.csv", text))
    assert (info.rows, info.inserted, info.errors) == (6, 2, 4)
    bad = report(rt, info)
    assert sorted(bad) == [3, 4, 5, 7]
    assert bad[3]["line"] == "4" and bad[3]["reason"].endswith("(the row spans lines 4-6)")
    assert bad[4]["reason"] == ("The email address must not contain line breaks (the row spans "
                                "lines 7-8)")
    assert bad[5]["reason"] == ("The name must not contain line breaks (the row spans lines "
                                "9-10)")
    assert "lines" not in bad[7]["reason"]
    assert set(people(rt)) == {"ok@example.org", "one@example.org"}


def test_a_quote_never_closed_in_the_header_refuses_the_file(world, tmp_path):  # type: ignore[no-untyped-def]  # noqa: F811
    from listmgr.errors import ValidationError
    from listmgr.services import imports

    rt = world
    before = snapshot(rt)
    text = 'email,"name\n' + "".join(f"h{i}@example.org,H\n" for i in range(30))
    with pytest.raises(ValidationError) as err:
        imports.create_job(rt, path=write(tmp_path, "header.csv", text), list_slug="news",
                           consent="x")
    assert err.value.field == "file" and "never closed" in err.value.message
    assert "line 31" in err.value.message
    assert snapshot(rt) == before


# -- NUL bytes and oversized cells ----------------------------------------------------------------
def test_a_nul_byte_in_a_name_is_called_what_it_is(world, tmp_path):  # type: ignore[no-untyped-def]  # noqa: F811
    rt = world
    text = "email,name\nnul@example.org,Ad\x00a\nok@example.org,Ok\n"
    info = run(rt, write(tmp_path, "nul.csv", text))
    assert (info.rows, info.inserted, info.errors) == (2, 1, 1)
    row = report(rt, info)[2]
    assert row["email"] == "nul@example.org"
    assert row["reason"] == "The name must not contain control characters (it holds a NUL byte)."
    assert set(people(rt)) == {"ok@example.org"}


def test_a_cell_over_the_limit_is_reported_with_its_address(world, tmp_path):  # type: ignore[no-untyped-def]  # noqa: F811
    rt = world
    before = with_bystander(rt)
    huge = "x" * (csvfiles.FIELD_LIMIT + 10)
    text = ("email,name,notes\n"
            "a@example.org,A,\n"
            f"big@example.org,Big,{huge}\n"                           # row 3
            "b@example.org,B,\n"
            f'quoted@example.org,Q,"two\nlines {huge}"\n'              # row 5, lines 5-6
            "c@example.org,C,\n")
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


def test_a_stray_quote_in_a_large_file_stops_at_the_limit(world, tmp_path):  # type: ignore[no-untyped-def]  # noqa: F811
    # The quoted value outgrows the cell limit on line 1,025: the reader gives up on it there
    # and reads on from the next line.
    rt = world
    pad = "p" * 1020
    text = ("email,name,notes\n"
            'first@example.org,"Stray,x\n'
            + "".join(f"r{i}@example.org,R {i},{pad}\n" for i in range(1100)))
    info = run(rt, write(tmp_path, "large.csv", text))
    bad = report(rt, info)
    assert sorted(bad) == [2]
    assert bad[2]["email"] == "first@example.org"
    end = int(bad[2]["reason"].split("runs past line ")[1].split()[0])
    assert 1000 < end < 1100
    assert bad[2]["reason"] == (
        f"a quoted value opened on line 2 runs past line {end} and grows longer than 1,048,576 "
        f"characters: probably a quote that is never closed; lines 2-{end} were not imported")
    expected = {f"r{i}@example.org" for i in range(end - 2, 1100)}
    assert set(people(rt)) == expected
    assert (info.rows, info.inserted, info.errors) == (1 + len(expected), len(expected), 1)


def test_stray_bytes_and_a_huge_cell_in_one_file(world, tmp_path):  # type: ignore[no-untyped-def]  # noqa: F811
    rt = world
    with rt.db.session() as s:
        s.add(FieldDef(key="city", label="City", type="text"))
    huge = b"y" * (csvfiles.FIELD_LIMIT + 1)
    data = (b"email,name,city\n" + "".join(f"u{i}@example.org,Zoë {i},Köln\n"
                                           for i in range(10)).encode()
            + b"w\xe9ird@example.org,W," + huge + b"\n" + b"last@example.org,L,K\xf6ln\n")
    info = run(rt, write_bytes(tmp_path, "both.csv", data))
    assert (info.inserted, info.errors) == (10, 2)
    bad = report(rt, info)
    assert bad[12]["email"] == "w\ufffdird@example.org" and "1,048,576" in bad[12]["reason"]
    assert bad[13]["reason"].endswith("byte 0xF6")
    assert _person(rt, "u9@example.org").fields == {"city": "Köln"}
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Subscriber)) == 10


def test_bom_file_still_reads(world, tmp_path):  # type: ignore[no-untyped-def]  # noqa: F811
    rt = world
    path = write_bytes(tmp_path, "bom.csv", codecs.BOM_UTF8 + "Email;Name\nä@example.org;Ä\n"
                       .encode())
    info = run(rt, path)
    assert (info.inserted, info.errors) == (1, 0)
    assert _person(rt, "ä@example.org").name == "Ä"
