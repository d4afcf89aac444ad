"""A leaked mail is not a leaked profile: what someone holding a subscriber's old mail (or only
its links) must not get. Preference links change preferences and leave; downloading or erasing
the data needs a single-use, one-hour link mailed to the address; "forget my old links" (the
person or an admin) ends every older preference link, while old unsubscribe links still
unsubscribe; a confirmation link works once and never undoes a later suppression."""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from listmgr.models import AuditLog, ConsentEvent, Membership, Subscriber, Suppression, utcnow
from listmgr.services import campaigns, lists, subscribers
from tests.admin_support import accounts_by_role, csrf_from, session_login  # noqa: F401
from tests.campaign_support import campaign, campaign_mail, wait_status
from tests.conftest import drain
from tests.helpers import link_with, links, path_of

VICTIM = "victim@example.org"
UA = "VictimMail/7.1 (secret-device)"
# What an export holds that a leaked mail must never reveal.
SECRETS = (b"127.0.0.1", UA.encode(), b"consent_history", b"user_agent")


@pytest.fixture
def rt(make_runtime):
    """No per-address window for confirmation mail: the victim's mails arrive at once."""
    return make_runtime(confirm_window_minutes=0)


# -- the victim's real mail -------------------------------------------------------------------
def _mail_to(sink, count: int):
    """The newest of `count` messages (the worker sends in the background)."""
    return sink.wait_for(count)[count - 1]


def _victim(rt, client, sink) -> tuple[int, dict[str, str]]:
    """A confirmed subscriber who signed up through the form; the links of their mail."""
    lists.create(rt, slug="news", name="News", postal_address="Example Org, 1 Test Street")
    resp = client.post(
        "/subscribe/news", data={"email": VICTIM, "name": "Vic"}, headers={"User-Agent": UA}
    )
    assert resp.status_code == 200
    drain(rt)
    confirm = path_of(link_with(_mail_to(sink, 1).message, "/confirm/"))
    assert client.post(confirm).status_code == 200
    # Signing up again mails the "already subscribed" notice with the preference and
    # unsubscribe links: the mail that leaks (forwarded, or read over a shoulder).
    assert client.post("/subscribe/news", data={"email": VICTIM}).status_code == 200
    drain(rt)
    notice = _mail_to(sink, 2).message
    with rt.db.session() as s:
        sid = s.scalar(select(Subscriber.id).where(Subscriber.email == VICTIM))
    return int(sid), {
        "confirm": confirm,
        "manage": path_of(link_with(notice, "/p/")),
        "unsubscribe": path_of(link_with(notice, "/u/")),
    }


def _exists(rt, sid: int) -> bool:
    with rt.db.session() as s:
        return s.get(Subscriber, sid) is not None


def _no_secrets(resp) -> None:
    assert "attachment" not in resp.headers.get("Content-Disposition", "")
    assert resp.mimetype != "application/json" or "error" in (resp.json or {})
    for secret in SECRETS:
        assert secret not in resp.data, secret


def _ask_for_data_link(rt, client, sink, manage: str, action: str = "export") -> str:
    """The person asks from their preferences; the link arrives in their mailbox."""
    before = len(sink.messages)
    assert client.post(f"{manage}/{action}").status_code == 200
    drain(rt)
    mail = _mail_to(sink, before + 1)
    assert mail.rcpt_tos == [VICTIM]
    return path_of(link_with(mail.message, f"/{action}"))


# -- the preference link from a leaked mail ---------------------------------------------------
@pytest.mark.parametrize("accept", ["text/html", "application/json", "*/*"])
def test_a_leaked_preference_link_neither_exports_nor_erases(rt, client, sink, accept):
    sid, leaked = _victim(rt, client, sink)
    manage = leaked["manage"]
    headers = {"Accept": accept}
    for method, path, data in (
        ("get", f"{manage}/export", None),
        ("get", f"{manage}/export?format=json", None),
        ("post", f"{manage}/export", {}),
        ("post", f"{manage}/export", {"confirm": "yes"}),
        ("head", f"{manage}/export", None),
        ("get", f"{manage}/erase", None),
        ("post", f"{manage}/erase", {"confirm": "yes"}),
        ("post", f"{manage}/erase?confirm=yes", {"confirm": "yes", "action": "erase"}),
    ):
        resp = getattr(client, method)(path, data=data, headers=headers)
        assert resp.status_code in (200, 405), (method, path, resp.status_code)
        _no_secrets(resp)
        assert _exists(rt, sid), (method, path)
    with rt.db.session() as s:
        assert (
            s.scalar(select(func.count(AuditLog.id)).where(AuditLog.action == "people.export")) == 0
        )
    # What the link is for still works: the preferences page and leaving.
    page = client.get(manage)
    assert page.status_code == 200 and VICTIM.encode() in page.data
    _no_secrets(page)
    assert client.post(manage, data={"action": "unsubscribe_all"}).status_code == 200
    with rt.db.session() as s:
        assert s.scalar(select(Membership.status)) == "unsubscribed"


def test_the_fresh_link_goes_only_to_the_address_and_asking_reveals_nothing(rt, client, sink):
    sid, leaked = _victim(rt, client, sink)
    sent = len(sink.messages)
    first = client.post(f"{leaked['manage']}/export")
    again = client.post(f"{leaked['manage']}/erase")  # within the window: no second mail
    assert first.status_code == again.status_code == 200
    assert first.data == again.data  # the same answer, mailed or not
    _no_secrets(first)
    drain(rt)  # every job has run, and what it sent has arrived
    mails = sink.messages[sent:]
    assert len(mails) == 1
    [mail] = mails
    assert mail.rcpt_tos == [VICTIM] and VICTIM in mail.message["To"]
    # The answer page carries no link that could open the data.
    fresh = path_of(link_with(mail.message, "/export"))
    assert fresh.split("/")[2].encode() not in first.data
    with rt.db.session() as s:
        asked = list(
            s.scalars(
                select(AuditLog.detail).where(
                    AuditLog.action == "subscriber.data_link", AuditLog.target_id == str(sid)
                )
            )
        )
    assert [a["mailed"] for a in asked] == [True, False]

    # Once the window has passed (the clock moved on), another link can be asked for; the
    # newer link replaces the older one.
    with rt.db.session() as s:
        s.execute(update(Subscriber).values(access_sent_at=utcnow() - timedelta(minutes=6)))
    newer = _ask_for_data_link(rt, client, sink, leaked["manage"])
    assert newer != fresh
    assert client.post(fresh).status_code == 400
    resp = client.post(newer)
    assert resp.status_code == 200 and resp.json["subscriber"]["email"] == VICTIM


def test_a_fresh_link_works_once_within_the_hour(rt, client, sink, monkeypatch):
    sid, leaked = _victim(rt, client, sink)
    link = _ask_for_data_link(rt, client, sink, leaked["manage"])
    # Link scanners fetch it: a GET shows a button and spends nothing.
    for _ in range(3):
        page = client.get(link)
        assert page.status_code == 200 and b'id="download"' in page.data
        _no_secrets(page)
    resp = client.post(link)
    assert resp.status_code == 200 and "attachment" in resp.headers["Content-Disposition"]
    data = resp.json
    assert data["subscriber"]["email"] == VICTIM
    assert data["consent_history"][0]["user_agent"] == UA
    # Replayed (by whoever finds the mail later), it does nothing, in every form.
    for method, path, body in (
        ("post", link, None),
        ("get", link, None),
        ("post", link.replace("/export", "/erase"), {"confirm": "yes"}),
    ):
        again = getattr(client, method)(path, data=body)
        assert again.status_code == 400 and b"already used" in again.data, (method, path)
        _no_secrets(again)
    assert _exists(rt, sid)

    # Not a preference link either, and tampering is refused.
    token = link.split("/")[2]
    assert client.get(f"/p/{token}").status_code == 400
    assert client.get(f"/u/{token}").status_code == 400

    # A link older than an hour has expired, used or not.
    with rt.db.session() as s:
        s.execute(update(Subscriber).values(access_sent_at=utcnow() - timedelta(hours=2)))
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 61 * 60)
    old = _ask_for_data_link(rt, client, sink, leaked["manage"])
    monkeypatch.setattr(time, "time", real)
    resp = client.post(old)
    assert resp.status_code == 400 and b"expired" in resp.data
    _no_secrets(resp)
    token = old.split("/")[2]
    tampered = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    assert client.post(f"/p/{tampered}/export").status_code == 400


def test_erasure_needs_the_fresh_link_and_happens_once(rt, client, sink):
    sid, leaked = _victim(rt, client, sink)
    link = _ask_for_data_link(rt, client, sink, leaked["manage"], "erase")
    page = client.get(link)
    assert page.status_code == 200 and VICTIM.encode() in page.data and _exists(rt, sid)
    assert client.post(link, data={}).status_code == 200 and _exists(rt, sid)  # no confirm
    resp = client.post(link, data={"confirm": "yes"})
    assert resp.status_code == 200 and b"erased" in resp.data
    assert not _exists(rt, sid)
    for path in (link, leaked["manage"], f"{leaked['manage']}/export"):
        assert client.post(path, data={"confirm": "yes"}).status_code == 400


def test_two_uses_of_one_link_at_once_export_once(rt, app, client, sink):
    _, leaked = _victim(rt, client, sink)
    link = _ask_for_data_link(rt, client, sink, leaked["manage"])

    def use(_: int) -> int:
        return app.test_client().post(link).status_code

    with ThreadPoolExecutor(4) as pool:
        codes = sorted(pool.map(use, range(4)))
    assert codes == [200, 400, 400, 400]


# -- forgetting old links -----------------------------------------------------------------------
def test_forgetting_ends_old_preference_links_but_never_leaving(rt, client, sink):
    sid, leaked = _victim(rt, client, sink)
    data_link = _ask_for_data_link(rt, client, sink, leaked["manage"])
    sent = len(sink.messages)
    resp = client.post(f"{leaked['manage']}/forget")
    assert resp.status_code == 200
    assert b"/p/" not in resp.data  # the new link goes to the mailbox, never to the page
    drain(rt)
    mail = _mail_to(sink, sent + 1)
    assert mail.rcpt_tos == [VICTIM]
    fresh = path_of(link_with(mail.message, "/p/"))
    assert fresh != leaked["manage"]

    # Every older preference and data link is dead, and says so without showing anything.
    for method, path in (
        ("get", leaked["manage"]),
        ("post", leaked["manage"]),
        ("get", f"{leaked['manage']}/export"),
        ("post", f"{leaked['manage']}/export"),
        ("post", f"{leaked['manage']}/forget"),
        ("post", data_link),
        ("get", data_link),
    ):
        dead = getattr(client, method)(path, data={"action": "save", "lists": []})
        assert dead.status_code == 400, (method, path)
        assert VICTIM.encode() not in dead.data
        _no_secrets(dead)
    with rt.db.session() as s:
        assert s.scalar(select(Membership.status)) == "confirmed"  # the save did nothing

    # The old unsubscribe link still unsubscribes (leaving must always work), but its page
    # neither shows the address nor leads into the preferences.
    page = client.get(leaked["unsubscribe"])
    assert page.status_code == 200
    assert VICTIM.encode() not in page.data and b"/p/" not in page.data
    left = client.post(leaked["unsubscribe"], data={"List-Unsubscribe": "One-Click"})
    assert left.status_code == 200 and b"/p/" not in left.data
    with rt.db.session() as s:
        assert s.scalar(select(Membership.status)) == "unsubscribed"

    # The new link works, and its own data link too (once the window for such mail passed).
    assert client.get(fresh).status_code == 200
    with rt.db.session() as s:
        s.execute(update(Subscriber).values(access_sent_at=utcnow() - timedelta(minutes=6)))
    new_data = _ask_for_data_link(rt, client, sink, fresh)
    assert client.post(new_data).json["subscriber"]["email"] == VICTIM


def test_an_old_preference_link_can_still_unsubscribe_from_everything(rt, client, sink):
    _, leaked = _victim(rt, client, sink)
    assert client.post(f"{leaked['manage']}/forget").status_code == 200
    resp = client.post(leaked["manage"], data={"action": "unsubscribe_all"})
    assert resp.status_code == 200 and VICTIM.encode() not in resp.data
    with rt.db.session() as s:
        assert s.scalar(select(Membership.status)) == "unsubscribed"
        assert s.scalar(select(Suppression.reason)) == "unsubscribed_all"


def test_mail_after_forgetting_carries_the_new_links(rt, client, sink):
    sid, leaked = _victim(rt, client, sink)
    cid = campaign(rt)
    campaigns.start(rt, cid)
    drain(rt)
    wait_status(rt, cid)
    [before] = campaign_mail(sink, cid)
    old_links = {u for u in links(before.message) if "/p/" in u or "/u/" in u}
    assert client.post(f"{leaked['manage']}/forget").status_code == 200
    for url in old_links:
        if "/p/" in url:
            assert client.get(path_of(url.rstrip(").,"))).status_code == 400

    cid2 = campaign(rt, name="Summer news")
    campaigns.start(rt, cid2)
    drain(rt)
    wait_status(rt, cid2)
    [after] = campaign_mail(sink, cid2)
    manage = path_of(link_with(after.message, "/p/").rstrip(").,"))
    assert client.get(manage).status_code == 200
    unsub = re.search(r"<(https?://[^>]+/u/[^>]+)>", after.message["List-Unsubscribe"]).group(1)
    page = client.get(path_of(unsub))
    assert VICTIM.encode() in page.data and b"/p/" in page.data
    mailto = re.search(r"unsubscribe\+([^@]+)@", after.message["List-Unsubscribe"]).group(1)
    assert len(f"unsubscribe+{mailto}") <= 64


def test_an_admin_can_end_all_old_links(rt, client, sink, api, accounts_by_role):
    sid, leaked = _victim(rt, client, sink)
    # Not for those who may not change people, nor with a bad body, nor for nobody.
    from listmgr.services import accounts

    editor = accounts.create_token(rt, role="editor", name="e")
    refused = client.post(
        f"/api/subscribers/{sid}/forget-links", headers={"Authorization": f"Bearer {editor}"}
    )
    assert refused.status_code == 403
    assert (
        api.post(f"/api/subscribers/{sid}/forget-links", json={"notify": "yes"}).status_code == 422
    )
    assert api.post(f"/api/subscribers/{sid}/forget-links", json={"bogus": 1}).status_code == 422
    assert api.post("/api/subscribers/999999/forget-links").status_code == 404
    assert client.get(leaked["manage"]).status_code == 200

    sent = len(sink.messages)
    resp = api.post(f"/api/subscribers/{sid}/forget-links", json={"notify": False})
    assert resp.status_code == 200 and resp.json["status"] == "forgotten"
    assert client.get(leaked["manage"]).status_code == 400
    drain(rt)  # every job has run
    assert len(sink.messages) == sent  # asked not to mail

    # The admin page: a button (CSRF-protected) that also mails a new link.
    session_login(client, rt, accounts_by_role["admin"])
    page = client.get(f"/admin/subscribers/{sid}")
    assert b'id="forget-links"' in page.data
    assert (
        client.post(f"/admin/subscribers/{sid}/forget-links", data={"notify": "1"}).status_code
        == 400
    )  # no CSRF token
    resp = client.post(
        f"/admin/subscribers/{sid}/forget-links",
        data={"notify": "1", "csrf_token": csrf_from(page.text)},
    )
    assert resp.status_code == 302
    drain(rt)
    mail = _mail_to(sink, sent + 1)
    assert mail.rcpt_tos == [VICTIM]
    fresh = path_of(link_with(mail.message, "/p/"))
    client.cookie_jar.clear() if hasattr(client, "cookie_jar") else None
    assert client.get(fresh).status_code == 200
    with rt.db.session() as s:
        done = list(
            s.scalars(select(AuditLog).where(AuditLog.action == "subscriber.links_forgotten"))
        )
    assert len(done) == 2 and all(a.target_id == str(sid) for a in done)
    assert done[1].actor == "admin@staff.example.org"


# -- confirmation links are single-use ----------------------------------------------------------
def _confirm_events(rt) -> int:
    with rt.db.session() as s:
        return (
            s.scalar(select(func.count(ConsentEvent.id)).where(ConsentEvent.kind == "confirm")) or 0
        )


def _status(rt) -> tuple[str, str | None]:
    with rt.db.session() as s:
        return (s.scalar(select(Membership.status)), s.scalar(select(Suppression.reason)))


def _replay_does_nothing(rt, client, confirm: str) -> None:
    before, events = _status(rt), _confirm_events(rt)
    for method in ("get", "post", "post"):
        resp = getattr(client, method)(confirm)
        assert resp.status_code == 400 and b"already used" in resp.data, method
    assert _status(rt) == before and _confirm_events(rt) == events


def test_a_replayed_confirmation_does_nothing(rt, client, sink):
    _, leaked = _victim(rt, client, sink)
    assert _status(rt) == ("confirmed", None)
    _replay_does_nothing(rt, client, leaked["confirm"])


@pytest.mark.parametrize(
    "stop", ["unsubscribe", "unsubscribe_all", "manual", "complaint", "import"]
)
def test_a_replayed_confirmation_never_undoes_a_later_stop(rt, client, sink, api, stop, tmp_path):
    sid, leaked = _victim(rt, client, sink)
    if stop == "unsubscribe":
        assert client.post(leaked["unsubscribe"]).status_code == 200
    elif stop == "unsubscribe_all":
        assert client.post(leaked["manage"], data={"action": "unsubscribe_all"}).status_code == 200
    elif stop == "manual":
        assert api.post("/api/suppression", json={"email": VICTIM}).status_code == 201
    elif stop == "complaint":
        resp = client.post(
            "/hooks/inbound",
            data=_complaint(rt, sid),
            headers={"Authorization": "Bearer inbound-test-secret"},
            content_type="message/rfc822",
        )
        assert resp.status_code == 202
        drain(rt)
    else:
        from listmgr.services import imports

        path = tmp_path / "stop.csv"
        path.write_text(f"email\n{VICTIM}\n", encoding="utf-8")
        job = imports.create_job(
            rt, path=path, list_slug="news", consent="complaints", actor="t", mode="suppress"
        )
        imports.run_job(rt, job)
    stopped = _status(rt)
    assert stopped[0] != "confirmed" or stopped[1] is not None, stopped
    _replay_does_nothing(rt, client, leaked["confirm"])


def test_a_pending_confirmation_dies_with_a_later_stop(rt, client, sink, api):
    lists.create(rt, slug="news", name="News")
    client.post("/subscribe/news", data={"email": VICTIM})
    drain(rt)
    confirm = path_of(link_with(_mail_to(sink, 1).message, "/confirm/"))
    assert api.post("/api/suppression", json={"email": VICTIM}).status_code == 201
    _replay_does_nothing(rt, client, confirm)
    assert _status(rt) == ("pending", "manual")


def test_after_resubscribing_only_the_newest_confirmation_works(rt, client, sink):
    _, leaked = _victim(rt, client, sink)
    client.post(leaked["manage"], data={"action": "unsubscribe_all"})
    assert _status(rt) == ("unsubscribed", "unsubscribed_all")
    with rt.db.session() as s:  # the per-address window for confirmation mail has passed
        from listmgr.models import Outbox

        s.execute(update(Outbox).values(created_at=utcnow() - timedelta(hours=1)))
    sent = len(sink.messages)
    assert client.post("/subscribe/news", data={"email": VICTIM}).status_code == 200
    drain(rt)
    newest = path_of(link_with(_mail_to(sink, sent + 1).message, "/confirm/"))
    _replay_does_nothing(rt, client, leaked["confirm"])  # the old mail's link
    assert client.post(newest).status_code == 200
    assert _status(rt) == ("confirmed", None)  # the person's own, fresh confirmation
    _replay_does_nothing(rt, client, newest)


def test_one_confirmation_link_posted_twice_at_once_confirms_once(rt, app, client, sink):
    lists.create(rt, slug="news", name="News")
    client.post("/subscribe/news", data={"email": VICTIM})
    drain(rt)
    confirm = path_of(link_with(_mail_to(sink, 1).message, "/confirm/"))

    def post(_: int) -> int:
        return app.test_client().post(confirm).status_code

    with ThreadPoolExecutor(4) as pool:
        codes = sorted(pool.map(post, range(4)))
    assert codes == [200, 400, 400, 400] and _confirm_events(rt) == 1


def _complaint(rt, sid: int) -> bytes:
    """An RFC 5965 feedback report about a mail we sent the victim."""
    from tests.inbound_support import arf

    with rt.db.session() as s:
        lid = s.scalar(select(Membership.list_id).where(Membership.subscriber_id == sid))
    token = rt.tokens.unsubscribe(sid, lid)
    lu = f"<http://listmgr.test/u/{token}>, <mailto:unsubscribe+{token}@lists.example.test>"
    return arf(original_list_unsubscribe=lu, complainer=VICTIM)


def test_subscribers_created_by_admins_get_working_single_use_links(rt, client, sink):
    lists.create(rt, slug="news", name="News")
    subscribers.create(rt, email=VICTIM, lists=["news"], status="pending", consent="phone")
    drain(rt)
    confirm = path_of(link_with(_mail_to(sink, 1).message, "/confirm/"))
    assert client.post(confirm).status_code == 200
    assert _status(rt) == ("confirmed", None)
    _replay_does_nothing(rt, client, confirm)


# -- the same journey in a browser ------------------------------------------------------------
@pytest.mark.browser
@pytest.mark.slow
def test_data_links_and_forgetting_in_a_browser(tmp_path):
    """Headless Chromium against `listmgr serve`: a used confirmation link, asking for a data
    link from the preferences, downloading once, and forgetting the old links."""
    import os
    import subprocess
    import sys

    from tests.browser_support import (
        browser_page,
        create_outbox_admin,
        require_chromium,
        screenshot,
        serve,
        sign_in_to_outbox,
    )
    from tests.conftest import free_port
    from tests.test_browser_journey import _latest_mail_text

    require_chromium()
    env = {"LISTMGR_CONFIRM_WINDOW_MINUTES": "0", "LISTMGR_DATABASE_URL": ""}
    subprocess.run(
        [sys.executable, "-m", "listmgr", "demo"],
        cwd=tmp_path,
        check=True,
        env={**os.environ, **env, "LISTMGR_SECRET_KEY": "browser-test-secret-0123456789"},
    )
    address = "links@example.org"

    def url_in(text: str, label: str) -> str:
        return re.search(label + r"\s*(http://\S+)", text).group(1)

    create_outbox_admin(tmp_path, env)
    with serve(tmp_path, free_port(), **env) as base, browser_page() as page:
        sign_in_to_outbox(page, base)
        page.goto(f"{base}/subscribe/newsletter")
        page.fill("input[name=email]", address)
        page.click("button[type=submit]")
        text = _latest_mail_text(page, base, "Please confirm")
        confirm_url = re.search(r"http://\S+/confirm/\S+", text).group(0)
        page.goto(confirm_url)
        page.click("#confirm")
        assert "now subscribed" in page.locator("main").inner_text()
        page.goto(confirm_url)  # the same link again: used
        assert "already used" in page.locator("h1").inner_text()
        assert page.locator("#confirm").count() == 0
        screenshot(page, "links-confirm-used")

        # The preference link of a mail asks for a fresh link instead of showing the data.
        page.goto(f"{base}/subscribe/newsletter")
        page.fill("input[name=email]", address)
        page.click("button[type=submit]")
        manage_url = url_in(
            _latest_mail_text(page, base, "already subscribed"), "Change what you receive:"
        )
        page.goto(manage_url)
        page.get_by_role("link", name="Download my data").click()
        screenshot(page, "links-data-request")
        assert page.locator("#request-link").is_visible()
        assert "127.0.0.1" not in page.content()
        page.click("#request-link")
        assert "Check your mailbox" in page.locator("h1").inner_text()

        export_url = url_in(_latest_mail_text(page, base, "download or erase"), "Download my data:")
        page.goto(export_url)
        screenshot(page, "links-data-export")
        with page.expect_download() as download:
            page.click("#download")
        data = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
        assert data["subscriber"]["email"] == address and data["consent_history"]
        page.goto(export_url)  # once only
        assert "already used" in page.locator("h1").inner_text()

        # Forgetting: the old preference link stops working; the new one arrives by mail.
        page.goto(manage_url)
        page.click("#forget-links")
        assert "forgotten" in page.locator("h1").inner_text()
        page.goto(manage_url)
        assert "no longer works" in page.locator("main").inner_text()
        assert address not in page.content()
        new_url = url_in(_latest_mail_text(page, base, "new link"), "Your new link:")
        page.goto(new_url)
        assert address in page.locator("main").inner_text()
        screenshot(page, "links-new-preferences")
