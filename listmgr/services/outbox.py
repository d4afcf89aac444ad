"""Transactional mail: claim an outbox row, compose it, send it once, record the outcome."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session
from sqlmodel import col

from listmgr import metrics
from listmgr.db import rows_changed
from listmgr.mail import compose, transactional
from listmgr.mail.transport import PermanentFailure, TemporaryFailure, Transport
from listmgr.models import MailingList, Membership, Outbox, Subscriber, utcnow
from listmgr.runtime import Runtime
from listmgr.services import devmail, settings_store
from listmgr.services.subscriptions import manage_token
from listmgr.settings import Settings

# Which kinds are mail about a list the person is on (they get List-Unsubscribe headers).
LIST_MAIL = {"already_subscribed", "welcome", "repermission"}
# Which kinds answer a message (RFC 3834: auto-replied, sent with a null envelope sender).
AUTO_REPLIES = {"unsubscribed", "unsubscribe_request"}
# Which kinds a person wrote (no Auto-Submitted header), and the threading headers they carry
# from their payload.
BY_HAND = {"inbound_reply"}
THREAD_HEADERS = (("in_reply_to", "In-Reply-To"), ("references", "References"))


def transport(rt: Runtime, s: Settings) -> Transport:
    """This process's transport for these servers, built again when they change."""
    key = (s.smtp_url, s.send_rate, s.send_rate_per_server)
    cached = rt.state.get("transport")
    if cached is None or cached[0] != key:
        cached = (
            key,
            Transport(s.smtp_url, devmail.sink(rt.db), s.send_rate, s.send_rate_per_server),
        )
        rt.state["transport"] = cached
    t: Transport = cached[1]
    return t


def _confirm_token(db: Session, rt: Runtime, sub: Subscriber, lst: MailingList) -> str:
    """The confirmation link of the membership's outstanding nonce (none: a link that only
    says it was used)."""
    nonce = (
        db.scalar(
            select(col(Membership.confirm_nonce)).where(
                col(Membership.subscriber_id) == sub.id, col(Membership.list_id) == lst.id
            )
        )
        or ""
    )
    assert sub.id is not None and lst.id is not None  # stored rows
    return rt.tokens.confirm(sub.id, lst.id, nonce)


def _data_link_urls(rt: Runtime, sub: Subscriber) -> dict[str, Any]:
    """The single-use export and erase links (one token; whichever is used first spends it)."""
    assert sub.id is not None  # a stored row
    token = rt.tokens.data_link(sub.id, sub.link_epoch, sub.access_nonce)
    return {
        "export_url": rt.url(f"/p/{token}/export"),
        "erase_url": rt.url(f"/p/{token}/erase"),
        "max_age_minutes": rt.settings.data_link_max_age_minutes,
    }


def _privacy_links(
    rt: Runtime, db: Session, sub: Subscriber | None, lst: MailingList | None
) -> list[tuple[str, str]]:
    """(list name, notice URL): the list's notice in mail about a list; in mail about the
    person alone (data links, address changes), the notices of every list they are on."""
    if lst is not None:
        return [(lst.name, rt.url(f"/privacy/{lst.slug}"))]
    if sub is None:
        return []
    rows = db.execute(
        select(col(MailingList.name), col(MailingList.slug))
        .join(Membership, col(Membership.list_id) == col(MailingList.id))
        .where(col(Membership.subscriber_id) == sub.id)
        .order_by(col(MailingList.name))
    ).all()
    return [(name, rt.url(f"/privacy/{slug}")) for name, slug in rows]


def _compose(
    rt: Runtime,
    s: Settings,
    row: Outbox,
    sub: Subscriber | None,
    lst: MailingList | None,
    db: Session,
) -> tuple[str, bytes]:
    list_name = lst.name if lst else s.default_from_name
    from_name = lst.from_name if lst and lst.from_name else s.default_from_name
    from_email = lst.from_email if lst and lst.from_email else s.default_from_email
    postal = lst.postal_address if lst and lst.postal_address else s.default_postal_address
    ctx = {
        "list_name": list_name,
        "from_name": from_name,
        "postal_address": postal,
        "email": row.to_email,
        "name": sub.name if sub else "",
        "max_age_days": s.confirm_max_age_days,
        "wording": row.payload.get("wording", ""),
        "confirm_url": "",
        "manage_url": "",
        "unsubscribe_url": "",
        # the list's privacy notice, in every mail that concerns a list
        "privacy_url": rt.url(f"/privacy/{lst.slug}") if lst else "",
        "privacy_links": _privacy_links(rt, db, sub, lst),
    }
    unsubscribe_url = mailto = ""
    if sub is not None:
        # Links in the subscriber's current link epoch (older ones were ended on purpose).
        ctx["manage_url"] = rt.url(f"/p/{manage_token(rt, sub)}")
        if row.kind == "data_link":
            ctx.update(_data_link_urls(rt, sub))
        if row.kind == "address_confirm":
            assert sub.id is not None  # a stored row
            token = rt.tokens.address_change(sub.id, sub.link_epoch, sub.email, row.to_email)
            ctx["change_url"] = rt.url(f"/address/{token}")
            ctx["old_email"] = sub.email
    if sub is not None and lst is not None:
        ctx["confirm_url"] = rt.url(f"/confirm/{_confirm_token(db, rt, sub, lst)}")
        assert sub.id is not None and lst.id is not None  # stored rows
        token = rt.tokens.unsubscribe(sub.id, lst.id, epoch=sub.link_epoch)
        ctx["unsubscribe_url"] = rt.url(f"/u/{token}")
        if row.kind in LIST_MAIL:
            unsubscribe_url = ctx["unsubscribe_url"]
            mailto = f"unsubscribe+{token}@{s.mail_domain}"
    if row.kind == "unsubscribe_request" and sub is not None:
        # the link that confirms an unsubscribe request that came by e-mail without proof
        inbound_id = int(row.payload.get("inbound_id") or 0)
        assert sub.id is not None  # a stored row
        token = rt.tokens.unsubscribe_request(sub.id, inbound_id)
        ctx["request_url"] = rt.url(f"/u/request/{token}")
    if row.kind == "repermission":
        # the "keep me subscribed" link of a re-permission request (services/repermission)
        ctx["keep_url"] = rt.url(
            f"/keep/{rt.tokens.repermission(int(row.payload['repermission_id']))}"
        )
    ctx.update({k: v for k, v in row.payload.items() if isinstance(v, str)})
    subject, text, html = transactional.render(row.kind, ctx)
    auto = "auto-replied" if row.kind in AUTO_REPLIES else "auto-generated"
    if row.kind in BY_HAND:
        auto = ""
    threading = tuple(
        (header, str(row.payload[key]))
        for key, header in THREAD_HEADERS
        if row.kind in BY_HAND and row.payload.get(key)
    )
    mail = compose.Mail(
        from_name=from_name,
        from_email=from_email,
        to_email=row.to_email,
        to_name=sub.name if sub else "",
        subject=subject,
        text=text,
        html=html,
        mail_domain=s.mail_domain,
        reply_to=lst.reply_to if lst else "",
        list_id=compose.list_id_header(lst.name, lst.slug, s.mail_domain) if lst else "",
        unsubscribe_url=unsubscribe_url,
        unsubscribe_mailto=mailto,
        auto_submitted=auto,
        extra_headers=threading,
    )
    if row.kind in AUTO_REPLIES:
        envelope = ""  # null sender: nothing bounces back, no loops
    elif sub is not None and sub.id is not None:
        envelope = (
            f"bounces+{rt.tokens.bounce(sub.id, None, lst.id if lst else None)}@{s.mail_domain}"
        )
    else:
        envelope = from_email
    return envelope, compose.build(mail)


def send(rt: Runtime, outbox_id: int) -> None:
    """Send one outbox row; a second run of the same message is harmless."""
    settings = settings_store.effective(rt)
    now = utcnow()
    lease = now + timedelta(seconds=rt.settings.lease_seconds)
    with rt.db.session() as s:
        row = s.get(Outbox, outbox_id)
        if row is None or row.status in ("sent", "failed"):
            return
        was_in_flight = row.status == "sending"
        claimed = rows_changed(
            s,
            update(Outbox)
            .where(
                col(Outbox.id) == outbox_id,
                or_(
                    col(Outbox.status) == "pending",
                    (col(Outbox.status) == "sending") & (col(Outbox.lease_until) < now),
                ),
            )
            .values(
                status="sending",
                lease_until=lease,
                attempts=Outbox.attempts + 1,
                possibly_duplicate=Outbox.possibly_duplicate | was_in_flight,
            ),
        )
        if not claimed:
            return
        s.refresh(row)
        sub = s.get(Subscriber, row.subscriber_id) if row.subscriber_id else None
        lst = s.get(MailingList, row.list_id) if row.list_id else None
        envelope, data = _compose(rt, settings, row, sub, lst, s)
        attempts = row.attempts
    message_id = _header(data, b"Message-ID")
    try:
        transport(rt, settings).send_one(envelope, row.to_email, data)
    except TemporaryFailure as exc:
        give_up = attempts >= rt.settings.retry_max_attempts
        with rt.db.session() as s:
            s.execute(
                update(Outbox)
                .where(col(Outbox.id) == outbox_id)
                .values(
                    status="failed" if give_up else "pending",
                    lease_until=None,
                    last_error=str(exc)[:1000],
                )
            )
        metrics.metrics().outbox.labels("failed" if give_up else "deferred").inc()
        if not give_up:
            rt.enqueue("send_outbox", outbox_id, delay_ms=min(2**attempts, 600) * 1000)
        return
    except PermanentFailure as exc:
        with rt.db.session() as s:
            s.execute(
                update(Outbox)
                .where(col(Outbox.id) == outbox_id)
                .values(status="failed", lease_until=None, last_error=str(exc)[:1000])
            )
        metrics.metrics().outbox.labels("failed").inc()
        return
    with rt.db.session() as s:
        s.execute(
            update(Outbox)
            .where(col(Outbox.id) == outbox_id)
            .values(status="sent", sent_at=utcnow(), lease_until=None, message_id=message_id)
        )
    metrics.metrics().outbox.labels("sent").inc()


def _header(data: bytes, name: bytes) -> str:
    head = data.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n"):
        if line[: len(name) + 1].lower() == name.lower() + b":":
            return line[len(name) + 1 :].strip().decode("ascii", "replace")[:255]
    return ""


def requeue(rt: Runtime) -> int:
    """Wake a worker for every row still to send (including those whose sender died mid-send)."""
    now = utcnow()
    with rt.db.session() as s:
        ids = list(
            s.scalars(
                select(col(Outbox.id))
                .where(
                    or_(
                        col(Outbox.status) == "pending",
                        (col(Outbox.status) == "sending") & (col(Outbox.lease_until) < now),
                    )
                )
                .order_by(col(Outbox.id))
                .limit(10000)
            )
        )
    for oid in ids:
        rt.enqueue("send_outbox", oid)
    return len(ids)
