"""SPF findings: the return-path domain's record covers every configured SMTP server."""

from __future__ import annotations

from listmgr.mail import spf
from listmgr.mail.domaincheck.base import (
    Facts,
    Finding,
    Record,
    addresses_of,
    dns_problem,
    is_public,
    term_for,
)
from listmgr.mail.spf import Lookup


def findings(facts: Facts, lookup: Lookup) -> list[Finding]:
    domain = facts.mail_domain
    answer = lookup(domain, "TXT")
    if answer.failed:
        return [Finding("spf", "error", dns_problem("TXT", domain, answer))]
    found = spf.records(answer)
    if not facts.smtp_hosts:
        return [Finding("spf", "warning", "mail goes to the dev outbox: no SMTP server to check")]
    addresses: dict[str, list[str]] = {}
    for host in facts.smtp_hosts:
        addresses[host], problem = addresses_of(lookup, host)
        if problem or not addresses[host]:
            why = f"({problem})" if problem else "(no A or AAAA record)"
            return [Finding("spf", "error", f"cannot find the address of SMTP server {host} {why}")]
    public = sorted({a for host in facts.smtp_hosts for a in addresses[host] if is_public(a)})
    wanted = " ".join(term_for(a) for a in public)
    if not found and not public:
        return [
            Finding(
                "spf",
                "error",
                f"{domain} has no SPF record, and the SMTP servers are on addresses receivers "
                "never see (a local relay): publish one covering the relay's public address",
            )
        ]
    if not found:
        return [
            Finding(
                "spf",
                "error",
                f"{domain} has no SPF record: receivers cannot tell that your SMTP servers may "
                "send its mail (the return-path of every message)",
                Record(domain, "TXT", f"v=spf1 {wanted} ~all"),
            )
        ]
    if len(found) > 1:
        merged = _merged(found)
        return [
            Finding(
                "spf",
                "error",
                f"{domain} has {len(found)} SPF records; receivers then fail SPF (permerror): "
                "publish one",
                Record(domain, "TXT", merged),
            )
        ]
    return _spf_record_findings(facts, lookup, found[0], addresses, public)


def _merged(found: list[str]) -> str:
    """Several SPF records as one: every mechanism once, one "all" term at the end (-all when
    one of them had it)."""
    terms: list[str] = []
    endings = set()
    for record in found:
        for token in record.split()[1:]:
            if token.lower().lstrip("+-~?") == "all":
                endings.add(token.lower())
            elif token not in terms:
                terms.append(token)
    return " ".join(["v=spf1", *terms, "-all" if "-all" in endings else "~all"])


def _with_terms(record: str, added: list[str], ending: str | None = None) -> str:
    """The record with terms added after v=spf1 (before the all that closes it), and its all
    term replaced by ending when given."""
    tokens = record.split()
    rest = tokens[1:]
    if ending is not None:
        rest = [t for t in rest if t.lower().lstrip("+-~?") != "all"]
        if not any(t.lower().startswith("redirect=") for t in rest):
            rest.append(ending)
    return " ".join(["v=spf1", *added, *rest])


def _spf_record_findings(
    facts: Facts,
    lookup: Lookup,
    record: str,
    addresses: dict[str, list[str]],
    public: list[str],
) -> list[Finding]:
    domain = facts.mail_domain
    try:
        spf.parse(record)
        total = spf.count_lookups(lookup, domain)
    except spf.SpfError as exc:
        return [Finding("spf", "error", f"the SPF record of {domain} is broken: {exc.message}")]
    if total > spf.MAX_LOOKUPS:
        return [
            Finding(
                "spf",
                "error",
                f"the SPF record of {domain} needs {total} DNS lookups, more than the "
                f"{spf.MAX_LOOKUPS} RFC 7208 allows: receivers fail it (permerror). Replace "
                "includes you do not need, or their hosts by ip4:/ip6: terms",
            )
        ]
    findings: list[Finding] = []
    uncovered: list[str] = []
    for host in facts.smtp_hosts:
        for address in addresses[host]:
            if not is_public(address):
                findings.append(
                    Finding(
                        "spf",
                        "warning",
                        f"SMTP server {host} is at {address}, not a public address: the record "
                        "must cover the address that relay sends from, which this check cannot see",
                    )
                )
                continue
            result, why = spf.check_host(lookup, address, domain)
            if result in ("temperror", "permerror", "unsupported"):
                status = "warning" if result == "unsupported" else "error"
                findings.append(Finding("spf", status, f"SPF of {domain} for {address}: {why}"))
            elif result != "pass":
                uncovered.append(address)
    if uncovered:
        added = [term_for(a) for a in uncovered]
        servers = ", ".join(h for h in facts.smtp_hosts if set(addresses[h]) & set(uncovered))
        findings.append(
            Finding(
                "spf",
                "error",
                f"the SPF record of {domain} does not cover {servers} "
                f"({', '.join(uncovered)}): add {' '.join(added)}",
                Record(domain, "TXT", _with_terms(record, added)),
            )
        )
    ending = _ending(record)
    if ending in ("+all", "all"):
        findings.append(
            Finding(
                "spf",
                "error",
                f"the SPF record of {domain} ends with +all: anyone may send as {domain}",
                Record(domain, "TXT", _with_terms(record, [], "~all")),
            )
        )
    elif ending == "?all":
        findings.append(
            Finding(
                "spf",
                "warning",
                f"the SPF record of {domain} ends with ?all: it says nothing about other senders",
                Record(domain, "TXT", _with_terms(record, [], "~all")),
            )
        )
    elif ending == "" and "redirect=" not in record.lower():
        findings.append(
            Finding(
                "spf",
                "warning",
                f"the SPF record of {domain} does not end with -all or ~all",
                Record(domain, "TXT", _with_terms(record, [], "~all")),
            )
        )
    if not findings:
        findings.append(
            Finding(
                "spf",
                "ok",
                f"the SPF record of {domain} covers every SMTP server ({', '.join(public)}), "
                f"{total} DNS lookups",
            )
        )
    return findings


def _ending(record: str) -> str:
    for token in record.split()[1:]:
        if token.lower().lstrip("+-~?") == "all":
            return token.lower()
    return ""
