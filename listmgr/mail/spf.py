"""SPF (RFC 7208) as the domain check needs it: a domain's record, its verdict for one sending
address, and the DNS lookups it costs; pure (DNS answers come from the caller's lookup)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_LOOKUPS = 10  # RFC 7208 4.6.4: DNS-querying terms per evaluation, includes counted in
MAX_MX = 10  # RFC 7208 4.6.4: an "mx" term with more exchanges than this is an error
QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
MECHANISMS = ("all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists")
QUERYING = ("include", "a", "mx", "ptr", "exists")
SPF_RECORD = re.compile(r"^v=spf1(\s|$)", re.IGNORECASE)
MODIFIER = re.compile(r"^([a-z][a-z0-9_.-]*)=(.*)$", re.IGNORECASE)
MECHANISM = re.compile(r"^([+\-~?]?)([a-z0-9]+)(.*)$", re.IGNORECASE)
DOMAIN_CIDR = re.compile(r"^(?::([^/]+))?(?:/(\d{1,2}))?(?://(\d{1,3}))?$")


@dataclass(frozen=True)
class Answer:
    """One DNS answer as plain data: TXT values (strings joined), addresses as text, or MX
    (preference, exchange) pairs; error is "", "nxdomain", "timeout" or "servfail"."""

    records: tuple[Any, ...] = ()
    error: str = ""

    @property
    def failed(self) -> bool:
        """No answer to rely on: the name may or may not hold records."""
        return self.error not in ("", "nxdomain")


Lookup = Callable[[str, str], Answer]  # (name, type) -> answer; types TXT, A, AAAA, MX


class SpfError(Exception):
    """The evaluation stopped: kind is permerror, temperror or unsupported (macros)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class Term:
    qualifier: str  # + - ~ ?
    name: str  # a mechanism, or a modifier's name (redirect, exp, ...)
    target: str  # domain-spec or address; "" for the current domain
    cidr4: int | None = None
    cidr6: int | None = None
    modifier: bool = False

    def text(self) -> str:
        return (
            (self.qualifier if self.qualifier != "+" else "")
            + self.name
            + (f":{self.target}" if self.target else "")
        )


def records(answer: Answer) -> list[str]:
    """The SPF records among a domain's TXT values."""
    return [str(t).strip() for t in answer.records if SPF_RECORD.match(str(t).strip())]


def parse(record: str) -> list[Term]:
    """The terms of an SPF record; a term that is not SPF raises permerror."""
    terms = []
    for token in record.split()[1:]:
        modifier = MODIFIER.match(token)
        if modifier and ":" not in modifier.group(1):
            terms.append(Term("+", modifier.group(1).lower(), modifier.group(2), modifier=True))
            continue
        found = MECHANISM.match(token)
        name = found.group(2).lower() if found else ""
        if not found or name not in MECHANISMS:
            raise SpfError("permerror", f"{token!r} is not an SPF mechanism")
        qualifier, rest = found.group(1) or "+", found.group(3)
        if name in ("ip4", "ip6"):
            address, _, cidr = rest[1:].partition("/") if rest.startswith(":") else ("", "", "")
            if not address:
                raise SpfError("permerror", f"{token!r} needs an address")
            width = int(cidr) if cidr.isdigit() else None
            terms.append(Term(qualifier, name, address, width, width))
            continue
        parts = DOMAIN_CIDR.match(rest)
        if (
            not parts
            or (name in ("include", "exists") and not parts.group(1))
            or (name in ("all", "include", "exists", "ptr") and (parts.group(2) or parts.group(3)))
        ):
            raise SpfError("permerror", f"{token!r} is not a valid {name} term")
        c4, c6 = parts.group(2), parts.group(3)
        terms.append(
            Term(
                qualifier,
                name,
                (parts.group(1) or "").rstrip("."),
                int(c4) if c4 else None,
                int(c6) if c6 else None,
            )
        )
    return terms


def _target(term: Term, domain: str) -> str:
    target = term.target or domain
    if "%" in target:  # macros (RFC 7208 7) need the message's own data: not evaluated here
        raise SpfError("unsupported", f"{term.text()} uses macros, which this check cannot follow")
    return target.lower()


class Evaluation:
    """One check_host() run for one address: the lookups it made so far."""

    def __init__(self, lookup: Lookup, ip: str) -> None:
        self.lookup = lookup
        self.ip = ipaddress.ip_address(ip)
        self.lookups = 0

    def _count(self) -> None:
        self.lookups += 1
        if self.lookups > MAX_LOOKUPS:
            raise SpfError("permerror", f"more than {MAX_LOOKUPS} DNS lookups")

    def _fetch(self, name: str, rtype: str) -> Answer:
        answer = self.lookup(name, rtype)
        if answer.failed:
            raise SpfError("temperror", f"{rtype} {name}: {answer.error}")
        return answer

    def _in(self, addresses: tuple[Any, ...], term: Term) -> bool:
        width = term.cidr4 if self.ip.version == 4 else term.cidr6
        for address in addresses:
            try:
                net = ipaddress.ip_network(
                    f"{address}/{width if width is not None else self.ip.max_prefixlen}",
                    strict=False,
                )
            except ValueError:
                continue
            if self.ip in net:
                return True
        return False

    def _addresses(self, name: str) -> tuple[Any, ...]:
        return self._fetch(name, "A" if self.ip.version == 4 else "AAAA").records

    def _matches(self, term: Term, domain: str) -> bool:
        if term.name in QUERYING:
            self._count()
        if term.name == "all":
            return True
        if term.name in ("ip4", "ip6"):
            if (term.name == "ip4") != (self.ip.version == 4):
                return False
            try:
                net = ipaddress.ip_network(
                    f"{term.target}/{term.cidr4 if term.cidr4 is not None else self.ip.max_prefixlen}",
                    strict=False,
                )
            except ValueError:
                raise SpfError("permerror", f"{term.text()} is not a network") from None
            return self.ip in net
        target = _target(term, domain)
        if term.name == "include":
            result = self.check(target)
            if result in ("temperror", "permerror"):
                raise SpfError(result, f"include:{target} gave {result}")
            if result == "none":
                raise SpfError("permerror", f"include:{target} has no SPF record")
            return result == "pass"
        if term.name == "a":
            return self._in(self._addresses(target), term)
        if term.name == "mx":
            exchanges = self._fetch(target, "MX").records
            if len(exchanges) > MAX_MX:
                raise SpfError("permerror", f"mx:{target} has more than {MAX_MX} exchanges")
            return any(self._in(self._addresses(str(host)), term) for _, host in exchanges)
        if term.name == "exists":
            return bool(self._fetch(target, "A").records)
        return False  # ptr: deprecated (RFC 7208 5.5) and slow; never counted as a match here

    def check(self, domain: str) -> str:
        """pass, fail, softfail, neutral or none for this address sending for domain."""
        found = records(self._fetch(domain, "TXT"))
        if not found:
            return "none"
        if len(found) > 1:
            raise SpfError("permerror", f"{domain} has {len(found)} SPF records")
        terms = parse(found[0])
        for term in (t for t in terms if not t.modifier):
            if self._matches(term, domain):
                return QUALIFIERS[term.qualifier]
        redirect = next((t for t in terms if t.modifier and t.name == "redirect"), None)
        if redirect is not None:
            self._count()
            result = self.check(_target(redirect, domain))
            if result == "none":
                raise SpfError("permerror", f"redirect={redirect.target} has no SPF record")
            return result
        return "neutral"


def check_host(lookup: Lookup, ip: str, domain: str) -> tuple[str, str]:
    """(result, why) of SPF for this address sending as domain: pass, fail, softfail,
    neutral, none, permerror, temperror or unsupported."""
    try:
        return Evaluation(lookup, ip).check(domain), ""
    except SpfError as exc:
        return exc.kind, exc.message


def count_lookups(lookup: Lookup, domain: str, seen: frozenset[str] = frozenset()) -> int:
    """The DNS-querying terms of domain's SPF record and everything it includes or redirects
    to (what every receiver may have to follow, whichever address sends)."""
    if domain in seen:
        raise SpfError("permerror", f"{domain} includes itself")
    answer = lookup(domain, "TXT")
    if answer.failed:
        raise SpfError("temperror", f"TXT {domain}: {answer.error}")
    found = records(answer)
    if len(found) != 1:
        return 0
    total = 0
    for term in parse(found[0]):
        if term.name in QUERYING or (term.modifier and term.name == "redirect"):
            total += 1
            if term.name == "include" or term.modifier:
                total += count_lookups(lookup, _target(term, domain), seen | {domain})
        if total > 5 * MAX_LOOKUPS:  # far past the limit: no need to walk further
            break
    return total
