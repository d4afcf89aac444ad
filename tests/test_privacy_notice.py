"""The privacy notice of each list: built from the configuration, versioned when it changes,
named by the consent records made under it, linked from forms and campaign mail."""

from __future__ import annotations

import re

from sqlalchemy import select

from listmgr.models import ConsentEvent, PrivacyNotice, Subscriber
from listmgr.services import campaigns, fielddefs, lists, notices, settings_store
from tests.admin_support import accounts_by_role, session_login  # noqa: F401
from tests.campaign_support import campaign, campaign_mail, make_list, person, wait_status
from tests.conftest import drain
from tests.helpers import link_with, path_of

RELAY = "relay.mailer.example.net"


def _notice(client, slug="news"):
    resp = client.get(f"/privacy/{slug}.json")
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    return resp.json


def _whats(shown):
    return [item["what"] for item in shown["notice"]["collected"]]


def _versions(rt):
    with rt.db.session() as s:
        return list(s.scalars(select(PrivacyNotice.version).order_by(PrivacyNotice.id)))


def test_the_notice_follows_the_configuration_with_a_new_version_per_change(rt, client, sink):
    lists.create(rt, slug="news", name="News")
    first = _notice(client)
    assert first["version"] == 1 and "Company name" not in str(first)
    assert first["notice"]["recipients"]["mail_servers"] == ["127.0.0.1"]  # the sink
    assert _notice(client)["version"] == 1  # shown again, unchanged: no new version

    fielddefs.create_field(rt, key="company", label="Company name", type="text")
    fielddefs.create_interest(rt, key="books", label="Books and reading")
    assert _notice(client)["version"] == 1  # defined, but not on this list's form
    lists.update(rt, "news", form_fields=["company"], form_interests=["books"])
    second = _notice(client)
    assert second["version"] == 2
    assert "Company name" in _whats(second)
    assert "Interests: Books and reading" in _whats(second)
    # what the product keeps besides the form: the record of mail sent, the do-not-mail list
    assert any(w.startswith("Which of our mail we sent you") for w in _whats(second))
    assert any(w.startswith("Your address on our do-not-mail list") for w in _whats(second))

    opens = "Opens of our mail and the links you click"
    assert opens in _whats(second)  # tracking is on in the tests' settings
    off = notices.published(
        rt, settings_store.effective(rt).with_values({"tracking": False}), "news"
    )
    assert off.version == 3 and opens not in [i["what"] for i in off.content["collected"]]
    assert off.content["summary"][1].startswith("Activity is recorded only if you allow it")
    assert "Opens, clicks and activity are" in second["notice"]["summary"][1]
    assert _notice(client)["version"] == 4 and opens in _whats(_notice(client))

    settings_store.update(rt, {"smtp_url": f"{sink.url} smtp://{RELAY}:587?starttls=1"})
    fifth = _notice(client)
    assert fifth["version"] == 5
    assert fifth["notice"]["recipients"]["mail_servers"] == ["127.0.0.1", RELAY]
    assert "587" not in str(fifth["notice"]["recipients"])  # host names, no credentials/ports
    assert _versions(rt) == [1, 2, 3, 4, 5]


def test_the_dev_outbox_and_settings_are_named(make_runtime):
    from listmgr.app import create_app

    rt = make_runtime(
        smtp_url="",
        organisation_name="Example Org GmbH",
        privacy_contact="privacy@example.org",
        processors=["Hosting: Example Cloud AB, Stockholm"],
        retention_inbound_days=14,
        retention_activity_days=0,
        retention_repermission_days=45,
    )
    client = create_app(rt=rt, migrate=False).test_client()
    make_list(rt, "news", postal_address="Newsroom, 2 Print Lane, Inkton")
    content = _notice(client)["notice"]
    assert content["responsible"] == {
        "organisation": "Example Org GmbH",
        "postal_address": "Newsroom, 2 Print Lane, Inkton",
        "contact": "privacy@example.org",
    }
    assert content["recipients"] == {
        "mail_servers": ["none, mail stays on this server"],
        "processors": ["Hosting: Example Cloud AB, Stockholm"],
    }
    kept = {r["what"]: r["kept"] for r in content["retention"]}
    assert kept["Mail you send us"] == "14 days"
    assert kept["Activity events"] == "until you leave or ask us to erase your data"
    assert kept["Sign-ups never confirmed"] == "30 days"
    # re-permission requests: the same setting the retention sweep obeys
    assert (
        kept["Requests to confirm you still want our mail, once answered or expired"] == "45 days"
    )
    asked = [i for i in content["collected"] if i["what"].startswith("Requests to confirm")]
    assert [i["kept"] for i in asked] == ["45 days"]
    # how to use one's rights: the preference link, a reply saying unsubscribe, one click
    rights = " ".join(f"{r['right']}: {r['how']}" for r in content["rights"])
    for way in ("preferences link", "\u201cunsubscribe\u201d", "one-click", "erase"):
        assert way in rights, way
    assert "write to privacy@example.org" in rights
    assert any("measuring opens and clicks" in p for p in content["purposes"])
    html = client.get("/privacy/news").get_data(as_text=True)
    for shown in ("Example Org GmbH", "privacy@example.org", "Example Cloud AB", "14 days"):
        assert shown in html


def test_empty_settings_fall_back_to_the_sender(rt, client):
    lists.create(rt, slug="news", name="News")
    who = _notice(client)["notice"]["responsible"]
    assert who == {
        "organisation": "listmgr",  # default_from_name
        "postal_address": "Example Org, 1 Test Street, Testville",
        "contact": "news@lists.example.test",  # default_from_email
    }


def test_consent_records_keep_the_version_they_were_given_under(rt, client, sink, accounts_by_role):
    lists.create(rt, slug="news", name="News", consent_wording="Send me the news.")
    resp = client.post(
        "/subscribe/news", data={"email": "ada@example.org", "consent_text": "Send me the news."}
    )
    assert resp.status_code == 200
    drain(rt)
    [mail] = sink.wait_for(1)
    assert client.post(path_of(link_with(mail.message, "/confirm/"))).status_code == 200
    with rt.db.session() as s:
        sid = s.scalar(select(Subscriber.id).where(Subscriber.email == "ada@example.org"))
        events = {
            e.kind: e.privacy_notice_id
            for e in s.scalars(select(ConsentEvent).where(ConsentEvent.subscriber_id == sid))
        }
        first = s.scalar(select(PrivacyNotice.id).where(PrivacyNotice.version == 1))
    assert events == {"subscribe": first, "confirm": first}

    settings_store.update(rt, {"smtp_url": f"{sink.url} smtp://{RELAY}:587"})
    assert RELAY in client.get("/privacy/news").get_data(as_text=True)
    assert _notice(client)["version"] == 2

    session_login(client, rt, accounts_by_role["admin"])
    proof = client.get(f"/admin/subscribers/{sid}/consent")
    assert proof.status_code == 200
    page = proof.get_data(as_text=True)
    assert "Privacy notice shown: News, version 1" in page
    assert "Mail servers: 127.0.0.1" in page and RELAY not in page


def test_pages_are_printable_and_escape_what_they_show(rt, client):
    lists.create(rt, slug="news", name="<b>News</b> & more")
    fielddefs.create_field(rt, key="role", label="<script>alert(1)</script>", type="text")
    lists.update(rt, "news", form_fields=["role"])
    page = client.get("/privacy/news")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "<b>News</b>" not in html and "&lt;b&gt;News&lt;/b&gt; &amp; more" in html
    assert 'class="print"' in html and "Version 2" in html  # one more since the field was offered
    css = client.get("/static/app.css").get_data(as_text=True)
    assert "@media print" in css and "main.notice" in css
    assert _notice(client)["notice"]["list"]["name"] == "<b>News</b> & more"


def test_bad_slugs_get_a_not_found_page_or_json(rt, client):
    lists.create(rt, slug="news", name="News")
    for path in ("/privacy/nope", "/privacy/NEWS", "/privacy/news%00", "/privacy/%3Cscript%3E"):
        resp = client.get(path)
        assert resp.status_code == 404, path
        assert resp.mimetype == "text/html" and "<script>" not in resp.get_data(as_text=True)
    resp = client.get("/privacy/nope.json")
    assert resp.status_code == 404 and resp.json["error"]["code"] == "not_found"
    assert client.get("/privacy/news.json.json").status_code == 404
    assert client.post("/privacy/news").status_code == 405
    assert _versions(rt) == [1]  # news's, stored when it was made; none for lists that do not exist


def test_forms_and_the_confirmation_page_carry_the_short_notice(rt, client, sink):
    lists.create(rt, slug="news", name="News")
    form = client.get("/subscribe/news").get_data(as_text=True)
    assert 'href="/privacy/news"' in form and "Full privacy notice" in form
    assert "see, correct, download or erase" in form
    embed = client.get("/subscribe/news/embed").get_data(as_text=True)
    assert 'href="http://listmgr.test/privacy/news"' in embed
    client.post("/subscribe/news", data={"email": "bo@example.org"})
    drain(rt)
    [mail] = sink.wait_for(1)
    # the confirmation mail itself names the notice, in both parts
    for part in ("plain", "html"):
        body = mail.message.get_body((part,)).get_content()
        assert "http://listmgr.test/privacy/news" in body, part
    confirm = client.get(path_of(link_with(mail.message, "/confirm/"))).get_data(as_text=True)
    assert 'href="/privacy/news"' in confirm


def test_every_campaign_mail_links_the_lists_notice(rt, sink):
    make_list(rt, "news")
    person(rt, "reader@example.org", ["news"])
    cid = campaign(rt)
    campaigns.start(rt, cid)
    wait_status(rt, cid)
    [mail] = campaign_mail(sink, cid)
    msg = mail.message
    html = msg.get_body(("html",)).get_content()
    text = msg.get_body(("plain",)).get_content()
    # next to the unsubscribe link, in the built-in footer
    assert re.search(
        r'Unsubscribe</a> \|\s*<a href="http://listmgr.test/privacy/news"[^>]*>Privacy</a>', html
    )
    assert "Privacy](http://listmgr.test/privacy/news)" in text


def test_an_unreadable_smtp_url_is_named_without_any_of_it(make_runtime):
    from listmgr.app import create_app

    rt = make_runtime(smtp_url="ftp://mailer:hunter2secret@relay.example.net")
    client = create_app(rt=rt, migrate=False).test_client()
    lists.create(rt, slug="news", name="News")
    servers = _notice(client)["notice"]["recipients"]["mail_servers"]
    assert servers == ["the SMTP servers of the configuration (their addresses cannot be read)"]
    assert "hunter2secret" not in client.get("/privacy/news").get_data(as_text=True)


def _notice_versions(rt, sid, kind):
    """The notice version each of the person's consent events of this kind names."""
    with rt.db.session() as s:
        return [
            version
            for notice_id, version in s.execute(
                select(ConsentEvent.privacy_notice_id, PrivacyNotice.version)
                .outerjoin(PrivacyNotice, PrivacyNotice.id == ConsentEvent.privacy_notice_id)
                .where(ConsentEvent.subscriber_id == sid, ConsentEvent.kind == kind)
                .order_by(ConsentEvent.id)
            )
        ]


def test_joining_from_preferences_undoing_and_keeping_name_the_notice(rt, client, sink):
    from datetime import timedelta

    from listmgr.models import MailingList, Repermission, utcnow
    from listmgr.services import subscribers

    make_list(rt, "news")
    make_list(rt, "deals", opt_in="double")
    sid = subscribers.create(rt, email="pat@example.org", lists=["news"], consent="by phone")
    with rt.db.session() as s:
        news = s.scalar(select(MailingList.id).where(MailingList.slug == "news"))
    token = rt.tokens.manage(sid)
    page = client.get(f"/p/{token}").get_data(as_text=True)
    # the preference center links each list's notice beside its choice
    assert 'href="/privacy/news"' in page and 'href="/privacy/deals"' in page

    # joining a list there records the version of that list's notice in force
    resp = client.post(f"/p/{token}", data={"action": "save", "lists": ["news", "deals"]})
    assert resp.status_code == 200
    assert _notice_versions(rt, sid, "subscribe") == [1]

    # an undone unsubscribe records the version the list comes back under
    assert _notice(client)["version"] == 1
    fielddefs.create_field(rt, key="company", label="Company name", type="text")
    lists.update(rt, "news", form_fields=["company"])  # news's notice is now version 2
    left = client.post(f"/u/{rt.tokens.unsubscribe(sid, news)}").get_data(as_text=True)
    found = re.search(r'action="(/u/undo/[^"]+)"', left)
    assert found and client.post(found.group(1)).status_code == 200
    assert _notice_versions(rt, sid, "resubscribe") == [2]

    # so does keeping a subscription a re-permission mail asked about
    with rt.db.session() as s:
        req = Repermission(
            subscriber_id=sid, list_id=news, flag="role", deadline=utcnow() + timedelta(days=3)
        )
        s.add(req)
        s.flush()
        rid = req.id
    assert client.post(f"/keep/{rt.tokens.repermission(rid)}").status_code == 200
    assert _notice_versions(rt, sid, "confirm") == [2]


def test_mail_about_the_person_links_the_notice_of_each_of_their_lists(rt, client, sink):
    from listmgr.services import subscribers

    make_list(rt, "news", welcome_mail=True)
    make_list(rt, "deals", name="Deals & more")
    sid = subscribers.create(rt, email="ida@example.org", lists=["news", "deals"], consent="x")
    token = rt.tokens.manage(sid)
    client.post(f"/p/{token}/export")  # a data link
    client.post(f"/p/{token}/address", data={"email": "ida@example.net"})  # an address change
    drain(rt)
    mails = {m.rcpt_tos[0]: m.message for m in sink.wait_for(2)}
    for to in ("ida@example.org", "ida@example.net"):
        msg = mails[to]
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        assert "Privacy notice (News): http://listmgr.test/privacy/news" in text, to
        assert "Privacy notice (Deals & more): http://listmgr.test/privacy/deals" in text, to
        assert 'href="http://listmgr.test/privacy/news"' in html, to
        assert "Privacy notice (Deals &amp; more)</a>" in html, to

    # a welcome mail links its own list's notice only
    client.post("/subscribe/news", data={"email": "new@example.org"})
    drain(rt)
    confirm = next(m for m in sink.wait_for(3) if m.rcpt_tos == ["new@example.org"])
    client.post(path_of(link_with(confirm.message, "/confirm/")))
    drain(rt)
    [welcome] = [m for m in sink.wait_for(4) if m.rcpt_tos == ["new@example.org"]][1:]
    text = welcome.message.get_body(("plain",)).get_content()
    assert "Privacy notice: http://listmgr.test/privacy/news" in text
    assert re.search(r"\nUnsubscribe: http://listmgr.test/u/\S+\r?\nPrivacy notice: ", text)
    assert "privacy/deals" not in text
    assert (
        'href="http://listmgr.test/privacy/news"'
        in welcome.message.get_body(("html",)).get_content()
    )


def _render_every_mail(unsubscribe_url):
    """Each transactional mail rendered with its links filled in: {kind: (text, html)}."""
    from jinja2.exceptions import UndefinedError

    from listmgr import resource_dir
    from listmgr.mail import transactional

    out = {}
    for folder in sorted((resource_dir("templates") / "email").iterdir()):
        if not folder.is_dir():
            continue
        ctx = {
            "privacy_links": [("News", "http://listmgr.test/privacy/news")],
            "unsubscribe_url": unsubscribe_url,
            "manage_url": "http://listmgr.test/p/manage",
        }
        while True:
            try:
                _, text, html = transactional.render(folder.name, ctx)
                break
            except UndefinedError as exc:  # every other variable: an empty string
                found = re.search(r"'(\w+)' is undefined", str(exc))
                assert found, exc
                ctx[found.group(1)] = ""
        out[folder.name] = (text, html)
    return out


def test_transactional_mail_links_the_notice_next_to_its_unsubscribe_link():
    notice_url = "http://listmgr.test/privacy/news"
    for unsubscribe_url in ("http://listmgr.test/u/token", ""):
        mails = _render_every_mail(unsubscribe_url)
        assert {"welcome", "already_subscribed", "repermission", "confirm"} <= set(mails)
        beside = 0
        for kind, (text, html) in mails.items():
            if kind in ("campaign_paused", "inbound_reply"):  # to staff, or a reply by hand
                continue
            assert text.count(notice_url) == 1, (kind, text)
            lines = text.splitlines()
            at = next(i for i, line in enumerate(lines) if notice_url in line)
            unsubscribe = [i for i, line in enumerate(lines) if line.startswith("Unsubscribe")]
            if unsubscribe and not unsubscribe_url:
                continue  # a mail that always has the link (welcome): never without it
            if unsubscribe:  # on the line right after the unsubscribe link, as in campaign mail
                beside += 1
                assert at == unsubscribe[0] + 1, (kind, text)
                assert lines[at] == f"Privacy notice: {notice_url}"
                assert html.count(notice_url) == 1, (kind, html)
                assert re.search(
                    rf'href="{unsubscribe_url}">Unsubscribe[^<]*</a> &middot; <a href="{notice_url}">Privacy notice</a>',
                    html,
                ), (kind, html)
            else:  # no unsubscribe link: the notice stays in the signature / footer
                assert "--" in lines[:at], (kind, text)
                if html:
                    assert html.count(notice_url) == 1, (kind, html)
                    assert html.index(notice_url) > html.index("border-top"), (kind, html)
        assert beside == (3 if unsubscribe_url else 0)


def _consent_notices(rt, sid, kind):
    """(list slug of the notice, notice detail ids) for each of the person's events of a kind."""
    from listmgr.models import MailingList

    with rt.db.session() as s:
        return [
            (slug, detail.get("privacy_notice_ids"))
            for slug, detail in s.execute(
                select(MailingList.slug, ConsentEvent.detail)
                .select_from(ConsentEvent)
                .outerjoin(PrivacyNotice, PrivacyNotice.id == ConsentEvent.privacy_notice_id)
                .outerjoin(MailingList, MailingList.id == PrivacyNotice.list_id)
                .where(ConsentEvent.subscriber_id == sid, ConsentEvent.kind == kind)
                .order_by(ConsentEvent.id)
            )
        ]


def test_consents_to_profiling_and_tracking_name_the_notice_in_force(rt, client, sink):
    from listmgr.services import subscribers
    from listmgr.web.preference_form import FORM_MARKER

    make_list(rt, "news", name="News")
    make_list(rt, "deals", name="Deals & more", opt_in="double")
    make_list(rt, "zines", name="Zines", opt_in="double")

    # given when added (API/admin) to lists: the notice of the first of them, by name
    sid = subscribers.create(
        rt,
        email="kim@example.org",
        lists=["zines", "news"],
        consent="x",
        consents={"tracking": True},
    )
    [(slug, ids)] = _consent_notices(rt, sid, "consent_tracking")
    assert slug == "news" and len(ids) == 2

    # given in the preference center: the notice of the first list the page shows them on
    token = rt.tokens.manage(sid)
    form = {FORM_MARKER: "1", "action": "save", "lists": ["zines", "news"]}
    assert client.post(f"/p/{token}", data={**form, "consent_profiling": "1"}).status_code == 200
    [(slug, ids)] = _consent_notices(rt, sid, "consent_profiling")
    assert slug == "news" and len(ids) == 2
    # withdrawn there too: the notice in force then, which a change of news's form made new
    fielddefs.create_field(rt, key="company", label="Company name", type="text")
    lists.update(rt, "news", form_fields=["company"])
    assert client.post(f"/p/{token}", data=form).status_code == 200
    assert _notice_versions(rt, sid, "consent_profiling") == [1, 2]

    # edited by the staff: the same rule
    subscribers.update(rt, sid, consents={"tracking": False})
    assert [slug for slug, _ in _consent_notices(rt, sid, "consent_tracking")] == ["news", "news"]

    # someone on no list who joins one with the same form: the notice of the list joined
    other = subscribers.create(rt, email="lou@example.org", lists=[], consent="x")
    mine = rt.tokens.manage(other)
    joined = {FORM_MARKER: "1", "action": "save", "lists": ["deals"], "consent_tracking": "1"}
    assert client.post(f"/p/{mine}", data=joined).status_code == 200
    assert _consent_notices(rt, other, "consent_tracking") == [("deals", None)]


def test_each_change_of_the_configuration_makes_its_own_version_at_once(
    rt, client, api, accounts_by_role, monkeypatch
):
    from listmgr.services import recovery
    from tests.admin_support import post_form

    def stored():  # read from the database: showing a notice would make the version itself
        with rt.db.session() as s:
            return [
                (version, created_at)
                for version, created_at in s.execute(
                    select(PrivacyNotice.version, PrivacyNotice.created_at).order_by(
                        PrivacyNotice.id
                    )
                )
            ]

    assert api.post("/api/lists", json={"slug": "news", "name": "News"}).status_code == 201
    assert [v for v, _ in stored()] == [1]  # a new list has its notice from the start

    # two admin changes in a row, nobody looking at the notice in between: two versions
    session_login(client, rt, accounts_by_role["admin"])
    address = "Example Org, 2 Other Street, Elsewhere"
    done = post_form(
        client, "/admin/settings", "/admin/settings", {"default_postal_address": address}
    )
    assert done.status_code == 302
    relay = {"smtp_url": f"{rt.settings.smtp_url} smtp://{RELAY}:587"}
    assert post_form(client, "/admin/settings", "/admin/settings", relay).status_code == 302
    assert [v for v, _ in stored()] == [1, 2, 3]

    # a field, then an interest, offered on the form; a label changed: one version each
    body = {"key": "company", "label": "Company", "type": "text"}
    assert api.post("/api/fields", json=body).status_code == 201
    assert api.patch("/api/lists/news", json={"form_fields": ["company"]}).status_code == 200
    fielddefs.update_field(rt, "company", label="Company name")
    fielddefs.create_interest(rt, key="books", label="Books")
    lists.update(rt, "news", form_interests=["books"])
    fielddefs.update_interest(rt, "books", label="Books and reading")
    fielddefs.delete_field(rt, "company")
    assert [v for v, _ in stored()] == [1, 2, 3, 4, 5, 6, 7, 8]
    dates = [at for _, at in stored()]
    assert dates == sorted(dates)
    # a change that leaves the notice as it is makes none; neither does looking at it
    settings_store.update(rt, {"send_rate": 5})
    shown = _notice(client)
    assert shown["version"] == 8 and [v for v, _ in stored()][-1] == 8
    assert address in str(shown) and RELAY in str(shown) and "Books and reading" in str(shown)
    assert "Company name" not in str(shown)

    # a change of the configuration file: stored at the worker's first sweep after a restart
    monkeypatch.setattr(rt, "settings", rt.settings.with_values({"default_from_name": "Org 2"}))
    recovery.sweep(rt)
    assert [v for v, _ in stored()][-1] == 9
