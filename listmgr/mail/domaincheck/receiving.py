"""MX findings: the mail domain (bounces, unsubscribe replies) routes mail to listmgr's host."""

from __future__ import annotations

from listmgr.mail.domaincheck.base import Facts, Finding, Record, addresses_of, dns_problem
from listmgr.mail.spf import Lookup


def _same_host(lookup: Lookup, exchange: str, host: str) -> bool:
    """The exchange is the inbound host: by name, or sharing an address."""
    if exchange == host:
        return True
    mine, _ = addresses_of(lookup, host)
    theirs, _ = addresses_of(lookup, exchange)
    return bool(set(mine) & set(theirs))


def findings(facts: Facts, lookup: Lookup) -> list[Finding]:
    """Where the mail domain's MX records send mail, against the inbound host."""
    domain, host = facts.mail_domain, facts.inbound_host.lower().rstrip(".")
    wanted = Record(domain, "MX", f"10 {host}.") if host else None
    unset = "" if host else "; set inbound_host to the host that receives mail for listmgr"
    answer = lookup(domain, "MX")
    if answer.failed:
        return [Finding("mx", "error", dns_problem("MX", domain, answer))]
    exchanges = sorted((int(p), str(h).lower().rstrip(".")) for p, h in answer.records)
    if not exchanges:
        return [
            Finding(
                "mx",
                "error",
                f"{domain} has no MX record: bounces and replies to listmgr's addresses "
                f"(bounces+…@{domain}, unsubscribe+…@{domain}) may never arrive{unset}",
                wanted,
            )
        ]
    if any(not h for _, h in exchanges):
        return [
            Finding("mx", "error", f"{domain} has a null MX: it accepts no mail{unset}", wanted)
        ]
    names = ", ".join(f"{h} ({p})" for p, h in exchanges)
    if not host:
        return [Finding("mx", "warning", f"the MX of {domain} points at {names}{unset}")]
    matching = [(p, h) for p, h in exchanges if _same_host(lookup, h, host)]
    if not matching:
        return [
            Finding(
                "mx",
                "error",
                f"the MX of {domain} points at {names}, not at {host} where listmgr receives",
                wanted,
            )
        ]
    if matching[0][0] > exchanges[0][0]:
        return [
            Finding(
                "mx",
                "warning",
                f"the MX of {domain} reaches {host} only after {exchanges[0][1]} "
                f"(preference {exchanges[0][0]} before {matching[0][0]})",
                wanted,
            )
        ]
    return [Finding("mx", "ok", f"the MX of {domain} points at {host}")]
