"""DKIM and DMARC findings: the published key is the configured one, the From domain has a DMARC
policy, and the signing and return-path domains align with the From domain."""

from __future__ import annotations

import base64
import binascii
import re

from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from listmgr.mail.dkim import DkimKey, aligned
from listmgr.mail.domaincheck.base import Facts, Finding, Record, dns_problem, organisational
from listmgr.mail.spf import Lookup

DMARC_RECORD = re.compile(r"^v\s*=\s*DMARC1\s*(;|$)", re.IGNORECASE)
POLICIES = ("none", "quarantine", "reject")


def tags_of(value: str) -> dict[str, str]:
    """tag=value pairs of a DKIM or DMARC record (the first of a repeated tag counts)."""
    out: dict[str, str] = {}
    for part in value.split(";"):
        key, sep, val = part.partition("=")
        if sep:
            out.setdefault(key.strip().lower(), val.strip())
    return out


def _key_bytes(key: DkimKey) -> bytes:
    return base64.b64decode(tags_of(key.dns_record())["p"])


def _same_key(published: bytes, key: DkimKey) -> bool:
    """The published p= is the configured key: the same bytes, or for RSA the same numbers in
    another DER spelling."""
    if published == _key_bytes(key):
        return True
    if not isinstance(key.key, rsa.RSAPrivateKey):
        return False
    try:
        loaded = load_der_public_key(published)
    except ValueError:
        return False
    return (
        isinstance(loaded, rsa.RSAPublicKey)
        and loaded.public_numbers() == key.key.public_key().public_numbers()
    )


def dkim_findings(facts: Facts, lookup: Lookup) -> list[Finding]:
    """The selector's record is published and names the configured key."""
    key = facts.dkim
    if key is None:
        return [
            Finding(
                "dkim",
                "error",
                "no DKIM key is configured: mail goes out unsigned, and the large mailbox "
                "providers require DKIM of bulk senders; generate a key in Settings",
            )
        ]
    name = f"{key.selector}._domainkey.{key.domain}"
    wanted = Record(name, "TXT", key.dns_record())
    kind = "ed25519" if isinstance(key.key, ed25519.Ed25519PrivateKey) else "rsa"
    answer = lookup(name, "TXT")
    if answer.failed:
        return [Finding("dkim", "error", dns_problem("TXT", name, answer))]
    found = [str(t) for t in answer.records if "p=" in str(t)]
    if not found:
        return [Finding("dkim", "error", f"no DKIM record at {name}: publish it", wanted)]
    if len(found) > 1:
        return [Finding("dkim", "error", f"{len(found)} DKIM records at {name}: keep one", wanted)]
    tags = tags_of(found[0])
    problem = ""
    published = re.sub(r"\s", "", tags.get("p", ""))
    if tags.get("v", "DKIM1") != "DKIM1":
        problem = f"the record at {name} is not v=DKIM1"
    elif tags.get("k", "rsa").lower() != kind:
        problem = f"the record at {name} is a k={tags.get('k', 'rsa')} key; listmgr signs {kind}"
    elif not published:
        problem = f"the key at {name} is revoked (empty p=)"
    elif "h" in tags and "sha256" not in tags["h"].lower().replace(" ", "").split(":"):
        problem = f"the record at {name} allows only h={tags['h']}; listmgr signs with sha256"
    else:
        try:
            decoded = base64.b64decode(published, validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        if not _same_key(decoded, key):
            problem = f"the key published at {name} is not the key listmgr signs with"
    if problem:
        return [Finding("dkim", "error", f"{problem}: publish", wanted)]
    if "y" in tags.get("t", "").lower().replace(" ", "").split(":"):
        return [
            Finding(
                "dkim",
                "warning",
                f"the DKIM record at {name} is in testing mode (t=y): receivers may ignore "
                "the signature",
                wanted,
            )
        ]
    return [Finding("dkim", "ok", f"the DKIM record at {name} is the configured {kind} key")]


def _dmarc_value(tags: dict[str, str], **changes: str) -> str:
    merged = {**tags, **changes}
    order = ["v", "p"] + [k for k in merged if k not in ("v", "p")]
    return "; ".join(f"{k}={'DMARC1' if k == 'v' else merged[k]}" for k in order if k in merged)


def dmarc_findings(facts: Facts, lookup: Lookup) -> tuple[list[Finding], dict[str, str]]:
    """The From domain's DMARC policy (or its organisational domain's), and its tags."""
    domain = facts.from_domain
    org = organisational(domain)
    suggested = Record(
        f"_dmarc.{domain}",
        "TXT",
        f"v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@{org}",
    )
    found: list[str] = []
    name = ""
    for name in dict.fromkeys((f"_dmarc.{domain}", f"_dmarc.{org}")):
        answer = lookup(name, "TXT")
        if answer.failed:
            return [Finding("dmarc", "error", dns_problem("TXT", name, answer))], {}
        found = [str(t) for t in answer.records if DMARC_RECORD.match(str(t).strip())]
        if found:
            break
    if not found:
        return [
            Finding(
                "dmarc",
                "error",
                f"{domain} has no DMARC record: receivers apply no policy and send no reports",
                suggested,
            )
        ], {}
    tags = tags_of(found[0])
    fixed = Record(name, "TXT", _dmarc_value(tags, p="quarantine"))
    if len(found) > 1:
        return [
            Finding("dmarc", "error", f"{len(found)} DMARC records at {name}: keep one", fixed)
        ], {}
    if tags.get("p", "").lower() not in POLICIES:
        return [Finding("dmarc", "error", f"the DMARC record at {name} has no valid p=", fixed)], {}
    # A record found at the organisational domain governs subdomains by sp= when it has one.
    key = "sp" if name != f"_dmarc.{domain}" and tags.get("sp", "").lower() in POLICIES else "p"
    findings: list[Finding] = []
    if tags[key].lower() == "none":
        findings.append(
            Finding(
                "dmarc",
                "warning",
                f"the DMARC policy of {domain} ({name}) is {key}=none: monitoring only, "
                "receivers do nothing about mail that fails",
                Record(name, "TXT", _dmarc_value(tags, **{key: "quarantine"})),
            )
        )
    if "rua" not in tags:
        findings.append(
            Finding(
                "dmarc",
                "warning",
                f"the DMARC record at {name} has no rua=: nobody receives the aggregate reports",
                Record(name, "TXT", _dmarc_value(tags, rua=f"mailto:dmarc-reports@{org}")),
            )
        )
    if not findings:
        findings.append(
            Finding("dmarc", "ok", f"{domain} has a DMARC policy {key}={tags[key]} ({name})")
        )
    return findings, tags


def _aligns(domain: str, from_domain: str, mode: str) -> bool:
    """DMARC alignment: strict asks for the very domain; relaxed is dkim.aligned (the same
    domain or one a subdomain of the other, an approximation without a public suffix list
    that flags sibling subdomains of one organisation as well)."""
    if mode.lower() == "s":
        return domain.lower() == from_domain.lower()
    return aligned(domain, from_domain)


def alignment_findings(facts: Facts, tags: dict[str, str]) -> list[Finding]:
    """Whether the DKIM signature and the return-path count for DMARC of the From domain."""
    domain = facts.from_domain
    adkim, aspf = tags.get("adkim", "r"), tags.get("aspf", "r")
    strict = {"s": "strict: the very same domain", "r": "relaxed"}
    dkim_ok = facts.dkim is not None and _aligns(facts.dkim.domain, domain, adkim)
    spf_ok = _aligns(facts.mail_domain, domain, aspf)
    findings = []
    if facts.dkim is not None:
        signing = facts.dkim.domain
        findings.append(
            Finding(
                "dkim-alignment", "ok", f"the DKIM signing domain {signing} aligns with {domain}"
            )
            if dkim_ok
            else Finding(
                "dkim-alignment",
                "error",
                f"the DKIM signing domain {signing} does not align with the From domain "
                f"{domain} (adkim={adkim}, {strict.get(adkim.lower(), 'relaxed')}): DMARC does "
                f"not count the signature; sign with {domain} (Settings, DKIM)",
            )
        )
    findings.append(
        Finding(
            "spf-alignment",
            "ok",
            f"the return-path domain {facts.mail_domain} aligns with {domain}",
        )
        if spf_ok
        else Finding(
            "spf-alignment",
            "warning" if dkim_ok else "error",
            f"the return-path domain {facts.mail_domain} (the mail domain) does not align with "
            f"{domain} (aspf={aspf}): DMARC does not count SPF"
            + ("; it rests on DKIM alone" if dkim_ok else ", nor an aligned DKIM signature"),
        )
    )
    return findings
