"""DKIM canonicalization (relaxed/relaxed, RFC 6376 3.4.2 and 3.4.4) against a literal reading
of the RFC, and keys: RSA or Ed25519 in PEM, anything else refused with a clear error."""

from __future__ import annotations

import re

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from listmgr.errors import ConfigError
from listmgr.mail.dkim import load_key, relaxed_body, relaxed_header


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
