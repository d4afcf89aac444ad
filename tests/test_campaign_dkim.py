"""DKIM canonicalization (relaxed/relaxed, RFC 6376 3.4.2 and 3.4.4) against a literal reading
of the RFC, and keys: RSA or Ed25519 in PEM, anything else refused with a clear error; the DNS record for both key types, split at 255."""

from __future__ import annotations

import re

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from listmgr.errors import ConfigError
from listmgr.mail.dkim import DkimSigner, load_key, relaxed_body, relaxed_header, txt_strings
from tests.campaign_support import dkim_pem


def rfc_body(body: bytes) -> bytes:
    lines = [re.sub(rb"[ \t]+", b" ", line).rstrip(b" ") for line in body.split(b"\r\n")]
    joined = b"\r\n".join(lines).rstrip(b"\r\n")
    return joined + b"\r\n" if joined else b""


def rfc_header(name: str, value: str) -> str:
    unfolded = value.replace("\r\n", "")
    return name.lower() + ":" + re.sub(r"[ \t]+", " ", unfolded).strip()


@given(st.lists(st.sampled_from([b" ", b"\t", b"  ", b"x", b"yz", b"\r\n"]), max_size=40))
def test_relaxed_body_matches_the_rfc(parts: list[bytes]) -> None:
    body = b"".join(parts)
    assert relaxed_body(body) == rfc_body(body)


@given(st.lists(st.sampled_from([" ", "\t", "a", "Bc", "\r\n ", "\r\n\t"]), max_size=30))
def test_relaxed_header_matches_the_rfc(parts: list[str]) -> None:
    value = "".join(parts)
    assert relaxed_header("List-Unsubscribe", value) == rfc_header("List-Unsubscribe", value)


def test_keys_other_than_rsa_or_ed25519_are_refused() -> None:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ConfigError, match="RSA or Ed25519"):
        load_key("example.org", "s1", pem)
    with pytest.raises(ConfigError, match="cannot read the DKIM private key"):
        load_key("example.org", "s1", b"not a key")
    with pytest.raises(ConfigError, match="domain and a selector"):
        load_key("", "s1", pem)


def _published(line: str) -> bytes:
    """What a resolver hands back for the zone line: its quoted strings joined."""
    name, _, strings = line.partition(" IN TXT ")
    assert name == "s1._domainkey.example.org."
    parts = re.findall(r'"([^"]*)"', strings)
    assert strings == " ".join(f'"{p}"' for p in parts)
    assert all(len(p) <= 255 for p in parts)
    return "".join(parts).encode()


@pytest.mark.parametrize(
    ("kind", "bits", "strings"), [("rsa", 2048, 2), ("rsa", 4096, 3), ("ed25519", 0, 1)]
)
def test_dns_record_names_the_key_type_and_verifies_with_dkimpy(
    kind: str, bits: int, strings: int
) -> None:
    key = load_key("example.org", "s1", dkim_pem(kind, bits))
    line = key.zone_line()
    assert line.count('"') == 2 * strings
    record = _published(line)
    assert record.startswith(f"v=DKIM1; k={kind}; p=".encode())
    assert record.decode() == key.dns_record()
    headers = [
        ("From", "News <news@example.org>"),
        ("To", "eve@example.org"),
        ("Subject", "Hello"),
        ("Date", "Sun, 06 Dec 2026 12:00:00 +0000"),
        ("Message-ID", "<1@example.org>"),
    ]
    body = b"Hello Eve\r\n"
    message = "".join(f"{n}: {v}\r\n" for n, v in headers).encode() + b"\r\n" + body
    signed = DkimSigner(key).header(headers, body).encode() + message
    assert dkim.verify(signed, dnsfunc=lambda name, timeout=5: record)
    assert not dkim.verify(
        signed.replace(b"Hello Eve", b"Hello Bob"), dnsfunc=lambda name, timeout=5: record
    )


def test_txt_strings_split_at_255() -> None:
    assert txt_strings("") == '""'
    assert txt_strings("a" * 255) == '"' + "a" * 255 + '"'
    assert txt_strings("a" * 255 + "b") == '"' + "a" * 255 + '" "b"'
