"""Erasure leaves nothing: an auditor seeds every table (and the upload folder) with a person's
address and name, through the real entry points where there is one, erases the person, dumps
the whole database and var directory and searches the dump for the address and the name in
every spelling a stored value could carry them (plain, any case, JSON escapes, URL-encoded,
HTML entities, quoted-printable, RFC 2047 Q and B, base64 at any offset and across line breaks,
and every part of every stored message decoded). Nothing may be found, while the mail of others
keeps everything but the person, campaign counts stay, and nothing another message asked for
is lost.

The search below is the auditor's own, written apart from the product's matching code."""

from __future__ import annotations

import base64
import binascii
import contextlib
import email
import html
import io
import json
import quopri
import re
from collections.abc import Iterator
from email.header import Header, decode_header, make_header
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, unquote, unquote_plus

import pytest
from sqlalchemy import inspect, select, text

from listmgr.models import (
    AuditLog,
    Campaign,
    ConsentEvent,
    Delivery,
    DevMail,
    Engagement,
    InboundMessage,
    MailingList,
    Membership,
    Outbox,
    Segment,
    SQLModel,
    Subscriber,
    Suppression,
)
from listmgr.services import erasure, imports, uploads
from tests.campaign_support import wait_status
from tests.conftest import drain

HOOK = {"Authorization": "Bearer inbound-test-secret"}
PEOPLE = [
    ("zoe.angstrom@example.org", "Zoë Ångström"),
    ("quentin.marlowe-fitch@example.org", "Quentin Marlowe-Fitch"),
    ("zoë.ångström@example.org", "Zoë Ångström"),
]
BO = "bo@example.org"
# A longer address ending in the person's: somebody else, never touched.
LOOKALIKE = "mr.{local}"


# -- the auditor's search ------------------------------------------------------------------
def _spellings(value: str) -> set[str]:
    """The ways a stored value can spell one string (compared case-insensitively)."""
    data = value.encode()
    out = {
        value,
        value.upper(),
        value.lower(),
        value.title(),
        quote(value),
        quote(value, safe=""),
        quote_plus(value),
        json.dumps(value)[1:-1],
        value.replace("@", "&#64;"),
        quopri.encodestring(data).decode(),
        base64.b64encode(data).decode(),
        Header(value, "utf-8").encode(),
        "".join(
            c
            if c.isascii() and c.isalnum()
            else "_"
            if c == " "
            else "".join(f"={b:02X}" for b in c.encode())
            for c in value
        ),
    }
    return {s.casefold() for s in out if s}


def _decoded(text_: str, depth: int = 0) -> Iterator[str]:
    """The text, and what each encoding found in it reads as."""
    yield text_
    if depth > 2:
        return
    yield from {unquote(text_), unquote_plus(text_), html.unescape(text_)} - {text_}
    if "=?" in text_:
        for chunk in (
            re.sub(r"\?=\s+=\?", "?==?", text_),
            *re.findall(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=", text_),
        ):
            with contextlib.suppress(Exception):
                yield str(make_header(decode_header(chunk)))
    if "=" in text_:
        qp = quopri.decodestring(text_.encode("utf-8", "surrogateescape")).decode(
            "utf-8", "replace"
        )
        if qp != text_:
            yield from _decoded(qp, depth + 1)
    for blob in re.findall(r"[A-Za-z0-9+/=\r\n]{12,}", text_):
        compact = re.sub(r"\s+", "", blob).rstrip("=")
        for start in range(4):
            body = compact[start:]
            body = body[:-1] if len(body) % 4 == 1 else body + "=" * (-len(body) % 4)
            try:
                data = base64.b64decode(body, validate=True)
            except (binascii.Error, ValueError):
                continue
            for codec in ("utf-8", "latin-1"):
                yield from _decoded(data.decode(codec, "replace"), depth + 1)


def _as_texts(value: Any) -> Iterator[str]:
    if value is None:
        return
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        yield data.decode("utf-8", "replace")
        yield data.decode("latin-1")
        message = email.message_from_bytes(data)
        for part in message.walk():
            for header, content in part.items():
                yield header
                yield from _decoded(str(content))
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                yield payload.decode(part.get_content_charset() or "utf-8", "replace")
                yield payload.decode("latin-1")
        return
    if isinstance(value, (dict, list)):
        yield json.dumps(value)
        yield json.dumps(value, ensure_ascii=False)
        return
    yield str(value)


def _hits(value: Any, needles: set[str], other: str) -> set[str]:
    """The needles the value holds in any spelling (a longer address that merely ends in the
    person's, somebody else's, is left out first)."""
    found: set[str] = set()
    for t in _as_texts(value):
        for view in _decoded(t):
            folded = view.casefold().replace(other, "")
            found |= {n for n in needles if n in folded}
    return found


def _dump(rt) -> Iterator[tuple[str, str, Any]]:
    """Every value of every column of every table (the schema's and alembic's), and every file
    under var_dir."""
    tables = [t.name for t in SQLModel.metadata.sorted_tables] + ["alembic_version"]
    with rt.db.engine.connect() as conn:
        assert set(tables) <= set(inspect(conn).get_table_names())
        for name in tables:
            for row in conn.execute(text(f'SELECT * FROM "{name}"')).mappings():
                for column, value in row.items():
                    yield name, column, value
    for path in Path(rt.settings.var_dir).rglob("*"):
        if path.is_file():
            yield "file", str(path), path.read_bytes()


def _leaks(rt, address: str, name: str) -> list[tuple[str, str, set[str]]]:
    needles = _spellings(address) | _spellings(name)
    other = LOOKALIKE.format(local=address).casefold()
    out = []
    for table, column, value in _dump(rt):
        if table == "subscriber" and column == "name":
            continue  # a namesake's own name (checked apart)
        hits = _hits(value, needles, other)
        if hits:
            out.append((table, column, hits))
    return out


# -- the seeding ---------------------------------------------------------------------------
def _mail(
    *,
    sender: str,
    to: str,
    subject: str,
    text_: str,
    cte: str = "base64",
    html: str | None = None,
    attachment: bytes | None = None,
    forwarded: bytes | None = None,
    msgid: str,
) -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, to, subject
    m["Message-ID"] = f"<{msgid}@mail.example.net>"
    m.set_content(text_, cte=cte)
    if html is not None:
        m.add_alternative(html, subtype="html", cte="quoted-printable")
    if attachment is not None:
        m.add_attachment(
            attachment, maintype="text", subtype="csv", filename="people.csv", cte="base64"
        )
    if forwarded is not None:
        m.add_attachment(email.message_from_bytes(forwarded, policy=SMTP))
    return m.as_bytes(policy=SMTP)


def _seed(rt, api, client, sink, address: str, name: str) -> dict[str, Any]:
    assert (
        api.post(
            "/api/lists", json={"slug": "news", "name": "News", "opt_in": "single"}
        ).status_code
        == 201
    )
    assert (
        api.post("/api/fields", json={"key": "notes", "label": "Notes", "type": "text"}).status_code
        == 201
    )
    sid = api.post(
        "/api/subscribers",
        json={
            "email": address.upper() if address.isascii() else address,
            "name": name,
            "lists": ["news"],
            "status": "confirmed",
            "consent": f"typed in by {name}",
            "fields": {"notes": f"prefers {address}"},
            "consents": {"profiling": True, "tracking": True},
        },
    ).json["id"]
    bo = api.post(
        "/api/subscribers",
        json={
            "email": BO,
            "name": "Bo",
            "lists": ["news"],
            "status": "confirmed",
            "consent": "form",
            "fields": {"notes": f"friend of {name} <{address}>"},
        },
    ).json["id"]
    lookalike = LOOKALIKE.format(local=address)
    other = api.post(
        "/api/subscribers",
        json={
            "email": lookalike,
            "name": name,
            "lists": ["news"],
            "status": "confirmed",
            "consent": "form",
        },
    ).json["id"]
    assert (
        api.post(
            "/api/events",
            json={"email": address, "type": "page_viewed", "properties": {"who": name}},
        ).json["kept"]
        == 1
    )
    # A saved segment picking the person by address, used by a campaign that is sent (its
    # rules are copied into the campaign), and a campaign whose text names them.
    seg = api.post(
        "/api/segments",
        json={
            "name": f"Just {name}",
            "lists": ["news"],
            "rules": {
                "any": [
                    {"field": "email", "op": "eq", "value": address.upper()},
                    {"field": "name", "op": "eq", "value": name},
                ]
            },
        },
    )
    assert seg.status_code == 201, seg.json
    cid = api.post(
        "/api/campaigns",
        json={
            "name": "Spring",
            "subject": "Spring news",
            "lists": ["news"],
            "segment_id": seg.json["id"],
            "html": "<p>Hello {{ subscriber.name }}</p>",
        },
    ).json["id"]
    mails = address.isascii()  # a local part beyond ASCII cannot be mailed (no SMTPUTF8)
    if mails:
        test = api.post(f"/api/campaigns/{cid}/test", json={"to": [address], "email": address})
        assert test.status_code == 200, test.json
        assert api.post(f"/api/campaigns/{cid}/send").status_code == 202
        wait_status(rt, cid)
    api.post(
        "/api/campaigns",
        json={
            "name": "Thanks",
            "subject": f"Thank you, {name}",
            "lists": ["news"],
            "html": f"<p>Winner: {name} (<a href='mailto:{quote(address)}'>mail</a>)</p>",
        },
    )
    # Transactional mail to the person (an outbox row), captured dev mail with the name in an
    # RFC 2047 header and the address in a base64 body.
    if mails:
        assert (
            client.post("/subscribe/news", data={"email": address, "name": name}).status_code == 200
        )
    captured = _mail(
        sender="news@lists.example.test",
        to=f"{name} <{address}>",
        subject=f"Hello {name}",
        text_=f"Dear {name}, {address}",
        msgid="dev1",
    )
    # Inbound mail: the person's own reply, a bounce for them, and Bo's mail that merely names
    # them (subject, base64 text, quoted-printable HTML, a CSV attachment, a forwarded message).
    own = _mail(
        sender=f"{name} <{address}>",
        to="news@lists.example.test",
        subject="Re: Spring",
        text_="Thank you!",
        msgid="own1",
    )
    bounce = (
        f"From: MAILER-DAEMON@mx.example.net\r\nTo: news@lists.example.test\r\n"
        f"Subject: Undelivered\r\nMessage-ID: <dsn1@mx.example.net>\r\n\r\n"
        f"Final-Recipient: rfc822; {address.upper()}\r\n"
    ).encode()
    forwarded = _mail(
        sender=f"{name} <{address}>",
        to=BO,
        subject=f"From {name}",
        text_=f"Cheers, {name}",
        cte="quoted-printable",
        msgid="fwd1",
    )
    mention = _mail(
        sender=f"Bo <{BO}>",
        to="news@lists.example.test",
        subject=f"Re: Spring - {name}",
        text_=f"Hi from Bo. My friend {name} <{address}> wants the news too.\n",
        html=f'<p>Hi from Bo. <a href="https://example.net/?u={quote(address)}">{name}</a>'
        f" &lt;{address.replace('@', '&#64;')}&gt;</p>",
        attachment=f"name,email\r\n{name},{address}\r\nBo,{BO}\r\n".encode(),
        forwarded=forwarded,
        msgid="bo1",
    )
    # Bo's unsubscribe reply naming the person, stored but not yet processed (a lost wake-up):
    # the erasure must not lose what it asks for.
    waiting = _mail(
        sender=f"Bo <{BO}>",
        to="news@lists.example.test",
        subject="unsubscribe",
        text_=f"unsubscribe\n\n-- \nBo, colleague of {name} ({address})\n",
        cte="quoted-printable",
        msgid="bo2",
    )
    for raw in (own, bounce, mention):
        resp = client.post("/hooks/inbound", data=raw, headers=HOOK)
        assert resp.status_code == 202
    drain(rt)
    with rt.db.session() as s:
        news = s.scalar(select(MailingList.id))
        s.add_all(
            [
                DevMail(
                    mail_from="news@lists.example.test",
                    rcpt_to=address,
                    subject=f"Hello {name}",
                    raw=captured,
                ),
                InboundMessage(
                    sha256="f" * 64,
                    message_id="<bo2@mail.example.net>",
                    envelope_from=BO,
                    raw=waiting,
                    size=len(waiting),
                ),
                Engagement(
                    campaign_id=cid,
                    subscriber_id=sid,
                    kind="click",
                    url=f"https://example.net/?u={quote(address)}",
                ),
                AuditLog(
                    actor="admin@example.org",
                    action="api.call",
                    detail={
                        "path": f"/api/subscribers?email={quote(address)}",
                        "q": address.upper(),
                        "note": base64.b64encode(f"asked by {name}".encode()).decode(),
                    },
                ),
                ConsentEvent(
                    subscriber_id=bo,
                    list_id=news,
                    kind="subscribe",
                    source="form",
                    wording=f"Referred by {name}",
                    detail={"referrer": address},
                ),
                Suppression(
                    email_hash="0" * 64,
                    email="x@example.net",
                    reason="manual",
                    detail=f"asked for by {address}",
                ),
            ]
        )
        lst = s.get(MailingList, news)
        lst.description = f"Run with help from {quote_plus(name)}"
    # An import report naming the person (mode add skips people already there), and an upload
    # left on the mapping page.
    csv = f"email,name\r\n{address.upper()},{name}\r\nnew@example.org,New\r\n".encode()
    resp = api.post(
        "/api/imports",
        data={
            "file": (io.BytesIO(csv), f"{name}.csv"),
            "list": "news",
            "mode": "add",
            "consent": "fair",
        },
        content_type="multipart/form-data",
    )
    assert resp.status_code == 202, resp.json
    drain(rt)
    assert (
        address.casefold()
        in api.get(f"/api/imports/{resp.json['id']}/report").get_data(as_text=True).casefold()
    )
    uploads.store(rt, io.BytesIO(csv), filename="abandoned.csv")
    return {"sid": sid, "bo": bo, "other": other, "campaign": cid}


@pytest.mark.parametrize("address,name", PEOPLE, ids=["non-ascii-name", "ascii", "idn-local"])
def test_erasure_leaves_no_spelling_of_the_address_or_name_anywhere(
    rt, api, client, sink, address, name
):
    ids = _seed(rt, api, client, sink, address, name)
    leaks_before = _leaks(rt, address, name)
    seeded = {table for table, _, _ in leaks_before}
    assert {
        "subscriber",
        "consent_event",
        "activity_event",
        "segment",
        "campaign",
        "dev_mail",
        "inbound_message",
        "audit_log",
        "import_job",
        "suppression",
        "mailing_list",
        "engagement",
        "upload_chunk",
    } | ({"outbox"} if address.isascii() else set()) <= seeded
    stats_before = api.get(f"/api/campaigns/{ids['campaign']}").json["stats"]
    with rt.db.session() as s:
        bo_before = s.get(Subscriber, ids["bo"]).model_dump()

    resp = api.post(f"/api/subscribers/{ids['sid']}/erase")
    assert resp.status_code == 200

    leaks = _leaks(rt, address, name)
    assert leaks == [], "\n".join(map(repr, leaks))
    # Campaign counts stay; the ledger row is anonymous.
    assert api.get(f"/api/campaigns/{ids['campaign']}").json["stats"] == stats_before
    with rt.db.session() as s:
        rows = list(s.scalars(select(Delivery).where(Delivery.campaign_id == ids["campaign"])))
        assert len(rows) == stats_before["sent"] + stats_before["failed"] + stats_before[
            "skipped"
        ] and ids["sid"] not in {d.subscriber_id for d in rows}
        # Bo's mail is kept, redacted: still his, still processed, his words still there.
        mine = s.scalar(
            select(InboundMessage).where(InboundMessage.message_id == "<bo1@mail.example.net>")
        )
        assert mine is not None and mine.redacted_at is not None and mine.status == "processed"
        body = email.message_from_bytes(mine.raw, policy=SMTP)
        assert body["From"] == f"Bo <{BO}>"
        texts = [p.get_content() for p in body.walk() if p.get_content_maintype() == "text"]
        assert any(
            "Hi from Bo. My friend [erased] <[erased]> wants the news too." in t for t in texts
        )
        assert mine.size == len(mine.raw)
        # The person's own mail and the bounce for them are gone.
        assert (
            s.scalar(
                select(InboundMessage).where(
                    InboundMessage.message_id.in_(
                        ("<own1@mail.example.net>", "<dsn1@mx.example.net>")
                    )
                )
            )
            is None
        )
        # Bo's waiting unsubscribe was acted on before it was redacted: nothing lost. It holds
        # no proof tied to us, so Bo was mailed a confirmation link and stays subscribed until
        # he clicks it.
        waiting = s.scalar(select(InboundMessage).where(InboundMessage.sha256 == "f" * 64))
        assert waiting.status == "processed" and waiting.kind == "unsubscribe"
        assert waiting.redacted_at is not None and waiting.proof == "none"
        assert (
            s.scalar(
                select(Outbox.id).where(Outbox.kind == "unsubscribe_request", Outbox.to_email == BO)
            )
            is not None
        )
        assert (
            s.scalar(select(Membership.status).where(Membership.subscriber_id == ids["bo"]))
            == "confirmed"
        )
        # Bo's own data is his: only the mention of the person went from his notes.
        bo_after = s.get(Subscriber, ids["bo"]).model_dump()
        assert bo_after["fields"] == {"notes": "friend of [erased] <[erased]>"}
        assert {k: v for k, v in bo_after.items() if k not in ("fields", "updated_at")} == {
            k: v for k, v in bo_before.items() if k not in ("fields", "updated_at")
        }
        # Somebody else with the same name and a longer address is untouched.
        other = s.get(Subscriber, ids["other"])
        assert other.name == name and other.email == LOOKALIKE.format(local=address)
        # The keyed hash stays, so the person cannot be imported back.
        assert (
            s.scalar(
                select(Suppression.reason).where(Suppression.email_hash == rt.email_hash(address))
            )
            == "erased"
        )
        # The saved rules (and the copy a started campaign keeps) pick nobody now.
        [rules] = s.scalars(select(Segment.rules))
        assert rules["any"][0] == {"field": "email", "op": "eq", "value": "[erased]"}
        if address.isascii():
            assert (
                s.scalar(select(Campaign.segment_rules).where(Campaign.id == ids["campaign"]))
                == rules
            )
    assert api.post(
        "/api/segments/count",
        json={"lists": ["news"], "rules": {"field": "email", "op": "eq", "value": "[erased]"}},
    ).json == {"count": 0}
    if rt.db.dialect == "sqlite":
        with rt.db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []


def test_a_later_import_naming_the_erased_person_reports_no_address(rt, api):
    address, name = PEOPLE[0]
    assert api.post("/api/lists", json={"slug": "news", "name": "News"}).status_code == 201
    sid = api.post(
        "/api/subscribers",
        json={"email": address, "name": name, "lists": ["news"], "consent": "form"},
    ).json["id"]
    assert api.post(f"/api/subscribers/{sid}/erase").status_code == 200
    csv = f"email\r\n{address}\r\nnew@example.org\r\n".encode()
    resp = api.post(
        "/api/imports",
        data={"file": (io.BytesIO(csv), "again.csv"), "list": "news", "consent": "fair"},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 202
    drain(rt)
    job = api.get(f"/api/imports/{resp.json['id']}").json
    assert job["status"] == "done" and job["inserted"] == 1 and job["skipped"] == 1
    report = api.get(f"/api/imports/{resp.json['id']}/report").get_data(as_text=True)
    assert "erased" in report
    assert _leaks(rt, address, name) == []
    assert api.get(f"/api/subscribers?email={quote(address)}").json["items"] == []


def test_every_table_says_how_it_holds_a_person() -> None:
    """A new table cannot be forgotten by the erasure."""
    assert set(erasure.TABLES) == {t.name for t in SQLModel.metadata.sorted_tables}


def test_an_import_still_queued_when_the_person_is_erased_never_holds_them(rt, api, tmp_path):
    address, name = PEOPLE[0]
    assert api.post("/api/lists", json={"slug": "news", "name": "News"}).status_code == 201
    sid = api.post(
        "/api/subscribers",
        json={"email": address, "name": name, "lists": ["news"], "consent": "form"},
    ).json["id"]
    upload = tmp_path / "waiting.csv"
    upload.write_bytes(f"email,name\r\n{address},{name}\r\nnew@example.org,New\r\n".encode())
    # Queued (its wake-up not yet delivered) while the person is erased.
    job = imports.create_job(rt, path=upload, list_slug="news", consent="fair", actor="t")
    assert api.post(f"/api/subscribers/{sid}/erase").status_code == 200
    assert _leaks(rt, address, name) == []
    imports.run_job(rt, job)
    info = imports.get(rt, job)
    assert info.status == "done" and info.inserted == 1 and info.errors == 1
    assert _leaks(rt, address, name) == []
    assert api.get(f"/api/subscribers?email={quote(address)}").json["items"] == []
