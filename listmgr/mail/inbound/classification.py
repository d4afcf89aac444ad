"""What a classification answers with: the kinds, the SMTP envelope, the proof and the verdict."""

from __future__ import annotations

from dataclasses import dataclass, field

KINDS = ("bounce", "complaint", "autoreply", "unsubscribe", "other")


@dataclass(frozen=True)
class Envelope:
    """SMTP envelope, when the entry point knows it (LMTP/SMTP listener, MTA pipe)."""

    sender: str = ""
    recipients: tuple[str, ...] = ()


@dataclass(frozen=True)
class Proof:
    """What in a message ties it to listmgr, as far as signatures alone can tell.

    The service still looks up whom a delivery or outbox Message-ID went to and accepts the
    proof only for that same person."""

    token_subscribers: tuple[int, ...] = ()  # named by verified tokens (VERP, mailto, embedded)
    quoted_subscribers: tuple[int, ...] = ()  # named by verified tokens quoted in a reply's body
    deliveries: tuple[tuple[int, int], ...] = ()  # (campaign, delivery) of tagged Message-IDs
    outbox_ids: tuple[str, ...] = ()  # Message-IDs that may be transactional mail of ours
    sender: str = ""  # the one From address ("" when not exactly one)
    authenticated: str = ""  # "dmarc" / "dkim": aligned pass for `sender`

    def kinds(self) -> list[str]:
        """The kinds of proof found (before the delivery records are consulted)."""
        out = []
        if self.token_subscribers or self.quoted_subscribers:
            out.append("token")
        if self.deliveries:
            out.append("message-id")
        if self.outbox_ids:  # counts only if the outbox holds it, sent to that person
            out.append("outbox-message-id")
        if self.authenticated:
            out.append(self.authenticated)
        return out

    def as_dict(self) -> dict:
        return {
            "token_subscribers": list(self.token_subscribers),
            "quoted_subscribers": list(self.quoted_subscribers),
            "deliveries": [list(d) for d in self.deliveries],
            "outbox_message_ids": list(self.outbox_ids),
            "sender": self.sender,
            "authenticated": self.authenticated,
        }


@dataclass(frozen=True)
class Classification:
    kind: str  # one of KINDS
    permanent: bool | None = None  # bounces: hard (True) / soft (False)
    recipients: tuple[str, ...] = ()  # failed / complained-about / unsubscribing addresses
    subscriber_id: int | None = None
    list_id: int | None = None
    campaign_id: int | None = None
    evidence: dict = field(default_factory=dict)
    confidence: float = 0.5
    proof: Proof = field(default_factory=Proof)
