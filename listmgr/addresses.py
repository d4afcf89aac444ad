"""Email addresses and display names as listmgr stores them: one rule for every way in (sign-up
forms, the API, the admin, CSV imports). Pure: no database, safe to run in a worker process."""

from __future__ import annotations

from typing import Any

from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import DOT_ATOM_TEXT

from listmgr.errors import ValidationError

MAX_NAME = 200  # Subscriber.name, User.name
_DOMAIN_CACHE_LIMIT = 100_000


def normalize_email(raw: Any) -> str:
    """Validated, normalized address (no DNS); a ValidationError naming the field otherwise."""
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationError("Please enter an email address.", field="email")
    if any(c in raw for c in "\r\n\x00"):
        raise ValidationError("The email address must not contain line breaks.", field="email")
    try:
        info = validate_email(raw.strip(), check_deliverability=False, strict=True)
    except EmailNotValidError as exc:
        raise ValidationError(f"That email address is not valid: {exc}", field="email") from None
    # One person, one row: mailbox providers treat the local part case-insensitively.
    return info.normalized.lower()


class EmailNormalizer:
    """Exactly normalize_email, fast for plain addresses (a CSV import checks every row).

    A plain ASCII address (dot-atom local part, no quotes or brackets) is accepted here when
    its domain, validated once and cached, is valid and the lengths fit; anything else goes
    through normalize_email itself, so odd addresses get its verdict and its message.
    """

    def __init__(self) -> None:
        self.domains: dict[str, tuple[str, int] | None] = {}

    def _domain(self, domain: str) -> tuple[str, int] | None:
        try:
            info = validate_email("a@" + domain, check_deliverability=False, strict=True)
        except EmailNotValidError:
            return None
        longest = max(
            len(domain), len(info.domain.encode("utf-8")), len(info.ascii_domain.encode("utf-8"))
        )
        return info.domain.lower(), longest

    def __call__(self, raw: Any) -> str:
        if isinstance(raw, str):
            text = raw.strip()
            at = text.find("@")
            if (
                at > 0
                and text.isascii()
                and '"' not in text
                and "<" not in text
                and "\r" not in raw
                and "\n" not in raw
                and "\x00" not in raw
            ):
                local, domain = text[:at], text[at + 1 :]
                if len(local) <= 64 and DOT_ATOM_TEXT.match(local):
                    try:
                        known = self.domains[domain]
                    except KeyError:
                        if len(self.domains) > _DOMAIN_CACHE_LIMIT:
                            self.domains.clear()
                        known = self.domains[domain] = self._domain(domain)
                    if known is not None and at + 1 + known[1] <= 254:
                        return local.lower() + "@" + known[0]
        return normalize_email(raw)


# Explicit bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069).
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def clean_name(raw: Any) -> str:
    """A display name: one line without control characters (C0 and DEL; C1 ones come from
    legacy encodings and are kept) nor the bidirectional overrides that make a name read as
    another, runs of white space as one space, at most MAX_NAME
    characters; None is no name. A ValidationError naming the field otherwise."""
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise ValidationError("The name must be text.", field="name")
    if "\r" in raw or "\n" in raw:
        raise ValidationError("The name must not contain line breaks.", field="name")
    if "\x00" in raw:
        raise ValidationError(
            "The name must not contain control characters (it holds a NUL byte).", field="name"
        )
    name = " ".join(raw.split())
    if any(c < " " or c == "\x7f" or c in BIDI_CONTROLS for c in name):
        raise ValidationError("The name must not contain control characters.", field="name")
    if len(name) > MAX_NAME:
        raise ValidationError(f"The name is longer than {MAX_NAME} characters.", field="name")
    return name


def ascii_address(address: str) -> str:
    """The address as SMTP and mail headers carry it without SMTPUTF8: an internationalized
    domain in its ASCII (IDNA) form. A local part beyond ASCII is left as it is."""
    local, at, domain = address.rpartition("@")
    if not at or domain.isascii():
        return address
    import idna

    try:
        ascii_domain = idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return address
    return f"{local}@{ascii_domain}"
