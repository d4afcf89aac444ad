"""People correct their own data: their name and editable fields on the preference page, and
their address through a confirmation link mailed to the new one (the old one gets a notice)."""

from __future__ import annotations

import time

from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import func, select

from listmgr.models import AuditLog, ConsentEvent, Outbox, Subscriber, Suppression
from listmgr.services import lists, subscribers, subscriptions
from tests.conftest import drain
from tests.helpers import link_with, path_of
from tests.profile_support import define_everything

OLD = "ann@example.org"
NEW = "ann.new@example.net"


def _person(rt) -> int:
    lists.create(rt, slug="news", name="News")
    return subscribers.create(rt, email=OLD, name="Ann", lists=["news"], consent="test")


def _ask(client, rt, sid: int, address: str):
    return client.post(f"/p/{rt.tokens.manage(sid)}/address", data={"email": address})


def _address_link(rt, sink, count: int) -> str:
    drain(rt)
    mail = sink.wait_for(count)[count - 1]
    assert mail.rcpt_tos == [NEW]
    return path_of(link_with(mail.message, "/address/"))


def _email(rt, sid) -> str:
    with rt.db.session() as s:
        return s.get(Subscriber, sid).email


def _address_mails(rt) -> int:
    with rt.db.session() as s:
        return s.scalar(select(func.count()).where(Outbox.kind == "address_confirm"))


def test_the_address_changes_only_from_the_new_mailbox(rt, client, sink):
    sid = _person(rt)
    resp = _ask(client, rt, sid, "  Ann.New@Example.NET ")
    assert resp.status_code == 200 and "link is on its way" in resp.text
    assert _email(rt, sid) == OLD
    link = _address_link(rt, sink, 1)
    page = client.get(link)
    assert page.status_code == 200 and NEW in page.text and _email(rt, sid) == OLD
    done = client.post(link)
    assert done.status_code == 200 and NEW in done.text
    with rt.db.session() as s:
        sub = s.get(Subscriber, sid)
        assert (sub.email, sub.email_hash) == (NEW, rt.email_hash(NEW))
        event = s.scalar(select(ConsentEvent).where(ConsentEvent.kind == "address_change"))
        assert event.detail == {
            "old_email_hash": rt.email_hash(OLD),
            "new_email_hash": rt.email_hash(NEW),
        }
        assert OLD not in str(event.detail) and event.subscriber_id == sid
        assert s.scalar(select(AuditLog).where(AuditLog.action == "subscriber.address_change"))
    drain(rt)
    notice = sink.wait_for(2)[1]
    assert notice.rcpt_tos == [OLD]
    body = notice.message.get_body(("plain",)).get_content()
    assert "a***@example.net" in body and NEW not in body and "/p/" not in body
    # the link is spent by the change
    again = client.post(link)
    assert again.status_code == 400 and "already used" in again.text
    assert client.get(link).status_code == 400
    # later mail goes to the new address: the preference link still opens
    assert NEW in client.get(f"/p/{rt.tokens.manage(sid)}").text


def test_someone_elses_or_a_suppressed_address_gets_the_same_answer_and_no_mail(rt, client, sink):
    sid = _person(rt)
    subscribers.create(rt, email="bo@example.org", lists=["news"], consent="test")
    with rt.db.session() as s:
        s.add(Suppression(email_hash=rt.email_hash("gone@example.org"), reason="complaint"))
    answers = {a: _ask(client, rt, sid, a) for a in ("bo@example.org", "gone@example.org")}
    free = _ask(client, rt, sid, NEW)
    for resp in (*answers.values(), free):
        assert resp.status_code == 200
    assert {r.text for r in answers.values()} == {free.text}
    drain(rt)
    assert [m.rcpt_tos for m in sink.wait_for(1)] == [[NEW]]
    assert _address_mails(rt) == 1


def test_an_address_taken_before_the_link_is_used_is_refused(rt, client, sink):
    sid = _person(rt)
    _ask(client, rt, sid, NEW)
    link = _address_link(rt, sink, 1)
    subscribers.create(rt, email=NEW, lists=["news"], consent="test")
    resp = client.post(link)
    assert resp.status_code == 422 and "cannot be used" in resp.text and "Bo" not in resp.text
    assert _email(rt, sid) == OLD
    with rt.db.session() as s:
        assert s.scalar(select(ConsentEvent).where(ConsentEvent.kind == "address_change")) is None


def test_one_link_per_window(rt, client, sink):
    sid = _person(rt)
    for _ in range(3):
        assert _ask(client, rt, sid, NEW).status_code == 200
    drain(rt)
    assert _address_mails(rt) == 1


def test_bad_addresses_and_bad_links(rt, client, sink):
    sid = _person(rt)
    for bad in ("not an address", "", "a@b\r\nBcc: x@y.org", OLD, OLD.upper()):
        resp = _ask(client, rt, sid, bad)
        assert resp.status_code == 422, bad
    assert _address_mails(rt) == 0
    assert client.post("/p/garbage/address", data={"email": NEW}).status_code in (400, 404)
    _ask(client, rt, sid, NEW)
    token = _address_link(rt, sink, 1).rsplit("/", 1)[1]
    tok = rt.tokens.read_address_change(token)
    parts = [tok.subscriber_id, tok.epoch, tok.old_email, tok.new_email]

    class Then(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 8 * 86400

    expired = URLSafeTimedSerializer(
        rt.settings.secret_key, salt="address-change", signer=Then
    ).dumps(parts)
    forged = URLSafeTimedSerializer("other key", salt="address-change").dumps(parts)
    for bad in (
        "garbage",
        token[:-2] + ("xx" if not token.endswith("xx") else "yy"),
        expired,
        forged,
        rt.tokens.manage(sid),
        rt.tokens.confirm(sid, 1, "nonce"),
    ):
        assert client.get(f"/address/{bad}").status_code == 400, bad
        assert client.post(f"/address/{bad}").status_code == 400, bad
    assert "expired" in client.post(f"/address/{expired}").text
    # ending the old links ends this one too
    with rt.db.session() as s:
        s.get(Subscriber, sid).link_epoch = 5
    assert client.post(f"/address/{token}").status_code == 400
    assert _email(rt, sid) == OLD


def test_leaving_everything_follows_to_the_new_address(rt, client, sink):
    sid = _person(rt)
    _ask(client, rt, sid, NEW)
    link = _address_link(rt, sink, 1)
    assert client.post(f"/p/{rt.tokens.manage(sid)}", data={"action": "unsubscribe_all"})
    assert client.post(link).status_code == 200
    with rt.db.session() as s:
        reasons = dict(s.execute(select(Suppression.email_hash, Suppression.reason)).all())
    assert reasons == {
        rt.email_hash(OLD): "unsubscribed_all",
        rt.email_hash(NEW): "unsubscribed_all",
    }


def test_name_and_editable_fields_on_the_preference_page(rt, client):
    define_everything(rt)
    sid = _person(rt)
    token = rt.tokens.manage(sid)
    page = client.get(f"/p/{token}").text
    assert 'name="name"' in page and 'value="Ann"' in page
    assert 'name="field_nickname"' in page and 'name="field_account_id"' not in page
    form = {"action": "save", "profile_form": "1", "lists": ["news"]}
    resp = client.post(
        f"/p/{token}", data={**form, "name": "  Ann   <Lee> ", "field_nickname": "Annie"}
    )
    assert resp.status_code == 200 and "Ann &lt;Lee&gt;" in resp.text
    with rt.db.session() as s:
        sub = s.get(Subscriber, sid)
        assert sub.name == "Ann <Lee>" and sub.fields["nickname"] == "Annie"
        event = s.scalars(select(ConsentEvent).where(ConsentEvent.kind == "preference")).all()[-1]
        assert "name" in event.detail["fields"]
    for bad in ({"name": "two\nlines"}, {"field_account_id": "A-1"}):
        resp = client.post(f"/p/{token}", data={**form, **bad})
        assert resp.status_code == 422, bad
    with rt.db.session() as s:
        sub = s.get(Subscriber, sid)
        assert sub.name == "Ann <Lee>" and "account_id" not in sub.fields
    # a post without the name (an older page) keeps it
    client.post(f"/p/{token}", data={**form, "field_nickname": "Annie"})
    assert subscriptions.preferences(rt, token).name == "Ann <Lee>"


def test_a_new_address_at_an_international_domain_gets_its_link(rt, client, sink):
    """An internationalized domain (in either spelling) is mailed in its IDNA form, and the
    change takes effect from that mailbox; a non-ASCII name travels as encoded words."""
    sid = _person(rt)
    assert _ask(client, rt, sid, "Ann@Bücher.Example").status_code == 200
    drain(rt)
    [mail] = sink.wait_for(1)
    assert mail.rcpt_tos == ["ann@xn--bcher-kva.example"]
    assert "ann@xn--bcher-kva.example" in str(mail.message["To"])
    assert client.post(path_of(link_with(mail.message, "/address/"))).status_code == 200
    assert _email(rt, sid) == "ann@bücher.example"
    # the same mailbox spelled in ASCII is the same address: no second change
    same = _ask(client, rt, sid, "ann@xn--bcher-kva.example")
    assert same.status_code == 422 and "already your address" in same.text
    drain(rt)
    assert [m.rcpt_tos for m in sink.wait_for(2)] == [["ann@xn--bcher-kva.example"], [OLD]]
