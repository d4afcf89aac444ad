"""Settings page: SMTP servers as fields (password never shown back), testing the typed values,
the DKIM record, its alignment with the senders, and one DKIM form."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from listmgr.mail import dkim
from listmgr.mail.smtp_fields import KEPT_PASSWORD, SmtpFields, fields_of, url_of
from listmgr.services import lists, settings_store
from tests.admin_support import accounts_by_role, csrf_from, session_login  # noqa: F401
from tests.conftest import free_port

SECRET = "s3cr:et@/%x"


@pytest.mark.parametrize(
    "url",
    [
        "smtp://mx.example.org",
        "smtp://mx.example.org:2525?starttls=1",
        "smtps://user%40corp:p%40ss@mail.example.org:465?rate=5&timeout=10",
        "smtp://u:pw@127.0.0.1:587?starttls=1&rate=2",
    ],
)
def test_urls_survive_fields_and_back(url):
    assert url_of(fields_of(url)) == url


@given(
    user=st.text(min_size=1, max_size=20).filter(lambda s: s.strip() == s),
    password=st.text(min_size=1, max_size=20).filter(lambda p: p != KEPT_PASSWORD),
    tls=st.sampled_from(["none", "starttls", "ssl"]),
    port=st.one_of(st.none(), st.integers(1, 65535)),
)
def test_any_user_and_password_come_back_as_typed(user, password, tls, port):
    f = SmtpFields("mx.example.org", port, user, password, tls)
    assert fields_of(url_of(f)) == f


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (SmtpFields("evil.example@mx.example.org"), "host"),
        (SmtpFields("mx.example.org?x=1"), "host"),
        (SmtpFields(""), "host"),
        (SmtpFields("mx.example.org", port=0), "port"),
        (SmtpFields("mx.example.org", port=70000), "port"),
        (SmtpFields("mx.example.org", tls="bogus"), "TLS"),
        (SmtpFields("mx.example.org", password="x"), "user"),
    ],
)
def test_bad_fields_are_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        url_of(fields)


def _form(client, **fields):
    """The settings form as a browser sends it: one server's fields, the rest as shown."""
    page = client.get("/admin/settings").text
    data = {"csrf_token": csrf_from(page), "smtp_kept": "", "smtp_options": ""}
    data.update(fields)
    return data


@pytest.fixture
def owner(client, rt, accounts_by_role):
    session_login(client, rt, accounts_by_role["owner"])
    return client


def test_smtp_fields_save_and_the_password_is_never_shown_back(owner, rt, sink):
    data = _form(
        owner,
        smtp_host="127.0.0.1",
        smtp_port=str(sink.port),
        smtp_user="mailer",
        smtp_password=SECRET,
        smtp_tls="starttls",
    )
    assert owner.post("/admin/settings", data=data).status_code == 302
    stored = settings_store.effective(rt).smtp_url
    assert fields_of(stored) == SmtpFields("127.0.0.1", sink.port, "mailer", SECRET, "starttls", "")
    page = owner.get("/admin/settings").text
    assert "s3cr" not in page and "mailer" in page
    assert 'value="starttls" selected' in page and "stored — leave empty to keep" in page
    # saved again with the password left empty: the stored one stays
    again = _form(
        owner,
        smtp_host="127.0.0.1",
        smtp_port=str(sink.port),
        smtp_user="mailer",
        smtp_password="",
        smtp_tls="starttls",
        smtp_kept="1",
    )
    assert owner.post("/admin/settings", data=again).status_code == 302
    assert fields_of(settings_store.effective(rt).smtp_url).password == SECRET
    # another TLS mode is another server: the password must be typed again (never in the clear)
    for tls in ("ssl", "none"):
        resp = owner.post("/admin/settings", data={**again, "smtp_tls": tls})
        assert resp.status_code == 422 and "type the password again" in resp.text
    assert fields_of(settings_store.effective(rt).smtp_url).tls == "starttls"
    # an empty password for another host is not the stored one's to take
    moved = {**again, "smtp_host": "mx.attacker.example", "csrf_token": again["csrf_token"]}
    resp = owner.post("/admin/settings", data=moved)
    assert resp.status_code == 422 and "type the password again" in resp.text
    assert "127.0.0.1" in settings_store.effective(rt).smtp_url
    # bad input: a clear error, nothing changed
    before = settings_store.effective(rt).smtp_url
    for bad in ({"smtp_port": "25x"}, {"smtp_port": "0"}, {"smtp_host": "a@b"}, {"smtp_tls": "x"}):
        resp = owner.post("/admin/settings", data={**again, **bad})
        assert resp.status_code == 422 and "SMTP servers" in resp.text, bad
    assert settings_store.effective(rt).smtp_url == before


def test_test_connection_uses_the_typed_values_not_the_saved_ones(owner, rt, sink):
    dead = f"smtp://127.0.0.1:{free_port()}"
    settings_store.update(rt, {"smtp_url": dead})
    typed = _form(owner, smtp_host="127.0.0.1", smtp_port=str(sink.port), smtp_tls="none")
    resp = owner.post("/admin/settings/smtp-check", data=typed)
    assert resp.status_code == 200
    assert f"127.0.0.1:{sink.port}: connected." in resp.text
    assert f'value="{sink.port}"' in resp.text  # the typed values stay on the page
    assert settings_store.effective(rt).smtp_url == dead  # nothing saved
    port = dead.rsplit(":", 1)[1]
    failing = _form(owner, smtp_host="127.0.0.1", smtp_port=port, smtp_tls="none")
    resp = owner.post("/admin/settings/smtp-check", data=failing)
    assert resp.status_code == 200 and "connected." not in resp.text
    bad = owner.post("/admin/settings/smtp-check", data={**failing, "smtp_port": "x"})
    assert bad.status_code == 422 and "port must be a number" in bad.text
    # a kept password may be tested only against the server it was stored for
    settings_store.update(rt, {"smtp_url": f"smtp://u:{quote(SECRET, safe='')}@{dead[7:]}"})
    elsewhere = _form(
        owner,
        smtp_host="127.0.0.1",
        smtp_port=str(sink.port),
        smtp_user="u",
        smtp_kept="1",
        smtp_tls="none",
    )
    resp = owner.post("/admin/settings/smtp-check", data=elsewhere)
    assert resp.status_code == 422 and "type the password again" in resp.text


def test_test_connection_roles_and_form_token(client, rt, sink, accounts_by_role):
    for role in ("analyst", "editor"):
        session_login(client, rt, accounts_by_role[role])
        token = csrf_from(client.get("/admin/").text)
        resp = client.post(
            "/admin/settings/smtp-check",
            data={"csrf_token": token, "smtp_host": "127.0.0.1", "smtp_port": str(sink.port)},
        )
        assert resp.status_code == 403
    session_login(client, rt, accounts_by_role["admin"])
    resp = client.post("/admin/settings/smtp-check", data={"smtp_host": "127.0.0.1"})
    assert resp.status_code == 400


def test_dkim_record_alignment_warning_and_one_dkim_form(owner, rt):
    page = owner.get("/admin/settings").text
    assert page.count('name="dkim_selector"') == 1 and page.count('name="dkim_domain"') == 1
    assert "dkim-alignment" not in page  # no key, mail domain and sender align
    token = csrf_from(page)
    owner.post(
        "/admin/settings/dkim",
        data={"csrf_token": token, "dkim_selector": "s2026", "dkim_domain": "other.example"},
    )
    page = owner.get("/admin/settings").text
    assert page.count('name="dkim_selector"') == 1
    record = re.search(r'id="dkim-record"[^>]*>([^<]+)<', page).group(1)
    strings = re.findall(r'"([^"]*)"', record.replace("&#34;", '"'))
    assert len(strings) >= 2 and all(len(x) <= 255 for x in strings)
    assert "".join(strings).startswith("v=DKIM1; k=rsa; p=")
    assert 'id="dkim-alignment"' in page
    assert "other.example" in page and "lists.example.test" in page
    # a list sending from a domain under the signing domain aligns; another does not
    lists.create(rt, slug="shop", name="Shop", from_email="shop@news.other.example")
    settings_store.update(rt, {"default_from_email": "hello@other.example"})
    assert settings_store.dkim_alignment(rt).misaligned == ()
    assert 'id="dkim-alignment"' not in owner.get("/admin/settings").text
    lists.create(rt, slug="misc", name="Misc", from_email="misc@elsewhere.example")
    assert settings_store.dkim_alignment(rt).misaligned == ("elsewhere.example",)


@pytest.mark.parametrize(
    ("signing", "sender", "ok"),
    [
        ("example.org", "example.org", True),
        ("example.org", "news.example.org", True),
        ("mail.example.org", "example.org", True),
        ("EXAMPLE.org.", "example.ORG", True),
        ("a.example.org", "b.example.org", False),
        ("example.org", "badexample.org", False),
        ("", "example.org", False),
    ],
)
def test_alignment_rule(signing, sender, ok):
    assert dkim.aligned(signing, sender) is ok
