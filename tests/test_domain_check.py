"""The domain check against a real DNS server started here: every kind of finding, DNS
failures, and domain names as typed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from listmgr.errors import BadDomain
from listmgr.mail.dkim import load_key
from listmgr.services import domain_check
from tests.dns_support import Zone, dns_server, silent_server

FROM = "example.com"
MAIL_DOMAIN = "lists.example.com"
SMTP_IP = "1.2.3.4"
MX_IP = "5.6.7.8"


def _pem(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture(scope="module")
def rsa_pem() -> bytes:
    return _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="module")
def ed_pem() -> bytes:
    return _pem(ed25519.Ed25519PrivateKey.generate())


def record_of(pem: bytes, domain: str = FROM) -> str:
    return load_key(domain, "s1", pem).dns_record()


def good_zone(dkim_record: str) -> Zone:
    return {
        "smtp.example.com": {"A": [SMTP_IP]},
        MAIL_DOMAIN: {
            "TXT": ["some-verification=abc", "v=spf1 include:_spf.example.com -all"],
            "MX": [(10, "mx.example.com")],
        },
        "_spf.example.com": {"TXT": ["v=spf1 ip4:1.2.3.0/24 ~all"]},
        "s1._domainkey.example.com": {"TXT": [dkim_record]},
        "_dmarc.example.com": {"TXT": ["v=DMARC1; p=quarantine; rua=mailto:d@example.com"]},
        "mx.example.com": {"A": [MX_IP]},
        FROM: {"A": ["9.9.9.1"]},
    }


@pytest.fixture
def checker(make_runtime, tmp_path: Path, rsa_pem: bytes):
    """check(zone, domain=None, pem=..., **settings) -> Report, against a DNS server serving zone."""

    def check(zone: Zone, domain: str | None = None, pem: bytes | None = rsa_pem, **extra):
        key_file = tmp_path / "dkim.pem"
        if pem:
            key_file.write_bytes(pem)
        values = {
            "default_from_email": f"news@{FROM}",
            "mail_domain": MAIL_DOMAIN,
            "smtp_url": "smtp://user:pw@smtp.example.com:587?starttls=1",
            "inbound_host": "mx.example.com",
            "dkim_domain": FROM,
            "dkim_selector": "s1" if pem else "",
            "dkim_private_key_path": str(key_file) if pem else "",
            "dns_timeout_seconds": 1.0,
            **extra,
        }
        with dns_server(zone) as server:
            rt = make_runtime(threads=1, dns_resolver=server.address, **values)
            report = domain_check.run(rt, domain)
        check.questions = server.questions  # type: ignore[attr-defined]
        return report

    return check


def by_check(report, name: str):
    found = [f for f in report.findings if f.check == name]
    assert found, f"no {name} finding in {report.findings}"
    return found


def only(report, name: str):
    found = by_check(report, name)
    assert len(found) == 1, found
    return found[0]


def test_a_good_setup_passes_every_check(checker, rsa_pem):
    report = checker(good_zone(record_of(rsa_pem)))
    assert report.domain == FROM
    assert [f for f in report.findings if f.status != "ok"] == []
    assert report.status == "ok"
    assert {f.check for f in report.findings} == {
        "spf",
        "dkim",
        "dmarc",
        "dkim-alignment",
        "spf-alignment",
        "mx",
    }
    assert SMTP_IP in only(report, "spf").message
    assert "rsa" in only(report, "dkim").message


def test_a_good_ed25519_key_passes(checker, ed_pem):
    report = checker(good_zone(record_of(ed_pem)), pem=ed_pem)
    assert only(report, "dkim").status == "ok"
    assert "ed25519" in only(report, "dkim").message


# -- SPF ------------------------------------------------------------------------------------------
def test_missing_spf_gives_the_record_with_the_servers_address(checker, rsa_pem):
    zone = good_zone(record_of(rsa_pem))
    zone[MAIL_DOMAIN]["TXT"] = ["some-verification=abc"]
    spf = only(checker(zone), "spf")
    assert spf.status == "error"
    assert (spf.record.name, spf.record.type) == (MAIL_DOMAIN, "TXT")
    assert spf.record.value == f"v=spf1 ip4:{SMTP_IP} ~all"


def test_two_spf_records_are_an_error_and_one_merged_record_is_offered(checker, rsa_pem):
    zone = good_zone(record_of(rsa_pem))
    zone[MAIL_DOMAIN]["TXT"] = ["v=spf1 ip4:1.2.3.4 -all", "v=spf1 include:_spf.example.com ~all"]
    spf = only(checker(zone), "spf")
    assert spf.status == "error" and "2 SPF records" in spf.message
    tokens = spf.record.value.split()  # the answer's record order is the server's
    assert tokens[0] == "v=spf1" and tokens[-1] == "-all"
    assert sorted(tokens[1:-1]) == ["include:_spf.example.com", "ip4:1.2.3.4"]


def test_a_server_not_covered_is_named_with_the_term_to_add(checker, rsa_pem):
    zone = good_zone(record_of(rsa_pem))
    zone[MAIL_DOMAIN]["TXT"] = ["v=spf1 include:_spf.example.com -all"]
    zone["_spf.example.com"]["TXT"] = ["v=spf1 ip4:1.2.3.0/24 ~all"]
    zone["smtp2.example.com"] = {"A": ["8.8.4.4"], "AAAA": ["2a00:1450:4001::1"]}
    report = checker(zone, smtp_url="smtp://smtp.example.com:587 smtps://smtp2.example.com:465")
    spf = only(report, "spf")
    assert spf.status == "error"
    assert "smtp2.example.com" in spf.message and "smtp.example.com," not in spf.message
    assert spf.record.value == (
        "v=spf1 ip4:8.8.4.4 ip6:2a00:1450:4001::1 include:_spf.example.com -all"
    )


def test_an_include_chain_and_redirect_are_followed(checker, rsa_pem):
    zone = good_zone(record_of(rsa_pem))
    zone[MAIL_DOMAIN]["TXT"] = ["v=spf1 include:a.example.com -all"]
    zone["a.example.com"] = {"TXT": ["v=spf1 include:b.example.com ~all"]}
    zone["b.example.com"] = {"TXT": ["v=spf1 redirect=c.example.com"]}
    zone["c.example.com"] = {"TXT": ["v=spf1 a:relay.example.com mx:d.example.com -all"]}
    zone["relay.example.com"] = {"A": ["7.7.7.7"]}
    zone["d.example.com"] = {"MX": [(5, "out.example.com")]}
    zone["out.example.com"] = {"A": ["1.2.3.0"]}
    assert only(checker(zone), "spf").status == "error"  # 1.2.3.4 is not 1.2.3.0
    zone["out.example.com"] = {"A": [SMTP_IP]}
    spf = only(checker(zone), "spf")
    assert spf.status == "ok", spf
    assert "5 DNS lookups" in spf.message


def test_an_include_without_a_record_is_a_broken_record(checker, rsa_pem):
    zone = good_zone(record_of(rsa_pem))
    zone[MAIL_DOMAIN]["TXT"] = ["v=spf1 include:nothing.example.com ip4:1.2.3.4 -all"]
    spf = only(checker(zone), "spf")
    assert spf.status == "error" and "nothing.example.com" in spf.message


def test_more_than_ten_lookups_is_an_error(checker, rsa_pem):
    zone = good_zone(record_of(rsa_pem))
    names = [f"i{n}.example.com" for n in range(11)]
    zone[MAIL_DOMAIN]["TXT"] = ["v=spf1 " + " ".join(f"include:{n}" for n in names) + " -all"]
    for n in names:
        zone[n] = {"TXT": [f"v=spf1 ip4:{SMTP_IP} -all"]}
    spf = only(checker(zone), "spf")
    assert spf.status == "error"
    assert "11 DNS lookups" in spf.message and "10" in spf.message


def test_plus_all_is_an_error_and_question_all_a_warning(checker, rsa_pem):
    zone = good_zone(record_of(rsa_pem))
    zone[MAIL_DOMAIN]["TXT"] = ["v=spf1 ip4:1.2.3.4 +all"]
    spf = only(checker(zone), "spf")
    assert spf.status == "error" and "+all" in spf.message
    assert spf.record.value == "v=spf1 ip4:1.2.3.4 ~all"
    zone[MAIL_DOMAIN]["TXT"] = ["v=spf1 ip4:1.2.3.4 ?all"]
    assert only(checker(zone), "spf").status == "warning"
    zone[MAIL_DOMAIN]["TXT"] = ["v=spf1 ip4:1.2.3.4"]
    spf = only(checker(zone), "spf")
    assert spf.status == "warning" and spf.record.value == "v=spf1 ip4:1.2.3.4 ~all"


def test_a_local_relay_cannot_be_judged_and_says_so(checker, rsa_pem):
    zone = good_zone(record_of(rsa_pem))
    spf = only(checker(zone, smtp_url="smtp://127.0.0.1:25"), "spf")
    assert spf.status == "warning" and "127.0.0.1" in spf.message


def test_a_mail_domain_not_in_dns_is_said_once_per_check(checker, rsa_pem):
    report = checker(good_zone(record_of(rsa_pem)), mail_domain="localhost")
    assert only(report, "spf").status == "error" and "mail_domain" in only(report, "spf").message
    assert only(report, "mx").status == "error" and "mail_domain" in only(report, "mx").message
    assert only(report, "dmarc").status == "ok"


def test_the_dev_outbox_has_no_server_to_check(checker, rsa_pem):
    spf = only(checker(good_zone(record_of(rsa_pem)), smtp_url=""), "spf")
    assert spf.status == "warning" and "dev outbox" in spf.message


# -- DKIM -----------------------------------------------------------------------------------------
def test_missing_dkim_record_gives_the_record_of_the_configured_key(checker, rsa_pem):
    zone = good_zone(record_of(rsa_pem))
    del zone["s1._domainkey.example.com"]
    dkim = only(checker(zone), "dkim")
    assert dkim.status == "error"
    assert dkim.record.name == "s1._domainkey.example.com" and dkim.record.type == "TXT"
    assert dkim.record.value == record_of(rsa_pem)


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_a_different_published_key_is_an_error(checker, rsa_pem, ed_pem, kind):
    pem = rsa_pem if kind == "rsa" else ed_pem
    other = _pem(
        rsa.generate_private_key(public_exponent=65537, key_size=1024)
        if kind == "rsa"
        else ed25519.Ed25519PrivateKey.generate()
    )
    dkim = only(checker(good_zone(record_of(other)), pem=pem), "dkim")
    assert dkim.status == "error" and "not the key" in dkim.message
    assert dkim.record.value == record_of(pem)


def test_a_key_of_the_other_type_is_an_error(checker, rsa_pem, ed_pem):
    dkim = only(checker(good_zone(record_of(rsa_pem)), pem=ed_pem), "dkim")
    assert dkim.status == "error" and "k=rsa" in dkim.message
    assert "k=ed25519" in dkim.record.value


def test_a_revoked_key_and_testing_mode(checker, rsa_pem):
    dkim = only(checker(good_zone("v=DKIM1; k=rsa; p=")), "dkim")
    assert dkim.status == "error" and "revoked" in dkim.message
    dkim = only(checker(good_zone(record_of(rsa_pem) + "; t=y")), "dkim")
    assert dkim.status == "warning" and "t=y" in dkim.message


def test_no_dkim_key_configured_is_an_error(checker, rsa_pem):
    report = checker(good_zone(record_of(rsa_pem)), pem=None)
    assert only(report, "dkim").status == "error"
    assert not [f for f in report.findings if f.check == "dkim-alignment"]


def test_an_unreadable_key_file_is_a_finding(checker, rsa_pem, tmp_path):
    report = checker(
        good_zone(record_of(rsa_pem)), dkim_private_key_path=str(tmp_path / "missing.pem")
    )
    dkim = only(report, "dkim")
    assert dkim.status == "error" and "cannot" in dkim.message


# -- DMARC and alignment --------------------------------------------------------------------------
def test_missing_dmarc_is_an_error_with_a_suggested_record(checker, rsa_pem):
    zone = good_zone(record_of(rsa_pem))
    del zone["_dmarc.example.com"]
    dmarc = only(checker(zone), "dmarc")
    assert dmarc.status == "error"
    assert dmarc.record.name == "_dmarc.example.com"
    assert dmarc.record.value == "v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@example.com"


def test_p_none_is_a_warning_with_the_record_tightened(checker, rsa_pem):
    zone = good_zone(record_of(rsa_pem))
    zone["_dmarc.example.com"] = {"TXT": ["v=DMARC1; p=none; rua=mailto:r@example.com; pct=100"]}
    dmarc = only(checker(zone), "dmarc")
    assert dmarc.status == "warning" and "monitoring" in dmarc.message
    assert dmarc.record.value == "v=DMARC1; p=quarantine; rua=mailto:r@example.com; pct=100"


def test_a_subdomain_falls_back_to_the_organisational_record_and_its_sp(checker, rsa_pem):
    zone = good_zone(load_key("news.example.com", "s1", rsa_pem).dns_record())
    zone["s1._domainkey.news.example.com"] = zone.pop("s1._domainkey.example.com")
    zone["_dmarc.example.com"] = {"TXT": ["v=DMARC1; p=reject; sp=none; rua=mailto:r@example.com"]}
    report = checker(
        zone,
        "news.example.com",
        dkim_domain="news.example.com",
        mail_domain="news.example.com",
    )
    dmarc = only(report, "dmarc")
    assert dmarc.status == "warning" and "sp=none" in dmarc.message
    assert dmarc.record.name == "_dmarc.example.com"
    assert "sp=quarantine" in dmarc.record.value and "p=reject" in dmarc.record.value


def test_a_misaligned_dkim_domain_is_an_error(checker, rsa_pem):
    zone = good_zone(record_of(rsa_pem))
    zone["s1._domainkey.other.net"] = {"TXT": [record_of(rsa_pem, "other.net")]}
    report = checker(zone, dkim_domain="other.net")
    assert only(report, "dkim").status == "ok"
    alignment = only(report, "dkim-alignment")
    assert alignment.status == "error" and "other.net" in alignment.message
    assert report.status == "error"


def test_strict_alignment_is_read_from_the_dmarc_record(checker, rsa_pem):
    zone = good_zone(record_of(rsa_pem))
    zone["_dmarc.example.com"] = {
        "TXT": ["v=DMARC1; p=reject; adkim=r; aspf=s; rua=mailto:r@example.com"]
    }
    report = checker(zone)
    assert only(report, "dkim-alignment").status == "ok"
    spf_alignment = only(report, "spf-alignment")
    assert spf_alignment.status == "warning" and "aspf=s" in spf_alignment.message


def test_neither_aligned_makes_the_return_path_an_error(checker, rsa_pem):
    zone = good_zone(record_of(rsa_pem))
    zone["s1._domainkey.other.net"] = {"TXT": [record_of(rsa_pem, "other.net")]}
    zone["bounce.other.net"] = {
        "TXT": [f"v=spf1 ip4:{SMTP_IP} -all"],
        "MX": [(10, "mx.example.com")],
    }
    report = checker(zone, dkim_domain="other.net", mail_domain="bounce.other.net")
    assert only(report, "spf-alignment").status == "error"


# -- MX -------------------------------------------------------------------------------------------
def test_missing_mx_gives_the_record(checker, rsa_pem):
    zone = good_zone(record_of(rsa_pem))
    del zone[MAIL_DOMAIN]["MX"]
    mx = only(checker(zone), "mx")
    assert mx.status == "error"
    assert (mx.record.name, mx.record.type, mx.record.value) == (
        MAIL_DOMAIN,
        "MX",
        "10 mx.example.com.",
    )
    assert mx.record.zone_line() == f"{MAIL_DOMAIN}. IN MX 10 mx.example.com."


def test_mx_elsewhere_is_an_error_and_a_backup_only_a_warning(checker, rsa_pem):
    zone = good_zone(record_of(rsa_pem))
    zone[MAIL_DOMAIN]["MX"] = [(10, "mail.provider.net")]
    zone["mail.provider.net"] = {"A": ["4.4.4.4"]}
    mx = only(checker(zone), "mx")
    assert mx.status == "error" and "mail.provider.net" in mx.message
    zone[MAIL_DOMAIN]["MX"] = [(10, "mail.provider.net"), (20, "mx.example.com")]
    assert only(checker(zone), "mx").status == "warning"


def test_an_mx_by_another_name_for_the_same_host_is_fine(checker, rsa_pem):
    zone = good_zone(record_of(rsa_pem))
    zone[MAIL_DOMAIN]["MX"] = [(10, "in.example.com")]
    zone["in.example.com"] = {"A": [MX_IP]}
    assert only(checker(zone), "mx").status == "ok"


def test_a_null_mx_and_an_unset_inbound_host(checker, rsa_pem):
    zone = good_zone(record_of(rsa_pem))
    zone[MAIL_DOMAIN]["MX"] = [(0, "")]
    assert only(checker(zone), "mx").status == "error"
    zone = good_zone(record_of(rsa_pem))
    mx = only(checker(zone, inbound_host=""), "mx")
    assert mx.status == "warning" and "inbound_host" in mx.message


# -- DNS failures and names -----------------------------------------------------------------------
def test_a_resolver_that_never_answers_gives_findings_not_a_crash(make_runtime, rsa_pem, tmp_path):
    (tmp_path / "dkim.pem").write_bytes(rsa_pem)
    with silent_server() as address:
        rt = make_runtime(
            threads=1,
            dns_resolver=address,
            dns_timeout_seconds=0.5,
            default_from_email=f"news@{FROM}",
            smtp_url="smtp://smtp.example.com:587",
            dkim_selector="s1",
            dkim_private_key_path=str(tmp_path / "dkim.pem"),
        )
        started = time.monotonic()
        report = domain_check.run(rt)
    assert time.monotonic() - started < 5  # one timeout, not one per question
    assert report.status == "error"
    for name in ("spf", "dkim", "dmarc", "mx"):
        finding = only(report, name)
        assert finding.status == "error" and "timeout" in finding.message, finding


def test_servfail_is_a_finding(make_runtime, rsa_pem):
    zone = good_zone(record_of(rsa_pem))
    with dns_server(zone, servfail=frozenset({"_dmarc.example.com"})) as server:
        rt = make_runtime(
            threads=1,
            dns_resolver=server.address,
            default_from_email=f"news@{FROM}",
            mail_domain=MAIL_DOMAIN,
        )
        report = domain_check.run(rt)
    dmarc = only(report, "dmarc")
    assert dmarc.status == "error" and "servfail" in dmarc.message


@pytest.mark.parametrize(
    "typed",
    [
        "exa mple.com",
        "../",
        "..",
        "example",
        "-bad.example",
        "a" * 64 + ".example",
        "x." * 200,
        "a" * 5000,
        "1.2.3.4",
        "ex@mple.com",
        "example.com/../x",
    ],
)
def test_bad_domains_are_refused(rt, typed):
    with pytest.raises(BadDomain):
        domain_check.run(rt, typed)


def test_a_default_sender_without_a_real_domain_is_refused(make_runtime):
    rt = make_runtime(threads=1, default_from_email="news@localhost")
    with pytest.raises(BadDomain, match="localhost"):
        domain_check.run(rt)


def test_an_idn_is_looked_up_as_its_ascii_form(checker, rsa_pem):
    report = checker(good_zone(record_of(rsa_pem)), "BÜCHER.example")
    assert report.domain == "xn--bcher-kva.example"
    assert ("_dmarc.xn--bcher-kva.example", "TXT") in checker.questions


@pytest.mark.parametrize("value", ["127.0.0.1:notaport", "dns.example.com", "127.0.0.1:0", "::1:"])
def test_a_bad_resolver_setting_is_a_clear_error(make_runtime, value):
    from listmgr.errors import ConfigError

    rt = make_runtime(threads=1, dns_resolver=value, default_from_email=f"n@{FROM}")
    with pytest.raises(ConfigError, match="LISTMGR_DNS_RESOLVER"):
        domain_check.run(rt)


def test_an_ipv6_resolver_with_a_port_is_understood(make_runtime):
    with silent_server() as address:
        port = address.rpartition(":")[2]
        rt = make_runtime(
            threads=1,
            dns_resolver=f"[::1]:{port}",
            dns_timeout_seconds=0.3,
            default_from_email=f"n@{FROM}",
        )
        report = domain_check.run(rt)  # nobody answers on ::1: findings, no exception
    assert report.status == "error"
