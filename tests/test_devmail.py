"""The dev outbox service: the transport's sink stores each message; the pages read them back."""

from __future__ import annotations

from listmgr.services import devmail, settings_store
from listmgr.services.outbox import transport


def test_captured_mail_is_stored_counted_listed_and_fetched(make_runtime):
    rt = make_runtime(smtp_url="")
    settings = settings_store.effective(rt)
    assert not transport(rt, settings).servers  # no SMTP server configured: the dev outbox
    transport(rt, settings).send_one(
        "a@example.org", "b@example.org", b"Subject: one\r\n\r\nbody\r\n"
    )
    sink = devmail.sink(rt.db)
    sink("", ["c@example.org", "d@example.org"], b"Subject: =?utf-8?q?zw=C3=B6lf?=\r\n\r\nx\r\n")
    assert devmail.count(rt) == 2
    second, first = devmail.newest(rt)
    assert (first.mail_from, first.rcpt_to, first.subject) == (
        "a@example.org",
        "b@example.org",
        "one",
    )
    assert (second.mail_from, second.rcpt_to, second.subject) == (
        "",
        "c@example.org, d@example.org",
        "zwölf",
    )
    assert [m.id for m in devmail.newest(rt, offset=1, limit=1)] == [first.id]
    assert first.id is not None
    got = devmail.get(rt, first.id)
    assert got is not None and got.raw == b"Subject: one\r\n\r\nbody\r\n"
    assert devmail.get(rt, 10_000) is None
