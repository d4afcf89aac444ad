"""Copying a campaign, deleting a draft, scheduling in a chosen time zone (errors on the form,
JSON for the API) and subjects shown as a sample subscriber reads them; through the admin pages
and the API, as each role, with and without the CSRF token."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from listmgr.models import AuditLog, Campaign, Delivery, Subscriber, utcnow
from listmgr.services import accounts, campaigns, segments
from tests.admin_support import accounts_by_role, csrf_from, post_form, session_login  # noqa: F401
from tests.campaign_support import campaign, make_list, person, wait_status
from tests.conftest import drain

SUBJECT = "News for {{ subscriber.name }}"
SHOWN = "News for Sample Person"


@pytest.fixture
def world(rt):
    make_list(rt, "news")
    make_list(rt, "extra")
    for i in range(3):
        person(rt, f"p{i}@example.org", ["news"], name=f"Person {i}", fields={})
    return rt


@pytest.fixture
def editor(client, world, accounts_by_role):
    session_login(client, world, accounts_by_role["editor"])
    return client


def _rows(rt) -> dict[int, Campaign]:
    with rt.db.session() as s:
        rows = list(s.scalars(select(Campaign)))
        for r in rows:
            s.expunge(r)
        return {r.id: r for r in rows}


def _audit(rt, action: str) -> list[AuditLog]:
    with rt.db.session() as s:
        rows = list(s.scalars(select(AuditLog).where(AuditLog.action == action)))
        for r in rows:
            s.expunge(r)
        return rows


def _bearer(rt, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {accounts.create_token(rt, role=role)}"}


def _draft(rt, **kw) -> int:
    kw.setdefault("subject", SUBJECT)
    return campaign(
        rt,
        name="May news",
        preheader="In short",
        from_name="Mara",
        from_email="mara@example.org",
        reply_to="replies@example.org",
        text="Hi {{ subscriber.name }}",
        lists=["news", "extra"],
        **kw,
    )


# -- copy ------------------------------------------------------------------------------------
COPIED = (
    "subject",
    "preheader",
    "from_name",
    "from_email",
    "reply_to",
    "content_format",
    "body",
    "text",
    "layout",
    "lists",
    "segment_id",
    "segment_rules",
)


def test_api_copy_of_a_draft_is_a_new_draft_with_the_same_content(world, api):
    seg = segments.create(world, name="Everyone", lists=["news"], rules={"all": []})
    cid = _draft(world, segment_id=seg)
    resp = api.post(f"/api/campaigns/{cid}/copy")
    assert resp.status_code == 201, resp.json
    new = resp.json["id"]
    assert new != cid and resp.json["name"] == "Copy of May news"
    assert resp.json["status"] == "draft" and resp.json["scheduled_at"] is None
    rows = _rows(world)
    for key in COPIED:
        assert getattr(rows[new], key) == getattr(rows[cid], key), key
    assert rows[new].created_by != "tests"  # made by whoever copied it
    [entry] = _audit(world, "campaign.copy")
    assert entry.target_id == str(new) and entry.detail == {"source": cid}
    # the copy is a draft of its own: editing it leaves the original alone
    assert api.patch(f"/api/campaigns/{new}", json={"subject": "Other"}).status_code == 200
    assert _rows(world)[cid].subject == SUBJECT


def test_a_sent_campaign_copies_without_its_ledger_figures_or_schedule(world, api, sink):
    seg = segments.create(world, name="Everyone", lists=["news"], rules={"all": []})
    cid = _draft(world, segment_id=seg)
    campaigns.start(world, cid, actor="tests")
    drain(world)
    assert wait_status(world, cid) == "sent"
    new = api.post(f"/api/campaigns/{cid}/copy").json
    assert new["status"] == "draft" and new["stats"]["audience"] == 0
    assert new["stats"]["sent"] == 0 and new["started_at"] is None and new["finished_at"] is None
    row = _rows(world)[new["id"]]
    # the copy follows the saved segment as it is now, not the rules the original froze
    assert row.segment_id == seg and row.segment_rules is None and row.audience == 0
    with world.db.session() as s:
        ledger = s.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.campaign_id == new["id"])
        )
    assert ledger == 0
    assert api.get(f"/api/campaigns/{cid}").json["stats"]["sent"] == 3  # the original keeps its


def test_a_scheduled_campaign_copies_as_an_unscheduled_draft(world, api):
    cid = _draft(world)
    campaigns.schedule(world, cid, at=utcnow() + timedelta(days=3), timezone="Asia/Tokyo")
    new = api.post(f"/api/campaigns/{cid}/copy").json
    row = _rows(world)[new["id"]]
    assert row.status == "draft" and row.scheduled_at is None and row.schedule_timezone == ""
    assert _rows(world)[cid].status == "scheduled"


def test_copy_refusals(world, api, client):
    cid = campaign(world, name="N" * 200)
    new = api.post(f"/api/campaigns/{cid}/copy").json
    assert new["name"] == ("Copy of " + "N" * 200)[:200]
    assert api.post("/api/campaigns/999999/copy").status_code == 404
    before = len(_rows(world))
    for role in ("analyst",):
        resp = client.post(f"/api/campaigns/{cid}/copy", headers=_bearer(world, role))
        assert resp.status_code == 403 and resp.json["error"]["code"] == "forbidden"
    assert client.post(f"/api/campaigns/{cid}/copy").status_code == 401
    assert (
        client.post(f"/api/campaigns/{cid}/copy", headers=_bearer(world, "editor")).status_code
        == 201
    )
    assert len(_rows(world)) == before + 1


def test_a_copy_that_no_longer_checks_out_is_refused_clearly(world, api, editor):
    cid = _draft(world)
    with world.db.session() as s:  # a list renamed away underneath an old campaign
        s.execute(update(Campaign).where(Campaign.id == cid).values(lists=["gone"]))
    resp = api.post(f"/api/campaigns/{cid}/copy")
    assert resp.status_code == 422 and "there is no list 'gone'" in resp.json["error"]["message"]
    before = len(_rows(world))
    page = post_form(editor, "/admin/campaigns", f"/admin/campaigns/{cid}/copy", {})
    assert page.status_code == 302
    assert "cannot be copied: there is no list" in editor.get(page.headers["Location"]).text
    assert len(_rows(world)) == before


# -- delete ----------------------------------------------------------------------------------
def test_api_deletes_a_draft_and_refuses_everything_else(world, api, client, sink):
    draft = _draft(world)
    resp = client.delete(f"/api/campaigns/{draft}", headers=_bearer(world, "analyst"))
    assert resp.status_code == 403
    assert api.delete(f"/api/campaigns/{draft}").status_code == 204
    assert draft not in _rows(world)
    [entry] = _audit(world, "campaign.delete")
    assert entry.target_id == str(draft) and entry.detail == {"name": "May news"}
    assert api.delete(f"/api/campaigns/{draft}").status_code == 404

    scheduled = campaign(world, name="Later")
    campaigns.schedule(world, scheduled, at=utcnow() + timedelta(days=1))
    resp = api.delete(f"/api/campaigns/{scheduled}")
    assert resp.status_code == 409 and "unschedule it first" in resp.json["error"]["message"]
    cancelled = campaign(world, name="Dropped")
    campaigns.cancel(world, cancelled)
    resp = api.delete(f"/api/campaigns/{cancelled}")
    assert resp.status_code == 409 and "this campaign is cancelled" in resp.json["error"]["message"]
    sent = campaign(world, name="Sent")
    campaigns.start(world, sent)
    drain(world)
    wait_status(world, sent)
    resp = api.delete(f"/api/campaigns/{sent}")
    assert resp.status_code == 409 and resp.json["error"]["field"] == "status"
    assert {scheduled, cancelled, sent} <= set(_rows(world))


def test_a_deleted_drafts_id_is_never_given_again(world):
    first = campaign(world, name="One")
    newest = campaign(world, name="Two")
    campaigns.delete(world, newest)
    again = campaign(world, name="Three")
    assert again > newest > first


def test_admin_deletes_a_draft_with_confirmation_and_csrf(world, editor, client):
    cid = _draft(world)
    page = editor.get(f"/admin/campaigns/{cid}")
    form = re.search(rf'<form[^>]*action="/admin/campaigns/{cid}/delete"[^>]*>', page.text)
    assert form and "data-confirm=" in form.group(0) and "May news" in form.group(0)
    assert SHOWN in html.unescape(form.group(0)) and "{{" not in form.group(0)
    forged = editor.post(f"/admin/campaigns/{cid}/delete", data={"csrf_token": "forged"})
    assert forged.status_code == 400 and cid in _rows(world)
    resp = post_form(editor, f"/admin/campaigns/{cid}", f"/admin/campaigns/{cid}/delete", {})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/admin/campaigns")
    assert "The draft “May news” was deleted." in editor.get("/admin/campaigns").text
    assert cid not in _rows(world)


def test_admin_offers_delete_for_drafts_only_and_refuses_the_rest(world, editor):
    cid = _draft(world)
    campaigns.schedule(world, cid, at=utcnow() + timedelta(days=1))
    page = editor.get(f"/admin/campaigns/{cid}")
    assert "Copy to a new draft" in page.text and "Delete draft" not in page.text
    resp = post_form(editor, f"/admin/campaigns/{cid}", f"/admin/campaigns/{cid}/delete", {})
    assert resp.status_code == 409 and "unschedule it first" in resp.text
    assert _rows(world)[cid].status == "scheduled"


def test_an_analyst_may_neither_copy_nor_delete(world, client, accounts_by_role):
    cid = _draft(world)
    session_login(client, world, accounts_by_role["analyst"])
    stats = client.get(f"/admin/campaigns/{cid}/stats")
    assert stats.status_code == 200 and "Copy to a new draft" not in stats.text
    token = csrf_from(stats.text)
    for action in ("copy", "delete"):
        resp = client.post(f"/admin/campaigns/{cid}/{action}", data={"csrf_token": token})
        assert resp.status_code == 403
    assert set(_rows(world)) == {cid}


def test_admin_copy_opens_the_new_draft(world, editor, sink):
    cid = _draft(world)
    campaigns.start(world, cid)
    drain(world)
    wait_status(world, cid)
    stats = editor.get(f"/admin/campaigns/{cid}/stats")
    assert "Copy to a new draft" in stats.text
    forged = editor.post(f"/admin/campaigns/{cid}/copy")
    assert forged.status_code == 400 and len(_rows(world)) == 1
    resp = post_form(editor, f"/admin/campaigns/{cid}/stats", f"/admin/campaigns/{cid}/copy", {})
    assert resp.status_code == 302
    new = max(_rows(world))
    assert resp.headers["Location"].endswith(f"/admin/campaigns/{new}")
    page = editor.get(resp.headers["Location"])
    assert 'value="Copy of May news"' in page.text and "Copied into a new draft" in page.text
    assert "Delete draft" in page.text


# -- schedule in a zone ----------------------------------------------------------------------
def test_api_schedules_a_wall_clock_time_in_a_zone(world, api):
    cid = _draft(world)
    resp = api.post(
        f"/api/campaigns/{cid}/schedule",
        json={"at": "2031-07-01T09:00", "timezone": "America/New_York"},
    )
    assert resp.status_code == 200, resp.json
    assert resp.json == {
        "id": cid,
        "status": "scheduled",
        "scheduled_at": "2031-07-01T13:00:00",
        "timezone": "America/New_York",
        "scheduled_at_local": "2031-07-01T09:00:00-04:00",
    }
    assert api.get(f"/api/campaigns/{cid}").json["schedule_timezone"] == "America/New_York"
    # with an offset the instant wins; the zone is how it is shown
    resp = api.post(
        f"/api/campaigns/{cid}/schedule",
        json={"at": "2031-07-01T09:00:00Z", "timezone": "Asia/Kolkata"},
    )
    assert resp.json["scheduled_at"] == "2031-07-01T09:00:00"
    assert resp.json["scheduled_at_local"] == "2031-07-01T14:30:00+05:30"
    # without a zone: as before (UTC for a naive time), the chosen zone stays
    resp = api.post(f"/api/campaigns/{cid}/schedule", json={"at": "2031-01-01T10:00"})
    assert resp.json["scheduled_at"] == "2031-01-01T10:00:00"
    assert resp.json["timezone"] == "Asia/Kolkata"
    # daylight saving: a repeated hour is its first occurrence
    resp = api.post(
        f"/api/campaigns/{cid}/schedule",
        json={"at": "2031-10-26T02:30", "timezone": "Europe/Berlin"},
    )
    assert resp.json["scheduled_at"] == "2031-10-26T00:30:00"


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"at": "2001-01-01T09:00", "timezone": "Europe/Berlin"}, "at", "in the past"),
        ({"at": "2031-03-30T02:30", "timezone": "Europe/Berlin"}, "at", "does not exist"),
        ({"at": "2031-07-01T09:00", "timezone": "Mars/Olympus"}, "timezone", "unknown time zone"),
        ({"at": "2031-07-01T09:00", "timezone": "../../etc/passwd"}, "timezone", "IANA"),
        ({"at": "2031-07-01T09:00", "timezone": 5}, "timezone", "string"),
        ({"at": 1900000000}, "at", "string"),
        ({"at": "1900000000"}, "at", "ISO 8601"),
        ({"at": "2031-07-01"}, "at", "ISO 8601"),
        ({"at": "2031-02-30T09:00"}, "at", "no such date"),
        ({"at": "2031-07-01T09:00", "zone": "UTC"}, "zone", "Extra inputs"),
    ],
)
def test_api_schedule_refuses_bad_input_with_json_and_changes_nothing(
    world, api, body, field, words
):
    cid = _draft(world)
    resp = api.post(f"/api/campaigns/{cid}/schedule", json=body)
    assert resp.status_code == 422, resp.json
    assert resp.json["error"]["field"] == field and words in resp.json["error"]["message"]
    row = _rows(world)[cid]
    assert row.status == "draft" and row.scheduled_at is None and row.schedule_timezone == ""


def test_api_schedule_roles(world, client):
    cid = _draft(world)
    body = {"at": "2031-07-01T09:00", "timezone": "Europe/Berlin"}
    resp = client.post(
        f"/api/campaigns/{cid}/schedule", json=body, headers=_bearer(world, "analyst")
    )
    assert resp.status_code == 403 and _rows(world)[cid].status == "draft"
    resp = client.post(
        f"/api/campaigns/{cid}/schedule", json=body, headers=_bearer(world, "editor")
    )
    assert resp.status_code == 200 and _rows(world)[cid].status == "scheduled"


def _schedule(editor, cid: int, **data):
    return post_form(editor, f"/admin/campaigns/{cid}", f"/admin/campaigns/{cid}/schedule", data)


def _selected_zone(page: str) -> str:
    select = re.search(r'<select name="timezone"[^>]*>(.*?)</select>', page, re.S)
    assert select
    found = re.search(r"<option selected>([^<]+)</option>", select.group(1))
    assert found
    return found.group(1)


def test_admin_schedules_in_a_zone_and_shows_it_back_with_utc(world, editor):
    cid = _draft(world)
    page = editor.get(f"/admin/campaigns/{cid}").text
    assert 'id="schedule-timezone" data-browser-zone' in page  # the browser's zone, by script
    assert _selected_zone(page) == "UTC"  # without script
    resp = _schedule(editor, cid, at="2031-07-01T09:00", timezone="Europe/Berlin")
    assert resp.status_code == 302
    row = _rows(world)[cid]
    assert f"{row.scheduled_at:%Y-%m-%d %H:%M}" == "2031-07-01 07:00"
    assert row.schedule_timezone == "Europe/Berlin"
    page = editor.get(f"/admin/campaigns/{cid}").text
    assert "Scheduled for 2031-07-01 09:00 Europe/Berlin (UTC+02:00) · 2031-07-01 07:00 UTC" in page
    assert 'id="schedule-utc">2031-07-01 07:00 UTC' in page
    assert 'value="2031-07-01T09:00"' in page and _selected_zone(page) == "Europe/Berlin"
    assert "data-browser-zone" not in page  # chosen once: kept
    # unscheduling keeps the zone for next time
    assert _schedule(editor, cid, at="").status_code == 302
    page = editor.get(f"/admin/campaigns/{cid}").text
    assert _rows(world)[cid].status == "draft" and _selected_zone(page) == "Europe/Berlin"


@pytest.mark.parametrize(
    ("at", "zone", "field", "words"),
    [
        ("2001-01-01T09:00", "Europe/Berlin", "at", "is in the past: choose a time in the future"),
        ("2031-02-30T09:00", "Europe/Berlin", "at", "there is no such date and time"),
        ("next tuesday", "Europe/Berlin", "at", "give a date and time such as"),
        ("2031-03-30T02:30", "Europe/Berlin", "at", "does not exist in Europe/Berlin"),
        ("2031-07-01T09:00", "Europe/Nowhere<b>", "timezone", "unknown time zone"),
    ],
)
def test_admin_schedule_errors_come_back_on_the_form_with_the_input(
    world, editor, at, zone, field, words
):
    cid = _draft(world)
    resp = _schedule(editor, cid, at=at, timezone=zone)
    assert resp.status_code == 422
    page = resp.text
    assert 'id="compose"' in page and 'id="schedule-form"' in page  # the composer, not a dead end
    label = re.search(
        rf'<label>[^<]*<(?:input|select)[^>]*name="{field}"[^>]*>.*?</label>', page, re.S
    )
    assert label and 'class="error inline"' in label.group(0)
    assert words in html.unescape(label.group(0))
    assert f'value="{html.escape(at)}"' in page  # what was typed stays
    assert "Nowhere<b>" not in page  # the zone as typed comes back escaped
    if field == "at":
        assert _selected_zone(page) == zone
    row = _rows(world)[cid]
    assert row.status == "draft" and row.scheduled_at is None and row.schedule_timezone == ""


def test_admin_schedule_without_csrf_or_as_analyst_changes_nothing(world, client, accounts_by_role):
    cid = _draft(world)
    data = {"at": "2031-07-01T09:00", "timezone": "Europe/Berlin"}
    session_login(client, world, accounts_by_role["editor"])
    assert client.post(f"/admin/campaigns/{cid}/schedule", data=data).status_code == 400
    token = csrf_from(client.get(f"/admin/campaigns/{cid}").text)
    session_login(client, world, accounts_by_role["analyst"])
    resp = client.post(f"/admin/campaigns/{cid}/schedule", data={**data, "csrf_token": token})
    assert resp.status_code in (400, 403)
    assert _rows(world)[cid].status == "draft"


# -- the subject as a sample subscriber reads it ---------------------------------------------
def test_subjects_are_shown_rendered_on_lists_confirmations_and_stats(world, editor, sink):
    cid = _draft(world)
    other = campaign(world, name="Plain", subject="Plain & simple <news>")
    listing = editor.get("/admin/campaigns").text
    assert SHOWN in listing and "{{" not in listing.split('id="campaign-table"')[1]
    assert "Plain &amp; simple &lt;news&gt;" in listing
    page = editor.get(f"/admin/campaigns/{cid}").text
    confirm = re.search(r'data-confirm="Send [^"]*"', page)
    assert confirm and SHOWN in confirm.group(0)
    campaigns.start(world, other)
    drain(world)
    wait_status(world, other)
    stats = editor.get(f"/admin/campaigns/{other}/stats").text
    assert "“Plain &amp; simple &lt;news&gt;” to news" in stats
    # a new version of the subject is shown at once (the rendering is kept per version)
    campaigns.update(world, cid, subject="Hello {{ subscriber.email }}")
    assert "Hello someone@example.org" in editor.get("/admin/campaigns").text


def test_a_subject_that_does_not_render_is_shown_as_written_marked_and_escaped(world, editor):
    cid = _draft(world)
    raw = "<img src=x onerror=alert(1)> {{ subscriber.name"
    with world.db.session() as s:  # stored before a stricter check, say
        s.execute(update(Campaign).where(Campaign.id == cid).values(subject=raw))
    listing = editor.get("/admin/campaigns").text
    assert "<img src=x" not in listing
    assert (
        '<span class="raw-subject" data-raw-subject>&lt;img src=x onerror=alert(1)&gt; {{ subscriber.name</span>'
        in listing
    )
    assert "(as written: it does not render)" in listing
    stats = editor.get(f"/admin/campaigns/{cid}/stats").text
    assert "data-raw-subject" in stats and "<img src=x" not in stats


def test_the_subscriber_page_shows_the_subjects_of_their_mail_rendered(
    world, client, accounts_by_role, sink
):
    cid = _draft(world)
    campaigns.start(world, cid)
    drain(world)
    wait_status(world, cid)
    session_login(client, world, accounts_by_role["admin"])
    with world.db.session() as s:
        sid = s.scalar(select(Subscriber.id).where(Subscriber.email == "p1@example.org"))
    page = client.get(f"/admin/subscribers/{sid}").text
    deliveries = page.split("{{ subscriber.name }}")
    assert len(deliveries) == 1, "the subject's template code is on the page"
    assert SHOWN in page
