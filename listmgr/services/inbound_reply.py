"""A person's plain-text answer to an inbound message, sent as transactional mail (the outbox)
and written to the audit log in the same unit of work."""

from __future__ import annotations

from dataclasses import dataclass

from listmgr.errors import NotFound, ValidationError
from listmgr.mail import answer
from listmgr.models import InboundMessage, Outbox, id_of
from listmgr.runtime import Runtime
from listmgr.services import audit

KIND = "inbound_reply"  # the outbox kind (templates/email/inbound_reply)
MAX_TEXT = 20_000


@dataclass(frozen=True)
class Sent:
    outbox_id: int
    to: str
    subject: str


def draft(rt: Runtime, message_id: int) -> answer.Answer:
    """Whom an answer to this message goes to, and its subject."""
    with rt.db.session() as s:
        row = s.get(InboundMessage, message_id)
        if row is None:
            raise NotFound("no such inbound message")
        raw = bytes(row.raw)
    return answer.answer(raw)


def reply(
    rt: Runtime,
    message_id: int,
    text: str,
    *,
    actor: str,
    user_id: int | None = None,
    token_id: int | None = None,
) -> Sent:
    """Queue the answer (sent after commit) and audit it."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    if not text.strip():
        raise ValidationError("write the answer first", field="text")
    if len(text) > MAX_TEXT or "\x00" in text:
        raise ValidationError(
            f"the answer must be text of at most {MAX_TEXT} characters", field="text"
        )
    to = draft(rt, message_id)
    with rt.db.session() as s:
        out = Outbox(
            kind=KIND,
            to_email=to.to,
            payload={
                "subject": to.subject,
                "text": text,
                "in_reply_to": to.in_reply_to,
                "references": to.references,
                "inbound_id": message_id,
            },
        )
        s.add(out)
        s.flush()
        oid = id_of(out)
        s.add(
            audit.entry(
                actor=actor,
                action="inbound.reply",
                target_type="inbound",
                target_id=message_id,
                detail={"to": to.to, "subject": to.subject, "outbox_id": oid},
                user_id=user_id,
                token_id=token_id,
            )
        )
    rt.enqueue("send_outbox", oid)
    return Sent(oid, to.to, to.subject)
