"""The domain check: the settings in force, DNS answers from the configured resolver, findings.

Every DNS error (timeout, NXDOMAIN, SERVFAIL, a name DNS cannot carry) becomes an answer the
pure check turns into a finding; a resolver that does not answer is asked once, not per record.
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass
from typing import Any

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from listmgr.errors import BadDomain, ConfigError
from listmgr.mail import domaincheck
from listmgr.mail.dkim import DkimKey
from listmgr.mail.domaincheck import Answer, Facts, Finding
from listmgr.mail.transport import parse_smtp_urls
from listmgr.runtime import Runtime
from listmgr.services import campaign_setup, settings_store
from listmgr.settings import Settings


@dataclass(frozen=True)
class Report:
    """The findings for one From domain, worst status first named."""

    domain: str
    status: str  # ok, warning or error: the worst finding
    findings: list[Finding]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: each finding with its record (and the record as a zone-file line)."""
        return {
            "domain": self.domain,
            "status": self.status,
            "findings": [
                {
                    **asdict(f),
                    "record": {**asdict(f.record), "zone_line": f.record.zone_line()}
                    if f.record
                    else None,
                }
                for f in self.findings
            ],
        }


def _nameserver(value: str) -> tuple[str, int]:
    """Address and port of the dns_resolver setting ("192.0.2.53", "192.0.2.53:5353",
    "2001:db8::53", "[2001:db8::53]:5353")."""
    host, port = value.strip(), "53"
    if host.startswith("["):
        host, _, rest = host[1:].partition("]")
        port = rest.lstrip(":") or "53"
    elif host.count(":") == 1:
        host, port = host.split(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        port = ""
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            "LISTMGR_DNS_RESOLVER must be an IP address, optionally with :port "
            f"(IPv6 as [address]:port), got {value!r}"
        )
    return host, int(port)


class ResolverLookup:
    """Answers from dnspython's resolver as plain data, each question asked once."""

    def __init__(self, settings: Settings) -> None:
        self.cache: dict[tuple[str, str], Answer] = {}
        self.dead = ""  # once the resolver timed out, every further question fails at once
        try:
            self.resolver = dns.resolver.Resolver(configure=not settings.dns_resolver.strip())
        except dns.resolver.NoResolverConfiguration:
            self.resolver = dns.resolver.Resolver(configure=False)
            self.dead = "no DNS resolver configured (set dns_resolver)"
        if settings.dns_resolver.strip():
            host, port = _nameserver(settings.dns_resolver)
            self.resolver.nameservers = [host]
            self.resolver.port = port
        self.resolver.timeout = self.resolver.lifetime = settings.dns_timeout_seconds
        self.resolver.use_edns(0, 0, 1232)

    def __call__(self, name: str, rtype: str) -> Answer:
        key = (name.lower().rstrip("."), rtype)
        if key not in self.cache:
            self.cache[key] = Answer(error=self.dead) if self.dead else self._ask(*key)
        return self.cache[key]

    def _ask(self, name: str, rtype: str) -> Answer:
        try:
            answer = self.resolver.resolve(name, rtype, raise_on_no_answer=False, search=False)
        except dns.resolver.NXDOMAIN:
            return Answer(error="nxdomain")
        except dns.exception.Timeout:
            self.dead = "timeout"
            return Answer(error="timeout")
        except dns.resolver.NoNameservers:
            return Answer(error="servfail")
        except dns.exception.DNSException as exc:
            return Answer(error=type(exc).__name__)
        rrset = answer.rrset
        if rrset is None:
            return Answer()
        if rtype == "TXT":
            return Answer(tuple(b"".join(r.strings).decode("utf-8", "replace") for r in rrset))
        if rtype == "MX":
            return Answer(
                tuple(
                    (r.preference, "" if r.exchange == dns.name.root else r.exchange.to_text(True))
                    for r in rrset
                )
            )
        return Answer(tuple(r.address for r in rrset))


def default_domain(settings: Settings) -> str:
    """The From domain of the configuration: that of the default sender address."""
    return settings.default_from_email.rpartition("@")[2]


def facts_for(settings: Settings, from_domain: str) -> tuple[Facts, str]:
    """The configuration's facts for mail from this domain, and why the DKIM key could not
    be read (empty when it could, or when none is configured)."""
    key: DkimKey | None = None
    problem = ""
    try:
        signer = campaign_setup.signer(settings)
        key = signer.key if signer else None
    except ConfigError as exc:
        problem = exc.message
    hosts = () if settings.embedded_outbox else parse_smtp_urls(settings.smtp_url)
    facts = Facts(
        from_domain=from_domain,
        mail_domain=settings.mail_domain.lower().rstrip("."),
        smtp_hosts=tuple(dict.fromkeys(s.host.lower() for s in hosts)),
        inbound_host=settings.inbound_host.strip(),
        dkim=key,
    )
    return facts, problem


def run(rt: Runtime, domain: str | None = None) -> Report:
    """Check the DNS of a From domain (default: the configured sender's) against the settings
    in force; BadDomain when the name cannot be a domain."""
    settings = settings_store.effective(rt)
    typed = domain if domain and domain.strip() else default_domain(settings)
    try:
        name = domaincheck.domain_name(typed)
    except ValueError as exc:
        raise BadDomain(str(exc), field="domain") from None
    facts, problem = facts_for(settings, name)
    findings = domaincheck.check(facts, ResolverLookup(settings))
    if problem:
        findings = [
            Finding("dkim", "error", f"the DKIM key cannot be used: {problem}")
            if f.check == "dkim"
            else f
            for f in findings
        ]
    return Report(name, domaincheck.worst(findings), findings)
