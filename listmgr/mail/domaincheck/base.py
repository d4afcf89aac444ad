"""What the domain check works with: findings, records to publish, the configuration's
facts, and domain names as typed."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from listmgr.mail.dkim import DkimKey, txt_strings
from listmgr.mail.spf import Answer, Lookup

MAX_INPUT = 1000  # characters of a typed domain looked at before IDNA (a name has at most 253)
LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
STATUSES = ("ok", "warning", "error")


@dataclass(frozen=True)
class Record:
    """A DNS record to publish."""

    name: str
    type: str
    value: str

    def zone_line(self) -> str:
        value = txt_strings(self.value) if self.type == "TXT" else self.value
        return f"{self.name}. IN {self.type} {value}"


@dataclass(frozen=True)
class Finding:
    check: str  # spf, spf-alignment, dkim, dkim-alignment, dmarc, mx
    status: str  # ok, warning, error
    message: str
    record: Record | None = None


@dataclass(frozen=True)
class Facts:
    """What the configuration says mail looks like."""

    from_domain: str  # the domain checked: DMARC is looked up here, alignment is against it
    mail_domain: str  # the return-path (VERP bounces) and where inbound mail reaches listmgr
    smtp_hosts: tuple[str, ...]  # host names or addresses; empty: the dev outbox
    inbound_host: str  # where the mail domain's MX should point; empty: not configured
    dkim: DkimKey | None


def domain_name(text: str) -> str:
    """A typed domain as its ASCII (IDNA) form, lower case; ValueError saying why not."""
    import idna

    value = text.strip().rstrip(".")
    if not value or len(value) > MAX_INPUT:
        raise ValueError("give a domain name such as example.org")
    try:
        ascii_name = idna.encode(value, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        raise ValueError(f"{value[:80]!r} is not a domain name") from None
    labels = ascii_name.lower().split(".")
    if (
        len(ascii_name) > 253
        or len(labels) < 2
        or not all(LABEL.match(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise ValueError(f"{value[:80]!r} is not a domain name such as example.org")
    return ascii_name.lower()


def organisational(domain: str) -> str:
    """The last two labels: an approximation without a public suffix list (wrong for names
    under suffixes like co.uk, where it names the suffix itself; only used to find a DMARC
    record, and a suffix publishes none)."""
    return ".".join(domain.split(".")[-2:])


def dns_problem(what: str, name: str, answer: Answer) -> str:
    return f"no usable DNS answer for {what} {name} ({answer.error}); check again later"


def addresses_of(lookup: Lookup, host: str) -> tuple[list[str], str]:
    """A host's addresses (itself when it is one), and a DNS problem if any."""
    try:
        return [str(ipaddress.ip_address(host))], ""
    except ValueError:
        pass
    found, problems = [], []
    for rtype in ("A", "AAAA"):
        answer = lookup(host, rtype)
        if answer.failed:
            problems.append(answer.error)
        found += [str(a) for a in answer.records]
    return found, ", ".join(problems)


def is_public(address: str) -> bool:
    """Whether receivers could see mail come from this address (not loopback or private)."""
    return ipaddress.ip_address(address).is_global


def term_for(address: str) -> str:
    """The SPF term naming one address."""
    return ("ip6:" if ":" in address else "ip4:") + address
