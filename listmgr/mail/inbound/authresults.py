"""Authentication-Results (RFC 8601) added by the operator's own MTA: an aligned DMARC or DKIM
pass for the From domain. Any other such header (another authserv-id, or one below another
server's) is ignored: anyone can write one into a message."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message

from listmgr.mail.inbound.message import headers

PAIR_RE = re.compile(r'([A-Za-z0-9_./-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s;"]+)')
FAILED = ("fail", "permerror", "temperror", "softfail", "neutral", "policy")


@dataclass(frozen=True)
class Result:
    method: str
    result: str
    props: dict[str, str]


def _uncomment(value: str) -> str:
    """The value without (comments), which may nest; quoted strings are kept as they are."""
    out: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    for ch in value:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(ch)
            continue
        if ch == "\\":
            escaped = True
            if depth == 0:
                out.append(ch)
            continue
        if quoted:
            quoted = ch != '"'
            out.append(ch)
        elif ch == '"' and depth == 0:
            quoted = True
            out.append(ch)
        elif ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def _split(value: str) -> list[str]:
    """Split on ';' outside quoted strings."""
    pieces: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        if ch == ";" and not quoted:
            pieces.append("".join(current))
            current = []
        else:
            current.append(ch)
    pieces.append("".join(current))
    return pieces


def parse(value: str) -> tuple[str, list[Result]]:
    """(authserv-id, results) of one Authentication-Results value."""
    pieces = _split(_uncomment(value[:8000]))
    head = pieces[0].split()
    authserv = head[0].lower().rstrip(".") if head else ""
    results = []
    for piece in pieces[1:50]:
        pairs = PAIR_RE.findall(piece)
        if not pairs:
            continue
        method, result = pairs[0]
        props: dict[str, str] = {}
        for k, v in pairs[1:]:
            props.setdefault(k.lower(), v.strip('"').strip())
        results.append(Result(method.split("/")[0].lower(), result.strip('"').lower(), props))
    return authserv, results


def _domain(value: str) -> str:
    """A domain as compared here: lower case, no trailing dot, IDNA A-labels."""
    d = value.strip().lower().rstrip(".")
    d = d.rpartition("@")[2]
    if not d.isascii():
        try:
            d = d.encode("idna").decode("ascii")
        except UnicodeError:
            return ""
    return d


def _trusted(msg: Message, authserv_id: str) -> list[list[Result]]:
    """Results of the topmost headers with the configured authserv-id: our MTA puts its own
    above everything the sender wrote, so the run stops at the first header of anyone else."""
    run = []
    for value in headers(msg, "Authentication-Results")[:20]:
        serv, results = parse(value)
        if serv != authserv_id:
            break
        run.append(results)
    return run


def _deciding(trusted: list[list[Result]], method: str) -> list[Result]:
    """A method's results in the topmost trusted header that reports it."""
    for results in trusted:
        found = [r for r in results if r.method == method]
        if found:
            return found
    return []


def aligned_pass(msg: Message, authserv_id: str, sender: str) -> str:
    """ "dmarc" or "dkim" when our MTA found the From domain authenticated, else ""."""
    authserv_id = authserv_id.strip().lower().rstrip(".")
    from_domain = _domain(sender) if "@" in sender else ""
    if not authserv_id or not from_domain or "." not in from_domain:
        return ""
    trusted = _trusted(msg, authserv_id)
    if not trusted:
        return ""
    dmarc = _deciding(trusted, "dmarc")
    if any(r.result in FAILED for r in dmarc):
        return ""  # DMARC failed: whatever else passed was not aligned with the From domain
    if (
        dmarc
        and all(r.result == "pass" for r in dmarc)
        and all(_domain(r.props.get("header.from", "")) == from_domain for r in dmarc)
    ):
        return "dmarc"
    for r in _deciding(trusted, "dkim"):
        d = _domain(r.props.get("header.d", "") or r.props.get("header.i", ""))
        if r.result == "pass" and "." in d and (from_domain == d or from_domain.endswith("." + d)):
            return "dkim"
    return ""
