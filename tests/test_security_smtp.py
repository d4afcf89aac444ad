"""SMTP settings are no scanner: connection details only for roles that may change settings,
no file paths from the admin or API, no password echoed or audited, every change audited."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from listmgr.models import AuditLog, SettingValue
from listmgr.services import accounts, settings_store
from tests.admin_support import PASSWORD, Account, csrf_from, post_form, session_login
from tests.conftest import free_port

PASSWORD = "Tr0ub4dor-smtp-pw"
URL = f"smtp://mailer:{PASSWORD}@smtp.example.org:587?starttls=1"


@pytest.fixture
def setup(make_runtime):
    """A runtime and app with a token and a signed-in client per role."""
    from listmgr.app import create_app

    rt = make_runtime()
    app = create_app(rt=rt, migrate=False)
    people, tokens = {}, {}
    for role in ("analyst", "editor", "admin", "owner"):
        email = f"{role}@staff.example.org"
        uid = accounts.create_user(rt, email=email, password=PASSWORD, role=role)
        people[role] = Account(uid, email, role)
        tokens[role] = accounts.create_token(rt, role=role, user_id=uid, name=role)
    return rt, app, people, tokens


def _api(app, token: str, method: str, path: str, **kw):
    return getattr(app.test_client(), method)(
        path, headers={"Authorization": f"Bearer {token}"}, **kw
    )


def _dead_server() -> str:
    """An address where nothing listens: what a scan of the internal network would find."""
    return f"smtp://scanuser:{PASSWORD}@127.0.0.1:{free_port()}"


def _audit(rt, action: str) -> list[AuditLog]:
    with rt.db.session() as s:
        return list(
            s.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id))
        )


def _stored(rt, key: str = "smtp_url"):
    with rt.db.session() as s:
        row = s.get(SettingValue, key)
        return None if row is None else row.value


# -- connection errors ---------------------------------------------------------------------------
LEAKS = ("127.0.0.1", "Errno", "refused", "Connection", "scanuser", PASSWORD, "Traceback")


def test_test_send_failures_tell_editors_nothing_about_the_network(setup):
    from tests.campaign_support import campaign, make_list

    rt, app, people, tokens = setup
    assert (
        _api(
            app,
            tokens["owner"],
            "patch",
            "/api/settings",
            json={"values": {"smtp_url": _dead_server()}},
        ).status_code
        == 200
    )
    make_list(rt, "news")
    cid = campaign(rt)
    resp = _api(
        app, tokens["editor"], "post", f"/api/campaigns/{cid}/test", json={"to": ["me@example.org"]}
    )
    [result] = resp.json["results"]
    assert result["sent"] is False and result["error"]
    for leak in LEAKS:
        assert leak not in resp.text, leak
    # The same through the admin page.
    client = app.test_client()
    session_login(client, rt, people["editor"])
    page = post_form(
        client, f"/admin/campaigns/{cid}", f"/admin/campaigns/{cid}/test", {"to": "me@example.org"}
    )
    shown = client.get(page.headers["Location"]).text
    assert "failed" in shown
    for leak in LEAKS:
        assert leak not in shown, leak
    # Whoever may change the servers sees why.
    detail = _api(
        app, tokens["admin"], "post", f"/api/campaigns/{cid}/test", json={"to": ["me@example.org"]}
    ).json["results"][0]["error"]
    assert "refused" in detail.lower() or "errno" in detail.lower()


def test_test_connection_is_for_settings_roles_only(setup, sink):
    rt, app, people, tokens = setup
    for role in ("analyst", "editor"):
        resp = _api(app, tokens[role], "post", "/api/settings/smtp/check", json={})
        assert resp.status_code == 403
        client = app.test_client()
        session_login(client, rt, people[role])
        app.config["WTF_CSRF_ENABLED"] = False
        assert client.post("/admin/settings/smtp-check").status_code == 403
        app.config["WTF_CSRF_ENABLED"] = True
    ok = _api(app, tokens["admin"], "post", "/api/settings/smtp/check", json={})
    assert ok.status_code == 200 and ok.json["results"] == [
        {"server": f"127.0.0.1:{sink.port}", "ok": True, "error": ""}
    ]
    _api(
        app,
        tokens["owner"],
        "patch",
        "/api/settings",
        json={"values": {"smtp_url": _dead_server()}},
    )
    bad = _api(app, tokens["owner"], "post", "/api/settings/smtp/check", json={})
    [result] = bad.json["results"]
    assert result["ok"] is False and result["error"]  # the details, for those who may fix it
    assert PASSWORD not in bad.text
    client = app.test_client()
    session_login(client, rt, people["owner"])
    page = client.post(
        "/admin/settings/smtp-check",
        data={"csrf_token": csrf_from(client.get("/admin/settings").text)},
    )
    assert page.status_code == 302
    assert PASSWORD not in client.get("/admin/settings").text


def test_test_connection_cannot_be_used_to_scan(setup):
    rt, app, people, tokens = setup
    _api(
        app,
        tokens["owner"],
        "patch",
        "/api/settings",
        json={"values": {"smtp_url": _dead_server()}},
    )
    codes = [
        _api(app, tokens["admin"], "post", "/api/settings/smtp/check", json={}).status_code
        for _ in range(25)
    ]
    assert 429 in codes, codes


# -- file paths ----------------------------------------------------------------------------------
FILE_URLS = [
    "smtp://relay.example.org:25?cafile=/etc/passwd",
    "smtps://u:p@relay.example.org:465?CAFILE=/etc/shadow",
    "smtp://relay.example.org:587?starttls=1&%63afile=/root/.ssh/id_rsa",
    "smtp://relay.example.org:25 smtp://other.example.org:25?cafile=/etc/hosts",
    "smtp://relay.example.org:25?certfile=/etc/ssl/private/key.pem",
    "smtp://relay.example.org:25?keyfile=/etc/ssl/private/key.pem",
    "smtp://relay.example.org:25?cafile=",
]


@pytest.mark.parametrize("url", FILE_URLS)
def test_file_paths_never_come_from_the_api_or_admin(setup, url):
    rt, app, people, tokens = setup
    before = settings_store.effective(rt).smtp_url
    resp = _api(app, tokens["owner"], "patch", "/api/settings", json={"values": {"smtp_url": url}})
    assert resp.status_code == 422 and resp.json["error"]["field"] == "smtp_url"
    client = app.test_client()
    session_login(client, rt, people["owner"])
    page = post_form(client, "/admin/settings", "/admin/settings", {"smtp_url": url})
    assert page.status_code == 422
    assert _stored(rt) is None and settings_store.effective(rt).smtp_url == before


def test_paths_never_come_from_the_api_or_the_database(setup):
    rt, app, people, tokens = setup
    base = settings_store.effective(rt)
    for key in ("dkim_private_key_path", "var_dir", "smtp_cafile", "database_url"):
        resp = _api(
            app, tokens["owner"], "patch", "/api/settings", json={"values": {key: "/etc/passwd"}}
        )
        assert resp.status_code == 422 and _stored(rt, key) is None
    # Rows written some other way (an older version, the database by hand) are not obeyed.
    with rt.db.session() as s:
        s.add(SettingValue(key="smtp_url", value="smtp://relay.example.org:25?cafile=/etc/passwd"))
        s.add(SettingValue(key="dkim_private_key_path", value="/etc/shadow"))
    now = settings_store.effective(rt)
    assert "cafile" not in now.smtp_url and now.smtp_url == base.smtp_url
    assert now.dkim_private_key_path != "/etc/shadow"


# -- passwords -----------------------------------------------------------------------------------
def test_passwords_are_never_echoed(setup):
    rt, app, people, tokens = setup
    assert (
        _api(
            app, tokens["owner"], "patch", "/api/settings", json={"values": {"smtp_url": URL}}
        ).status_code
        == 200
    )
    client = app.test_client()
    session_login(client, rt, people["owner"])
    assert PASSWORD not in client.get("/admin/settings").text
    assert PASSWORD not in _api(app, tokens["owner"], "get", "/api/settings").text
    # Refused values are not shown back either (a bad port, a bad option, a second bad URL).
    for bad in (
        f"smtp://u:{PASSWORD}@relay.example.org:99999",
        f"smtp://u:{PASSWORD}@relay.example.org:25?cafile=/x",
        f"smtp://ok.example.org:25 http://u:{PASSWORD}@x",
    ):
        resp = _api(
            app, tokens["owner"], "patch", "/api/settings", json={"values": {"smtp_url": bad}}
        )
        assert resp.status_code == 422 and PASSWORD not in resp.text
        page = post_form(client, "/admin/settings", "/admin/settings", {"smtp_url": bad})
        assert page.status_code == 422 and PASSWORD not in page.text


def test_a_masked_password_is_never_sent_to_another_server(setup):
    rt, app, people, tokens = setup
    _api(app, tokens["owner"], "patch", "/api/settings", json={"values": {"smtp_url": URL}})
    shown = next(
        i
        for i in _api(app, tokens["owner"], "get", "/api/settings").json["items"]
        if i["key"] == "smtp_url"
    )["value"]
    assert PASSWORD not in shown and "•••" in shown
    for evil in (
        shown.replace("smtp.example.org", "attacker.example.net"),
        shown.replace(":587", ":2525"),
        shown.replace("smtp://", "smtps://"),
        shown.replace("mailer:", "other:"),
    ):
        resp = _api(
            app, tokens["admin"], "patch", "/api/settings", json={"values": {"smtp_url": evil}}
        )
        assert resp.status_code == 422, evil
        assert _stored(rt) == URL
    # The same server with another option keeps its password; sent back as shown: no change.
    same = _api(
        app,
        tokens["admin"],
        "patch",
        "/api/settings",
        json={"values": {"smtp_url": shown + "&rate=5"}},
    )
    assert same.status_code == 200 and _stored(rt) == URL + "&rate=5"
    count = len(_audit(rt, "settings.change"))
    shown = shown + "&rate=5"
    _api(app, tokens["admin"], "patch", "/api/settings", json={"values": {"smtp_url": shown}})
    assert _stored(rt) == URL + "&rate=5" and len(_audit(rt, "settings.change")) == count


# -- audit ---------------------------------------------------------------------------------------
def test_every_change_of_smtp_servers_is_audited_without_the_password(setup):
    rt, app, people, tokens = setup
    _api(app, tokens["owner"], "patch", "/api/settings", json={"values": {"smtp_url": URL}})
    client = app.test_client()
    session_login(client, rt, people["admin"])
    other = f"smtps://bulk:{PASSWORD}x@bulk.example.org:465"
    assert (
        post_form(client, "/admin/settings", "/admin/settings", {"smtp_url": other}).status_code
        == 302
    )
    assert (
        post_form(client, "/admin/settings", "/admin/settings", {"reset": ["smtp_url"]}).status_code
        == 302
    )
    settings_store.update(rt, {"smtp_url": URL})  # any other path writes the line too
    entries = _audit(rt, "settings.change")
    assert len(entries) == 4
    assert entries[0].token_id is not None and entries[0].user_id == people["owner"].id
    assert [e.user_id for e in entries[1:3]] == [people["admin"].id] * 2
    assert entries[1].actor == "admin@staff.example.org"
    assert entries[1].detail["smtp_servers"] == {
        "before": ["smtp://mailer@smtp.example.org:587"],
        "after": ["smtps://bulk@bulk.example.org:465"],
    }
    for entry in entries:
        assert "smtp_url" in entry.detail["keys"]
        assert PASSWORD not in json.dumps(entry.detail) and PASSWORD not in entry.actor
    log = _api(app, tokens["owner"], "get", "/api/audit?action=settings")
    assert log.status_code == 200 and PASSWORD not in log.text
