"""The admin pages do what they say: lists, subscribers, users, tokens, audit, settings,
suppression, outbox, dashboard; bad input gets a clear message and changes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from listmgr.models import (
    ApiToken,
    AuditLog,
    ConsentEvent,
    MailingList,
    Membership,
    SettingValue,
    Subscriber,
    Suppression,
    User,
)
from listmgr.services import lists, settings_store, subscribers
from listmgr.services.subscriptions import Origin
from tests.admin_support import PASSWORD, accounts_by_role, csrf_from, post_form, session_login  # noqa: F401
from tests.conftest import drain


@pytest.fixture
def owner(client, rt, accounts_by_role):
    session_login(client, rt, accounts_by_role["owner"])
    return client


def _count(rt, column, *where):
    with rt.db.session() as s:
        return s.scalar(select(func.count(column)).where(*where))


def _audit(rt, action):
    with rt.db.session() as s:
        return list(
            s.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id))
        )


def _people(rt, n=3, slug="news"):
    lists.create(rt, slug=slug, name="News", postal_address="1 Main St")
    ids = []
    for i, (email, name) in enumerate(
        [
            ("ada@example.org", "Ada Lovelace"),
            ("alan@example.org", "Alan Turing"),
            ("grace@example.org", "Grace Hopper"),
        ][:n]
    ):
        ids.append(
            subscribers.create(
                rt,
                email=email,
                name=name,
                lists=[slug],
                status="confirmed",
                consent=f"paper form #{i}",
                origin=Origin(source="test", actor="test"),
            )
        )
    return ids


# -- lists ---------------------------------------------------------------------------------------
def test_create_and_edit_a_list_with_its_embed_code(owner, rt):
    resp = post_form(
        owner,
        "/admin/lists/new",
        "/admin/lists/new",
        {
            "slug": "weekly",
            "name": "Weekly",
            "opt_in": "double",
            "from_name": "The Team",
            "from_email": "Team@Example.org",
            "postal_address": "2 Side St, Town",
        },
    )
    assert resp.status_code == 302 and resp.headers["Location"] == "/admin/lists/weekly"
    page = owner.get("/admin/lists/weekly")
    assert page.status_code == 200 and "2 Side St, Town" in page.text
    assert (
        "action=&#34;http://listmgr.test/subscribe/weekly&#34;" in page.text
        or "http://listmgr.test/subscribe/weekly" in page.text
    )
    embed = owner.get("/subscribe/weekly/embed")
    assert embed.status_code == 200 and 'name="email"' in embed.text
    resp = post_form(
        owner,
        "/admin/lists/weekly",
        "/admin/lists/weekly",
        {
            "name": "Weekly digest",
            "opt_in": "single",
            "from_email": "news@example.org",
            "postal_address": "3 New Rd",
        },
    )
    assert resp.status_code == 302
    info = lists.get(rt, "weekly")
    assert (info.name, info.opt_in, info.from_email, info.postal_address) == (
        "Weekly digest",
        "single",
        "news@example.org",
        "3 New Rd",
    )
    assert [e.target_id for e in _audit(rt, "list.edit")] == ["weekly"]


def test_bad_list_input_is_explained_and_changes_nothing(owner, rt):
    bad = post_form(
        owner,
        "/admin/lists/new",
        "/admin/lists/new",
        {"slug": "Not A Slug!", "name": "X", "opt_in": "double"},
    )
    assert bad.status_code == 422 and "slug" in bad.text
    assert _count(rt, MailingList.id) == 0
    lists.create(rt, slug="kept", name="Kept", from_email="a@example.org")
    bad = post_form(
        owner,
        "/admin/lists/kept",
        "/admin/lists/kept",
        {"name": "Changed", "from_email": "not an address", "opt_in": "double"},
    )
    assert bad.status_code == 422 and "not valid" in bad.text
    info = lists.get(rt, "kept")
    assert (info.name, info.from_email) == ("Kept", "a@example.org")


# -- subscribers ---------------------------------------------------------------------------------
def test_search_filters_and_paging(owner, rt):
    _people(rt)
    lists.create(rt, slug="other", name="Other")
    page = owner.get("/admin/subscribers?q=al")
    assert "alan@example.org" in page.text and "ada@example.org" not in page.text
    exact = owner.get("/admin/subscribers?q=Grace@Example.org")
    assert "grace@example.org" in exact.text and "alan@" not in exact.text
    by_name = owner.get("/admin/subscribers?q=ada%20lov")
    assert "ada@example.org" in by_name.text
    none = owner.get("/admin/subscribers?list=other")
    assert "Nobody matches" in none.text
    confirmed = owner.get("/admin/subscribers?list=news&status=confirmed")
    assert confirmed.text.count("@example.org</a>") == 3
    assert owner.get("/admin/subscribers?q=al%27%22%5C").status_code == 200  # quotes, backslash
    assert owner.get("/admin/subscribers?q=a%00l").status_code == 422  # NUL: a clear refusal
    assert owner.get("/admin/subscribers?status=bogus").status_code == 422
    assert owner.get("/admin/subscribers?page=0").status_code == 422


def test_detail_shows_history_and_the_view_is_audited(owner, rt, accounts_by_role):
    [sid] = _people(rt, 1)
    page = owner.get(f"/admin/subscribers/{sid}")
    assert page.status_code == 200
    assert "paper form #0" in page.text and "Consent history" in page.text
    [entry] = _audit(rt, "subscriber.view")
    assert entry.target_id == str(sid) and entry.actor == accounts_by_role["owner"].email
    proof = owner.get(f"/admin/subscribers/{sid}/consent")
    assert proof.status_code == 200 and "Proof of consent" in proof.text
    assert "paper form #0" in proof.text
    assert owner.get("/admin/subscribers/424242").status_code == 404


def test_add_edit_and_unsubscribe_a_subscriber(owner, rt):
    lists.create(rt, slug="news", name="News")
    bad = post_form(
        owner,
        "/admin/subscribers/new",
        "/admin/subscribers/new",
        {"email": "x@example.org", "lists": ["news"], "status": "confirmed", "consent": ""},
    )
    assert bad.status_code == 422 and "consent basis" in bad.text
    assert _count(rt, Subscriber.id) == 0
    resp = post_form(
        owner,
        "/admin/subscribers/new",
        "/admin/subscribers/new",
        {
            "email": "New@Example.org",
            "name": "Newt",
            "lists": ["news"],
            "status": "confirmed",
            "consent": "signed up at the fair",
        },
    )
    assert resp.status_code == 302
    sid = int(resp.headers["Location"].rsplit("/", 1)[1])
    detail = f"/admin/subscribers/{sid}"
    resp = post_form(
        owner, detail, f"{detail}/edit", {"name": "Newt Scamander", "consent_tracking": "1"}
    )
    assert resp.status_code == 302
    info = subscribers.get(rt, sid)
    assert info.name == "Newt Scamander" and info.consents["tracking"] is True
    bad = post_form(owner, detail, f"{detail}/edit", {"name": "two\nlines"})
    assert bad.status_code == 422
    assert subscribers.get(rt, sid).name == "Newt Scamander"
    resp = post_form(owner, detail, f"{detail}/unsubscribe", {"list": "news"})
    assert resp.status_code == 302
    assert subscribers.get(rt, sid).lists == [{"slug": "news", "status": "unsubscribed"}]
    with rt.db.session() as s:
        kinds = list(
            s.scalars(
                select(ConsentEvent.kind)
                .where(ConsentEvent.subscriber_id == sid)
                .order_by(ConsentEvent.id)
            )
        )
    assert "unsubscribe" in kinds
    resp = post_form(owner, detail, f"{detail}/unsubscribe", {})
    assert subscribers.get(rt, sid).suppressed == "unsubscribed_all"


def test_erase_needs_the_typed_address_then_removes_everything(owner, rt):
    [sid, other] = _people(rt, 2)
    url = f"/admin/subscribers/{sid}/erase"
    wrong = post_form(owner, url, url, {"confirm_email": "someone@else.org"})
    assert wrong.status_code == 422 and "exactly" in wrong.text
    assert _count(rt, Subscriber.id) == 2
    resp = post_form(owner, url, url, {"confirm_email": "ADA@example.org"})
    assert resp.status_code == 302
    with rt.db.session() as s:
        assert s.get(Subscriber, sid) is None and s.get(Subscriber, other) is not None
        assert (
            s.scalar(
                select(Suppression.reason).where(
                    Suppression.email_hash == rt.email_hash("ada@example.org")
                )
            )
            == "erased"
        )
    assert _audit(rt, "subscriber.erase")


def test_export_one_subscriber_is_audited(owner, rt):
    [sid] = _people(rt, 1)
    resp = owner.get(f"/admin/subscribers/{sid}/export")
    assert resp.status_code == 200 and resp.json["subscriber"]["email"] == "ada@example.org"
    assert "attachment" in resp.headers["Content-Disposition"]
    assert [e.target_id for e in _audit(rt, "people.export")] == [str(sid)]


def test_editor_may_read_people_but_not_export_or_erase(client, rt, accounts_by_role):
    [sid] = _people(rt, 1)
    session_login(client, rt, accounts_by_role["editor"])
    page = client.get(f"/admin/subscribers/{sid}")
    assert page.status_code == 200
    assert "Erase" not in page.text and "Download data" not in page.text
    assert client.get(f"/admin/subscribers/{sid}/export").status_code == 403
    assert client.get(f"/admin/subscribers/{sid}/erase").status_code == 403


def test_analyst_dashboard_shows_no_personal_data(client, rt, accounts_by_role):
    _people(rt)
    session_login(client, rt, accounts_by_role["analyst"])
    page = client.get("/admin/")
    assert page.status_code == 200 and "Confirmed subscribers" in page.text
    for path in ("/admin/", "/admin/lists", "/admin/lists/news", "/admin/charts/growth.svg"):
        text = client.get(path).get_data(as_text=True)
        assert "@example.org" not in text and "Lovelace" not in text, path
    assert "/admin/subscribers" not in page.text  # no link to pages it may not open


def test_charts_are_inert_svg(owner, rt):
    _people(rt)
    for path in ("/admin/charts/growth.svg?days=90", "/admin/charts/campaigns.svg"):
        resp = owner.get(path)
        assert resp.status_code == 200 and resp.mimetype == "image/svg+xml"
        assert b"<script" not in resp.data and b"<svg" in resp.data
        assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    assert owner.get("/admin/charts/growth.svg?days=x").status_code == 422


# -- users and tokens ----------------------------------------------------------------------------
def test_owner_manages_users_and_keeps_one_owner(owner, rt, accounts_by_role):
    resp = post_form(
        owner,
        "/admin/users",
        "/admin/users",
        {"email": "new@staff.example.org", "role": "analyst", "password": "plum kettle orbit 42"},
    )
    assert resp.status_code == 302
    bad = post_form(
        owner,
        "/admin/users",
        "/admin/users",
        {"email": "short@staff.example.org", "role": "analyst", "password": "short"},
    )
    assert bad.status_code == 422
    assert _count(rt, User.id, User.email == "short@staff.example.org") == 0
    me = accounts_by_role["owner"].id
    demote = post_form(
        owner, "/admin/users", f"/admin/users/{me}", {"role": "admin", "active": ["0", "1"]}
    )
    assert demote.status_code == 409 and "last active owner" in demote.text
    with rt.db.session() as s:
        assert s.get(User, me).role == "owner"
    assert [e.detail["role"] for e in _audit(rt, "user.create")] == ["analyst"]


def test_tokens_are_shown_once_stored_hashed_and_revocable(owner, rt, app):
    resp = post_form(owner, "/admin/tokens", "/admin/tokens", {"name": "ci", "role": "editor"})
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    token = resp.text.split('id="new-token" value="', 1)[1].split('"', 1)[0]
    assert token.startswith("lm_")
    with rt.db.session() as s:
        row = s.scalar(select(ApiToken).where(ApiToken.name == "ci"))
        assert token not in (row.token_hash, row.prefix) and row.role == "editor"
    assert token not in owner.get("/admin/tokens").text
    api = app.test_client()
    assert api.get("/api/lists", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert api.get("/api/users", headers={"Authorization": f"Bearer {token}"}).status_code == 403
    with rt.db.session() as s:
        assert s.get(ApiToken, row.id).last_used_at is not None
    assert "never" not in owner.get("/admin/tokens").text.split("ci</td>", 1)[1].split("</tr>")[0]
    resp = post_form(owner, "/admin/tokens", f"/admin/tokens/{row.id}/revoke", {})
    assert resp.status_code == 302
    assert api.get("/api/lists", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert _audit(rt, "token.create") and _audit(rt, "token.revoke")


def test_token_role_never_above_the_user(client, rt, accounts_by_role):
    session_login(client, rt, accounts_by_role["editor"])
    resp = post_form(client, "/admin/tokens", "/admin/tokens", {"name": "x", "role": "owner"})
    assert resp.status_code == 403
    assert _count(rt, ApiToken.id) == 0


def test_token_use_is_audited_once_a_minute_and_every_change(api, rt):
    for _ in range(3):
        assert api.get("/api/lists").status_code == 200
    assert len(_audit(rt, "token.use")) == 1
    assert api.post("/api/lists", json={"slug": "a", "name": "A"}).status_code == 201
    assert api.post("/api/lists", json={"slug": "a", "name": "A"}).status_code == 409
    calls = _audit(rt, "api.call")
    assert [(c.detail["method"], c.detail["status"]) for c in calls] == [
        ("POST", 201),
        ("POST", 409),
    ]


def test_audit_page_and_api_filter(owner, api, rt):
    [sid] = _people(rt, 1)
    owner.get(f"/admin/subscribers/{sid}")
    api.get("/api/lists")
    table = owner.get("/admin/audit?action=subscriber.").text.split('id="audit-table"')[1]
    assert "subscriber.view" in table and "token.use" not in table
    assert "token.use" in owner.get("/admin/audit").text.split('id="audit-table"')[1]
    resp = api.get(f"/api/audit?action=subscriber.view&target_id={sid}")
    assert resp.status_code == 200 and resp.json["total"] == 1
    assert resp.json["items"][0]["target_type"] == "subscriber"
    assert api.get("/api/audit?since=yesterday").status_code == 422


def test_api_reads_of_a_subscriber_are_audited(api, rt):
    [sid] = _people(rt, 1)
    assert api.get(f"/api/subscribers/{sid}").status_code == 200
    [entry] = _audit(rt, "subscriber.view")
    assert entry.target_id == str(sid) and entry.token_id is not None


# -- settings ------------------------------------------------------------------------------------
def test_settings_change_validate_and_reset(owner, rt):
    resp = post_form(
        owner,
        "/admin/settings",
        "/admin/settings",
        {
            "smtp_url": "smtp://mailer:s3cret@smtp.example.org:587?starttls=1",
            "send_rate": "25",
            "mail_domain": "Lists.Example.ORG",
        },
    )
    assert resp.status_code == 302
    settings = settings_store.effective(rt)
    assert settings.send_rate == 25 and settings.mail_domain == "lists.example.org"
    page = owner.get("/admin/settings")
    assert "s3cret" not in page.text
    assert 'value="mailer"' in page.text and 'value="smtp.example.org"' in page.text
    [entry] = _audit(rt, "settings.change")
    assert sorted(entry.detail["keys"]) == ["mail_domain", "send_rate", "smtp_url"]
    bad = post_form(
        owner,
        "/admin/settings",
        "/admin/settings",
        {"send_rate": "fast", "mail_domain": "changed.example.org"},
    )
    assert bad.status_code == 422 and "Messages per second" in bad.text
    assert settings_store.effective(rt).mail_domain == "lists.example.org"
    bad = post_form(owner, "/admin/settings", "/admin/settings", {"smtp_url": "http://x"})
    assert bad.status_code == 422
    reset = post_form(owner, "/admin/settings", "/admin/settings", {"reset": ["send_rate"]})
    assert reset.status_code == 302
    assert settings_store.effective(rt).send_rate == 0
    with rt.db.session() as s:
        assert s.get(SettingValue, "send_rate") is None


def test_dkim_key_and_dns_record(owner, rt, api):
    resp = post_form(
        owner,
        "/admin/settings",
        "/admin/settings/dkim",
        {"dkim_selector": "mail2026", "dkim_domain": "example.org"},
    )
    assert resp.status_code == 302
    page = owner.get("/admin/settings")
    assert (
        "mail2026._domainkey.example.org. IN TXT" in page.text and "v=DKIM1; k=rsa; p=" in page.text
    )
    assert "PRIVATE KEY" not in page.text
    data = api.get("/api/settings").json
    assert data["dkim_record"].startswith("mail2026._domainkey.example.org.")
    assert "PRIVATE" not in str(data)
    assert settings_store.effective(rt).dkim_private_key_path.endswith(".pem")
    bad = api.post("/api/settings/dkim", json={"selector": "bad selector!"})
    assert bad.status_code == 422


@pytest.mark.parametrize(("kind", "strings"), [("rsa", 2), ("ed25519", 1)])
def test_dkim_record_names_the_key_type(owner, rt, api, kind, strings):
    import html
    import re

    from tests.campaign_support import dkim_pem

    pem = dkim_pem(kind).decode()
    with rt.db.session() as s:
        s.add(SettingValue(key=settings_store.DKIM_KEY, value=pem))
        s.add(SettingValue(key="dkim_selector", value="s2026"))
        s.add(SettingValue(key="dkim_domain", value="example.org"))
    record = api.get("/api/settings").json["dkim_record"]
    assert record.startswith(f's2026._domainkey.example.org. IN TXT "v=DKIM1; k={kind}; p=')
    parts = re.findall(r'"([^"]*)"', record)
    assert len(parts) == strings and all(len(p) <= 255 for p in parts)
    assert record in html.unescape(owner.get("/admin/settings").text)


# -- suppression, outbox, inbound ----------------------------------------------------------------
def test_suppression_add_lift_and_erased_stays(owner, rt, api):
    resp = post_form(
        owner,
        "/admin/suppression",
        "/admin/suppression",
        {"email": "Spam.Trap@Example.org", "detail": "known trap"},
    )
    assert resp.status_code == 302
    dup = post_form(
        owner, "/admin/suppression", "/admin/suppression", {"email": "spam.trap@example.org"}
    )
    assert dup.status_code == 409
    assert _count(rt, Suppression.id) == 1
    page = owner.get("/admin/suppression?q=spam")
    assert "spam.trap@example.org" in page.text
    listed = api.get("/api/suppression?reason=manual").json
    [entry] = listed["items"]
    with rt.db.session() as s:
        s.add(Suppression(email_hash="f" * 64, email=None, reason="erased"))
    erased_id = api.get("/api/suppression?reason=erased").json["items"][0]["id"]
    assert api.delete(f"/api/suppression/{erased_id}").status_code == 409
    resp = post_form(owner, "/admin/suppression", f"/admin/suppression/{entry['id']}/remove", {})
    assert resp.status_code == 302
    assert _count(rt, Suppression.id) == 1


@pytest.fixture
def embedded(make_runtime):
    from listmgr.app import create_app

    rt = make_runtime(smtp_url="")
    app = create_app(rt=rt, migrate=False)
    return rt, app


def test_dev_outbox_in_the_admin_and_for_newcomers(embedded):
    from listmgr.services import accounts
    from tests.admin_support import Account

    rt, app = embedded  # the only runtime here: its worker writes to the dev outbox
    editor = Account(
        accounts.create_user(rt, email="ed@staff.example.org", password=PASSWORD, role="editor"),
        "ed@staff.example.org",
        "editor",
    )
    admin = Account(
        accounts.create_user(rt, email="ad@staff.example.org", password=PASSWORD, role="admin"),
        "ad@staff.example.org",
        "admin",
    )
    lists.create(rt, slug="news", name="News")
    client = app.test_client()
    client.post("/subscribe/news", data={"email": "new@example.org", "name": "New"})
    drain(rt)
    # Every mail with its links: only for roles that may export people, signed in.
    newcomer = client.get("/dev/outbox")
    assert newcomer.status_code == 302 and "/admin/login" in newcomer.headers["Location"]
    assert client.get("/admin/outbox").status_code == 302  # the admin copy needs sign-in
    session_login(client, rt, editor)
    assert client.get("/dev/outbox").status_code == 403
    assert client.get("/admin/outbox").status_code == 403
    session_login(client, rt, admin)
    assert "new@example.org" in client.get("/dev/outbox").text
    page = client.get("/admin/outbox")
    assert page.status_code == 200 and "new@example.org" in page.text
    mail_id = int(page.text.split("/admin/outbox/", 1)[1].split('"', 1)[0])
    detail = client.get(f"/admin/outbox/{mail_id}")
    assert detail.status_code == 200 and "Auto-Submitted" in detail.text
    assert 'sandbox src="/admin/outbox/' in detail.text
    html = client.get(f"/admin/outbox/{mail_id}/html")
    assert html.headers["Content-Security-Policy"].startswith("sandbox")
    assert client.get(f"/admin/outbox/{mail_id}.eml").mimetype == "message/rfc822"


def test_inbound_inbox_mark_handled(owner, rt):
    inbound = pytest.importorskip("listmgr.services.inbound")
    raw = (
        b"From: someone@example.net\r\nTo: news@lists.example.test\r\n"
        b"Subject: A question about your shop\r\nMessage-ID: <q1@example.net>\r\n\r\n"
        b"Hello, do you ship to Norway?\r\n"
    )
    stored = inbound.store(
        rt, raw, envelope_from="someone@example.net", envelope_to="news@lists.example.test"
    )
    drain(rt)
    page = owner.get("/admin/inbound")
    assert "A question about your shop" in page.text
    mid = stored.id
    detail = owner.get(f"/admin/inbound/{mid}")
    assert detail.status_code == 200 and "do you ship to Norway?" in detail.text
    resp = post_form(owner, f"/admin/inbound/{mid}", f"/admin/inbound/{mid}", {"action": "handled"})
    assert resp.status_code == 302
    assert "A question about your shop" not in owner.get("/admin/inbound").text
    assert "A question" in owner.get("/admin/inbound?view=handled").text
    assert owner.get("/admin/inbound?view=bogus").status_code == 422


def test_member_counts_link_to_the_search(owner, rt):
    _people(rt)
    page = owner.get("/admin/lists")
    assert "/admin/subscribers?list=news&amp;status=confirmed" in page.text
    with rt.db.session() as s:
        assert s.scalar(select(func.count(Membership.id))) == 3


def test_fields_and_interests(owner, rt, client, accounts_by_role):
    from listmgr.services import fielddefs

    resp = post_form(
        owner,
        "/admin/fields",
        "/admin/fields",
        {"key": "plan", "label": "Plan", "type": "choice", "choices": "free, pro", "editable": "1"},
    )
    assert resp.status_code == 302
    [field] = fielddefs.list_fields(rt)
    assert (field.key, field.type, field.choices) == ("plan", "choice", ["free", "pro"])
    bad = post_form(
        owner, "/admin/fields", "/admin/fields", {"key": "no spaces!", "label": "X", "type": "text"}
    )
    assert bad.status_code == 422 and len(fielddefs.list_fields(rt)) == 1
    post_form(
        owner,
        "/admin/fields",
        "/admin/fields",
        {"kind": "interest", "key": "books", "label": "Books"},
    )
    assert [i.key for i in fielddefs.list_interests(rt)] == ["books"]
    post_form(owner, "/admin/fields", "/admin/fields", {"key": "plan", "action": "delete"})
    assert fielddefs.list_fields(rt) == []
    session_login(client, rt, accounts_by_role["editor"])
    page = client.get("/admin/fields")
    assert page.status_code == 200 and "Add field" not in page.text
    assert (
        post_form(client, "/admin/fields", "/admin/fields", {"key": "x", "label": "X"}).status_code
        == 403
    )


def test_search_by_field(owner, rt):
    from listmgr.services import fielddefs

    fielddefs.create_field(rt, key="city", label="City", type="text")
    fielddefs.create_field(rt, key="age", label="Age", type="number")
    lists.create(rt, slug="news", name="News")
    for email, city, age in (
        ("ada@example.org", "Berlin", 36),
        ("alan@example.org", "Paris", 41),
        ("grace@example.org", "Berlin", 85),
    ):
        subscribers.create(
            rt,
            email=email,
            lists=["news"],
            status="confirmed",
            consent="x",
            fields={"city": city, "age": age},
            origin=Origin(source="test"),
        )
    page = owner.get("/admin/subscribers?field=city&op=eq&value=Berlin")
    assert "ada@example.org" in page.text and "grace@example.org" in page.text
    assert "alan@example.org" not in page.text
    older = owner.get("/admin/subscribers?field=age&op=gt&value=40&q=a")
    assert "alan@example.org" in older.text and "ada@example.org" not in older.text
    assert owner.get("/admin/subscribers?field=age&op=gt&value=old").status_code == 422
    assert owner.get("/admin/subscribers?field=nope&op=eq&value=x").status_code == 422


def test_other_processes_follow_settings_changed_in_the_admin(make_runtime, sink):
    """A worker (another runtime on the same database) sends transactional mail through the
    SMTP server and with the mail domain the admin saved, at its next job, without a restart;
    the settings of the files stay as they were."""
    from listmgr.services import subscriptions
    from tests.conftest import Sink, drain, start_sink

    web, worker = make_runtime(), make_runtime()
    lists.create(web, slug="news", name="News")
    subscriptions.subscribe(worker, list_slug="news", email="before@example.org")
    drain(worker)
    [first] = sink.wait_for(1)
    other = Sink()
    controller = start_sink(other)
    try:
        settings_store.update(web, {"smtp_url": other.url, "mail_domain": "lists.example.org"})
        subscriptions.subscribe(worker, list_slug="news", email="after@example.org")
        drain(worker)
        [mail] = other.wait_for(1)
    finally:
        controller.stop()
    assert mail.rcpt_tos == ["after@example.org"] and len(sink.messages) == 1
    assert mail.mail_from.endswith("@lists.example.org")
    assert not first.mail_from.endswith("@lists.example.org")
    assert worker.settings.smtp_url == sink.url  # effective() reads; it never changes them
    assert settings_store.effective(worker).smtp_url == other.url


# -- segments ------------------------------------------------------------------------------------
def test_segment_form_creates_updates_and_refuses_bad_rules(owner, rt):
    from listmgr.models import Segment
    from listmgr.services import segments

    lists.create(rt, slug="news", name="News")
    rules = '{"all": [{"field": "email", "op": "contains", "value": "@example.org"}]}'
    resp = post_form(
        owner,
        "/admin/segments/new",
        "/admin/segments/new",
        {"name": "Example people", "lists": ["news"], "rules": rules},
    )
    assert resp.status_code == 302
    [seg], _ = segments.all_segments(rt)
    assert seg.name == "Example people" and seg.lists == ["news"]
    assert resp.headers["Location"].endswith(f"/admin/segments/{seg.id}")
    bad = post_form(
        owner,
        "/admin/segments/new",
        "/admin/segments/new",
        {"name": "Broken", "lists": ["news"], "rules": "{not json"},
    )
    assert bad.status_code == 422 and "not valid JSON" in bad.text
    page = f"/admin/segments/{seg.id}"
    resp = post_form(owner, page, page, {"name": "Renamed", "lists": ["news"], "rules": rules})
    assert resp.status_code == 302 and segments.get(rt, seg.id).name == "Renamed"
    bad = post_form(
        owner,
        page,
        page,
        {"name": "Other", "lists": ["news"], "rules": '{"field": "nope", "op": "eq", "value": 1}'},
    )
    assert bad.status_code == 422 and "nope" in bad.text
    with rt.db.session() as s:
        assert [x.name for x in s.query(Segment)] == ["Renamed"]  # nothing else changed
    assert len(_audit(rt, "segment.create")) == 1 and len(_audit(rt, "segment.edit")) == 1
