"""Reading CSV files as people write them: any common encoding and dialect, streamed (pure)."""
from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

SAMPLE_BYTES = 64 * 1024
SCAN_BYTES = 1024 * 1024
DELIMITERS = ",;\t|"
FIELD_LIMIT = 1024 * 1024  # one cell; a larger one is a broken file, not data


class CsvFileError(ValueError):
    """The file cannot be read as CSV; the message is for people."""


@dataclass(frozen=True)
class CsvFormat:
    """How a file is written: its encoding and CSV dialect."""

    encoding: str
    delimiter: str = ","
    quotechar: str = '"'
    skipinitialspace: bool = False

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


def detect_encoding(path: Path) -> str:
    """UTF-8 (with or without BOM), UTF-16 with BOM, else Windows-1252, else Latin-1."""
    with path.open("rb") as fh:
        head = fh.read(4)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if _decodes(path, "utf-8"):
        return "utf-8"
    # cp1252 is what spreadsheet programs write on Windows; it leaves five bytes undefined,
    # and a file using those is Latin-1 (which decodes every byte).
    return "cp1252" if _decodes(path, "cp1252") else "latin-1"


def detect(path: Path) -> CsvFormat:
    """The encoding and dialect of a CSV file, from its bytes and a sample of its text."""
    if not path.is_file():
        raise CsvFileError(f"there is no file {path}")
    encoding = detect_encoding(path)
    with path.open("r", encoding=encoding, newline="") as fh:
        sample = fh.read(SAMPLE_BYTES)
    if not sample.strip():
        raise CsvFileError("the file is empty")
    if len(sample) == SAMPLE_BYTES and "\n" in sample:
        sample = sample[:sample.rindex("\n")]  # whole lines only
    try:
        sniffed = csv.Sniffer().sniff(sample, delimiters=DELIMITERS)
        return CsvFormat(encoding, sniffed.delimiter, sniffed.quotechar or '"',
                         bool(sniffed.skipinitialspace))
    except csv.Error:
        # One column, or too little text to tell: count the candidates in the header line.
        header = sample.splitlines()[0]
        counts = {d: header.count(d) for d in DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return CsvFormat(encoding, best if counts[best] else ",")


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
    cells: list[str] | None   # None: the record could not be parsed
    error: str = ""


class CsvReader:
    """Streams the records of a file; `header` is the first record, `bytes_read` the progress."""

    def __init__(self, path: Path, fmt: CsvFormat) -> None:
        csv.field_size_limit(FIELD_LIMIT)
        self.path = path
        self.total_bytes = path.stat().st_size
        self._counter = _CountingReader(path.open("rb"))
        self._text = io.TextIOWrapper(io.BufferedReader(self._counter, 256 * 1024),
                                      encoding=fmt.encoding, newline="")
        self._reader = csv.reader(self._text, fmt.dialect())
        self._row = 1
        try:
            header = next(self._reader)
        except StopIteration:
            raise CsvFileError("the file is empty") from None
        except csv.Error as exc:
            raise CsvFileError(f"the first line is not a CSV header: {exc}") from None
        self.header = [h.strip() for h in header]
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
        """Lists of up to size (row, cells or None, parse error, line): the fast way through."""
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
                append((row, None, f"the CSV is broken here: {exc}", line))
            if len(chunk) >= size:
                self._row = row
                yield chunk
                chunk = []
                append = chunk.append
        self._row = row
        if chunk:
            yield chunk

    def close(self) -> None:
        self._text.close()

    def __enter__(self) -> CsvReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_row(cells: list[object]) -> str:
    """One CSV line (excel dialect, CRLF) for a report or an export."""
    out = io.StringIO()
    csv.writer(out).writerow(cells)
    return out.getvalue()
