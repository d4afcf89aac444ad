"""The domain check from outside: `listmgr check-domain` (exit codes, JSON), the admin page by
role, and GET /api/domain-check (auth, JSON, bad names), against a DNS server started here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from listmgr.mail.dkim import load_key
from listmgr.services import accounts
from tests.admin_support import accounts_by_role, session_login  # noqa: F401
from tests.dns_support import Zone, dns_server

FROM = "example.com"
MAIL_DOMAIN = "lists.example.com"


@pytest.fixture(scope="module")
def pem() -> bytes:
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def zone_for(pem: bytes) -> Zone:
    return {
        "smtp.example.com": {"A": ["1.2.3.4"]},
        MAIL_DOMAIN: {"TXT": ["v=spf1 ip4:1.2.3.4 -all"], "MX": [(10, "mx.example.com")]},
        "s1._domainkey.example.com": {"TXT": [load_key(FROM, "s1", pem).dns_record()]},
        "_dmarc.example.com": {"TXT": ["v=DMARC1; p=reject; rua=mailto:d@example.com"]},
        "mx.example.com": {"A": ["5.6.7.8"]},
    }


def settings_of(pem_path: Path, resolver: str) -> dict[str, str]:
    return {
        "default_from_email": f"news@{FROM}",
        "mail_domain": MAIL_DOMAIN,
        "smtp_url": "smtp://smtp.example.com:587",
        "inbound_host": "mx.example.com",
        "dkim_domain": FROM,
        "dkim_selector": "s1",
        "dkim_private_key_path": str(pem_path),
        "dns_resolver": resolver,
        "dns_timeout_seconds": "1",
    }


@pytest.fixture
def server(pem):
    with dns_server(zone_for(pem)) as running:
        yield running


@pytest.fixture
def pem_path(tmp_path: Path, pem: bytes) -> Path:
    path = tmp_path / "dkim.pem"
    path.write_bytes(pem)
    return path


@pytest.fixture
def rt(make_runtime, server, pem_path):
    return make_runtime(**settings_of(pem_path, server.address))


# -- command line ---------------------------------------------------------------------------------
def run_cli(args: list[str], database_url: str, settings: dict[str, str], cwd: Path):
    env = {
        **os.environ,
        "LISTMGR_DATABASE_URL": database_url,
        **{f"LISTMGR_{k.upper()}": v for k, v in settings.items()},
    }
    return subprocess.run(
        [sys.executable, "-m", "listmgr", "check-domain", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_exit_codes_follow_the_findings(database_url, server, pem_path, tmp_path):
    settings = settings_of(pem_path, server.address)
    good = run_cli([], database_url, settings, tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "Domain check of example.com: ok" in good.stdout
    assert good.stdout.count("[ok]") == 6

    missing = run_cli(["other.example"], database_url, settings, tmp_path)
    assert missing.returncode == 1
    assert "[error]   dmarc" in missing.stdout
    assert 'publish: _dmarc.other.example. IN TXT "v=DMARC1; p=quarantine;' in missing.stdout

    as_json = run_cli(["--json", "other.example"], database_url, settings, tmp_path)
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert report["domain"] == "other.example" and report["status"] == "error"
    dmarc = next(f for f in report["findings"] if f["check"] == "dmarc")
    assert dmarc["record"]["name"] == "_dmarc.other.example"


@pytest.mark.parametrize("typed", ["exa mple", "../", "a" * 300 + ".example"])
def test_cli_bad_domain_is_one_line_and_exit_2(database_url, server, pem_path, tmp_path, typed):
    result = run_cli([typed], database_url, settings_of(pem_path, server.address), tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("listmgr: ")


# -- admin page -----------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ["analyst", "editor"])
def test_roles_without_settings_cannot_see_the_page(client, rt, accounts_by_role, role):
    session_login(client, rt, accounts_by_role[role])
    assert client.get("/admin/domain").status_code == 403
    assert "/admin/domain" not in client.get("/admin/campaigns").text


def test_anonymous_is_sent_to_sign_in(client):
    response = client.get("/admin/domain")
    assert response.status_code == 302 and "/admin/login" in response.headers["Location"]


@pytest.mark.parametrize("role", ["admin", "owner"])
def test_admins_see_findings_and_records_to_copy(client, rt, accounts_by_role, role, server):
    session_login(client, rt, accounts_by_role[role])
    page = client.get("/admin/domain")
    assert page.status_code == 200
    assert 'id="domain-status">ok<' in page.text
    assert 'href="/admin/domain"' in page.text  # in the navigation
    other = client.get("/admin/domain?domain=other.example")
    assert other.status_code == 200
    assert "_dmarc.other.example. IN TXT" in other.text
    assert "data-copy=" in other.text


@pytest.mark.parametrize(
    "typed", ["exa mple", "../", "<script>alert(1)</script>.example", "x" * 2000]
)
def test_the_page_refuses_bad_domains_escaped(client, rt, accounts_by_role, typed):
    session_login(client, rt, accounts_by_role["owner"])
    page = client.get("/admin/domain", query_string={"domain": typed})
    assert page.status_code == 400
    assert 'id="domain-error"' in page.text
    assert "<script>alert" not in page.text


def test_the_page_takes_an_idn(client, rt, accounts_by_role, server):
    session_login(client, rt, accounts_by_role["owner"])
    page = client.get("/admin/domain", query_string={"domain": "bücher.example"})
    assert page.status_code == 200
    assert "_dmarc.xn--bcher-kva.example" in page.text
    assert ("_dmarc.xn--bcher-kva.example", "TXT") in server.questions


# -- API ------------------------------------------------------------------------------------------
def test_api_needs_a_token_with_settings(client, rt):
    assert client.get("/api/domain-check").status_code == 401
    token = accounts.create_token(rt, role="editor", name="e")
    denied = client.get("/api/domain-check", headers={"Authorization": f"Bearer {token}"})
    assert denied.status_code == 403
    assert denied.get_json()["error"]["code"] == "forbidden"


def test_api_answers_the_findings(api):
    body = api.get("/api/domain-check").get_json()
    assert body["domain"] == FROM and body["status"] == "ok"
    assert {f["check"] for f in body["findings"]} >= {"spf", "dkim", "dmarc", "mx"}
    other = api.get("/api/domain-check?domain=Other.Example.").get_json()
    assert other["domain"] == "other.example" and other["status"] == "error"
    dmarc = next(f for f in other["findings"] if f["check"] == "dmarc")
    assert dmarc["record"] == {
        "name": "_dmarc.other.example",
        "type": "TXT",
        "value": "v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@other.example",
        "zone_line": '_dmarc.other.example. IN TXT "v=DMARC1; p=quarantine; '
        'rua=mailto:dmarc-reports@other.example"',
    }


@pytest.mark.parametrize("typed", ["exa mple", "../", "..", "a" * 5000, "1.2.3.4"])
def test_api_bad_domain_is_400_json(api, typed):
    response = api.get("/api/domain-check", query_string={"domain": typed})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "bad_domain" and error["field"] == "domain"


def test_api_refuses_unknown_parameters(api):
    assert api.get("/api/domain-check?domian=example.com").status_code == 422


def test_the_openapi_document_lists_the_route(api):
    paths = api.get("/api/openapi.json").get_json()["paths"]
    assert "get" in paths["/api/domain-check"]
