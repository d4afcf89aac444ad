"""Shared helpers for the campaign tests: people, campaigns, waiting, and an SMTP sink that
misbehaves on purpose (4xx for a while, 5xx for some, dropped connections)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from sqlalchemy import insert, select, update

from listmgr.models import Campaign, Delivery, MailingList, Subscriber, utcnow
from listmgr.runtime import Runtime
from listmgr.services import campaigns, fielddefs, lists, subscribers
from tests.conftest import Received, Sink, drain, start_sink

HTML = (
    "<h1>Hello {{ subscriber.name|default('friend', true) }}</h1>\n"
    "<p>News for {{ subscriber.fields.city|default('everyone') }}.</p>\n"
)


def dkim_pem(kind: str, bits: int = 2048) -> bytes:
    """A new RSA (`bits`) or Ed25519 private key in PEM."""
    key = (
        rsa.generate_private_key(public_exponent=65537, key_size=bits)
        if kind == "rsa"
        else ed25519.Ed25519PrivateKey.generate()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_list(rt: Runtime, slug: str, **kw: Any) -> int:
    kw.setdefault("name", slug.title())
    kw.setdefault("postal_address", "Example Org, 1 Test Street, Testville")
    return lists.create(rt, slug=slug, **kw)


def person(
    rt: Runtime, email: str, lists_: list[str], *, status: str = "confirmed", **kw: Any
) -> int:
    kw.setdefault("consent", "signed up at the fair")
    return subscribers.create(rt, email=email, lists=lists_, status=status, **kw)


def define_fields(rt: Runtime) -> None:
    fielddefs.create_field(rt, key="city", label="City", type="text")
    fielddefs.create_interest(rt, key="books", label="Books")
    fielddefs.create_interest(rt, key="music", label="Music")


def campaign(rt: Runtime, **kw: Any) -> int:
    kw.setdefault("name", "Spring news")
    kw.setdefault("subject", "News for {{ subscriber.name|default('you', true) }}")
    kw.setdefault("lists", ["news"])
    kw.setdefault("body", HTML)
    return campaigns.create(rt, actor="tests", **kw)


def wait_status(
    rt: Runtime, campaign_id: int, statuses: tuple[str, ...] = ("sent",), timeout: float = 60
) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with rt.db.session() as s:
            status = s.scalar(select(Campaign.status).where(Campaign.id == campaign_id))
        if status in statuses:
            return str(status)
        time.sleep(0.05)
    raise AssertionError(f"campaign {campaign_id} still {status} after {timeout}s")


def decide_ab_test_now(rt: Runtime, campaign_id: int) -> None:
    """End an A/B test's wait as the periodic sweep would find it, and wait for the rest to go."""
    with rt.db.session() as s:
        s.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(ab_decide_at=utcnow() - timedelta(seconds=1))
        )
    campaigns.requeue(rt)
    drain(rt)
    wait_status(rt, campaign_id)


def campaign_mail(sink: Sink, campaign_id: int | None = None) -> list[Received]:
    """The campaign messages the sink got (not confirmations and other transactional mail)."""
    prefix = f"Message-ID: <{campaign_id}." if campaign_id else "Feedback-ID: "
    with sink.lock:
        return [
            m
            for m in sink.messages
            if any(line.startswith(prefix.encode()) for line in header_lines(m.data))
        ]


def recipients(sink: Sink, campaign_id: int | None = None) -> Counter[str]:
    return Counter(r for m in campaign_mail(sink, campaign_id) for r in m.rcpt_tos)


def deliveries(rt: Runtime, campaign_id: int) -> dict[str, Delivery]:
    with rt.db.session() as s:
        rows = s.execute(
            select(Subscriber.email, Delivery)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.campaign_id == campaign_id)
        ).all()
        return {email: d for email, d in rows}


def raw_profile(rt: Runtime, email: str, **values: Any) -> None:
    """Write profile data as it may arrive from old imports: unchecked (CR/LF and all)."""
    with rt.db.session() as s:
        s.execute(update(Subscriber).where(Subscriber.email == email).values(**values))


def header_lines(data: bytes) -> list[bytes]:
    return data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


class FaultSink(Sink):
    """A Sink whose DATA handler may also drop the connection without answering, before or
    after keeping the message (drop_hook returns "before", "after" or None)."""

    drop_hook: Callable[[Received], str | None] | None = None
    mail_hook: Callable[[str], str | None] | None = None

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        answer = self.mail_hook(address) if self.mail_hook is not None else None
        if answer:
            return answer
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        item = Received(
            envelope.mail_from,
            list(envelope.rcpt_tos),
            envelope.original_content or envelope.content,
        )
        when = self.drop_hook(item) if self.drop_hook is not None else None
        if when == "after":
            with self.lock:
                self.messages.append(item)
        if when:
            server.transport.close()  # no answer: the client cannot know what happened
            return "421 closing"
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def fault_sink() -> Iterator[FaultSink]:
    handler = FaultSink()
    controller = start_sink(handler, data_size_limit=50_000_000)
    yield handler
    controller.stop()


class Clock:
    """Seconds since the test started, for faults that last 'a while'."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.lock = threading.Lock()

    def elapsed(self) -> float:
        return time.monotonic() - self.start


def past_deliveries(
    rt,
    *,
    list_slug: str,
    count: int,
    bounced: int = 0,
    complained: int = 0,
    subscriber_ids: list[int] | None = None,
    campaign_id: int = 999,
    when: datetime | None = None,
) -> None:
    """Campaign mail handed over earlier, as the delivery workers record it."""
    with rt.db.session() as s:
        lid = s.scalar(select(MailingList.id).where(MailingList.slug == list_slug))
    sent_at = when or utcnow() - timedelta(days=2)
    rows = [
        {
            "campaign_id": campaign_id,
            "subscriber_id": (subscriber_ids[i] if subscriber_ids else 100_000 + i),
            "list_id": lid,
            "status": "sent",
            "attempts": 1,
            "claimed_by": "",
            "in_flight": False,
            "possibly_duplicate": False,
            "smtp_server": "",
            "error": "",
            "bounced": i < bounced,
            "complained": bounced <= i < bounced + complained,
            "unsubscribed": False,
            "sent_at": sent_at,
            "attempted_at": sent_at,
        }
        for i in range(count)
    ]
    with rt.db.session() as s:
        s.execute(insert(Delivery), rows)
