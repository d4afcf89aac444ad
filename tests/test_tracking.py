"""Open and click tracking, end to end: a campaign goes out through a real SMTP server, the
messages are opened and clicked as a mail client would, and the segment, the stats and the
dashboard move. Only people who allow tracking are tracked; machines are counted apart."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select, update

from listmgr.mail import tracking as rules
from listmgr.models import ConsentEvent, Delivery, Engagement, Subscriber, utcnow
from listmgr.services import campaigns, dashboard, segments
from tests.campaign_support import campaign, make_list, person, wait_status
from tests.conftest import drain

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0"
BODY = (
    "<p>Hello {{ subscriber.name }}</p>\n"
    '<p><a href="https://shop.example.com/sale?a=1&amp;b=2">The sale</a></p>\n'
    '<p><a href="https://blog.example.com/post">Read the post</a>'
    ' and <a href="https://blog.example.com/post">again</a></p>\n'
    '<p><a href="https://example.com/p/{{ subscriber.email }}">yours</a></p>\n'
    '<p><a href="mailto:help@example.com">Mail us</a></p>\n'
)


def _html(received) -> str:
    return received.message.get_body(("html",)).get_content()


def _send(rt, sink, **kw) -> tuple[int, dict[str, str]]:
    """Send a campaign to the list; each recipient's HTML by address."""
    cid = campaign(rt, body=BODY, **kw)
    campaigns.start(rt, cid, actor="tests")
    wait_status(rt, cid)
    drain(rt)
    return cid, {r.rcpt_tos[0]: _html(r) for r in sink.messages}


def _age_deliveries(rt, cid: int, minutes: int = 30) -> None:
    """As if the messages left a while ago (a person reads mail later than a scanner)."""
    with rt.db.session() as s:
        s.execute(
            update(Delivery)
            .where(Delivery.campaign_id == cid)
            .values(sent_at=utcnow() - timedelta(minutes=minutes))
        )


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _links(html: str) -> list[str]:
    return re.findall(r'href="([^"]+)"', html)


@pytest.fixture
def audience(rt):
    make_list(rt, "news")
    tracked = person(rt, "ada@example.org", ["news"], name="Ada", consents={"tracking": True})
    untracked = person(rt, "bob@example.org", ["news"], name="Bob")
    return tracked, untracked


# -- pure rules ------------------------------------------------------------------------------
def test_only_written_out_links_are_tracked_never_ours_or_templated():
    html = (
        '<html><body><a href="https://a.example/x?q=1&amp;r=2">x</a>'
        '<a href="{{ unsubscribe_url }}">u</a>'
        '<a href="https://lists.test/u/abc">own</a>'
        "<a href='https://b.example/y'>y</a>"
        '<a href="javascript:alert(1)">j</a><a href="https://a.example/x?q=1&amp;r=2">again</a>'
        '<a href="https://c.example/{{ subscriber.email }}">p</a></body></html>'
    )
    text = "See https://d.example/z and https://lists.test/p/tok and {{ manage_url }}"
    links = rules.trackable_links(html, text, "https://lists.test")
    assert links == ["https://a.example/x?q=1&r=2", "https://b.example/y", "https://d.example/z"]
    ids = {u: i + 1 for i, u in enumerate(links)}
    out = rules.tracked_sources(html, text, "https://lists.test", ids, "n0")
    assert out.html.count(rules.marker("n0", "1")) == 2
    assert rules.marker("n0", "2") in out.html and "https://b.example/y" not in out.html
    assert '<a href="{{ unsubscribe_url }}">' in out.html
    assert "https://lists.test/u/abc" in out.html and "javascript:alert(1)" in out.html
    assert out.html.index(rules.marker("n0", "0")) < out.html.index("https://lists.test/u/abc")
    assert out.html.index(rules.marker("n0", "o")) > out.html.index("p</a>")
    assert out.html.endswith("</body></html>")
    assert out.text.startswith("See " + rules.marker("n0", "3"))
    assert "https://lists.test/p/tok" in out.text


def test_machine_and_scanner_rules():
    assert rules.machine_open("Mozilla/5.0", 3600, 3)  # a privacy proxy's bare agent
    assert rules.machine_open("", 3600, 3)
    assert rules.machine_open(BROWSER, 1, 3)  # nobody reads mail within a second
    assert not rules.machine_open(BROWSER, 60, 3)
    assert rules.scanner_click(BROWSER, 60, 10, trap=True)
    assert rules.scanner_click("python-requests/2.31", 600, 10, trap=False)
    assert rules.scanner_click(BROWSER, 2, 10, trap=False)
    assert not rules.scanner_click(BROWSER, 600, 10, trap=False)


# -- end to end ------------------------------------------------------------------------------
def test_tracked_only_with_consent_and_never_our_own_links(rt, sink, audience):
    cid, html = _send(rt, sink)
    ada, bob = html["ada@example.org"], html["bob@example.org"]
    # Bob did not allow tracking: original links, no pixel, no trap.
    assert "https://shop.example.com/sale?a=1&amp;b=2" in bob
    assert "/t/" not in bob and "/o/" not in bob
    # Ada's written-out links go through us; personal, mailto and our own links do not.
    assert "shop.example.com" not in ada and "blog.example.com" not in ada
    assert "https://example.com/p/ada@example.org" in ada and "mailto:help@example.com" in ada
    assert re.search(r'src="http://listmgr\.test/o/[^"]+\.gif"', ada)
    for page in (ada, bob):
        assert re.search(r'href="http://listmgr\.test/u/[^"/]+"', page)
        assert re.search(r'href="http://listmgr\.test/p/[^"/]+"', page)
        assert re.search(r'href="http://listmgr\.test/w/[^"/]+"', page)
    for received in sink.messages:
        assert "/t/" not in received.message["List-Unsubscribe"]


def test_clicks_and_opens_move_stats_segment_and_dashboard(rt, sink, audience, client):
    tracked, _ = audience
    cid, html = _send(rt, sink)
    _age_deliveries(rt, cid)
    ada = html["ada@example.org"]
    clicks = [u for u in _links(ada) if "/t/" in u]
    trap, sale, post, post_again = clicks  # the hidden link first, then in order
    resp = client.get(_path(sale), headers={"User-Agent": BROWSER})
    assert resp.status_code == 302
    assert resp.headers["Location"] == "https://shop.example.com/sale?a=1&b=2"
    assert post == post_again  # one link, one id
    for _ in range(2):
        assert client.get(_path(post), headers={"User-Agent": BROWSER}).headers["Location"] == (
            "https://blog.example.com/post"
        )
    pixel = re.search(r'src="(http://listmgr\.test/o/[^"]+)"', ada).group(1)
    resp = client.get(_path(pixel), headers={"User-Agent": BROWSER})
    assert resp.status_code == 200 and resp.mimetype == "image/gif"
    assert resp.headers["Cache-Control"].startswith("no-store")

    e = campaigns.stats(rt, cid).engagement
    assert e["tracked_recipients"] == 1  # Bob cannot be counted, so he is not in the rates
    assert (e["unique_clicks"], e["total_clicks"]) == (1, 3)
    assert (e["unique_opens"], e["total_opens"]) == (1, 1)
    assert (e["open_rate"], e["click_rate"]) == (100.0, 100.0)
    assert {(x["url"], x["unique"], x["total"]) for x in e["links"]} == {
        ("https://blog.example.com/post", 1, 2),
        ("https://shop.example.com/sale?a=1&b=2", 1, 1),
    }
    assert sum(b["clicks"] for b in e["over_time"]) == 3
    for kind in ("opened", "clicked"):
        seg = segments.count(rt, lists=["news"], rules={"engagement": kind})
        assert seg == 1
    rates = dashboard.campaign_rates(rt, campaign_ids=[cid])[0]
    assert (rates.share("opened"), rates.share("clicked")) == (100.0, 100.0)
    with rt.db.session() as s:
        who = set(s.scalars(select(Engagement.subscriber_id)))
    assert who == {tracked}


def test_machines_are_recorded_apart_and_left_out(rt, sink, audience, client):
    cid, html = _send(rt, sink)
    ada = html["ada@example.org"]
    trap, sale, *_ = [u for u in _links(ada) if "/t/" in u]
    pixel = re.search(r'src="(http://listmgr\.test/o/[^"]+)"', ada).group(1)
    # Right after sending: a gateway follows the link, a privacy proxy fetches the pixel.
    assert client.get(_path(sale), headers={"User-Agent": BROWSER}).status_code == 302
    client.get(_path(pixel), headers={"User-Agent": "Mozilla/5.0"})
    _age_deliveries(rt, cid)
    client.get(_path(pixel), headers={"User-Agent": "Mozilla/5.0"})  # the proxy's agent, later
    # A scanner that hits the hidden link unmasks its own "human" clicks around it.
    assert client.get(_path(sale), headers={"User-Agent": BROWSER}).status_code == 302
    resp = client.get(_path(trap), headers={"User-Agent": BROWSER})
    assert resp.status_code == 302 and "/w/c/" in resp.headers["Location"]
    e = campaigns.stats(rt, cid).engagement
    assert (e["unique_opens"], e["unique_clicks"], e["total_clicks"]) == (0, 0, 0)
    assert e["machine_opens_left_out"] == 2
    assert e["scanner_clicks_left_out"] == 3
    assert segments.count(rt, lists=["news"], rules={"engagement": "clicked"}) == 0


def test_tampered_tokens_never_redirect_elsewhere(rt, sink, audience, client):
    cid, html = _send(rt, sink)
    _age_deliveries(rt, cid)
    sale = [u for u in _links(html["ada@example.org"]) if "/t/" in u][1]
    ref, token = _path(sale).split("/")[2:4]
    ids, sig = token.split(".")
    forged = f"/t/{ref}/{ids[:-1]}z.{sig}"  # another link id, the signature kept
    resp = client.get(forged, headers={"User-Agent": BROWSER})
    assert resp.status_code == 302
    assert urlsplit(resp.headers["Location"]).path == f"/w/c/{ref}"
    page = client.get(urlsplit(resp.headers["Location"]).path)
    assert page.status_code == 200 and "Hello " in page.get_data(as_text=True)
    assert "Ada" not in page.get_data(as_text=True)
    assert "sandbox" in page.headers["Content-Security-Policy"]
    # A token of this campaign under another campaign's reference: the web version.
    other = campaign(rt, name="Other", body=BODY)
    other_ref = rt.tokens.campaign_ref(other)
    resp = client.get(f"/t/{other_ref}/{token}")
    assert urlsplit(resp.headers["Location"]).path == f"/w/c/{other_ref}"
    assert client.get(urlsplit(resp.headers["Location"]).path).status_code == 404  # a draft
    # Nothing readable at all: a page, not a redirect anywhere.
    assert client.get("/t/garbage/garbage").status_code == 302
    assert client.get("/w/c/garbage").status_code == 404
    assert client.get("/o/garbage.gif").status_code == 200  # the pixel always answers
    with rt.db.session() as s:
        assert s.scalar(select(Engagement.id)) is None


def test_withdrawing_consent_deletes_and_stops_tracking_in_sent_mail(
    rt, sink, audience, client, api
):
    tracked, _ = audience
    cid, html = _send(rt, sink)
    _age_deliveries(rt, cid)
    sale = [u for u in _links(html["ada@example.org"]) if "/t/" in u][1]
    client.get(_path(sale), headers={"User-Agent": BROWSER})
    assert campaigns.stats(rt, cid).engagement["unique_clicks"] == 1
    resp = api.patch(f"/api/subscribers/{tracked}", json={"consents": {"tracking": False}})
    assert resp.status_code == 200, resp.get_json()
    with rt.db.session() as s:
        assert s.scalar(select(Engagement.id)) is None
    # The link in the mail already sent still works, and records nothing.
    resp = client.get(_path(sale), headers={"User-Agent": BROWSER})
    assert resp.headers["Location"] == "https://shop.example.com/sale?a=1&b=2"
    e = campaigns.stats(rt, cid).engagement
    assert (e["tracked_recipients"], e["unique_clicks"], e["total_clicks"]) == (0, 0, 0)


def test_tracking_switched_off_tracks_nobody(make_runtime, sink):
    rt = make_runtime(tracking=False)
    make_list(rt, "news")
    person(rt, "ada@example.org", ["news"], consents={"tracking": True})
    _, html = _send(rt, sink)
    assert "/t/" not in html["ada@example.org"] and "/o/" not in html["ada@example.org"]


def test_web_version_is_the_persons_own_until_links_are_replaced(rt, sink, audience, client, api):
    tracked, _ = audience
    cid, html = _send(rt, sink)
    web = next(u for u in _links(html["ada@example.org"]) if "/w/" in u)
    page = client.get(_path(web))
    assert page.status_code == 200
    assert "Hello Ada" in page.get_data(as_text=True)
    assert page.headers["Content-Security-Policy"].startswith("sandbox")
    assert "noindex" in page.headers["X-Robots-Tag"]
    assert client.get(_path(web)[:-2] + "xx").status_code in (400, 404)
    assert api.post(f"/api/subscribers/{tracked}/forget-links").status_code == 200
    page = client.get(_path(web))
    assert page.status_code == 200 and "Ada" not in page.get_data(as_text=True)


def test_public_archive_is_opt_in_and_names_nobody(rt, sink, audience, client, api):
    cid, _ = _send(rt, sink, subject="Issue for {{ subscriber.name|default('all', true) }}")
    assert client.get("/archive/news").status_code == 404
    assert client.get(f"/archive/news/{cid}").status_code == 404
    resp = api.patch("/api/lists/news", json={"archive": True})
    assert resp.status_code == 200 and resp.get_json()["archive"] is True
    assert api.patch("/api/lists/news", json={"archive": "yes"}).status_code == 422
    index = client.get("/archive/news")
    body = index.get_data(as_text=True)
    assert index.status_code == 200 and "Issue for all" in body
    page = client.get(f"/archive/news/{cid}")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "Ada" not in text and "ada@example.org" not in text
    assert "/t/" not in text and "/o/" not in text and "/u/" not in text
    assert "/subscribe/news" in text
    draft = campaign(rt, name="Unsent", body=BODY)
    assert client.get(f"/archive/news/{draft}").status_code == 404
    assert client.get(f"/archive/other/{cid}").status_code == 404


def test_a_mangled_campaign_part_still_leads_to_that_campaigns_web_version(
    rt, sink, audience, client
):
    cid, html = _send(rt, sink)
    _age_deliveries(rt, cid)
    sale = [u for u in _links(html["ada@example.org"]) if "/t/" in u][1]
    ref, token = _path(sale).split("/")[2:4]
    for mangled in ("garbage", ref[:-2], ref.upper()):
        resp = client.get(f"/t/{mangled}/{token}", headers={"User-Agent": BROWSER})
        assert resp.status_code == 302
        assert urlsplit(resp.headers["Location"]).path == f"/w/c/{ref}"
        page = client.get(urlsplit(resp.headers["Location"]).path)
        assert page.status_code == 200 and "Hello " in page.get_data(as_text=True)
    with rt.db.session() as s:
        assert s.scalar(select(Engagement.id)) is None  # nothing recorded from a mangled link


def test_head_requests_are_a_machines_and_left_out(rt, sink, audience, client):
    cid, html = _send(rt, sink)
    _age_deliveries(rt, cid)
    ada = html["ada@example.org"]
    sale = [u for u in _links(ada) if "/t/" in u][1]
    pixel = re.search(r'src="(http://listmgr\.test/o/[^"]+)"', ada).group(1)
    resp = client.head(_path(sale), headers={"User-Agent": BROWSER})
    assert resp.status_code == 302
    assert resp.headers["Location"] == "https://shop.example.com/sale?a=1&b=2"
    assert client.head(_path(pixel), headers={"User-Agent": BROWSER}).status_code == 200
    e = campaigns.stats(rt, cid).engagement
    assert (e["unique_opens"], e["unique_clicks"], e["total_clicks"]) == (0, 0, 0)
    assert (e["machine_opens_left_out"], e["scanner_clicks_left_out"]) == (1, 1)
    # The same link followed by a person afterwards counts.
    client.get(_path(sale), headers={"User-Agent": BROWSER})
    assert campaigns.stats(rt, cid).engagement["unique_clicks"] == 1


def _allows_tracking(rt, email: str) -> bool:
    with rt.db.session() as s:
        return bool(s.scalar(select(Subscriber.consent_tracking).where(Subscriber.email == email)))


def test_the_sign_up_form_asks_for_tracking_unticked_and_a_tick_is_recorded(
    rt, sink, audience, client
):
    page = client.get("/subscribe/news").get_data(as_text=True)
    box = re.search(r"<input[^>]*name=\"consent_tracking\"[^>]*>", page)
    assert box and "checked" not in box.group(0)
    assert 'name="consent_tracking"' in client.get("/subscribe/news/embed").get_data(as_text=True)
    assert client.post("/subscribe/news", data={"email": "cy@example.org"}).status_code == 200
    assert not _allows_tracking(rt, "cy@example.org")
    resp = client.post("/subscribe/news", data={"email": "di@example.org", "consent_tracking": "1"})
    assert resp.status_code == 200 and _allows_tracking(rt, "di@example.org")
    with rt.db.session() as s:
        event = s.scalar(
            select(ConsentEvent)
            .join(Subscriber, Subscriber.id == ConsentEvent.subscriber_id)
            .where(Subscriber.email == "di@example.org", ConsentEvent.kind == "consent_tracking")
        )
    assert event is not None and "links I click" in event.wording
    # the notice the person was shown under the form is the one the consent names
    assert event.privacy_notice_id is not None
    # JSON: booleans only, refused before anything is looked up.
    bad = client.post("/subscribe/news", json={"email": "ed@example.org", "consents": "all"})
    assert bad.status_code == 422
    bad = client.post(
        "/subscribe/news", json={"email": "ed@example.org", "consents": {"tracking": "yes"}}
    )
    assert bad.status_code == 422 and not _allows_tracking(rt, "ed@example.org")
    ok = client.post(
        "/subscribe/news", json={"email": "ed@example.org", "consents": {"tracking": True}}
    )
    assert ok.status_code == 202 and _allows_tracking(rt, "ed@example.org")
    # A sign-up never changes a known person: Bob's "no" stays, with the same answer.
    resp = client.post(
        "/subscribe/news", data={"email": "bob@example.org", "consent_tracking": "1"}
    )
    assert resp.status_code == 200 and not _allows_tracking(rt, "bob@example.org")


def test_no_tracking_box_while_tracking_is_off(make_runtime, sink):
    from listmgr.app import create_app

    rt = make_runtime(tracking=False)
    make_list(rt, "news")
    client = create_app(rt=rt, migrate=False).test_client()
    assert "consent_tracking" not in client.get("/subscribe/news").get_data(as_text=True)


def test_a_click_without_images_counts_as_an_open_in_stats_and_segments(rt, sink, audience, client):
    cid, html = _send(rt, sink)
    _age_deliveries(rt, cid)
    sale = [u for u in _links(html["ada@example.org"]) if "/t/" in u][1]
    client.get(_path(sale), headers={"User-Agent": BROWSER})  # images blocked: no pixel
    e = campaigns.stats(rt, cid).engagement
    assert (e["unique_opens"], e["total_opens"], e["unique_clicks"]) == (1, 0, 1)
    assert segments.count(rt, lists=["news"], rules={"engagement": "opened"}) == 1
    assert segments.count(rt, lists=["news"], rules={"engagement": "clicked"}) == 1
