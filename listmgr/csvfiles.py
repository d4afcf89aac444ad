"""Reading CSV files as people write them: any common encoding and dialect, streamed (pure)."""
from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

SAMPLE_BYTES = 64 * 1024
SCAN_BYTES = 1024 * 1024
DELIMITERS = ",;\t|"
FIELD_LIMIT = 1024 * 1024  # one cell; a larger one is a broken file, not data
MAX_RECORD_LINES = 20      # physical lines of one record; more is a quote never closed, not data
NOT_UTF8 = "surrogateescape"  # how a mostly UTF-8 file is read: its stray bytes kept, as U+DCxx
_ESCAPED = re.compile("[\udc80-\udcff]")   # a byte that is not UTF-8, read with NOT_UTF8


class CsvFileError(ValueError):
    """The file cannot be read as CSV; the message is for people."""


@dataclass(frozen=True)
class CsvFormat:
    """How a file is written: its encoding and CSV dialect."""

    encoding: str
    delimiter: str = ","
    quotechar: str = '"'
    skipinitialspace: bool = False
    errors: str = "strict"   # NOT_UTF8: UTF-8 with a few bytes that are not (their rows are bad)

    def dialect(self) -> type[csv.Dialect]:
        class Sniffed(csv.excel):
            delimiter = self.delimiter
            quotechar = self.quotechar
            skipinitialspace = self.skipinitialspace
            doublequote = True

        return Sniffed


def _decodes(path: Path, encoding: str, skip: int = 0) -> bool:
    """Whether the whole file decodes in this encoding (read in blocks: memory stays flat)."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    with path.open("rb") as fh:
        fh.seek(skip)
        try:
            while block := fh.read(SCAN_BYTES):
                decoder.decode(block)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def _mostly_utf8(path: Path) -> bool:
    """Whether a file holds more valid multi-byte UTF-8 sequences than bytes that are not
    UTF-8: then it is UTF-8 with a few broken bytes, as text in Windows-1252 or Latin-1
    virtually never forms a valid multi-byte sequence (read in blocks: memory stays flat)."""
    decoder = codecs.getincrementaldecoder("utf-8")(NOT_UTF8)
    valid = invalid = 0
    with path.open("rb") as fh:
        while True:
            block = fh.read(SCAN_BYTES)
            text = decoder.decode(block, final=not block)
            if not text.isascii():
                stray = len(_ESCAPED.findall(text))
                invalid += stray
                valid += len(text) - len(text.encode("ascii", "ignore")) - stray
            if not block:
                return valid > invalid


def sniff_encoding(path: Path) -> tuple[str, str]:
    """The encoding of a file and how to decode it: "strict", or NOT_UTF8 for a file that is
    mostly UTF-8 (see _mostly_utf8), whose rows with other bytes are reported, not guessed."""
    with path.open("rb") as fh:
        head = fh.read(4)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", "strict"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", "strict"
    if _decodes(path, "utf-8"):
        return "utf-8", "strict"
    if _mostly_utf8(path):
        return "utf-8", NOT_UTF8
    # cp1252 is what spreadsheet programs write on Windows; it leaves five bytes undefined,
    # and a file using those is Latin-1 (which decodes every byte).
    return ("cp1252" if _decodes(path, "cp1252") else "latin-1"), "strict"


def detect_encoding(path: Path) -> str:
    """UTF-8 (with or without BOM), UTF-16 with BOM, else Windows-1252, else Latin-1; a file
    that is mostly UTF-8 is UTF-8 (sniff_encoding tells how to read its other bytes)."""
    return sniff_encoding(path)[0]


def stray_bytes(text: str) -> bytes:
    """The bytes that are not UTF-8 in text read with NOT_UTF8, in order."""
    return bytes(ord(c) - 0xDC00 for c in _ESCAPED.findall(text))


def readable(text: str) -> str:
    """Text read with NOT_UTF8 as it can be shown and stored: stray bytes as U+FFFD."""
    return text if text.isascii() else _ESCAPED.sub("\ufffd", text)


def line_breaks(text: str) -> int:
    """The line breaks in a value as the reader counts lines (CR LF, LF or CR alone)."""
    return text.count("\n") + text.count("\r") - text.count("\r\n")


def last_line(line: int, cells: list[str]) -> int:
    """The line a record that starts on `line` ends on: its cells keep the breaks in them."""
    return line + sum(line_breaks(c) for c in cells if "\n" in c or "\r" in c)


def with_lines(reason: str, line: int, end: int) -> str:
    """A reason for people, with the lines of a record that runs over more than one."""
    return reason if end <= line else f"{reason.rstrip('.')} (the row spans lines {line}-{end})"


def detect(path: Path) -> CsvFormat:
    """The encoding and dialect of a CSV file, from its bytes and a sample of its text."""
    if not path.is_file():
        raise CsvFileError(f"there is no file {path}")
    encoding, errors = sniff_encoding(path)
    with path.open("r", encoding=encoding, errors=errors, newline="") as fh:
        sample = fh.read(SAMPLE_BYTES)
    if not sample.strip():
        raise CsvFileError("the file is empty")
    if len(sample) == SAMPLE_BYTES and "\n" in sample:
        sample = sample[:sample.rindex("\n")]  # whole lines only
    try:
        sniffed = csv.Sniffer().sniff(sample, delimiters=DELIMITERS)
        return CsvFormat(encoding, sniffed.delimiter, sniffed.quotechar or '"',
                         bool(sniffed.skipinitialspace), errors)
    except csv.Error:
        # One column, or too little text to tell: count the candidates in the header line.
        header = sample.splitlines()[0]
        counts = {d: header.count(d) for d in DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return CsvFormat(encoding, best if counts[best] else ",", errors=errors)


class _CountingReader(io.RawIOBase):
    """A binary file that counts the bytes read from it (for progress)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def, override]
        n = self.raw.readinto(buffer)  # type: ignore[attr-defined]
        self.count += n or 0
        return n  # type: ignore[no-any-return]

    def close(self) -> None:
        self.raw.close()
        super().close()


@dataclass
class Record:
    """One CSV record: its row (the header is row 1) and the line it starts on."""

    row: int
    line: int
    cells: list[str] | None   # with an error: what could be read (for the report), or None
    error: str = ""           # why the record is bad, for people


class CsvReader:
    """Streams the records of a file; `header` is the first record, `bytes_read` the progress."""

    def __init__(self, path: Path, fmt: CsvFormat) -> None:
        csv.field_size_limit(FIELD_LIMIT)
        self.path = path
        self.fmt = fmt
        self.total_bytes = path.stat().st_size
        self._counter = _CountingReader(path.open("rb"))
        self._text = io.TextIOWrapper(io.BufferedReader(self._counter, 256 * 1024),
                                      encoding=fmt.encoding, errors=fmt.errors, newline="")
        self._reader = csv.reader(self._text, fmt.dialect())
        self._row = 1
        self._again: IO[str] | None = None   # reads broken records again (see _salvage)
        self._again_line = 0
        try:
            header = next(self._reader)
        except StopIteration:
            raise CsvFileError("the file is empty") from None
        except csv.Error as exc:
            raise CsvFileError(f"the first line is not a CSV header: {exc}") from None
        if self._reader.line_num > MAX_RECORD_LINES:
            raise CsvFileError(f"a quoted value in the header runs to line "
                               f"{self._reader.line_num}: probably a quote that is never closed")
        self.header = [readable(h.strip()) for h in header]
        if header and header[0].startswith("\ufeff"):
            self.header[0] = self.header[0].lstrip("\ufeff")

    @property
    def bytes_read(self) -> int:
        return min(self._counter.count, self.total_bytes)

    def __iter__(self) -> Iterator[Record]:
        for chunk in self.chunks(1000):
            for row, cells, error, line in chunk:
                yield Record(row, line, cells, error)

    def chunks(self, size: int) -> Iterator[list[tuple[int, list[str] | None, str, int]]]:
        """Lists of up to size (row, cells, error, line): the fast way through. A record with
        an error is bad; its cells are then what could be read of it (for the report), or
        None."""
        reader, row = self._reader, self._row
        chunk: list[tuple[int, list[str] | None, str, int]] = []
        append = chunk.append
        while True:
            line = reader.line_num + 1
            row += 1
            try:
                append((row, next(reader), "", line))
            except StopIteration:
                break
            except csv.Error as exc:
                end = reader.line_num
                cells = self._salvage(line, end)
                append((row, cells, broken(str(exc), line, end, cells), line))
            if len(chunk) >= size:
                self._row = row
                yield self._checked(chunk, False)
                chunk = []
                append = chunk.append
        self._row = row
        if chunk:
            yield self._checked(chunk, True)

    def _checked(self, chunk: list[tuple[int, list[str] | None, str, int]], final: bool
                 ) -> list[tuple[int, list[str] | None, str, int]]:
        """The chunk with its records that see record_error made bad. Only a chunk that spans
        many more lines than it has records, or holds bytes that are not UTF-8 (in a file read
        with NOT_UTF8), is looked at record by record; otherwise only the last record of the
        file is."""
        end = self._reader.line_num
        if end - chunk[0][3] + 1 - len(chunk) >= MAX_RECORD_LINES or (
                self.fmt.errors == NOT_UTF8 and _ESCAPED.search(
                    "".join(["".join(cells) for _, cells, _, _ in chunk if cells]))):
            ends = [record[3] - 1 for record in chunk[1:]] + [end]
            return [(row, cells, error or record_error(cells, line, last), line)
                    for (row, cells, error, line), last in zip(chunk, ends)]
        if final:
            row, cells, error, line = chunk[-1]
            chunk[-1] = (row, cells, error or record_error(cells, line, end), line)
        return chunk

    def _salvage(self, line: int, end: int) -> list[str] | None:
        """The whole cells before the one that broke, of a record on lines line to end: read
        again, at most FIELD_LIMIT characters of it, by a second reader that only moves on
        (broken records come in line order), so that the report can show the address."""
        if self._again is None:
            self._again = self.path.open("r", encoding=self.fmt.encoding,
                                         errors=self.fmt.errors, newline="")
        lines: list[str] = []
        room = FIELD_LIMIT - 1   # no cell of what is read again is too large
        cut = False
        for text in self._again:
            self._again_line += 1
            if self._again_line >= line and not cut:
                cut = len(text) > room
                lines.append(text[:room])
                room -= len(lines[-1])
            if self._again_line >= end:
                break
        try:
            cells = next(csv.reader(lines, self.fmt.dialect()))
        except (csv.Error, StopIteration):
            return None
        return cells[:-1] if cut else cells   # the last cell was cut short

    def close(self) -> None:
        self._text.close()
        if self._again is not None:
            self._again.close()

    def __enter__(self) -> CsvReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def record_error(cells: list[str] | None, line: int, end: int) -> str:
    """Why a record that parsed (on lines line to end) is bad, or "": a quoted value in it runs
    to the end of the file or over more than MAX_RECORD_LINES lines, or it holds bytes that
    are not UTF-8 (read with NOT_UTF8)."""
    if not cells:
        return ""
    breaks = [line_breaks(c) for c in cells]
    if line + sum(breaks) > end:
        # Its last value holds the line break that ends the file: its quote never closed.
        opened = line + sum(breaks[:-1])
        return (f"a quoted value opened on line {opened} runs to the end of the file (line "
                f"{end}) without a closing quote; lines {line}-{end} were not imported")
    if end - line >= MAX_RECORD_LINES:
        longest = breaks.index(max(breaks))
        opened = line + sum(breaks[:longest])
        return (f"a quoted value opened on line {opened} runs to line {end}: probably a quote "
                f"that is never closed; lines {line}-{end} were not imported")
    stray = stray_bytes("".join(cells))
    if stray:
        shown = ", ".join(f"0x{b:02X}" for b in dict.fromkeys(stray))
        return with_lines(f"this row is not valid UTF-8 text (the rest of the file is UTF-8): "
                          f"byte{'s' if len(set(stray)) > 1 else ''} {shown}", line, end)
    return ""


def broken(error: str, line: int, end: int, cells: list[str] | None = None) -> str:
    """Why a record the CSV reader gave up on on lines line to end is bad, for people (error:
    the reader's message; cells: the whole ones before where it broke, if they were read)."""
    if "field larger than field limit" not in error:
        return with_lines(f"the CSV is broken here: {error}", line, end)
    if end - line >= MAX_RECORD_LINES:
        opened = last_line(line, cells or [])   # the value that broke starts after the cells
        return (f"a quoted value opened on line {opened} runs past line {end} and grows longer "
                f"than {FIELD_LIMIT:,} characters: probably a quote that is never closed; "
                f"lines {line}-{end} were not imported")
    return with_lines(f"a cell is longer than {FIELD_LIMIT:,} characters, the most one may hold",
                      line, end)


def write_row(cells: list[object]) -> str:
    """One CSV line (excel dialect, CRLF) for a report or an export."""
    out = io.StringIO()
    csv.writer(out).writerow(cells)
    return out.getvalue()
