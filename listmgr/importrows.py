"""Turning CSV records into validated people: header mapping, addresses and names (the rules of
listmgr.addresses), field values, interests (pure; safe to run in a worker process)."""

from __future__ import annotations

import gc
import hashlib
import json
import queue
import re
import unicodedata
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any, NamedTuple

from listmgr.addresses import EmailNormalizer, clean_name
from listmgr.csvfiles import CsvReader, last_line, readable, with_lines
from listmgr.errors import ValidationError
from listmgr.fieldvalues import MAX_TEXT, FieldValueError, coerce

TARGETS = ("email", "name", "first_name", "last_name", "interests", "ignore")
# What a column holds, by the usual names of its header (compared by header_key: case, accents,
# spaces and punctuation do not count). email, name, first/last name and interests are targets
# of their own; the others are found only when a custom field of that kind exists (its key or
# label is one of the names), since only a field can hold them.
HEADER_NAMES: dict[str, frozenset[str]] = {
    "email": frozenset(
        {
            "email",
            "emailaddress",
            "mail",
            "mailaddress",
            "emailadresse",
            "mailadresse",
            "courriel",
            "adressecourriel",
            "adresseemail",
            "adressemail",
            "correo",
            "correoelectronico",
        }
    ),
    "name": frozenset({"name", "fullname", "displayname", "nomcomplet", "nombre", "vollername"}),
    "first_name": frozenset(
        {"first", "firstname", "givenname", "forename", "vorname", "prenom", "nombrepila"}
    ),
    "last_name": frozenset(
        {
            "last",
            "lastname",
            "surname",
            "familyname",
            "nachname",
            "familienname",
            "nom",
            "nomdefamille",
            "apellido",
            "apellidos",
        }
    ),
    "interests": frozenset({"interests", "interest", "tags", "topics"}),
    "company": frozenset(
        {
            "company",
            "companyname",
            "organisation",
            "organization",
            "org",
            "firma",
            "unternehmen",
            "societe",
            "entreprise",
            "employer",
        }
    ),
    "phone": frozenset(
        {
            "phone",
            "phonenumber",
            "telephone",
            "tel",
            "telefon",
            "telefonnummer",
            "mobile",
            "mobil",
            "handy",
            "portable",
        }
    ),
    "city": frozenset({"city", "town", "stadt", "ort", "wohnort", "ville"}),
    "country": frozenset({"country", "land", "pays", "staat"}),
    "postcode": frozenset(
        {"postcode", "postalcode", "zip", "zipcode", "plz", "postleitzahl", "codepostal"}
    ),
}
_OWN_TARGETS = ("email", "name", "interests")  # always built-in, even beside a field so named
_SPLIT = re.compile(r"[|;,]")
_CONTROL = re.compile("[\x00-\x1f\x7f]")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet may run such a cell
_FORMULA_GUARD = tuple("'" + c for c in FORMULA_STARTS)  # what our exports write before them
_INTEREST_CACHE_LIMIT = 10_000
BATCH_ROWS = 2_000  # records read and validated at once (a chunk gathers them, encoded)


class MappingError(ValueError):
    """A mapping that cannot work; the message is for people, field names the culprit."""

    def __init__(self, message: str, field: str = "mapping") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class FieldInfo:
    """A custom field as the import needs it."""

    key: str
    type: str
    label: str
    choices: tuple[str, ...] = ()


def header_key(text: str) -> str:
    """A header as compared with the usual names: 'E-Mail-Adresse' -> 'emailadresse',
    'Prénom' -> 'prenom' (accents dropped, case folded, only letters and digits kept)."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9]", "", plain.casefold())


def header_kind(column: str) -> str | None:
    """The kind of HEADER_NAMES a header names ('Firma' -> 'company'), or None."""
    key = header_key(column)
    return next((k for k, names in HEADER_NAMES.items() if key in names), None)


def guess_target(column: str, fields: Mapping[str, FieldInfo]) -> str | None:
    """What a column probably holds, from its header alone (None: no idea).

    A custom field named like the column (its key, "fields.<key>" or its label) comes first;
    then the usual names of HEADER_NAMES: first and last names go to custom fields of that kind
    when there are such (else they make up the name), company, phone and the like only ever to
    such a field."""
    named = column[7:] if column.lower().startswith("fields.") else column.lower()
    if named in fields:
        return f"fields.{named}"
    key = header_key(column)
    by_label = {header_key(f.label): k for k, f in fields.items()}
    if key and key in by_label:
        return f"fields.{by_label[key]}"
    kind = header_kind(column)
    if kind is None:
        return None
    if kind in _OWN_TARGETS:
        return kind
    names = HEADER_NAMES[kind] | {header_key(kind)}
    field = next(
        (k for k, f in fields.items() if header_key(k) in names or header_key(f.label) in names),
        None,
    )
    if field is not None:
        return f"fields.{field}"
    return kind if kind in TARGETS else None


MAX_MAPPED = 500  # columns a mapping may name
MAX_COLUMN_NAME = 200  # characters of a column name in a mapping


def parse_mapping(
    text: str | Mapping[str, str] | Sequence[tuple[Any, Any]] | None,
) -> dict[str, str]:
    """'Column=target,Other=fields.key' (or a mapping, or (column, target) pairs) ->
    {column: target}; every way in is checked alike (names, sizes, a column named twice)."""
    if not text:
        return {}
    if isinstance(text, str):
        pairs: list[tuple[Any, Any]] = []
        for part in text.split(","):
            if not part.strip():
                continue
            column, sep, target = part.rpartition("=")
            if not sep or not column.strip():
                raise MappingError(
                    f"mapping entries look like Column=target, not {part.strip()[:100]!r}"
                )
            pairs.append((column, target))
    else:
        pairs = list(text.items()) if isinstance(text, Mapping) else list(text)
    if len(pairs) > MAX_MAPPED:
        raise MappingError(f"a mapping names at most {MAX_MAPPED} columns")
    out: dict[str, str] = {}
    for column, target in pairs:
        if not isinstance(column, str) or not isinstance(target, str):
            raise MappingError("a mapping pairs column names with targets, both text")
        column, target = column.strip(), target.strip()
        if not column or len(column) > MAX_COLUMN_NAME or _CONTROL.search(column):
            raise MappingError(
                f"a column name in the mapping is one line of 1 to {MAX_COLUMN_NAME} characters"
            )
        if len(target) > MAX_COLUMN_NAME or _CONTROL.search(target):
            raise MappingError(f"unknown target {target[:100]!r} for column {column!r}")
        if column.lower() in (c.lower() for c in out):
            raise MappingError(f"the mapping names the column {column!r} twice")
        out[column] = target
    return out


def resolve(
    header: list[str], explicit: Mapping[str, str], fields: Mapping[str, FieldInfo]
) -> tuple[dict[int, str], list[str]]:
    """Column index -> target for the header, and the columns ignored as unknown."""
    by_name = {h.lower(): i for i, h in reversed(list(enumerate(header)))}
    chosen: dict[int, str] = {}
    for column, target in explicit.items():
        if column.lower() not in by_name:
            raise MappingError(
                f"the mapping names a column {column!r} the file does not have "
                f"(columns: {', '.join(header)})"
            )
        if target not in TARGETS and not (target.startswith("fields.") and target[7:] in fields):
            raise MappingError(
                f"unknown target {target!r} for column {column!r}: use email, "
                "name, first_name, last_name, interests, ignore or fields.<key>"
            )
        chosen[by_name[column.lower()]] = target
    ignored = []
    for i, column in enumerate(header):
        if i in chosen:
            continue
        guess = guess_target(column, fields)
        if guess is None or guess in chosen.values():
            if column:
                ignored.append(
                    column if guess is None else f"{column} (another column already holds {guess})"
                )
            continue
        chosen[i] = guess
    targets = [t for t in chosen.values() if t != "ignore"]
    double = next((t for t in targets if targets.count(t) > 1), None)
    if double:
        raise MappingError(f"two columns are mapped to {double}")
    if "email" not in targets:
        raise MappingError(
            "no column holds the email address: name it email or map it, "
            "e.g. --mapping 'E-Mail=email'"
        )
    return {i: t for i, t in chosen.items() if t != "ignore"}, ignored


class EmailHasher:
    """Runtime.email_hash (HMAC-SHA256 under a derived key), with the key schedule done once."""

    def __init__(self, key: bytes) -> None:
        block = (hashlib.sha256(key).digest() if len(key) > 64 else key).ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def __call__(self, normalized: str) -> str:
        inner = self._inner.copy()
        inner.update(normalized.encode("utf-8"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


def _coercer(spec: FieldInfo) -> Callable[[str], Any]:
    """A cell (stripped, non-empty) -> stored value; common valid values skip the general path."""
    choices = list(spec.choices)

    def general(value: str) -> Any:
        raw: Any = _multi(value, spec.choices) if spec.type == "multi_choice" else value
        try:
            return coerce(spec.type, choices, raw, spec.label)
        except FieldValueError as exc:
            raise ValueError(str(exc)) from None

    # Each fast path returns exactly what coerce() returns for the values it accepts.
    if spec.type == "choice":
        allowed = frozenset(choices)
        return lambda v: v if v in allowed else general(v)
    if spec.type == "number":
        return lambda v: int(v) if len(v) <= 15 and v.isascii() and v.isdigit() else general(v)
    if spec.type == "text":
        return lambda v: v if len(v) <= MAX_TEXT and v.isprintable() else general(v)
    if spec.type == "date":

        def day(v: str) -> Any:
            if len(v) == 10 and v.isascii():
                try:
                    if date.fromisoformat(v).isoformat() == v:
                        return v
                except ValueError:
                    pass
            return general(v)

        return day
    return general


_encode_string = json.encoder.encode_basestring


def _json_coercer(spec: FieldInfo) -> Callable[[str], str | None]:
    """A cell (stripped, non-empty) -> the JSON of its stored value, or None (nothing stored)."""
    convert = _coercer(spec)

    def general(value: str) -> str | None:
        stored = convert(value)
        return None if stored is None else _json(stored)

    if spec.type == "choice":  # the commonest values: their JSON written once
        known = {c: _json(c) for c in spec.choices}
        return lambda v: known.get(v) or general(v)
    return general


def _json(value: Any) -> str:
    """JSON of a stored field value (what json.dumps writes, without its per-call overhead)."""
    if isinstance(value, str):
        return _encode_string(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return "[" + ",".join(_json(v) for v in value) + "]"


@dataclass
class Context:
    """What validating a row needs; plain data so it can be sent to worker processes."""

    mapping: dict[int, str]
    fields: dict[str, FieldInfo]
    interests: frozenset[str]
    hash_key: bytes
    columns: int
    copy_text: bool = False  # people as PostgreSQL COPY text instead of a JSON array

    def __post_init__(self) -> None:
        self._prepare()

    def _prepare(self) -> None:
        self.normalizer = EmailNormalizer()
        self.hasher = EmailHasher(self.hash_key)
        self.interest_cells: dict[str, str] = {}
        at = {t: i for i, t in self.mapping.items()}
        self.email_at = at["email"]
        self.name_at, self.first_at, self.last_at, self.interests_at = (
            at.get(t) for t in ("name", "first_name", "last_name", "interests")
        )
        self.plan = [
            (i, f'"{t[7:]}":', _json_coercer(self.fields[t[7:]]))
            for i, t in self.mapping.items()
            if t.startswith("fields.")
        ]

    def __getstate__(self) -> dict[str, Any]:
        # Sent to worker processes: plain data only; caches and hash states are rebuilt there.
        keep = ("mapping", "fields", "interests", "hash_key", "columns", "copy_text")
        return {k: self.__dict__[k] for k in keep}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._prepare()


def _cell(cells: list[str], index: int | None) -> str:
    if index is None:
        return ""
    value = cells[index].strip()
    return value[1:] if value[:2] in _FORMULA_GUARD else value


def _multi(value: str, choices: tuple[str, ...]) -> list[str]:
    return [value] if value in choices else [p.strip() for p in _SPLIT.split(value) if p.strip()]


_INTEREST_SPLIT = re.compile(r"[|;,\s]+")


def person(ctx: Context, row: int, cells: list[str]) -> list[Any]:
    """Validate one record into [row, email, email_hash, name, fields JSON, interests JSON];
    ValueError (its message for people) when it cannot be imported."""
    if len(cells) != ctx.columns:
        if len(cells) > ctx.columns and any(c.strip() for c in cells[ctx.columns :]):
            raise ValueError(
                f"the row has {len(cells)} cells but the header has "
                f"{ctx.columns} (an unquoted delimiter?)"
            )
        cells = (cells + [""] * ctx.columns)[: ctx.columns]
    email = _cell(cells, ctx.email_at)
    if not email:
        raise ValueError("there is no email address in this row")
    try:
        address = ctx.normalizer(email)
    except ValidationError as exc:
        raise ValueError(exc.message) from None
    parts = []
    for index, prefix, convert in ctx.plan:
        value = cells[index].strip()
        if value[:2] in _FORMULA_GUARD:
            value = value[1:]
        if value:
            stored = convert(value)
            if stored is not None:
                parts.append(prefix + stored)
    name = _cell(cells, ctx.name_at)
    if not name and (ctx.first_at is not None or ctx.last_at is not None):
        name = " ".join(x for x in (_cell(cells, ctx.first_at), _cell(cells, ctx.last_at)) if x)
    keys = "[]" if ctx.interests_at is None else _interests(ctx, _cell(cells, ctx.interests_at))
    try:
        name = clean_name(name)
    except ValidationError as exc:
        raise ValueError(exc.message) from None
    return [row, address, ctx.hasher(address), name, "{" + ",".join(parts) + "}", keys]


def _interests(ctx: Context, cell: str) -> str:
    """The interest keys of a cell as a JSON array; a cell seen before is looked up."""
    known = ctx.interest_cells.get(cell)
    if known is None:
        keys = [k.lower() for k in _INTEREST_SPLIT.split(cell) if k]
        for key in keys:
            if key not in ctx.interests:
                raise ValueError(f"there is no interest {key!r}")
        if len(ctx.interest_cells) > _INTEREST_CACHE_LIMIT:
            ctx.interest_cells.clear()
        known = ctx.interest_cells[cell] = json.dumps(list(dict.fromkeys(keys)))
    return known


Repeat = tuple[int, str, int]  # (row, email, the earlier row of the same address)
Bad = tuple[int, str, str]  # (row, email cell, reason)


def validate(
    ctx: Context, records: Iterable[tuple[Any, ...]], first: dict[str, int] | None = None
) -> tuple[list[list[Any]], list[Repeat], list[Bad]]:
    """The people of some records (the first row of each address), the later rows of an
    address seen in them (or in first: address -> row, which this adds to), and the bad
    rows."""
    good: list[list[Any]] = []
    first = {} if first is None else first
    repeats: list[Repeat] = []
    bad: list[Bad] = []
    email_at = next(i for i, t in ctx.mapping.items() if t == "email")
    for row, cells, error, *line in records:  # (row, cells, error[, line]); see CsvReader
        if error:
            bad.append((row, _email_cell(cells, email_at), error))
            continue
        if not "".join(cells).strip():
            continue  # a blank line (no cell holds more than white space)
        try:
            one = person(ctx, row, cells)
        except ValueError as exc:
            reason = str(exc)
            if line:
                reason = with_lines(reason, line[0], last_line(line[0], cells))
            bad.append((row, _email_cell(cells, email_at), reason))
            continue
        seen = first.setdefault(one[1], row)
        if seen == row:
            good.append(one)
        else:
            repeats.append((row, one[1], seen))
    return good, repeats, bad


def _email_cell(cells: list[str] | None, email_at: int) -> str:
    """The email cell of a bad row, as its report shows it."""
    return readable(cells[email_at]) if cells and email_at < len(cells) else ""


# -- garbage collection while chunks are alive --------------------------------------------------
_GC_DEFAULT = gc.get_threshold()
GC_YOUNG = 50_000  # allocations between collections of the youngest generation (default 700)


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Run the cyclic garbage collector less often (and back to the defaults afterwards)."""
    # A chunk keeps some 100,000 small objects alive that hold no cycles; with the default
    # threshold the collector scans them again and again (measured: a quarter of the time).
    gc.set_threshold(GC_YOUNG, *_GC_DEFAULT[1:])
    try:
        yield
    finally:
        gc.set_threshold(*_GC_DEFAULT)


# -- validated chunks, from a helper (thread or process) reading ahead while the caller writes -
class Checked(NamedTuple):
    """A validated chunk: its first and last row, the line each row starts on, the bytes read
    so far, its people as one string (see encode(): it crosses to a thread or process cheaply
    and goes to the database as one value), how many, the repeated addresses and the bad
    rows."""

    first: int
    last: int
    lines: array
    bytes_read: int
    people: str
    people_count: int
    repeats: list[Repeat]
    bad: list[Bad]

    def line(self, row: int) -> int:
        return self.lines[row - self.first]


def checked(ctx: Context, reader: Any, size: int) -> Iterator[Checked]:
    """Validate a csvfiles.CsvReader in chunks of `size` consecutive rows, read a batch at a
    time so that of a chunk only its encoded people stay in memory. The first chunk is one
    batch: the database gets work after a batch has been validated, not a whole chunk."""
    want = min(size, BATCH_ROWS)
    parts: list[str] = []
    lines = array("l")
    first: dict[str, int] = {}
    repeats: list[Repeat] = []
    bad: list[Bad] = []
    count = start = last = 0
    for batch in reader.chunks(min(size, BATCH_ROWS)):
        good, more_repeats, more_bad = validate(ctx, batch, first)
        start, last = start or batch[0][0], batch[-1][0]
        lines.extend(rec[3] for rec in batch)
        repeats += more_repeats
        bad += more_bad
        count += len(good)
        if good:
            parts.append(encode(good, ctx.copy_text))
        if last - start + 1 >= want:
            want = size
            yield Checked(
                start,
                last,
                lines,
                reader.bytes_read,
                _join(parts, ctx.copy_text),
                count,
                repeats,
                bad,
            )
            parts, lines, first, repeats, bad, count, start = [], array("l"), {}, [], [], 0, 0
    if start:
        yield Checked(
            start, last, lines, reader.bytes_read, _join(parts, ctx.copy_text), count, repeats, bad
        )


def _join(parts: list[str], copy_text: bool) -> str:
    """Encoded batches as the encoding of them all."""
    if copy_text:
        return "".join(parts)
    return "[" + ",".join(part[1:-1] for part in parts) + "]"


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")  # what COPY text must escape (rare in people)


def encode(people: list[list[Any]], copy_text: bool) -> str:
    """People (see person()) as one JSON array, or as the rows of PostgreSQL's COPY text."""
    if not copy_text:
        return json.dumps(people, ensure_ascii=False, separators=(",", ":"))
    lines = []
    for row, email, digest, name, fields, interests in people:
        # one search for the four values; translating each is slow and seldom needed
        if _COPY_SPECIAL.search(f"{email}{name}{fields}{interests}"):
            email, name, fields, interests = (
                v.translate(_COPY_ESCAPES) for v in (email, name, fields, interests)
            )
        lines.append(f"{row}\t{email}\t{digest}\t{name}\t{fields}\t{interests}\n")
    return "".join(lines)


def helper_run(ctx: Context, path: Any, fmt: Any, size: int, out: Any, stop: Any) -> None:
    """Read and validate ahead: every Checked chunk into the queue out, then None (or the
    exception); gives up when stop is set."""

    def put(item: Any) -> None:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    try:
        with CsvReader(path, fmt) as reader:
            for item in checked(ctx, reader, size):
                put(item)
                if stop.is_set():
                    return
        put(None)
    except BaseException as exc:  # the caller re-raises it
        put(exc)


def helper_process(ctx: Context, path: Any, fmt: Any, size: int, out: Any, stop: Any) -> None:
    """helper_run in a process of its own (which has its own garbage collector settings)."""
    with fewer_collections():
        helper_run(ctx, path, fmt, size, out, stop)
