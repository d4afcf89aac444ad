"""Bounded inputs everywhere: an attacker who sends too much (a chunked body with no length, an
endless pipe, a huge SMTP DATA, a message of 100,000 MIME parts, a 60,000-character name, a
forged import form) gets a clear refusal and nothing is stored, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import http.client
import io
import os
import re
import smtplib
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select
from werkzeug.serving import make_server

from listmgr import inbound_server
from listmgr.mail.inbound import classify, message
from listmgr.mail.inbound.classification import Envelope
from listmgr.mail.inbound.context import Context
from listmgr.models import (
    ApiToken,
    Campaign,
    ImportJob,
    InboundMessage,
    MailingList,
    Segment,
    Subscriber,
    User,
)
from listmgr.services import accounts, inbound, lists
from tests.admin_support import accounts_by_role, csrf_from, post_form, session_login  # noqa: F401
from tests.conftest import SECRET, free_port
from tests.inbound_support import reply

# Above max_form_bytes (64 KiB), so the app's own body cap is this limit itself: a stream cut
# there reads as a whole message of exactly LIMIT bytes.
LIMIT = 100_000
HUGE_PARTS = 100_000


def _count(rt, model) -> int:
    with rt.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _message(size: int) -> bytes:
    """A real reply of exactly `size` bytes."""
    base = reply(
        sender="ben@example.com",
        to="news@lists.example.test",
        subject="hello",
        body="hi",
        msgid=f"s{size}",
    )
    return base + b"x" * (size - len(base))


def _many_parts(n: int) -> bytes:
    head = (
        b"From: Someone <someone@example.com>\r\nTo: news@lists.example.test\r\n"
        b"Subject: parts\r\nMessage-ID: <parts@example.com>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    )
    body = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i for i in range(n))
    return head + body + b"--b--\r\n"


# -- inbound size ------------------------------------------------------------------------------
@pytest.fixture
def small(make_runtime):
    from listmgr.app import create_app

    rt = make_runtime(max_inbound_bytes=LIMIT)
    app = create_app(rt=rt, migrate=False)
    app.config["TESTING"] = True
    return rt, app


@pytest.fixture
def live(small) -> Iterator[tuple[object, int]]:
    rt, app = small
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rt, server.port
    server.shutdown()


def _chunked(port: int, body: bytes, chunk: int = 16384) -> tuple[int, bytes]:
    """POST /hooks/inbound with Transfer-Encoding: chunked and no Content-Length."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.putrequest("POST", "/hooks/inbound")
    conn.putheader("Authorization", "Bearer inbound-test-secret")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.putheader("Content-Type", "message/rfc822")
    conn.endheaders()
    try:
        for i in range(0, len(body), chunk):
            piece = body[i : i + chunk]
            conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        conn.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may stop reading once it has seen too much
    resp = conn.getresponse()
    status, data = resp.status, resp.read()
    conn.close()
    return status, data


@pytest.mark.parametrize("over", [1, 7, LIMIT * 3])
def test_a_chunked_body_over_the_limit_is_refused_whole(live, over):
    rt, port = live
    status, body = _chunked(port, _message(LIMIT + over))
    assert status == 413, body
    assert _count(rt, InboundMessage) == 0  # nothing cut and stored
    status, body = _chunked(port, _message(LIMIT))  # exactly the limit is fine
    assert status == 202, body
    with rt.db.session() as s:
        assert s.scalar(select(InboundMessage.size)) == LIMIT


def test_a_declared_length_over_the_limit_is_refused(small):
    rt, app = small
    resp = app.test_client().post(
        "/hooks/inbound",
        data=_message(LIMIT + 1),
        headers={"Authorization": "Bearer inbound-test-secret"},
    )
    assert resp.status_code == 413 and _count(rt, InboundMessage) == 0


def test_the_pipe_refuses_a_message_over_the_limit(database_url, rt):
    env = {
        **os.environ,
        "LISTMGR_DATABASE_URL": database_url,
        "LISTMGR_SECRET_KEY": SECRET,
        "LISTMGR_MAX_INBOUND_BYTES": str(LIMIT),
    }

    def run(data: bytes) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "listmgr", "inbound"],
            input=data,
            env=env,
            capture_output=True,
            timeout=60,
        )

    refused = run(_message(LIMIT + 1))
    assert refused.returncode == 65, refused.stderr
    assert f"larger than {LIMIT} bytes" in refused.stderr.decode()
    assert len(refused.stderr.decode().strip().splitlines()) == 1
    assert _count(rt, InboundMessage) == 0
    assert run(_message(LIMIT)).returncode == 0
    assert _count(rt, InboundMessage) == 1


@pytest.mark.parametrize("lmtp", [True, False])
def test_the_listener_refuses_a_message_over_the_limit(small, lmtp):
    rt, _ = small
    port = free_port()
    controller = inbound_server.start(rt, "127.0.0.1", port, lmtp=lmtp)
    try:
        client = smtplib.LMTP("127.0.0.1", port) if lmtp else smtplib.SMTP("127.0.0.1", port)
        with pytest.raises(
            (smtplib.SMTPDataError, smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused)
        ) as refused:
            client.sendmail("ben@example.com", ["news@lists.example.test"], _message(LIMIT * 2))
        assert "552" in str(refused.value)
        client.close()
    finally:
        controller.stop()
    assert _count(rt, InboundMessage) == 0


# -- MIME parts ----------------------------------------------------------------------------------
def test_a_message_of_100000_parts_is_read_only_up_to_the_cap(rt, client, accounts_by_role):
    raw = _many_parts(HUGE_PARTS)
    assert len(raw) < rt.settings.max_inbound_bytes
    # classification looks at the first MAX_PARTS parts and no more
    ctx = Context(raw, Envelope(), None, "lists.example.test")
    assert ctx.cut is True
    assert len(list(message.walk(ctx.msg))) <= message.MAX_PARTS
    assert len(ctx.msg.get_payload()) < message.MAX_PARTS
    assert classify(raw, tokens=rt.tokens, mail_domain="lists.example.test").kind == "other"
    stored = inbound.store(rt, raw)
    session_login(client, rt, accounts_by_role["admin"])
    page = client.get(f"/admin/inbound/{stored.id}")
    assert page.status_code == 200
    assert 'id="parts-cut"' in page.text
    table = re.search(r'<table class="data" id="parts">(.*?)</table>', page.text, re.S).group(1)
    assert table.count("<tr>") - 1 == message.MAX_PARTS  # a header row, then the parts
    api = client.get(
        f"/api/inbound/{stored.id}",
        headers={"Authorization": f"Bearer {accounts.create_token(rt, role='admin')}"},
    )
    assert api.status_code == 200
    assert api.json["parts_cut"] is True and len(api.json["parts"]) == message.MAX_PARTS
    # an ordinary message is shown whole, with nothing said to be cut
    small = inbound.store(rt, _many_parts(3))
    page = client.get(f"/admin/inbound/{small.id}")
    assert 'id="parts-cut"' not in page.text and "part 2" in page.text


def test_a_boundary_inside_text_never_hides_a_short_message():
    raw = _many_parts(5).replace(b"part 3", b"-- \r\n--\r\nsignature")
    head, cut = message.bounded(raw)
    assert head == raw and cut is False


# -- free text -----------------------------------------------------------------------------------
LONG = "x" * 60_000


@pytest.mark.parametrize(
    "path,body,field",
    [
        ("/api/lists", {"slug": "big", "name": LONG, "opt_in": "single"}, "name"),
        (
            "/api/lists",
            {"slug": "big", "name": "Big", "opt_in": "single", "postal_address": LONG},
            "postal_address",
        ),
        (
            "/api/lists",
            {"slug": "big", "name": "Big", "opt_in": "single", "from_name": LONG},
            "from_name",
        ),
        (
            "/api/lists",
            {"slug": "big", "name": "Big", "opt_in": "single", "description": LONG},
            "description",
        ),
        (
            "/api/lists",
            {"slug": "big", "name": "Big", "opt_in": "single", "consent_wording": LONG},
            "consent_wording",
        ),
        (
            "/api/lists",
            {"slug": "big", "name": "Big\u2028List-Id: <evil>", "opt_in": "single"},
            "name",
        ),
        (
            "/api/lists",
            {
                "slug": "big",
                "name": "Big",
                "opt_in": "single",
                "from_name": "News\x85Bcc: all@example.org",
            },
            "from_name",
        ),
    ],
)
def test_list_text_has_one_limit_on_both_databases(rt, api, path, body, field):
    resp = api.post(path, json=body)
    assert resp.status_code == 422, resp.json
    assert resp.json["error"]["field"] == field
    assert _count(rt, MailingList) == 0


def test_changing_a_list_is_bounded_too(rt, api):
    assert (
        api.post("/api/lists", json={"slug": "n", "name": "News", "opt_in": "single"}).status_code
        == 201
    )
    for field, value in (
        ("name", LONG),
        ("postal_address", LONG),
        ("from_name", "a\tb"),
        ("name", "News\x00"),
    ):
        resp = api.patch("/api/lists/n", json={field: value})
        assert resp.status_code == 422 and resp.json["error"]["field"] == field, resp.json
    info = api.get("/api/lists/n").json
    assert info["name"] == "News" and info["postal_address"] == ""


def test_people_campaigns_segments_and_tokens_are_bounded(rt, api):
    api.post(
        "/api/lists",
        json={"slug": "n", "name": "News", "opt_in": "single", "postal_address": "1 Main St"},
    )
    resp = api.post(
        "/api/subscribers",
        json={
            "email": "a@example.org",
            "name": "ok",
            "lists": ["n"],
            "status": "confirmed",
            "consent": LONG,
        },
    )
    assert resp.status_code == 422 and resp.json["error"]["field"] == "consent"
    resp = api.post(
        "/api/subscribers",
        json={
            "email": "a@example.org",
            "name": LONG,
            "lists": ["n"],
            "status": "confirmed",
            "consent": "fair",
        },
    )
    assert resp.status_code == 422 and resp.json["error"]["field"] == "name"
    assert _count(rt, Subscriber) == 0
    for body, field in (
        ({"subject": "Hi\r\nBcc: x@example.org"}, "subject"),
        ({"name": LONG}, "name"),
        ({"from_name": LONG}, "from_name"),
    ):
        resp = api.post(
            "/api/campaigns",
            json={"name": "C", "subject": "S", "lists": ["n"], "html": "<p>hi</p>", **body},
        )
        assert resp.status_code == 422 and resp.json["error"]["field"] == field, resp.json
    assert _count(rt, Campaign) == 0
    resp = api.post("/api/segments", json={"name": LONG})
    assert resp.status_code == 422 and resp.json["error"]["field"] == "name"
    assert _count(rt, Segment) == 0
    resp = api.post("/api/tokens", json={"role": "analyst", "name": LONG})
    assert resp.status_code == 422
    assert _count(rt, ApiToken) == 1  # the test's own


def test_admin_and_public_forms_are_bounded(rt, client, accounts_by_role):
    lists.create(rt, slug="news", name="News", opt_in="single", postal_address="1 Main St")
    session_login(client, rt, accounts_by_role["owner"])
    resp = post_form(
        client,
        "/admin/lists/new",
        "/admin/lists/new",
        {"slug": "big", "name": LONG, "opt_in": "single"},
    )
    assert resp.status_code == 422 and "name" in resp.text and "200" in resp.text
    resp = post_form(
        client,
        "/admin/lists/news",
        "/admin/lists/news",
        {"name": "News", "opt_in": "single", "postal_address": LONG},
    )
    assert resp.status_code == 422 and "500" in resp.text
    with rt.db.session() as s:
        assert s.scalar(select(MailingList.postal_address)) == "1 Main St"
        assert s.scalar(select(func.count(MailingList.id))) == 1
    before = _count(rt, User)
    resp = post_form(
        client,
        "/admin/users",
        "/admin/users",
        {
            "email": "new@staff.example.org",
            "name": LONG,
            "role": "analyst",
            "password": "0123456789abcdef",
        },
    )
    assert resp.status_code in (400, 422) and _count(rt, User) == before
    client.cookie_jar.clear() if hasattr(client, "cookie_jar") else None
    public = client.post("/subscribe/news", data={"email": "b@example.org", "name": LONG})
    assert public.status_code == 422 and "200" in public.text
    assert _count(rt, Subscriber) == 0


def test_the_cli_refuses_long_text_in_one_line(database_url, rt):
    env = {**os.environ, "LISTMGR_DATABASE_URL": database_url, "LISTMGR_SECRET_KEY": SECRET}
    before = _count(rt, User)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "listmgr",
            "user",
            "create",
            "--email",
            "cli@example.org",
            "--name",
            "n" * 5000,
            "--role",
            "analyst",
            "--password",
            "0123456789abcdef",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0
    assert len(run.stderr.strip().splitlines()) == 1 and "name" in run.stderr
    assert "Traceback" not in run.stderr
    assert _count(rt, User) == before


# -- the admin import form ---------------------------------------------------------------------
@pytest.fixture
def mapping_page(client, rt, accounts_by_role):
    lists.create(rt, slug="news", name="News")
    session_login(client, rt, accounts_by_role["admin"])
    token = csrf_from(client.get("/admin/imports").text)
    page = client.post(
        "/admin/imports",
        data={
            "csrf_token": token,
            "list": "news",
            "mode": "upsert",
            "file": (io.BytesIO(b"Email,Name\nada@example.org,Ada\n"), "p.csv"),
        },
        content_type="multipart/form-data",
    )
    upload = re.search(r'name="token" value="([0-9a-f]{32})"', page.text).group(1)
    return {
        "csrf_token": csrf_from(page.text),
        "token": upload,
        "filename": "p.csv",
        "columns": "2",
        "col_0": "Email",
        "col_1": "Name",
        "map_0": "email",
        "map_1": "name",
        "list": "news",
        "mode": "upsert",
        "consent": "fair",
    }


@pytest.mark.parametrize(
    "forged",
    [
        {"columns": "abc"},
        {"columns": "-1"},
        {"columns": "99999999"},
        {"columns": "3"},
        {"col_1": "EMAIL", "map_1": "name"},  # a column named twice
        {"col_1": "Name\r\nX", "map_1": "name"},
        {"col_1": "n" * 5000},
        {"map_1": "fields.nope"},
    ],
)
def test_a_forged_import_mapping_is_refused(client, rt, mapping_page, forged):
    resp = client.post("/admin/imports/start", data={**mapping_page, **forged})
    assert resp.status_code == 422, resp.text[:500]
    assert _count(rt, ImportJob) == 0
    # the honest form still works afterwards
    ok = client.post("/admin/imports/start", data=mapping_page)
    assert ok.status_code == 302
