"""SPF evaluation (mail/spf.py) over DNS answers given as data: mechanisms, limits, errors."""

from __future__ import annotations

from typing import Any

import pytest

from listmgr.mail.spf import MAX_LOOKUPS, Answer, Lookup, check_host, count_lookups, parse


def lookup_in(zone: dict[tuple[str, str], Any]) -> Lookup:
    def lookup(name: str, rtype: str) -> Answer:
        if (name, rtype) in zone:
            value = zone[(name, rtype)]
            return value if isinstance(value, Answer) else Answer(tuple(value))
        known = any(n == name for n, _ in zone)
        return Answer() if known else Answer(error="nxdomain")

    return lookup


@pytest.mark.parametrize(
    ("record", "ip", "result"),
    [
        ("v=spf1 ip4:10.0.0.0/8 -all", "10.1.2.3", "pass"),
        ("v=spf1 ip4:10.0.0.0/8 -all", "11.1.2.3", "fail"),
        ("v=spf1 ip4:10.0.0.0/8 ~all", "11.1.2.3", "softfail"),
        ("v=spf1 ip4:10.0.0.0/8", "11.1.2.3", "neutral"),
        ("v=spf1 ip6:2001:db8::/32 -all", "2001:db8:1::5", "pass"),
        ("v=spf1 ip6:2001:db8::/32 -all", "10.1.2.3", "fail"),
        ("v=spf1 -ip4:10.0.0.1 +all", "10.0.0.1", "fail"),
        ("v=spf1 a/24 -all", "1.2.3.77", "pass"),
        ("v=spf1 a:other.test//64 -all", "2001:db8:0:1::9", "pass"),
        ("v=spf1 mx -all", "5.6.7.8", "pass"),
        ("v=spf1 exists:ok.test -all", "9.9.9.9", "pass"),
        ("v=spf1 exists:%{i}.rbl.test -all", "9.9.9.9", "unsupported"),
        ("v=spf1 ptr -all", "1.2.3.4", "fail"),
        ("v=spf1 bogus:x -all", "1.2.3.4", "permerror"),
        ("v=spf1 include:gone.test -all", "1.2.3.4", "permerror"),
        ("v=spf1 redirect=gone.test", "1.2.3.4", "permerror"),
        ("v=spf1 include:slow.test -all", "1.2.3.4", "temperror"),
    ],
)
def test_mechanisms(record, ip, result):
    zone = {
        ("d.test", "TXT"): [record],
        ("d.test", "A"): ["1.2.3.4"],
        ("d.test", "MX"): [(10, "mx.d.test")],
        ("mx.d.test", "A"): ["5.6.7.8"],
        ("other.test", "AAAA"): ["2001:db8:0:1::1"],
        ("ok.test", "A"): ["127.0.0.2"],
        ("slow.test", "TXT"): Answer(error="timeout"),
    }
    assert check_host(lookup_in(zone), ip, "d.test")[0] == result


def test_an_mx_with_more_than_ten_exchanges_is_a_permerror():
    zone = {
        ("d.test", "TXT"): ["v=spf1 mx -all"],
        ("d.test", "MX"): [(n, f"mx{n}.d.test") for n in range(11)],
    }
    assert check_host(lookup_in(zone), "1.2.3.4", "d.test")[0] == "permerror"


def test_the_lookup_limit_stops_the_evaluation_and_the_count():
    chain = {
        (f"i{n}.test", "TXT"): [f"v=spf1 include:i{n + 1}.test -all"]
        for n in range(MAX_LOOKUPS + 1)
    }
    chain[(f"i{MAX_LOOKUPS + 1}.test", "TXT")] = ["v=spf1 ip4:1.2.3.4 -all"]
    result, why = check_host(lookup_in(chain), "1.2.3.4", "i0.test")
    assert result == "permerror" and "10 DNS lookups" in why
    assert count_lookups(lookup_in(chain), "i0.test") == MAX_LOOKUPS + 1


def test_an_include_loop_is_refused():
    zone = {
        ("a.test", "TXT"): ["v=spf1 include:b.test -all"],
        ("b.test", "TXT"): ["v=spf1 include:a.test -all"],
    }
    assert check_host(lookup_in(zone), "1.2.3.4", "a.test")[0] == "permerror"
    with pytest.raises(Exception, match="includes itself"):
        count_lookups(lookup_in(zone), "a.test")


def test_terms_parse_with_qualifiers_and_modifiers():
    terms = parse("v=spf1 -a:x.test/24//64 ~mx ?include:y.test redirect=z.test exp=e.test")
    assert [(t.qualifier, t.name, t.target, t.cidr4, t.cidr6, t.modifier) for t in terms] == [
        ("-", "a", "x.test", 24, 64, False),
        ("~", "mx", "", None, None, False),
        ("?", "include", "y.test", None, None, False),
        ("+", "redirect", "z.test", None, None, True),
        ("+", "exp", "e.test", None, None, True),
    ]
