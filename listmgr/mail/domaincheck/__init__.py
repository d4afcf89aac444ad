"""The domain check: DNS answers and the configuration -> findings (SPF, DKIM, DMARC, MX), each
with the exact record to publish when one is missing or wrong; pure (DNS through a lookup)."""

from __future__ import annotations

from listmgr.mail.domaincheck import receiving, sending, signing
from listmgr.mail.domaincheck.base import Facts, Finding, Record, domain_name
from listmgr.mail.spf import Answer, Lookup

__all__ = ["Answer", "Facts", "Finding", "Lookup", "Record", "check", "domain_name", "worst"]


def check(facts: Facts, lookup: Lookup) -> list[Finding]:
    """Every finding for mail from facts.from_domain as this configuration sends it."""
    dmarc, tags = signing.dmarc_findings(facts, lookup)
    try:
        domain_name(facts.mail_domain)
    except ValueError:  # "localhost" in development: nothing in DNS to look at
        unusable = f"the mail domain {facts.mail_domain!r} is not a domain in DNS: set mail_domain"
        spf_found = [Finding("spf", "error", unusable)]
        mx_found = [Finding("mx", "error", unusable)]
    else:
        spf_found, mx_found = sending.findings(facts, lookup), receiving.findings(facts, lookup)
    return [
        *spf_found,
        *signing.dkim_findings(facts, lookup),
        *dmarc,
        *signing.alignment_findings(facts, tags),
        *mx_found,
    ]


def worst(findings: list[Finding]) -> str:
    """ok, warning or error: the worst status among the findings."""
    statuses = {f.status for f in findings}
    return "error" if "error" in statuses else "warning" if "warning" in statuses else "ok"
