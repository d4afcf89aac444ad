"""The SMTP client against real aiosmtpd servers: STARTTLS, implicit TLS, AUTH, failures."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from listmgr.errors import ConfigError
from listmgr.mail.transport import PermanentFailure, TemporaryFailure, Transport, parse_smtp_urls
from tests.conftest import Sink, free_port

MESSAGE = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nbody\r\n"


@pytest.fixture(scope="module")
def cert(tmp_path_factory) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    import ipaddress

    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == b"user"
        and auth_data.password == b"s3cret"
    )
    return AuthResult(success=ok)


def _server(handler: Sink, cert: tuple[Path, Path], *, implicit: bool):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert[0]), str(cert[1]))
    kwargs = dict(
        authenticator=_authenticator,
        auth_required=True,
        auth_require_tls=True,
        auth_exclude_mechanism=["LOGIN"],
        ready_timeout=30,  # a loaded machine may need more than the default second
    )
    if implicit:  # aiosmtpd does not see the TLS wrapper, so it must not insist on STARTTLS
        kwargs["auth_require_tls"] = False
        return Controller(
            handler, hostname="127.0.0.1", port=handler.port, ssl_context=context, **kwargs
        )
    return Controller(
        handler,
        hostname="127.0.0.1",
        port=handler.port,
        tls_context=context,
        require_starttls=True,
        **kwargs,
    )


@pytest.mark.parametrize("implicit", [False, True])
def test_tls_and_auth(cert, implicit):
    handler = Sink(port=free_port())
    controller = _server(handler, cert, implicit=implicit)
    controller.start()
    try:
        scheme, query = ("smtps", "") if implicit else ("smtp", "starttls=1&")
        url = f"{scheme}://user:s3cret@127.0.0.1:{handler.port}?{query}cafile={cert[0]}"
        Transport(url).send_one("a@example.org", "b@example.org", MESSAGE)
        assert [m.rcpt_tos for m in handler.messages] == [["b@example.org"]]
        anonymous = url.replace("user:s3cret@", "")
        with pytest.raises(PermanentFailure) as refused:
            Transport(anonymous).send_one("a@example.org", "b@example.org", MESSAGE)
        assert refused.value.code == 530  # authentication required
        assert len(handler.messages) == 1
    finally:
        controller.stop()


def test_refusals_are_classified(sink):
    sink.rcpt_hook = lambda addr: (
        "550 5.1.1 no such user"
        if addr.startswith("gone")
        else "451 4.7.1 try later"
        if addr.startswith("busy")
        else None
    )
    t = Transport(sink.url)
    with pytest.raises(PermanentFailure) as perm:
        t.send_one("a@example.org", "gone@example.org", MESSAGE)
    assert perm.value.code == 550
    with pytest.raises(TemporaryFailure) as temp:
        t.send_one("a@example.org", "busy@example.org", MESSAGE)
    assert temp.value.code == 451
    with pytest.raises(TemporaryFailure):
        Transport(f"smtp://127.0.0.1:{free_port()}").send_one(
            "a@example.org", "b@example.org", MESSAGE
        )
    t.send_one("a@example.org", "ok@example.org", MESSAGE)
    assert [m.rcpt_tos for m in sink.messages] == [["ok@example.org"]]


@pytest.mark.parametrize("pipelining", [True, False])
def test_campaign_fast_path_with_and_without_pipelining(sink, pipelining):
    """One kept-open connection: a refused recipient is classified (stage rcpt) and the
    connection goes on with the next message; each accepted message arrives once."""
    sink.pipelining = pipelining
    sink.rcpt_hook = lambda addr: "550 5.1.1 no such user" if addr.startswith("gone") else None
    conn = Transport(sink.url).connection()
    conn.send_prepared("a@example.org", "one@example.org", MESSAGE, throttled=True)
    with pytest.raises(PermanentFailure) as refused:
        conn.send_prepared("a@example.org", "gone@example.org", MESSAGE, throttled=True)
    assert refused.value.code == 550 and refused.value.stage == "rcpt"
    conn.send_prepared(
        "a@example.org", "two@example.org", b".dot first\r\n" + MESSAGE, throttled=True
    )
    conn.close()
    assert [m.rcpt_tos for m in sink.messages] == [["one@example.org"], ["two@example.org"]]
    assert sink.messages[1].data.startswith(b".dot first\r\n")  # dot-stuffing undone


def test_urls():
    servers = parse_smtp_urls(
        "smtp://u:p%40ss@mx1.example.org:2525?starttls=1&rate=50 smtps://mx2.example.org"
    )
    assert [(s.host, s.port, s.tls, s.starttls, s.password, s.rate) for s in servers] == [
        ("mx1.example.org", 2525, False, True, "p@ss", 50.0),
        ("mx2.example.org", 465, True, False, "", 0.0),
    ]
    for bad in ("http://x", "smtp://", "smtp://h:notaport", "smtp://h?rate=fast"):
        with pytest.raises(ConfigError):
            parse_smtp_urls(bad)


def test_without_servers_mail_goes_to_the_dev_outbox_sink():
    captured: list[tuple[str, list[str], bytes]] = []
    t = Transport("", lambda mail_from, rcpts, data: captured.append((mail_from, rcpts, data)))
    assert t.send_one("a@example.org", "b@example.org", MESSAGE) == "dev-outbox:0"
    conn = t.connection()
    list(conn.steps("", "c@example.org", MESSAGE))
    assert captured == [
        ("a@example.org", ["b@example.org"], MESSAGE),
        ("", ["c@example.org"], MESSAGE),
    ]
    with pytest.raises(ConfigError, match="no SMTP server"):
        Transport("").send_one("a@example.org", "b@example.org", MESSAGE)
