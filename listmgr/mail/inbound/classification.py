"""What a classification answers with: the kinds, the SMTP envelope and the verdict."""
from __future__ import annotations

from dataclasses import dataclass, field

KINDS = ("bounce", "complaint", "autoreply", "unsubscribe", "other")


@dataclass(frozen=True)
class Envelope:
    """SMTP envelope, when the entry point knows it (LMTP/SMTP listener, MTA pipe)."""

    sender: str = ""
    recipients: tuple[str, ...] = ()


@dataclass(frozen=True)
class Classification:
    kind: str                         # one of KINDS
    permanent: bool | None = None     # bounces: hard (True) / soft (False)
    recipients: tuple[str, ...] = ()  # failed / complained-about / unsubscribing addresses
    subscriber_id: int | None = None
    list_id: int | None = None
    campaign_id: int | None = None
    evidence: dict = field(default_factory=dict)
    confidence: float = 0.5
