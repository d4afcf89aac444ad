"""Data rights: the export holds everything about the person; erasure leaves no trace of them in
any table but a keyed hash on the suppression list, and a fresh sign-up still works."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from listmgr.models import (
    AuditLog,
    Campaign,
    ConsentEvent,
    Delivery,
    DevMail,
    Engagement,
    ImportJob,
    InboundMessage,
    Membership,
    Repermission,
    Segment,
    SQLModel,
    Subscriber,
    Suppression,
    utcnow,
)
from listmgr.services import accounts, imports
from tests.conftest import drain
from tests.helpers import link_with, path_of
from tests.profile_support import define_everything, make_list

EMAIL = "zebulon.quixote@example.org"
NAME = "Zebulon Quixote"
TRACES = (EMAIL, "zebulon", "quixote", "ZebBrowser", "Zebster")
# Where the export shows the rows each table holds about the person.
SECTIONS = {
    "subscriber": "subscriber",
    "membership": "memberships",
    "subscriber_interest": "interests",
    "subscriber_field_value": "fields",  # the database's copy of them, a row per value or item
    "consent_event": "consent_history",
    "repermission": "repermission_requests",
    "activity_event": "activity",
    "delivery": "deliveries",
    "engagement": "engagement",
    "inbound_message": "inbound_messages",
    "outbox": "transactional_mail",
    "dev_mail": "captured_mail",
    "suppression": "suppression",
    "audit_log": "access_log",
}


def _confirm_latest(rt, client, sink, count: int) -> None:
    drain(rt)
    mails = sink.wait_for(count)
    resp = client.post(path_of(link_with(mails[count - 1].message, "/confirm/")))
    assert resp.status_code == 200, resp.data


def _data_link(rt, client, sink, sid: int, action: str) -> str:
    """The person asks, from their preference link, for the single-use link mailed to them."""
    sent = len(sink.messages)
    resp = client.post(f"/p/{rt.tokens.manage(sid)}/{action}")
    assert resp.status_code == 200
    drain(rt)
    mail = sink.wait_for(sent + 1)[sent]
    assert mail.rcpt_tos == [EMAIL]
    return path_of(link_with(mail.message, f"/{action}"))


def _person(rt, api, client, sink) -> int:
    """Someone with a row in every table that can hold one, and a bystander beside them."""
    define_everything(rt)
    news = make_list(rt, "news", form_fields=["nickname", "topics"], form_interests=["python"])
    make_list(rt, "deals", opt_in_levels=["weekly"])
    resp = client.post(
        "/subscribe/news",
        data={
            "email": "Zebulon.Quixote@Example.org",
            "name": NAME,
            "field_nickname": "Zebster",
            "field_topics": "news",
            "interests": ["python"],
        },
        headers={"User-Agent": "ZebBrowser/2.0"},
    )
    assert resp.status_code == 200
    _confirm_latest(rt, client, sink, 1)
    with rt.db.session() as s:
        sid = s.scalar(select(Subscriber.id).where(Subscriber.email == EMAIL))
    resp = api.patch(
        f"/api/subscribers/{sid}",
        json={
            "fields": {"account_id": "Z-1"},
            "consents": {"profiling": True, "tracking": True},
            "consent": "asked by phone",
        },
    )
    assert resp.status_code == 200
    token = rt.tokens.manage(sid)
    resp = client.post(
        f"/p/{token}",
        data={
            "action": "save",
            "profile_form": "1",
            "lists": ["news", "deals"],
            "pause": "30",
            "field_nickname": "Zebster",
            "field_topics": "news",
            "interests": ["python", "rust"],
            "consent_profiling": "1",
            "consent_tracking": "1",
        },
        headers={"User-Agent": "ZebBrowser"},
    )
    assert resp.status_code == 200
    drain(rt)
    assert api.post(
        "/api/events",
        json={
            "events": [
                {"email": EMAIL, "type": "document_downloaded", "properties": {"doc": "guide.pdf"}},
                {"subscriber_id": sid, "type": "product_viewed"},
            ]
        },
    ).json == {"kept": 2, "dropped": 0}
    bystander = api.post(
        "/api/subscribers",
        json={
            "email": "bo@example.org",
            "name": "Bo",
            "lists": ["news"],
            "consent": "form",
            "fields": {"nickname": "Bo"},
            "interests": ["python"],
            "consents": {"profiling": True},
        },
    ).json["id"]
    assert api.post("/api/events", json={"subscriber_id": bystander, "type": "x"}).json["kept"] == 1
    raw_reply = (
        f"From: {NAME} <{EMAIL}>\r\nTo: news@lists.example.test\r\n"
        "Subject: Re: Spring\r\n\r\nThank you!\r\n"
    ).encode()
    raw_bounce = (
        "From: MAILER-DAEMON@mx.example.net\r\nSubject: Undelivered\r\n\r\n"
        f"Final-Recipient: rfc822; {EMAIL.upper()}\r\n"
    ).encode()
    with rt.db.session() as s:
        spring = Campaign(name="Spring", subject="Spring news", lists=["news"])
        summer = Campaign(name="Summer", subject="Summer news", lists=["news"])
        s.add_all([spring, summer])
        s.flush()
        s.add_all(
            [
                Delivery(
                    campaign_id=spring.id,
                    subscriber_id=sid,
                    list_id=news,
                    status="sent",
                    sent_at=utcnow(),
                    error=f"250 2.0.0 <{EMAIL}> queued",
                ),
                Delivery(
                    campaign_id=spring.id,
                    subscriber_id=bystander,
                    list_id=news,
                    status="sent",
                    sent_at=utcnow(),
                ),
                Delivery(campaign_id=summer.id, subscriber_id=sid, list_id=news, status="queued"),
                Engagement(
                    campaign_id=spring.id,
                    subscriber_id=sid,
                    kind="click",
                    url="https://example.org/spring",
                ),
                Engagement(campaign_id=spring.id, subscriber_id=bystander, kind="open"),
                InboundMessage(
                    sha256="a" * 64,
                    message_id="<reply-1@example.org>",
                    envelope_from=EMAIL,
                    raw=raw_reply,
                    size=len(raw_reply),
                    subscriber_id=sid,
                    kind="other",
                    evidence={"from": EMAIL},
                ),
                InboundMessage(
                    sha256="b" * 64,
                    envelope_from="",
                    raw=raw_bounce,
                    size=len(raw_bounce),
                    kind="bounce",
                ),
                InboundMessage(
                    sha256="c" * 64, envelope_from="bo@example.org", raw=b"Hi from Bo", kind="other"
                ),
                DevMail(
                    mail_from="news@lists.example.test",
                    rcpt_to=EMAIL,
                    subject="Spring news",
                    raw=f"To: {NAME} <{EMAIL}>\r\n\r\nHello".encode(),
                ),
                AuditLog(
                    actor="admin@example.org",
                    action="people.import",
                    detail={"rejected": [EMAIL.upper(), "other@example.org"]},
                ),
                ImportJob(filename="contacts.csv", report=f"row 3: {EMAIL}: duplicate\nrow 4: ok"),
                Segment(name="Just one", rules={"field": "email", "op": "eq", "value": EMAIL}),
                Suppression(email_hash=rt.email_hash(EMAIL), email=EMAIL, reason="complaint"),
                Repermission(
                    subscriber_id=sid,
                    list_id=news,
                    flag="soft_bounce",
                    deadline=utcnow(),
                    confirmed_at=utcnow(),
                    ended_at=utcnow(),
                    created_by="deliverability@staff.example.org",
                ),
                Repermission(subscriber_id=bystander, flag="role", deadline=utcnow()),
            ]
        )
    assert api.get(f"/api/subscribers/{sid}").status_code == 200
    return int(sid)


def _rows(rt):
    with rt.db.session() as s:
        return {
            t.name: [dict(r) for r in s.execute(select(t)).mappings()]
            for t in SQLModel.metadata.sorted_tables
        }


def _theirs(rt, sid: int) -> dict[str, list[dict]]:
    """The rows keyed to the person, table by table."""
    digest = rt.email_hash(EMAIL)
    out: dict[str, list[dict]] = {}
    for table, rows in _rows(rt).items():
        mine = [
            r
            for r in rows
            if r.get("subscriber_id") == sid
            or (table == "subscriber" and r["id"] == sid)
            or r.get("email_hash") == digest
            or EMAIL
            in str(r.get("to_email", ""))
            + str(r.get("rcpt_to", ""))
            + str(r.get("envelope_from", ""))
            + _text(r.get("raw", b"")).lower()
            or (
                table == "audit_log"
                and r["target_type"] == "subscriber"
                and r["target_id"] == str(sid)
            )
        ]
        if mine:
            out[table] = mine
    return out


def _text(value) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("latin-1")
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _traces(rt) -> list[tuple[str, str, str]]:
    """Every (table, column, trace) where something of the person still shows."""
    found = []
    for table, rows in _rows(rt).items():
        for row in rows:
            for column, value in row.items():
                text = _text(value).lower()
                found += [(table, column, t) for t in TRACES if t.lower() in text]
    return found


def test_export_holds_everything_about_the_person(rt, api, client, sink):
    sid = _person(rt, api, client, sink)
    resp = client.post(_data_link(rt, client, sink, sid, "export"))
    assert resp.status_code == 200 and "attachment" in resp.headers["Content-Disposition"]
    data = resp.json
    theirs = _theirs(rt, sid)
    assert {
        "subscriber",
        "membership",
        "subscriber_interest",
        "consent_event",
        "activity_event",
        "delivery",
        "engagement",
        "inbound_message",
        "outbox",
        "dev_mail",
        "suppression",
        "repermission",
    } <= set(theirs)
    for table, rows in theirs.items():
        assert table in SECTIONS, f"{table} holds rows about the person; the export lacks it"
        section = data[SECTIONS[table]]
        if table in ("subscriber", "suppression", "subscriber_field_value"):
            assert section, table
        elif table != "audit_log":  # the export itself is audited after it is read
            assert len(section) == len(rows), (table, section, rows)

    assert data["subscriber"]["email"] == EMAIL and data["subscriber"]["name"] == NAME
    assert data["subscriber"]["consent_profiling"] is True
    assert data["subscriber"]["paused_until"]
    assert data["fields"] == {"nickname": "Zebster", "topics": ["news"], "account_id": "Z-1"}
    assert {i["key"] for i in data["interests"]} == {"python", "rust"}
    members = {m["list"]: m for m in data["memberships"]}
    assert members["news"]["status"] == "confirmed" and members["news"]["confirmed_at"]
    assert members["deals"]["status"] == "pending"
    kinds = [e["kind"] for e in data["consent_history"]]
    assert kinds[:2] == ["subscribe", "confirm"] and "consent_profiling" in kinds
    assert data["consent_history"][0]["user_agent"] == "ZebBrowser/2.0"
    assert data["consent_history"][0]["ip"] == "127.0.0.1"
    # sign-up and confirmation name the version of the notice they were given under
    assert [e["privacy_notice_version"] for e in data["consent_history"][:2]] == [1, 1]
    [asked] = data["repermission_requests"]
    assert asked["list"] == "news" and asked["reason"] == "soft_bounce"
    assert asked["confirmed_at"] and asked["asked_by"] == "deliverability@staff.example.org"
    assert {a["type"] for a in data["activity"]} == {"document_downloaded", "product_viewed"}
    assert {(d["campaign"], d["subject"], d["status"]) for d in data["deliveries"]} == {
        ("Spring", "Spring news", "sent"),
        ("Summer", "Summer news", "queued"),
    }
    assert data["engagement"][0]["url"] == "https://example.org/spring"
    assert {m["message_id"] for m in data["inbound_messages"]} == {"<reply-1@example.org>", ""}
    assert "raw" not in data["inbound_messages"][0]
    assert {m["kind"] for m in data["transactional_mail"]} == {"confirm", "data_link"}
    assert data["suppression"]["reason"] == "complaint"
    assert "bo@example.org" not in json.dumps(data)

    # The admin's export is the same document, and the access is audited.
    admin = api.get(f"/api/subscribers/{sid}/export")
    assert admin.status_code == 200
    assert admin.json["fields"] == data["fields"]
    assert len(admin.json["consent_history"]) == len(data["consent_history"])
    assert len(admin.json["access_log"]) >= 1
    with rt.db.session() as s:
        audited = list(
            s.scalars(
                select(AuditLog.actor).where(
                    AuditLog.action == "people.export", AuditLog.target_id == str(sid)
                )
            )
        )
    assert audited[0] == "subscriber" and len(audited) == 2

    # The admin page's history: the same picture with only the latest activity.
    from listmgr.services import privacy

    recent = privacy.history(rt, sid, recent=1)
    assert [a["type"] for a in recent["activity"]] == [data["activity"][-1]["type"]]
    assert recent["memberships"] == data["memberships"]


def test_erasure_leaves_nothing_and_a_fresh_sign_up_works(rt, api, client, sink):
    sid = _person(rt, api, client, sink)
    bystander_before = _theirs_of(rt, "bo@example.org")
    assert _traces(rt)
    token = rt.tokens.manage(sid)
    link = _data_link(rt, client, sink, sid, "erase")
    page = client.get(link)
    assert page.status_code == 200 and EMAIL in page.get_data(as_text=True)
    assert _traces(rt)  # looking changes nothing
    resp = client.post(link, data={"confirm": "yes"})
    assert resp.status_code == 200 and b"erased" in resp.data

    assert _traces(rt) == []
    digest = rt.email_hash(EMAIL)
    with rt.db.session() as s:
        [kept] = s.scalars(select(Suppression).where(Suppression.email_hash == digest))
        assert kept.email is None and kept.reason == "erased"
        [erase] = s.scalars(select(ConsentEvent).where(ConsentEvent.kind == "erase"))
        assert erase.subscriber_id is None and erase.detail == {"email_hash": digest}
        assert erase.ip == "" and erase.user_agent == ""
        ledger = {
            d.status for d in s.scalars(select(Delivery).where(Delivery.subscriber_id.is_(None)))
        }
        assert ledger == {"sent", "skipped"}  # counts kept, nobody left to mail
        assert s.scalar(select(ImportJob.report)) == "row 3: [erased]: duplicate\nrow 4: ok"
        assert s.scalar(select(AuditLog.detail).where(AuditLog.action == "people.import")) == {
            "rejected": ["[erased]", "other@example.org"]
        }
    assert _theirs_of(rt, "bo@example.org") == bystander_before

    # The old links find nothing; repeating the erasure is harmless.
    assert client.get(f"/p/{token}").status_code == 400
    assert client.post(link, data={"confirm": "yes"}).status_code == 400
    assert client.post(f"/p/{token}/erase", data={"confirm": "yes"}).status_code == 400
    assert _traces(rt) == []

    # Marketers cannot add the address back...
    resp = api.post(
        "/api/subscribers", json={"email": EMAIL, "lists": ["news"], "consent": "bought list"}
    )
    assert resp.status_code == 409 and resp.json["error"]["code"] == "suppressed"
    assert api.get(f"/api/subscribers?email={EMAIL}").json["items"] == []

    # ...but the person can: a fresh explicit sign-up goes through double opt-in again.
    sent = len(sink.messages)
    resp = client.post(
        "/subscribe/news",
        data={"email": EMAIL, "name": NAME},
        headers={"User-Agent": "ZebBrowser/3.0"},
    )
    assert resp.status_code == 200
    _confirm_latest(rt, client, sink, sent + 1)
    with rt.db.session() as s:
        sub = s.scalar(select(Subscriber).where(Subscriber.email == EMAIL))
        assert sub.id != sid
        assert (
            s.scalar(select(Membership.status).where(Membership.subscriber_id == sub.id))
            == "confirmed"
        )
        events = list(
            s.scalars(
                select(ConsentEvent)
                .where(ConsentEvent.subscriber_id == sub.id)
                .order_by(ConsentEvent.id)
            )
        )
        assert [e.kind for e in events] == ["subscribe", "confirm"]
        assert events[0].user_agent == "ZebBrowser/3.0"
        assert events[1].detail["lifted_suppression"] == "erased"
        assert s.scalar(select(Suppression).where(Suppression.email_hash == digest)) is None


def _theirs_of(rt, email: str):
    with rt.db.session() as s:
        sid = s.scalar(select(Subscriber.id).where(Subscriber.email == email))
    rows = {t: sorted(map(repr, r)) for t, r in _theirs_by_id(rt, sid).items()}
    return rows


def _theirs_by_id(rt, sid: int):
    return {
        table: [
            r
            for r in rows
            if r.get("subscriber_id") == sid or (table == "subscriber" and r["id"] == sid)
        ]
        for table, rows in _rows(rt).items()
    }


def test_admin_export_and_erase_through_the_api(rt, api, client, sink):
    sid = _person(rt, api, client, sink)
    editor = accounts.create_token(rt, role="editor", name="e")
    headers = {"Authorization": f"Bearer {editor}"}
    assert client.get(f"/api/subscribers/{sid}/export", headers=headers).status_code == 403
    assert client.post(f"/api/subscribers/{sid}/erase", headers=headers).status_code == 403
    assert _traces(rt)

    resp = api.post(f"/api/subscribers/{sid}/erase")
    assert resp.status_code == 200 and resp.json["email_hash"] == rt.email_hash(EMAIL)
    assert _traces(rt) == []
    assert api.get(f"/api/subscribers/{sid}").status_code == 404
    assert api.post(f"/api/subscribers/{sid}/erase").status_code == 404
    assert api.get(f"/api/subscribers/{sid}/export").status_code == 404
    with rt.db.session() as s:
        [entry] = s.scalars(select(AuditLog).where(AuditLog.action == "subscriber.erase"))
        assert entry.target_id == str(sid) and entry.actor != "subscriber"
        assert entry.detail["email_hash"] == rt.email_hash(EMAIL)


@pytest.mark.parametrize("route", ["/p/{token}/export", "/p/{token}/erase"])
def test_tampered_manage_links_are_refused(rt, api, client, route):
    make_list(rt)
    sid = api.post("/api/subscribers", json={"email": "a@example.org"}).json["id"]
    token = rt.tokens.manage(sid)
    resp = (
        client.post(route.format(token=token[:-2] + "xx"), data={"confirm": "yes"})
        if route.endswith("erase")
        else client.get(route.format(token=token[:-2] + "xx"))
    )
    assert resp.status_code == 400
    assert api.get(f"/api/subscribers/{sid}").status_code == 200


def test_erasure_finds_an_international_address_in_unattributed_mail(rt, api):
    make_list(rt)
    address = "zoë.quixote@example.org"
    sid = api.post(
        "/api/subscribers", json={"email": address, "lists": ["news"], "consent": "form"}
    ).json["id"]
    raw = "Final-Recipient: rfc822; ZOë.QUIXOTE@EXAMPLE.ORG\r\n".encode()
    with rt.db.session() as s:
        s.add(InboundMessage(sha256="d" * 64, raw=raw, size=len(raw), kind="bounce"))
        s.add(InboundMessage(sha256="e" * 64, raw=b"\xff\xfe not text at all", size=16))
    assert api.post(f"/api/subscribers/{sid}/erase").status_code == 200
    with rt.db.session() as s:
        assert [m.sha256[0] for m in s.scalars(select(InboundMessage))] == ["e"]
    with rt.db.session() as s:
        assert not any(
            "quixote" in _text(v).lower()
            for t in SQLModel.metadata.sorted_tables
            for row in s.execute(select(t))
            for v in row
        )


def test_an_erased_persons_links_never_reach_the_next_subscriber(rt, api, client, tmp_path):
    make_list(rt)
    first = api.post(
        "/api/subscribers",
        json={"email": "first@example.org", "lists": ["news"], "consent": "form"},
    ).json["id"]
    news = api.get("/api/lists/news").json["id"]
    manage, unsubscribe = rt.tokens.manage(first), rt.tokens.unsubscribe(first, news)
    assert api.post(f"/api/subscribers/{first}/erase").status_code == 200
    # The newest subscriber was erased: the next one must not get the same id, or the erased
    # person's old links would open the newcomer's data and unsubscribe them.
    after = api.post(
        "/api/subscribers", json={"email": "next@example.org", "lists": ["news"], "consent": "form"}
    ).json["id"]
    assert after != first
    assert client.get(f"/p/{manage}/export").status_code == 400
    assert client.post(f"/u/{unsubscribe}").status_code == 200
    resp = api.get("/api/subscribers?email=next@example.org").json["items"]
    assert resp[0]["lists"] == [{"slug": "news", "status": "confirmed"}]

    # An import writes its ids itself: it goes on after every id ever given, too.
    assert api.post(f"/api/subscribers/{after}/erase").status_code == 200
    path = tmp_path / "people.csv"
    path.write_text("email\nimported@example.org\n", encoding="utf-8")
    job = imports.create_job(rt, path=path, list_slug="news", consent="customers", actor="t")
    assert imports.run_job(rt, job).inserted == 1
    imported = api.get("/api/subscribers?email=imported@example.org").json["items"][0]["id"]
    assert imported > after


def test_upgrading_sqlite_keeps_ids_of_people_erased_before(rt, tmp_path):
    if rt.db.dialect != "sqlite":
        pytest.skip("the revision changes SQLite only (PostgreSQL's sequences never reuse ids)")
    import sqlite3

    from alembic import command

    from listmgr import schema

    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(schema.alembic_config(url), "i5e2")
    old = sqlite3.connect(tmp_path / "old.db")
    for sid in (1, 2):
        old.execute(
            "INSERT INTO subscriber (id, email, email_hash, name, fields, source, "
            "consent_profiling, consent_tracking, soft_bounces, created_at, updated_at) "
            "VALUES (?, ?, '', '', '{}', 'form', 0, 0, 0, '2024-01-01', '2024-01-01')",
            (sid, f"p{sid}@example.org"),
        )
    old.execute(
        "INSERT INTO audit_log (at, actor, action, target_type, target_id, ip, detail) "
        "VALUES ('2024-01-01', 'admin', 'subscriber.erase', 'subscriber', '3', '', '{}')"
    )
    old.commit()
    old.close()
    command.upgrade(schema.alembic_config(url), "head")
    new = sqlite3.connect(tmp_path / "old.db")
    new.execute("DELETE FROM subscriber WHERE id = 2")
    new.execute(
        "INSERT INTO subscriber (email, email_hash, name, fields, source, "
        "consent_profiling, consent_tracking, soft_bounces, created_at, updated_at) "
        "VALUES ('n@example.org', '', '', '{}', 'form', 0, 0, 0, '2024-01-01', "
        "'2024-01-01')"
    )
    assert [r[0] for r in new.execute("SELECT id FROM subscriber ORDER BY id")] == [1, 4]
    new.close()


def test_after_erasure_a_single_opt_in_list_still_asks_for_confirmation(rt, api, client, sink):
    make_list(rt, "shop", opt_in="single")
    resp = api.post(
        "/api/subscribers",
        json={
            "email": EMAIL,
            "name": NAME,
            "lists": ["shop"],
            "status": "confirmed",
            "consent": "till receipt",
        },
    )
    assert api.post(f"/api/subscribers/{resp.json['id']}/erase").status_code in (200, 204)
    digest = rt.email_hash(EMAIL)

    resp = client.post(
        "/subscribe/shop", json={"email": EMAIL, "name": NAME, "consent_text": "yes please"}
    )
    assert resp.status_code == 202
    with rt.db.session() as s:  # pending, still suppressed, until the person confirms
        sub = s.scalar(select(Subscriber).where(Subscriber.email == EMAIL))
        assert (
            s.scalar(select(Membership.status).where(Membership.subscriber_id == sub.id))
            == "pending"
        )
        assert (
            s.scalar(select(Suppression.reason).where(Suppression.email_hash == digest)) == "erased"
        )
        [event] = s.scalars(select(ConsentEvent).where(ConsentEvent.subscriber_id == sub.id))
        assert event.detail == {"opt_in": "double", "why": "the address is on the suppression list"}
    _confirm_latest(rt, client, sink, 1)
    with rt.db.session() as s:
        assert (
            s.scalar(select(Membership.status).where(Membership.subscriber_id == sub.id))
            == "confirmed"
        )
        assert s.scalar(select(Suppression).where(Suppression.email_hash == digest)) is None
    # and a later sign-up of someone never suppressed is single opt-in as before
    client.post("/subscribe/shop", json={"email": "plain@example.org"})
    with rt.db.session() as s:
        sid = s.scalar(select(Subscriber.id).where(Subscriber.email == "plain@example.org"))
        assert (
            s.scalar(select(Membership.status).where(Membership.subscriber_id == sid))
            == "confirmed"
        )


@pytest.mark.parametrize("opt_in", ["single", "double"])
def test_a_suppressed_member_still_confirmed_comes_back_by_confirming(
    rt,
    api,
    client,
    sink,
    opt_in,
):
    make_list(rt, "shop", opt_in=opt_in)
    api.post(
        "/api/subscribers",
        json={"email": EMAIL, "lists": ["shop"], "status": "confirmed", "consent": "till receipt"},
    )
    assert api.post("/api/suppression", json={"email": EMAIL}).status_code == 201
    digest = rt.email_hash(EMAIL)

    resp = client.post("/subscribe/shop", json={"email": EMAIL})
    assert resp.status_code == 202
    drain(rt)
    [mail] = sink.wait_for(1)
    assert "/confirm/" in mail.message.get_body(("plain",)).get_content()
    with rt.db.session() as s:  # the membership stays as it was, the suppression too
        assert s.scalar(select(Membership.status)) == "confirmed"
        assert (
            s.scalar(select(Suppression.reason).where(Suppression.email_hash == digest)) == "manual"
        )
    page = client.get(path_of(link_with(mail.message, "/confirm/")))
    assert page.status_code == 200 and "<button" in page.text  # a button to press
    _confirm_latest(rt, client, sink, 1)
    with rt.db.session() as s:
        assert s.scalar(select(Membership.status)) == "confirmed"
        assert s.scalar(select(Suppression).where(Suppression.email_hash == digest)) is None
