"""Bulk actions on the subscriber search: add the ticked people to a list, unsubscribe them,
download them as CSV; each audited once, CSRF-protected, role-checked, bad selections refused
with nothing changed, and hundreds of people at once."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import func, select

from listmgr.models import AuditLog, ConsentEvent, Membership, Outbox, Subscriber, Suppression
from listmgr.services import lists
from listmgr.services.subscriptions import Origin
from tests.admin_support import accounts_by_role, csrf_from, session_login  # noqa: F401
from tests.campaign_support import person

ORIGIN = Origin(source="test", actor="test")


@pytest.fixture
def people(rt):
    lists.create(rt, slug="news", name="News", postal_address="1 Main St")
    lists.create(rt, slug="offers", name="Offers", postal_address="1 Main St")
    return [
        person(rt, email, ["news"], name=name, consent="paper form", origin=ORIGIN)
        for email, name in [
            ("ada@example.org", '=HYPERLINK("http://x")'),
            ("alan@example.org", "Alan Turing"),
            ("grace@example.org", "Grace Hopper"),
        ]
    ]


def _signed_in(client, rt, accounts_by_role, role="owner"):
    session_login(client, rt, accounts_by_role[role])
    return client


def _token(client) -> str:
    return csrf_from(client.get("/admin/subscribers").text)


def _post(client, action, ids, **data):
    return client.post(
        f"/admin/subscribers/bulk/{action}",
        data={"ids": [str(i) for i in ids], "csrf_token": _token(client), **data},
    )


def _status(rt, sid, slug):
    from listmgr.models import MailingList

    with rt.db.session() as s:
        return s.scalar(
            select(Membership.status)
            .join(MailingList, MailingList.id == Membership.list_id)
            .where(Membership.subscriber_id == sid, MailingList.slug == slug)
        )


def _count(rt, column, *where):
    with rt.db.session() as s:
        return s.scalar(select(func.count(column)).where(*where))


def _audits(rt, action):
    with rt.db.session() as s:
        return list(s.scalars(select(AuditLog).where(AuditLog.action == action)))


def test_page_offers_checkboxes_and_a_select_all_box_to_admins(
    client, rt, accounts_by_role, people
):
    page = _signed_in(client, rt, accounts_by_role).get("/admin/subscribers").text
    assert page.count('name="ids"') == 3
    assert 'data-check-all="ids"' in page
    assert 'id="bulk-add"' in page and 'id="bulk-export"' in page
    assert "/admin/subscribers/bulk/unsubscribe" in page


def test_add_the_ticked_people_to_a_list_as_confirmed(client, rt, accounts_by_role, people):
    owner = _signed_in(client, rt, accounts_by_role)
    resp = _post(
        owner, "add", people[:2], to_list="offers", status="confirmed", consent="trade fair 2026"
    )
    assert resp.status_code == 302
    assert [_status(rt, sid, "offers") for sid in people] == ["confirmed", "confirmed", None]
    assert "Added 2 of 2 to offers." in owner.get(resp.headers["Location"]).text
    with rt.db.session() as s:
        events = list(s.scalars(select(ConsentEvent).where(ConsentEvent.kind == "added")))
    offers = [e for e in events if e.wording == "trade fair 2026"]
    assert sorted(e.subscriber_id for e in offers) == sorted(people[:2])
    assert all(e.actor == "owner@staff.example.org" for e in offers)
    (entry,) = _audits(rt, "subscribers.add_to_list")
    assert entry.detail["added"] == 2 and sorted(entry.detail["ids"]) == sorted(people[:2])
    # Again, with one more: the two already on it stay as they are.
    resp = _post(owner, "add", people, to_list="offers", status="confirmed", consent="again")
    text = owner.get(resp.headers["Location"]).text
    assert "Added 1 of 3 to offers. 2 were already on it." in text
    assert len(_audits(rt, "subscribers.add_to_list")) == 2


def test_add_as_pending_mails_a_confirmation_link_to_each(client, rt, accounts_by_role, people):
    owner = _signed_in(client, rt, accounts_by_role)
    before = _count(rt, Outbox.id, Outbox.kind == "confirm")
    resp = _post(owner, "add", people, to_list="offers", status="pending")
    assert resp.status_code == 302
    assert {_status(rt, sid, "offers") for sid in people} == {"pending"}
    assert _count(rt, Outbox.id, Outbox.kind == "confirm") == before + 3


def test_suppressed_people_and_leavers_are_not_added_back(client, rt, accounts_by_role, people):
    owner = _signed_in(client, rt, accounts_by_role)
    assert _post(owner, "unsubscribe", [people[0]], from_list="*").status_code == 302
    assert _post(owner, "unsubscribe", [people[1]], from_list="news").status_code == 302
    resp = _post(owner, "add", people, to_list="news", status="confirmed", consent="re-added")
    text = owner.get(resp.headers["Location"]).text
    assert "Added 0 of 3 to news. 1 were already on it. 2 were not added back" in text
    assert _status(rt, people[0], "news") == "unsubscribed"
    assert _status(rt, people[1], "news") == "unsubscribed"


def test_unsubscribe_the_ticked_people_from_one_list_or_all(client, rt, accounts_by_role, people):
    owner = _signed_in(client, rt, accounts_by_role)
    resp = _post(owner, "unsubscribe", people[:2], from_list="news", back="q=a&status=confirmed")
    assert resp.status_code == 302
    assert resp.headers["Location"].endswith("/admin/subscribers?q=a&status=confirmed")
    assert [_status(rt, sid, "news") for sid in people] == [
        "unsubscribed",
        "unsubscribed",
        "confirmed",
    ]
    assert _count(rt, ConsentEvent.id, ConsentEvent.kind == "unsubscribe") == 2
    assert _count(rt, Suppression.id) == 0
    resp = _post(owner, "unsubscribe", people, from_list="*")
    assert _status(rt, people[2], "news") == "unsubscribed"
    assert _count(rt, Suppression.id) == 3
    assert _count(rt, ConsentEvent.id, ConsentEvent.kind == "unsubscribe_all") >= 3
    assert [len(_audits(rt, "subscribers.unsubscribe"))] == [2]


def test_export_the_ticked_people_as_csv_audited_once(client, rt, accounts_by_role, people):
    admin = _signed_in(client, rt, accounts_by_role, "admin")
    resp = _post(admin, "export", [people[2], people[0]])
    assert resp.status_code == 200
    assert resp.mimetype == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    table = list(csv.DictReader(io.StringIO(resp.text)))
    assert [r["email"] for r in table] == ["ada@example.org", "grace@example.org"]
    assert table[0]["lists"] == "news:confirmed"
    assert table[0]["name"].startswith("'=")  # a spreadsheet must not run it
    (entry,) = _audits(rt, "people.export")
    assert entry.detail["subscribers"] == 2


@pytest.mark.parametrize(
    "ids, message",
    [
        ([], "Choose at least one subscriber"),
        (["abc"], "is not a subscriber id"),
        (["-1"], "is not a subscriber id"),
        (["1e3"], "is not a subscriber id"),
        (["\u0661"], "is not a subscriber id"),  # an Arabic-Indic digit one
        (["99999999999"], "is not a subscriber id"),
    ],
)
@pytest.mark.parametrize("action", ["add", "unsubscribe", "export"])
def test_bad_selections_are_refused_and_change_nothing(
    client, rt, accounts_by_role, people, ids, message, action
):
    owner = _signed_in(client, rt, accounts_by_role)
    resp = _post(
        owner, action, ids, to_list="offers", status="confirmed", consent="x", from_list="*"
    )
    assert resp.status_code == 422
    assert message in resp.text
    assert _count(rt, Suppression.id) == 0
    assert [_status(rt, sid, "offers") for sid in people] == [None] * 3
    assert _audits(rt, "people.export") == []


@pytest.mark.parametrize("action", ["add", "unsubscribe", "export"])
def test_unknown_ids_among_real_ones_change_nothing(client, rt, accounts_by_role, people, action):
    owner = _signed_in(client, rt, accounts_by_role)
    resp = _post(
        owner,
        action,
        [*people, 424242],
        to_list="offers",
        status="confirmed",
        consent="x",
        from_list="*",
    )
    assert resp.status_code == 404
    assert "1 of the chosen subscribers do not exist" in resp.text
    assert _count(rt, Suppression.id) == 0
    assert [_status(rt, sid, "offers") for sid in people] == [None] * 3
    assert [_status(rt, sid, "news") for sid in people] == ["confirmed"] * 3
    assert _audits(rt, "people.export") == []
    assert _audits(rt, "subscribers.add_to_list") == _audits(rt, "subscribers.unsubscribe") == []


@pytest.mark.parametrize(
    "data, message",
    [
        ({"to_list": "", "status": "confirmed", "consent": "x"}, "Choose the list"),
        ({"to_list": "nope", "status": "confirmed", "consent": "x"}, "no list called"),
        ({"to_list": "offers", "status": "confirmed", "consent": " "}, "consent basis"),
        ({"to_list": "offers", "status": "vip", "consent": "x"}, "status must be"),
    ],
)
def test_add_needs_a_list_a_status_and_a_consent_basis(
    client, rt, accounts_by_role, people, data, message
):
    owner = _signed_in(client, rt, accounts_by_role)
    resp = _post(owner, "add", people, **data)
    assert resp.status_code in (404, 422)
    assert message in resp.text
    assert [_status(rt, sid, "offers") for sid in people] == [None] * 3


def test_unsubscribe_needs_a_choice_of_list(client, rt, accounts_by_role, people):
    owner = _signed_in(client, rt, accounts_by_role)
    for choice, code in (("", 422), ("nope", 404)):
        resp = _post(owner, "unsubscribe", people, from_list=choice)
        assert resp.status_code == code
    assert [_status(rt, sid, "news") for sid in people] == ["confirmed"] * 3


@pytest.mark.parametrize("action", ["add", "unsubscribe", "export"])
def test_bulk_actions_need_the_form_token(client, rt, accounts_by_role, people, action):
    owner = _signed_in(client, rt, accounts_by_role)
    resp = owner.post(
        f"/admin/subscribers/bulk/{action}",
        data={"ids": [str(i) for i in people], "to_list": "offers", "consent": "x"},
        headers={"Accept": "text/html"},
    )
    assert resp.status_code == 400
    assert "form expired" in resp.text
    assert [_status(rt, sid, "offers") for sid in people] == [None] * 3
    assert _audits(rt, "people.export") == []


@pytest.mark.parametrize(
    "role, action, allowed",
    [
        ("analyst", "add", False),
        ("editor", "add", False),
        ("editor", "unsubscribe", False),
        ("editor", "export", False),
        ("analyst", "export", False),
        ("admin", "add", True),
        ("admin", "export", True),
    ],
)
def test_bulk_actions_follow_the_roles(client, rt, accounts_by_role, people, role, action, allowed):
    user = _signed_in(client, rt, accounts_by_role, role)
    token = csrf_from(user.get("/admin/").text)
    resp = user.post(
        f"/admin/subscribers/bulk/{action}",
        data={
            "ids": [str(i) for i in people],
            "to_list": "offers",
            "status": "confirmed",
            "consent": "x",
            "csrf_token": token,
        },
    )
    assert resp.status_code == (302 if action == "add" else 200) if allowed else 403
    if not allowed:
        assert [_status(rt, sid, "offers") for sid in people] == [None] * 3
        assert _audits(rt, "people.export") == []


def test_an_editor_sees_no_checkboxes(client, rt, accounts_by_role, people):
    page = _signed_in(client, rt, accounts_by_role, "editor").get("/admin/subscribers").text
    assert 'name="ids"' not in page and "bulk-form" not in page


def test_the_way_back_stays_on_the_subscriber_search(client, rt, accounts_by_role, people):
    owner = _signed_in(client, rt, accounts_by_role)
    resp = _post(owner, "unsubscribe", people[:1], from_list="news", back="//evil.example/x")
    location = resp.headers["Location"]
    assert location.startswith("/admin/subscribers")
    assert "evil.example/" not in location.split("?")[0]


def test_hundreds_of_people_at_once(client, rt, accounts_by_role, people):
    with rt.db.session() as s:
        rows = [
            Subscriber(
                email=f"p{i}@bulk.example.org", email_hash=rt.email_hash(f"p{i}@bulk.example.org")
            )
            for i in range(1200)
        ]
        s.add_all(rows)
        s.flush()
        ids = [r.id for r in rows]
    owner = _signed_in(client, rt, accounts_by_role)
    resp = _post(owner, "add", ids, to_list="offers", status="confirmed", consent="bulk")
    assert resp.status_code == 302
    assert _count(rt, Membership.id, Membership.subscriber_id.in_(ids[:900])) == 900
    assert _count(rt, ConsentEvent.id, ConsentEvent.wording == "bulk") == 1200
    resp = _post(owner, "export", ids)
    assert len(list(csv.DictReader(io.StringIO(resp.text)))) == 1200
    resp = _post(owner, "unsubscribe", ids, from_list="offers")
    assert "Unsubscribed 1200 of 1200 from offers." in owner.get(resp.headers["Location"]).text
    assert len(_audits(rt, "subscribers.unsubscribe")) == 1
