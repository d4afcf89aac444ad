"""Reading CSV files as people write them: any common encoding and dialect, streamed (pure)."""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

SAMPLE_BYTES = 64 * 1024
SCAN_BYTES = 1024 * 1024
DELIMITERS = ",;\t|"
FIELD_LIMIT = 1024 * 1024  # one cell; a larger one is a broken file, not data
MAX_RECORD_LINES = 20  # physical lines of one record; more is a quote never closed, not data
NOT_UTF8 = "surrogateescape"  # how a mostly UTF-8 file is read: its stray bytes kept, as U+DCxx
_ESCAPED = re.compile("[\udc80-\udcff]")  # a byte that is not UTF-8, read with NOT_UTF8
NAMES = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8",
    "utf-16": "UTF-16",
    "cp1252": "Windows-1252",
    "latin-1": "Latin-1",
}  # encodings as people know them


class CsvFileError(ValueError):
    """The file cannot be read as CSV; the message is for people."""


@dataclass(frozen=True)
class CsvFormat:
    """How a file is written: its encoding and CSV dialect."""

    encoding: str
    delimiter: str = ","
    quotechar: str = '"'
    skipinitialspace: bool = False
    errors: str = "strict"  # NOT_UTF8: UTF-8 with a few bytes that are not (their rows are bad)

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


def _mostly_utf8(path: Path, skip: int = 0) -> bool:
    """Whether a file holds more valid multi-byte UTF-8 sequences than bytes that are not
    UTF-8: then it is UTF-8 with a few broken bytes, as text in Windows-1252 or Latin-1
    virtually never forms a valid multi-byte sequence (read in blocks: memory stays flat)."""
    decoder = codecs.getincrementaldecoder("utf-8")(NOT_UTF8)
    valid = invalid = 0
    with path.open("rb") as fh:
        fh.seek(skip)
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
    mostly UTF-8 (see _mostly_utf8), whose rows with other bytes are reported, not guessed.
    A file whose byte order mark is not what the rest of it is raises CsvFileError."""
    with path.open("rb") as fh:
        head = fh.read(4)
    if head.startswith(codecs.BOM_UTF8):  # as Excel's "CSV UTF-8" begins
        if _decodes(path, "utf-8", skip=len(codecs.BOM_UTF8)):
            return "utf-8-sig", "strict"
        if _mostly_utf8(path, skip=len(codecs.BOM_UTF8)):
            return "utf-8-sig", NOT_UTF8
        raise CsvFileError(
            "it begins with the mark of a UTF-8 file (a byte order mark), but "
            "most of its text is in another encoding: save it again as UTF-8"
        )
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        if _decodes(path, "utf-16"):
            return "utf-16", "strict"
        raise CsvFileError(
            "it begins with the mark of a UTF-16 file (a byte order mark), but "
            "not all of it is UTF-16 text: save it again as UTF-8"
        )
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


def not_text(exc: UnicodeDecodeError, encoding: str, where: str) -> str:
    """Why a file cannot be read in an encoding (exc: the decoder's error), for people."""
    name = NAMES.get(encoding, encoding)
    byte = bytes(exc.object[exc.start : exc.start + 1])
    return (
        f"{where} it is not {name} text: byte 0x{byte.hex().upper()} cannot be read as "
        f"{name}; save the file again as UTF-8"
    )


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
    try:
        with path.open("r", encoding=encoding, errors=errors, newline="") as fh:
            sample = fh.read(SAMPLE_BYTES)
    except UnicodeDecodeError as exc:  # the file changed since it was looked at
        raise CsvFileError(not_text(exc, encoding, "in its first lines")) from None
    if not sample.strip():
        raise CsvFileError("the file is empty")
    if len(sample) == SAMPLE_BYTES and "\n" in sample:
        sample = sample[: sample.rindex("\n")]  # whole lines only
    try:
        sniffed = csv.Sniffer().sniff(sample, delimiters=DELIMITERS)
        return CsvFormat(
            encoding,
            sniffed.delimiter,
            sniffed.quotechar or '"',
            bool(sniffed.skipinitialspace),
            errors,
        )
    except csv.Error:
        # One column, or too little text to tell: count the candidates in the header line.
        header = sample.splitlines()[0]
        counts = {d: header.count(d) for d in DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return CsvFormat(encoding, best if counts[best] else ",", errors=errors)


class _CountingReader(io.RawIOBase):
    """A binary file that counts the bytes read from it (for progress)."""

    def __init__(self, raw: io.BufferedIOBase) -> None:
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        n = self.raw.readinto(buffer)
        self.count += n or 0
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


@dataclass
class Record:
    """One CSV record: its row (the header is row 1) and the line it starts on."""

    row: int
    line: int
    cells: list[str] | None  # with an error: what could be read (for the report), or None
    error: str = ""  # why the record is bad, for people


class CsvReader:
    """Streams the records of a file; `header` is the first record, `bytes_read` the progress.

    A record whose quoted value is never closed (it runs to the end of the file, or over more
    than MAX_RECORD_LINES lines) is bad on its first line only: the lines after that are read
    again as records of their own (kept in memory: they were one value, at most FIELD_LIMIT
    characters, and the rest of the chunk they were found in), then the file reads on."""

    def __init__(self, path: Path, fmt: CsvFormat) -> None:
        csv.field_size_limit(FIELD_LIMIT)
        self.path = path
        self.fmt = fmt
        self.total_bytes = path.stat().st_size
        self._counter = _CountingReader(path.open("rb"))
        self._text = io.TextIOWrapper(
            io.BufferedReader(self._counter, 256 * 1024),
            encoding=fmt.encoding,
            errors=fmt.errors,
            newline="",
        )
        self._reader = csv.reader(self._text, fmt.dialect())
        self._skipped = 0  # lines before those self._reader reads (read again)
        self._kept: list[str] = []  # the lines read again, from line self._kept_from
        self._kept_from = 1
        self._row = 1
        self._again: IO[str] | None = None  # reads lines again (see _lines)
        self._again_line = 0
        try:
            header = next(self._reader)
        except StopIteration:
            raise CsvFileError("the file is empty") from None
        except csv.Error as exc:
            raise CsvFileError(f"the first line is not a CSV header: {exc}") from None
        except UnicodeDecodeError as exc:
            self.close()
            raise CsvFileError(not_text(exc, fmt.encoding, "in its header")) from None
        if self._reader.line_num > MAX_RECORD_LINES:
            raise CsvFileError(
                f"a quoted value in the header runs to line "
                f"{self._reader.line_num}: probably a quote that is never closed"
            )
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
        reader, first, row = self._reader, self._skipped + 1, self._row
        chunk: list[tuple[int, list[str] | None, str, int]] = []
        append = chunk.append
        while True:
            line = reader.line_num + first
            row += 1
            try:
                append((row, next(reader), "", line))
            except StopIteration:
                row -= 1
                final = True
            except csv.Error as exc:
                append(self._broken(row, line, str(exc)))
                reader, first = self._reader, self._skipped + 1  # changed by a quote never closed
                if len(chunk) < size:
                    continue
                final = False
            except UnicodeDecodeError as exc:  # the file changed since it was looked at
                raise CsvFileError(
                    not_text(exc, self.fmt.encoding, f"after line {line - 1}")
                ) from None
            else:
                if len(chunk) < size:
                    continue
                final = False
            held = None
            if chunk:
                end = self._skipped + self._reader.line_num
                if not final and len(chunk) > 1 and open_at_end(chunk[-1][1]):
                    held = chunk.pop()  # is it a quote never closed at the end of the file?
                    end = held[3] - 1
                chunk = self._checked(chunk, end, final)
                yield chunk
            if self._reader is not reader:  # a quote never closed: the lines after it again
                reader, first, row, held = self._reader, self._skipped + 1, chunk[-1][0], None
            elif final:
                return
            chunk = [held] if held else []
            append = chunk.append

    def _checked(
        self, chunk: list[tuple[int, list[str] | None, str, int]], end: int, final: bool
    ) -> list[tuple[int, list[str] | None, str, int]]:
        """The chunk (its last record ends on line end) with its records that see record_error
        made bad, up to one whose quoted value is never closed (the lines after its first are
        then read again). Only a chunk that spans many more lines than it has records, or holds
        bytes that are not UTF-8 (in a file read with NOT_UTF8), is looked at record by record;
        otherwise only the last record of the file is."""
        if end - chunk[0][3] + 1 - len(chunk) >= MAX_RECORD_LINES or (
            self.fmt.errors == NOT_UTF8
            and _ESCAPED.search("".join(["".join(cells) for _, cells, _, _ in chunk if cells]))
        ):
            ends = [record[3] - 1 for record in chunk[1:]] + [end]
            out = []
            for (row, cells, error, line), last in zip(chunk, ends, strict=False):
                if not error and (lost := never_closed(cells, line, last)):
                    out.append((row, self._read_again(line)[0], lost, line))
                    break
                out.append((row, cells, error or record_error(cells, line, last), line))
            return out
        if final:
            row, cells, error, line = chunk[-1]
            if not error and (lost := never_closed(cells, line, end)):
                chunk[-1] = (row, self._read_again(line)[0], lost, line)
            elif not error:
                chunk[-1] = (row, cells, record_error(cells, line, end), line)
        return chunk

    def _broken(self, row: int, line: int, error: str) -> tuple[int, list[str] | None, str, int]:
        """The record the CSV reader gave up on, from line on, as a bad one; when it is a quoted
        value never closed, the lines after its first are read again."""
        end = self._skipped + self._reader.line_num
        if "field larger than field limit" in error and end - line >= MAX_RECORD_LINES:
            first, lines = self._read_again(line)
            opened = last_line(line, salvaged(lines[: end - line + 1], self.fmt) or [])
            return (
                row,
                first,
                unclosed(
                    opened,
                    line,
                    f"it runs past line {end} and grows longer than {FIELD_LIMIT:,} characters",
                ),
                line,
            )
        cells = salvaged(self._lines(line, end), self.fmt)
        return row, cells, broken(error, line, end), line

    def _read_again(self, line: int) -> tuple[list[str] | None, list[str]]:
        """After a quoted value never closed in the record on `line`: read the lines after
        that one again, as records of their own (then the rest of the file). Returns the cells
        of the line itself (for the report) and the lines from it to where the file was read."""
        upto = max(self._skipped + self._reader.line_num, self._kept_from + len(self._kept) - 1)
        lines = self._lines(line, upto)
        self._kept, self._kept_from, self._skipped = lines[1:], line + 1, line
        self._reader = csv.reader(itertools.chain(self._kept, self._text), self.fmt.dialect())
        return salvaged(lines[:1], self.fmt), lines

    def _lines(self, first: int, last: int) -> list[str]:
        """Lines first to last of the file (as the reader counts them) again: those read again
        already from memory, the others by a second reader that only moves on (lines are asked
        for in order; should one be asked for behind it, it starts again from the top)."""
        kept_end = self._kept_from + len(self._kept)
        lines: list[str] = []
        if self._kept_from <= first < kept_end:
            lines = self._kept[first - self._kept_from : last - self._kept_from + 1]
            first = kept_end
        if first > last:
            return lines
        if self._again is None or self._again_line >= first:
            if self._again is not None:
                self._again.close()
            self._again = self.path.open(
                "r", encoding=self.fmt.encoding, errors=self.fmt.errors, newline=""
            )
            self._again_line = 0
        try:
            for text in self._again:
                self._again_line += 1
                if self._again_line >= first:
                    lines.append(text)
                if self._again_line >= last:
                    break
        except UnicodeDecodeError as exc:  # the file changed since it was looked at
            raise CsvFileError(
                not_text(exc, self.fmt.encoding, f"after line {first - 1}")
            ) from None
        return lines

    def close(self) -> None:
        self._text.close()
        if self._again is not None:
            self._again.close()

    def __enter__(self) -> CsvReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def salvaged(lines: list[str], fmt: CsvFormat) -> list[str] | None:
    """The whole cells of a broken record on these lines, from at most FIELD_LIMIT characters
    of them (so that the report can show the address), or None."""
    room = FIELD_LIMIT - 1  # no cell of what is read again is too large
    kept: list[str] = []
    for text in lines:
        kept.append(text[:room])
        room -= len(kept[-1])
        if not room:
            break
    try:
        cells = next(csv.reader(kept, fmt.dialect()))
    except (csv.Error, StopIteration):
        return None
    return cells[:-1] if not room else cells  # the last cell was cut short


def unclosed(opened: int, line: int, how: str) -> str:
    """Why the record on `line` is bad, when a quoted value opened on line `opened` in it is
    never closed: for people, saying what became of the lines after it."""
    return (
        f"a quoted value opened on line {opened} is never closed: {how}; line {line} was "
        f"not imported, the lines after it were read as rows of their own"
    )


def open_at_end(cells: list[str] | None) -> bool:
    """Whether a record's last value holds a line break at its end: should the file end there,
    that was its last line break, inside a quote never closed."""
    return bool(cells and cells[-1].endswith(("\n", "\r")))


def never_closed(cells: list[str] | None, line: int, end: int) -> str:
    """Why a record that parsed (on lines line to end) is bad when a quoted value in it is never
    closed: it runs to the end of the file or over more than MAX_RECORD_LINES lines; or ""."""
    if not cells:
        return ""
    breaks = [line_breaks(c) for c in cells]
    if line + sum(breaks) > end:
        # Its last value holds the line break that ends the file: its quote never closed.
        opened = line + sum(breaks[:-1])
        return unclosed(opened, line, f"it runs to the end of the file (line {end})")
    if end - line >= MAX_RECORD_LINES:
        longest = breaks.index(max(breaks))
        opened = line + sum(breaks[:longest])
        return unclosed(
            opened, line, f"it runs on to line {end}, over more than {MAX_RECORD_LINES} lines"
        )
    return ""


def record_error(cells: list[str] | None, line: int, end: int) -> str:
    """Why a record that parsed (on lines line to end) and whose quoted values all close is
    bad, or "": it holds bytes that are not UTF-8 (read with NOT_UTF8)."""
    stray = stray_bytes("".join(cells)) if cells else b""
    if stray:
        shown = ", ".join(f"0x{b:02X}" for b in dict.fromkeys(stray))
        return with_lines(
            f"this row is not valid UTF-8 text (the rest of the file is UTF-8): "
            f"byte{'s' if len(set(stray)) > 1 else ''} {shown}",
            line,
            end,
        )
    return ""


def broken(error: str, line: int, end: int) -> str:
    """Why a record the CSV reader gave up on on lines line to end (and whose quoted values
    close) is bad, for people (error: the reader's message)."""
    if "field larger than field limit" not in error:
        return with_lines(f"the CSV is broken here: {error}", line, end)
    return with_lines(
        f"a cell is longer than {FIELD_LIMIT:,} characters, the most one may hold", line, end
    )


def write_row(cells: list[object]) -> str:
    """One CSV line (excel dialect, CRLF) for a report or an export."""
    out = io.StringIO()
    csv.writer(out).writerow(cells)
    return out.getvalue()
