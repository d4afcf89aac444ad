"""An erased person's address and name in every spelling a stored value may carry them (plain,
any case, URL-encoded, HTML entities, quoted-printable, RFC 2047, base64): finding them and
blotting them out of text and JSON. Pure: never opens a database session."""

from __future__ import annotations

import base64
import binascii
import html
import json
import quopri
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_plus, unquote, unquote_plus

ERASED = "[erased]"
# Local-part characters before an address that make it part of a longer address.
_ADDR_BEFORE = r"(?<![\w.+-])"
_ADDR_AFTER = r"(?![\w-]|\.[\w-])"
_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_ADJACENT_WORDS = re.compile(r"(\?=)[ \t\r\n]+(=\?)")
# Runs that may be base64 (a body split into lines, a token, a blob in JSON).
_B64_RUN = re.compile(r"[A-Za-z0-9+/]{8,}(?:={0,2}(?:\r?\n[A-Za-z0-9+/]{4,}={0,2})*)")
_URL_PIECE = re.compile(r"[^\s\"'<>&?#]*%[0-9A-Fa-f]{2}[^\s\"'<>&?#]*")
# Transfer encodings that break lines inside a spelling.
_LINE_ENCODINGS = (b"base64", b"quoted-printable", b"=?")
_SOFT_BREAK = re.compile(r"=?\r?\n")
_QP = re.compile(r"=(?:[0-9A-Fa-f]{2}|\r?\n)")
_DEPTH = 3  # base64 inside quoted-printable inside a forwarded message, and so on


def _ascii_lower(text: str) -> str:
    """What lower() gives on a database that folds only ASCII letters (SQLite)."""
    return "".join(c.lower() if c.isascii() else c for c in text)


def _b64_cores(data: bytes) -> list[str]:
    """The base64 text that always appears for these bytes, whatever their offset in a blob."""
    cores = []
    for shift in range(3):
        chunk = data[(3 - shift) % 3 :]
        chunk = chunk[: len(chunk) - len(chunk) % 3]
        if len(chunk) >= 6:
            cores.append(base64.b64encode(chunk).decode())
    return cores


class Traces:
    """The address (exact, case-insensitive, never inside a longer address) and the name of one
    person. A name of two words or more is looked for everywhere; a one-word name only where
    the address is too (alone it names half the world)."""

    def __init__(self, email: str, name: str = "") -> None:
        self.email = email.strip()
        self.name = " ".join((name or "").split())
        self._address = re.compile(
            _ADDR_BEFORE + re.escape(self.email) + _ADDR_AFTER, re.IGNORECASE
        )
        words = [re.escape(w) for w in self.name.split()]
        self._name = (
            re.compile(r"(?<!\w)" + r"[\s_+]+".join(words) + r"(?!\w)", re.IGNORECASE)
            if words and len(self.name) >= 3
            else None
        )
        self.name_everywhere = self._name is not None and len(words) >= 2
        self._gates: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        self._byte_gates: dict[str, tuple[tuple[bytes, ...], tuple[bytes, ...]]] = {}

    # -- spellings a search can look for ----------------------------------------------------
    def _spellings(self, value: str, *, encoded: bool = True) -> set[str]:
        typed = {
            value,
            quote(value, safe=""),
            quote(value, safe="@"),
            quote_plus(value, safe="@"),
            json.dumps(value)[1:-1],
            html.escape(value),
            value.replace("@", "&#64;"),
            value.replace("@", "&#x40;"),
        }
        if not encoded:
            return typed
        return typed | {quopri.encodestring(value.encode()).decode(), _q_word(value)}

    def _sources(self, near: bool) -> list[str]:
        named = self._name is not None and (self.name_everywhere or near)
        return [self.email] + ([self.name] if named else [])

    def needles(self, *, encoded: bool = True) -> list[str]:
        """Lower-case substrings a LIKE search finds the stored spellings by (a superset: each
        hit is checked again with found()). Both lower() kinds are covered: full Unicode
        (PostgreSQL) and ASCII only (SQLite). encoded=False: only what people and programs
        type (plain, URL, JSON and HTML escapes), without the mail encodings."""
        out: set[str] = set()
        for value in self._sources(near=False):
            for form in self._spellings(value, encoded=encoded):
                out |= {form.lower(), _ascii_lower(form), _ascii_lower(form.upper())}
            if encoded:
                out |= {c.lower() for c in _b64_cores(value.encode())}
        return sorted(n for n in out if n)

    def _gate(self, near: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(case-folded spellings, exact base64 spellings) a value must hold one of before it
        is decoded view by view (most stored mail holds none, and decoding all is slow)."""
        key = "near" if near else "far"
        if key not in self._gates:
            folded: set[str] = set()
            cores: set[str] = set()
            for value in self._sources(near):
                folded |= {f.casefold() for f in self._spellings(value) if f}
                for variant in {value, value.lower()}:  # as typed, and as stored
                    cores |= set(_b64_cores(variant.encode()))
            self._gates[key] = (tuple(folded), tuple(cores))
        return self._gates[key]

    def _byte_gate(self, near: bool) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
        """The gate's spellings as bytes (UTF-8 and Latin-1), for bytes.lower()'s ASCII-only
        folding."""
        key = "near" if near else "far"
        if key not in self._byte_gates:
            folded, cores = self._gate(near)
            spelled: set[bytes] = set()
            for form in folded:
                for variant in {form, form.upper(), form.title()}:
                    for codec in ("utf-8", "latin-1"):
                        try:
                            spelled.add(variant.encode(codec).lower())
                        except UnicodeEncodeError:
                            continue
            self._byte_gates[key] = (tuple(spelled), tuple(c.encode() for c in cores))
        return self._byte_gates[key]

    def may_hold(self, value: Any, *, near: bool = False) -> bool:
        """Whether a quick look finds a spelling worth decoding the value for."""
        if isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
            spelled, raw_cores = self._byte_gate(near)
            low = data.lower()
            if any(n in low for n in spelled) or any(c in data for c in raw_cores):
                return True
            if b"%" in low and self.may_hold(unquote(low.decode("latin-1")), near=near):
                return True
            if not any(m in low for m in _LINE_ENCODINGS):
                return False
            # Line breaks (base64 lines, quoted-printable soft breaks) may split a spelling.
            joined = (
                data.replace(b"=\r\n", b"")
                .replace(b"=\n", b"")
                .replace(b"\r\n", b"")
                .replace(b"\n", b"")
            )
            low = joined.lower()
            return any(n in low for n in spelled) or any(c in joined for c in raw_cores)
        if isinstance(value, (dict, list)):
            text = json.dumps(value, ensure_ascii=False)
        elif isinstance(value, str):
            text = value
        else:
            return False
        folded, cores = self._gate(near)
        unbroken = _SOFT_BREAK.sub("", text)
        folded_text = unbroken.casefold()
        return (
            any(n in folded_text for n in folded)
            or any(c in unbroken for c in cores)
            or ("%" in text and any(n in unquote(folded_text) for n in folded))
        )

    # -- finding -----------------------------------------------------------------------------
    def found(self, value: Any, *, near: bool = False) -> bool:
        """Whether the address or the name shows in any spelling (a one-word name counts only
        near the address)."""
        return self.may_hold(value, near=near) and any(
            self._hit(view, strong_name=near) for view in _views(value)
        )

    def found_address(self, value: Any) -> bool:
        return any(self._address.search(view) for view in _views(value))

    def _hit(self, text: str, *, strong_name: bool) -> bool:
        if self._address.search(text):
            return True
        return (
            self._name is not None
            and (self.name_everywhere or strong_name)
            and bool(self._name.search(text))
        )

    # -- blotting out ------------------------------------------------------------------------
    def scrub(self, value: Any, *, near: bool | None = None) -> Any:
        """The value with every trace replaced by [erased]: strings, and JSON values key by key.
        near: the address is known to be close (a one-word name is blotted out too)."""
        if near is None:
            near = self.found_address(value)
        if isinstance(value, str):
            return self.scrub_text(value, near=near)
        if isinstance(value, list):
            return [self.scrub(v, near=near) for v in value]
        if isinstance(value, dict):
            return {self.scrub(k, near=near): self.scrub(v, near=near) for k, v in value.items()}
        return value

    def scrub_text(self, text: str, *, near: bool = False) -> str:
        """Plain and encoded spellings replaced; a value still holding one after that (an
        unusual encoding) is replaced whole, since nothing of it may stay."""
        if not self.found(text, near=near):
            return text
        out = self._plain(text, near)

        def blot(m: re.Match[str]) -> str:
            return ERASED if self.found(m.group(0), near=near) else m.group(0)

        out = _B64_RUN.sub(blot, _WORD.sub(blot, _ADJACENT_WORDS.sub(r"\1\2", out)))
        if "%" in out:
            out = _URL_PIECE.sub(blot, out)
        if "&" in out and self.found(out, near=near):
            out = self._plain(html.unescape(out), near)
        return ERASED if self.found(out, near=near) else out

    def _plain(self, text: str, near: bool) -> str:
        text = self._address.sub(ERASED, text)
        if self._name is not None and (self.name_everywhere or near):
            text = self._name.sub(ERASED, text)
        return text


def _q_word(value: str) -> str:
    """The RFC 2047 Q spelling of a UTF-8 value (what a mail header carries)."""
    return "".join(
        c
        if c.isascii() and (c.isalnum() or c in "@.-+")
        else "_"
        if c == " "
        else "".join(f"={b:02X}" for b in c.encode())
        for c in value
    )


def _views(value: Any, depth: int = 0) -> Iterator[str]:
    """The value as text, then as each decoding of it would read."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        text = data.decode("utf-8", "replace")
        yield from _views(text, depth)
        if not data.isascii() and "\ufffd" in text:
            yield from _views(data.decode("latin-1"), depth)
        return
    if isinstance(value, (dict, list)):
        for item in _leaves(value):
            yield from _views(item, depth)
        return
    if not isinstance(value, str):
        return
    yield value
    if depth >= _DEPTH:
        return
    if "%" in value or "+" in value:
        yield unquote(value)
        yield unquote_plus(value)
    if "&" in value:
        yield html.unescape(value)
    if "=?" in value:
        yield from _views(_decode_words(value), depth + 1)
    if _QP.search(value):
        decoded = quopri.decodestring(value.encode("utf-8", "surrogateescape"))
        yield from _views(decoded, depth + 1)
    for run in _B64_RUN.finditer(value):
        for data in _b64_decodings(run.group(0)):
            yield from _views(data, depth + 1)


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


def _b64_decodings(run: str) -> Iterator[bytes]:
    """A run decoded from each of the four offsets it may start at (text before a blob)."""
    compact = re.sub(r"\s+", "", run).rstrip("=")
    for start in range(4):
        body = compact[start:]
        body = body[:-1] if len(body) % 4 == 1 else body + "=" * (-len(body) % 4)
        if len(body) < 8:
            continue
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            continue
        if data:
            yield data


def _decode_words(text: str) -> str:
    """RFC 2047 encoded-words replaced by their text (adjacent words joined)."""

    def one(m: re.Match[str]) -> str:
        charset, kind, payload = m.group(1).split("*")[0], m.group(2).upper(), m.group(3)
        try:
            if kind == "B":
                data = base64.b64decode(payload + "=" * (-len(payload) % 4))
            else:
                data = quopri.decodestring(payload.replace("_", " ").encode(), header=True)
        except (binascii.Error, ValueError):
            return m.group(0)
        try:
            return data.decode(charset, "replace")
        except LookupError:
            return data.decode("utf-8", "replace")

    return _WORD.sub(one, _ADJACENT_WORDS.sub(r"\1\2", text))
