"""Tables and enums. Timestamps are naive UTC. No queries here beyond trivial helpers."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Protocol, TypeVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy import false as sa_false
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session
from sqlmodel import Field, SQLModel

MAX_ID = 2**31 - 1  # ids are 32-bit integers on every database
# A list's slug, as its URLs name it.
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
Row = TypeVar("Row")


def by_id(s: Session, model: type[Row], ident: int) -> Row | None:
    """s.get, except that an id no id column can hold finds nothing (instead of failing)."""
    return s.get(model, ident) if 1 <= ident <= MAX_ID else None


class _Identified(Protocol):
    @property
    def id(self) -> int | None: ...


def id_of(row: _Identified) -> int:
    """The id of a stored row. Tables declare ``id: int | None`` (None until the row is
    flushed); code holding a flushed or loaded row uses this where it needs the int."""
    if row.id is None:
        raise TypeError(f"{type(row).__name__} has no id yet (not flushed)")
    return row.id


def utcnow() -> datetime:
    """Now, as naive UTC (stored the same way on SQLite and PostgreSQL)."""
    return datetime.now(UTC).replace(tzinfo=None)


def _json(**kw: Any) -> Any:
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False, **kw))


def _jsonb(**kw: Any) -> Any:
    """JSON read by segment queries: JSONB on PostgreSQL (indexable, no re-parsing per row)."""
    return Field(
        default_factory=dict,
        sa_column=Column(JSON().with_variant(JSONB(), "postgresql"), nullable=False, **kw),
    )


def _json_list(**kw: Any) -> Any:
    return Field(default_factory=list, sa_column=Column(JSON, nullable=False, **kw))


def _fk(
    target: str, *, ondelete: str = "CASCADE", nullable: bool = False, index: bool = True
) -> Any:
    return Field(
        default=None,
        sa_column=Column(
            Integer, ForeignKey(target, ondelete=ondelete), nullable=nullable, index=index
        ),
    )


class OptIn(str, Enum):
    double = "double"
    single = "single"


class MemberStatus(str, Enum):
    pending = "pending"
    confirmed = "confirmed"
    unsubscribed = "unsubscribed"
    bounced = "bounced"


class CampaignStatus(str, Enum):
    draft = "draft"
    scheduled = "scheduled"
    sending = "sending"
    paused = "paused"
    sent = "sent"
    cancelled = "cancelled"


class DeliveryStatus(str, Enum):
    queued = "queued"  # waiting to be claimed (also: retry after next_attempt_at)
    claimed = "claimed"  # leased by a worker
    sent = "sent"
    failed = "failed"  # permanent SMTP failure or retries exhausted
    skipped = "skipped"  # consent changed before the send
    held = "held"  # an A/B test's remaining audience, waiting for the winning variant


class Role(str, Enum):
    owner = "owner"
    admin = "admin"
    editor = "editor"
    analyst = "analyst"


class MailingList(SQLModel, table=True):
    __tablename__ = "mailing_list"
    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=64, unique=True, index=True)
    name: str = Field(max_length=200)
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    opt_in: str = Field(default=OptIn.double.value, max_length=16)
    from_name: str = Field(default="", max_length=200)
    from_email: str = Field(default="", max_length=320)
    reply_to: str = Field(default="", max_length=320)
    postal_address: str = Field(default="", max_length=500)
    consent_wording: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    form_fields: list[str] = _json_list()  # custom field keys offered on the sign-up form
    form_interests: list[str] = _json_list()  # interest keys offered on the sign-up form
    opt_in_levels: list[str] = _json_list()  # e.g. ["everything", "monthly digest only"]
    # Past campaigns of the list on a public page (/archive/<slug>), rendered for no one.
    archive: bool = Field(default=False, sa_column_kwargs={"server_default": sa_false()})
    # A welcome mail to each person who confirms (never for imports or people added by hand).
    welcome_mail: bool = Field(default=False, sa_column_kwargs={"server_default": sa_false()})
    welcome_text: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)


class Subscriber(SQLModel, table=True):
    __tablename__ = "subscriber"
    __table_args__ = (
        # What every audience reads of every candidate (suppressed? paused?), in id order:
        # counts and sends read this narrow index instead of the wide rows. Keyed by id, so
        # an insert appends to it (no random key, unlike an index on the hash alone).
        Index("ix_subscriber_audience", "id", "email_hash", "paused_until"),
        {"sqlite_autoincrement": True},  # an id is never handed out twice
    )
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, unique=True, index=True)  # normalized
    email_hash: str = Field(max_length=64)  # keyed HMAC of email (suppression joins on it)
    name: str = Field(default="", max_length=200)
    fields: dict[str, Any] = _jsonb()
    source: str = Field(default="", max_length=64)
    consent_profiling: bool = Field(default=False)
    consent_tracking: bool = Field(default=False)
    paused_until: datetime | None = Field(default=None, sa_type=DateTime)
    soft_bounces: int = Field(default=0)
    created_at: datetime = Field(default_factory=utcnow, index=True, sa_type=DateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    # Manage and unsubscribe links carry the epoch they were made in; "forget my old links"
    # moves it on, so older preference links stop opening the profile.
    link_epoch: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # The one outstanding single-use export/erase link ("" when none) and when it was mailed.
    access_nonce: str = Field(default="", max_length=32, sa_column_kwargs={"server_default": ""})
    access_sent_at: datetime | None = Field(default=None, sa_type=DateTime)


class Membership(SQLModel, table=True):
    __tablename__ = "membership"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "list_id"),
        Index("ix_membership_list_status", "list_id", "status", "subscriber_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = _fk("subscriber.id", index=False)
    list_id: int = _fk("mailing_list.id", index=False)
    status: str = Field(default=MemberStatus.pending.value, max_length=16)
    opt_in_level: str = Field(default="", max_length=64)
    source: str = Field(default="", max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    confirmed_at: datetime | None = Field(default=None, sa_type=DateTime)
    unsubscribed_at: datetime | None = Field(default=None, sa_type=DateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    # The confirmation link now outstanding ("" when none): confirming, leaving and any later
    # suppression clear it, so a confirmation link works once.
    confirm_nonce: str = Field(default="", max_length=32, sa_column_kwargs={"server_default": ""})
    confirm_requested_at: datetime | None = Field(default=None, sa_type=DateTime)


class FieldDef(SQLModel, table=True):
    __tablename__ = "field_def"
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=64, unique=True)
    label: str = Field(max_length=200)
    type: str = Field(max_length=16)  # text number date boolean choice multi_choice
    choices: list[str] = _json_list()
    editable: bool = Field(default=True)  # the subscriber may edit it in the preference center
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)


class Interest(SQLModel, table=True):
    __tablename__ = "interest"
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=64, unique=True)
    label: str = Field(max_length=200)


class SubscriberInterest(SQLModel, table=True):
    __tablename__ = "subscriber_interest"
    __table_args__ = (Index("ix_subscriber_interest_interest", "interest", "subscriber_id"),)
    subscriber_id: int = Field(
        sa_column=Column(Integer, ForeignKey("subscriber.id", ondelete="CASCADE"), primary_key=True)
    )
    interest: str = Field(max_length=64, primary_key=True)


LONG_TEXT = 2000  # bytes: a longer string value is kept out of the index (value_long)


class SubscriberFieldValue(SQLModel, table=True):
    """One custom field value of a subscriber, typed, as segment conditions read it. The
    database writes these rows from subscriber.fields itself (triggers, migration x19a): code
    only reads them."""

    __tablename__ = "subscriber_field_value"
    __table_args__ = (
        Index("ix_field_value_text", "key", "kind", "value_text", "subscriber_id", "position"),
        Index(
            "ix_field_value_number",
            "key",
            "value_number",
            "subscriber_id",
            "position",
            postgresql_where=text("value_number IS NOT NULL"),
            sqlite_where=text("value_number IS NOT NULL"),
        ),
        Index(
            "ix_field_value_bool",
            "key",
            "value_bool",
            "subscriber_id",
            "position",
            postgresql_where=text("value_bool IS NOT NULL"),
            sqlite_where=text("value_bool IS NOT NULL"),
        ),
    )
    subscriber_id: int = Field(
        sa_column=Column(Integer, ForeignKey("subscriber.id", ondelete="CASCADE"), primary_key=True)
    )
    key: str = Field(sa_column=Column(Text, primary_key=True))
    position: int = Field(primary_key=True)  # 0: the value; n >= 1: the n-th item of an array
    kind: str = Field(max_length=8)  # the JSON type: string, number, boolean; item (of an array)
    value_text: str | None = Field(default=None, sa_type=Text)  # a string of up to LONG_TEXT
    value_long: str | None = Field(default=None, sa_type=Text)  # a longer string
    value_number: float | None = Field(default=None)
    value_bool: bool | None = Field(default=None)


class ConsentEvent(SQLModel, table=True):
    """Proof of consent and the audit trail of every change to it (append-only)."""

    __tablename__ = "consent_event"
    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int | None = _fk("subscriber.id", ondelete="SET NULL", nullable=True)
    list_id: int | None = _fk("mailing_list.id", ondelete="SET NULL", nullable=True, index=False)
    kind: str = Field(max_length=32)  # subscribe confirm unsubscribe resubscribe preference ...
    at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    source: str = Field(default="", max_length=64)  # form api import one-click mailto inbound ...
    actor: str = Field(default="subscriber", max_length=100)
    ip: str = Field(default="", max_length=64)
    user_agent: str = Field(default="", max_length=500)
    wording: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    detail: dict[str, Any] = _json()
    campaign_id: int | None = Field(default=None)
    inbound_id: int | None = Field(default=None)
    # The privacy notice in force when a sign-up or confirmation was recorded.
    privacy_notice_id: int | None = _fk(
        "privacy_notice.id", ondelete="SET NULL", nullable=True, index=False
    )
    # When the person asked for an unsubscribe that `at` carried out (a one-click post, the
    # page's button, a mail received): how long leaving took (services/reputation).
    requested_at: datetime | None = Field(default=None, sa_type=DateTime)


class Repermission(SQLModel, table=True):
    """A flagged person asked to confirm they still want mail: kept when they confirm by the
    deadline, unsubscribed (from the list, or every list with None) when they do not."""

    __tablename__ = "repermission"
    __table_args__ = (Index("ix_repermission_open", "ended_at", "deadline"),)
    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = _fk("subscriber.id")
    list_id: int | None = _fk("mailing_list.id", nullable=True, index=False)
    flag: str = Field(max_length=32)  # why they were asked: soft_bounce role never_engaged
    asked_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    deadline: datetime = Field(sa_type=DateTime)
    confirmed_at: datetime | None = Field(default=None, sa_type=DateTime)
    ended_at: datetime | None = Field(default=None, sa_type=DateTime)  # confirmed or expired
    created_by: str = Field(default="", max_length=320, sa_column_kwargs={"server_default": ""})


class PrivacyNotice(SQLModel, table=True):
    """Each published version of a list's privacy notice, as built from the configuration."""

    __tablename__ = "privacy_notice"
    __table_args__ = (UniqueConstraint("list_id", "version"),)
    id: int | None = Field(default=None, primary_key=True)
    list_id: int = _fk("mailing_list.id", index=False)
    version: int
    content: dict[str, Any] = _json()
    digest: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)


class Suppression(SQLModel, table=True):
    """Addresses that never get campaign mail; erased people stay only as a keyed hash."""

    __tablename__ = "suppression"
    id: int | None = Field(default=None, primary_key=True)
    email_hash: str = Field(max_length=64, unique=True, index=True)
    email: str | None = Field(default=None, max_length=320)
    reason: str = Field(
        max_length=32
    )  # unsubscribed_all hard_bounce complaint erased manual flagged
    detail: str = Field(default="", max_length=500)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)


class Outbox(SQLModel, table=True):
    """Transactional mail (confirmations, notices, tests) waiting to be sent; the DB is the truth."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_status", "status", "created_at"),
        Index("ix_outbox_to_kind", "to_email", "kind", "created_at"),
        # a reply or bounce naming a Message-ID we sent is matched here
        Index("ix_outbox_message_id", "message_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)  # confirm already_subscribed unsubscribed test
    to_email: str = Field(max_length=320)
    subscriber_id: int | None = _fk(
        "subscriber.id", ondelete="SET NULL", nullable=True, index=False
    )
    list_id: int | None = _fk("mailing_list.id", ondelete="SET NULL", nullable=True, index=False)
    payload: dict[str, Any] = _json()
    status: str = Field(default="pending", max_length=16)  # pending sending sent failed
    attempts: int = Field(default=0)
    lease_until: datetime | None = Field(default=None, sa_type=DateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    sent_at: datetime | None = Field(default=None, sa_type=DateTime)
    message_id: str = Field(default="", max_length=255)
    last_error: str = Field(default="", max_length=1000)
    possibly_duplicate: bool = Field(default=False)


class DevMail(SQLModel, table=True):
    """What the embedded dev outbox captured instead of sending."""

    __tablename__ = "dev_mail"
    id: int | None = Field(default=None, primary_key=True)
    mail_from: str = Field(default="", max_length=500)
    rcpt_to: str = Field(default="", max_length=500)
    subject: str = Field(default="", max_length=1000)
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, index=True, sa_type=DateTime)


class ActivityEvent(SQLModel, table=True):
    __tablename__ = "activity_event"
    __table_args__ = (
        Index("ix_activity_type_sub_at", "type", "subscriber_id", "at"),
        Index("ix_activity_type_at_sub", "type", "at", "subscriber_id"),
    )
    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    )
    subscriber_id: int = _fk("subscriber.id")
    type: str = Field(max_length=64)
    properties: dict[str, Any] = _jsonb()
    at: datetime = Field(default_factory=utcnow, sa_type=DateTime)


class Segment(SQLModel, table=True):
    __tablename__ = "segment"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    lists: list[str] = _json_list()
    rules: dict[str, Any] = _json()
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)


class Campaign(SQLModel, table=True):
    __tablename__ = "campaign"
    __table_args__ = {
        "sqlite_autoincrement": True
    }  # a deleted draft's id is never handed out again
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    subject: str = Field(max_length=998)
    preheader: str = Field(default="", max_length=500)
    from_name: str = Field(default="", max_length=200)
    from_email: str = Field(default="", max_length=320)
    reply_to: str = Field(default="", max_length=320)
    content_format: str = Field(default="html", max_length=16)  # html markdown visual
    body: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    layout: str = Field(
        default="", sa_column=Column(Text, nullable=False, default="", server_default="")
    )  # "" = built-in
    text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    lists: list[str] = _json_list()
    segment_id: int | None = _fk("segment.id", ondelete="SET NULL", nullable=True, index=False)
    segment_rules: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    status: str = Field(default=CampaignStatus.draft.value, max_length=16, index=True)
    # Why the campaign paused itself (e.g. its template failed for several recipients);
    # cleared when someone resumes it.
    status_reason: str = Field(default="", max_length=1000, sa_column_kwargs={"server_default": ""})
    # Where the circuit breaker's window begins: the start, then each resume (a person's
    # decision: the messages before it are not held against the campaign again).
    breaker_since: datetime | None = Field(default=None, sa_type=DateTime)
    scheduled_at: datetime | None = Field(default=None, sa_type=DateTime)  # UTC
    # The IANA zone the schedule was chosen in ("" = UTC): how the time is shown back.
    schedule_timezone: str = Field(
        default="", max_length=64, sa_column_kwargs={"server_default": ""}
    )
    started_at: datetime | None = Field(default=None, sa_type=DateTime)
    finished_at: datetime | None = Field(default=None, sa_type=DateTime)
    audience: int = Field(default=0)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    created_by: str = Field(default="", max_length=200)
    # An A/B test (services/abtests.py): its settings and alternatives, when the winner is due
    # (set at the start), and the winner (variant index) once chosen.
    ab_test: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    ab_decide_at: datetime | None = Field(default=None, sa_type=DateTime)
    ab_decided_at: datetime | None = Field(default=None, sa_type=DateTime)
    ab_winner: int | None = Field(default=None)
    # Once the ledger's retention period has passed, the figures every page read from its
    # rows, kept here before the rows are deleted (services/ledger_archive.py).
    ledger_summary: dict[str, Any] | None = Field(
        default=None, sa_column=Column(JSON(none_as_null=True))
    )


class CampaignTemplate(SQLModel, table=True):
    """A starting point for campaigns: a body in one of the content formats, named."""

    __tablename__ = "campaign_template"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True)
    content_format: str = Field(default="html", max_length=16)  # html markdown visual
    body: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    created_by: str = Field(default="", max_length=200)


# Ledger rows whose message was handed over (accepted or refused): what the rates count.
HANDED_OVER = "status IN ('sent', 'failed')"


class Delivery(SQLModel, table=True):
    """The per-recipient ledger of a campaign: one row per campaign and subscriber.

    campaign_id and subscriber_id are not foreign keys: checking them row by row cost more than
    writing a million rows at the start of a campaign. Erasure clears subscriber_id itself;
    only drafts (no ledger) are ever deleted.
    """

    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "campaign_id", name="uq_delivery_subscriber_campaign"),
        Index("ix_delivery_claim", "campaign_id", "status", "next_attempt_at"),
        Index(
            "ix_delivery_sent_sub",
            "sent_at",
            "subscriber_id",
            postgresql_where=text("status = 'sent'"),
            sqlite_where=text("status = 'sent'"),
        ),
        # The circuit breaker's window: a campaign's last messages handed over (only rows
        # handed over are in it, so materializing an audience never writes to it).
        Index(
            "ix_delivery_handed",
            "campaign_id",
            "attempted_at",
            postgresql_where=text(HANDED_OVER),
            sqlite_where=text(HANDED_OVER),
        ),
    )
    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    )
    campaign_id: int = Field(sa_column=Column(Integer, nullable=False))
    subscriber_id: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    list_id: int | None = Field(default=None)
    status: str = Field(default=DeliveryStatus.queued.value, max_length=16)
    attempts: int = Field(default=0)
    next_attempt_at: datetime | None = Field(default=None, sa_type=DateTime)
    lease_until: datetime | None = Field(default=None, sa_type=DateTime)
    claimed_by: str = Field(default="", max_length=100)
    in_flight: bool = Field(default=False)  # handed to SMTP, answer not yet recorded
    possibly_duplicate: bool = Field(default=False)
    sent_at: datetime | None = Field(default=None, sa_type=DateTime)
    attempted_at: datetime | None = Field(default=None, sa_type=DateTime)  # last outcome
    smtp_server: str = Field(default="", max_length=200)
    error: str = Field(default="", max_length=1000)
    bounced: bool = Field(default=False)
    complained: bool = Field(default=False)
    unsubscribed: bool = Field(default=False)
    variant: int | None = Field(default=None)  # the A/B test variant this person got (0 = A)


class Engagement(SQLModel, table=True):
    """Opens and clicks, recorded only for subscribers who consented to tracking."""

    __tablename__ = "engagement"
    __table_args__ = (
        Index("ix_engagement_sub_kind_at", "subscriber_id", "kind", "at"),
        Index("ix_engagement_kind_at_sub", "kind", "at", "subscriber_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int | None = Field(default=None, index=True)
    subscriber_id: int = _fk("subscriber.id", index=False)
    kind: str = Field(max_length=16)  # open click
    url: str = Field(default="", max_length=2000)
    link_id: int | None = Field(default=None)  # campaign_link.id of a click (0: the trap)
    # A privacy proxy's open or a link scanner's click: recorded, left out of every rate.
    machine: bool = Field(default=False, sa_column_kwargs={"server_default": sa_false()})
    at: datetime = Field(default_factory=utcnow, sa_type=DateTime)


class CampaignLink(SQLModel, table=True):
    """A campaign's trackable links: a click token names one by id, so the redirect's target
    always comes from here, never from the URL that was clicked."""

    __tablename__ = "campaign_link"
    __table_args__ = (UniqueConstraint("campaign_id", "url", name="uq_campaign_link_url"),)
    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = _fk("campaign.id", index=False)
    url: str = Field(max_length=2000)


class InboundMessage(SQLModel, table=True):
    __tablename__ = "inbound_message"
    id: int | None = Field(default=None, primary_key=True)
    sha256: str = Field(max_length=64, unique=True)
    message_id: str = Field(default="", max_length=998, index=True)
    envelope_from: str = Field(default="", max_length=500)
    envelope_to: str = Field(default="", max_length=500)
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    size: int = Field(default=0)
    received_at: datetime = Field(default_factory=utcnow, index=True, sa_type=DateTime)
    status: str = Field(default="stored", max_length=16)  # stored processed failed
    kind: str = Field(default="", max_length=16)  # bounce complaint autoreply unsubscribe other
    action: str = Field(default="", max_length=200)
    evidence: dict[str, Any] = _json()
    subscriber_id: int | None = _fk(
        "subscriber.id", ondelete="SET NULL", nullable=True, index=False
    )
    list_id: int | None = Field(default=None)
    campaign_id: int | None = Field(default=None)
    processed_at: datetime | None = Field(default=None, sa_type=DateTime)
    attempts: int = Field(default=0)
    error: str = Field(default="", max_length=1000)
    handled: bool = Field(default=False)  # a human has dealt with it (admin inbox)
    # When an erasure blotted a person it merely named out of raw and parts (raw is then a
    # redacted rendering, sha256 still the original's so a redelivery stays a duplicate).
    redacted_at: datetime | None = Field(default=None, sa_type=DateTime)
    # What tied it to us when it changed someone: token, message-id, dmarc, dkim, link (the
    # person confirmed), admin; "none": a bounce, complaint or unsubscribe request that
    # changed nobody (it waits in the inbox); "" for kinds that never change anyone.
    proof: str = Field(
        default="", sa_column=Column(String(16), nullable=False, default="", server_default="")
    )


class User(SQLModel, table=True):
    __tablename__ = "app_user"
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, unique=True)
    name: str = Field(default="", max_length=200)
    password_hash: str = Field(max_length=500)
    role: str = Field(default=Role.editor.value, max_length=16)
    active: bool = Field(default=True)
    failed_logins: int = Field(default=0)
    locked_until: datetime | None = Field(default=None, sa_type=DateTime)
    session_version: int = Field(default=0)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    last_login_at: datetime | None = Field(default=None, sa_type=DateTime)


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"
    id: int | None = Field(default=None, primary_key=True)
    user_id: int | None = _fk("app_user.id", nullable=True)
    name: str = Field(default="", max_length=200)
    token_hash: str = Field(max_length=64, unique=True)
    prefix: str = Field(default="", max_length=16)
    role: str = Field(max_length=16)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=DateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=DateTime)
    # The token that minted this one through the API: its "own" tokens, revoked along with it.
    created_by_token_id: int | None = Field(default=None, index=True)


class LoginThrottle(SQLModel, table=True):
    """Failed sign-ins per key (account + address, or address): each slows the next one down."""

    __tablename__ = "login_throttle"
    key: str = Field(primary_key=True, max_length=64)  # sha256 of the kind and its value
    failures: int = Field(default=0)
    last_failed_at: datetime = Field(default_factory=utcnow, index=True, sa_type=DateTime)
    blocked_until: datetime | None = Field(default=None, sa_type=DateTime)


class AuditLog(SQLModel, table=True):
    """Who viewed, exported, imported, erased, changed or sent what (append-only)."""

    __tablename__ = "audit_log"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True, sa_type=DateTime)
    actor: str = Field(default="", max_length=320)
    user_id: int | None = Field(default=None)
    token_id: int | None = Field(default=None)
    action: str = Field(max_length=64, index=True)
    target_type: str = Field(default="", max_length=32)
    target_id: str = Field(default="", max_length=64)
    ip: str = Field(default="", max_length=64)
    detail: dict[str, Any] = _json()


class Upload(SQLModel, table=True):
    """An uploaded file (a CSV waiting for its import), kept in the database so that a worker
    on any host reads it; its bytes are in UploadChunk rows."""

    __tablename__ = "upload"
    id: int | None = Field(default=None, primary_key=True)
    token: str = Field(max_length=32, unique=True)  # names it in forms (ids are guessable)
    filename: str = Field(default="", max_length=500)
    size: int = Field(default=0)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)


class UploadChunk(SQLModel, table=True):
    """One piece of an upload, in order (a large file is never one value in memory)."""

    __tablename__ = "upload_chunk"
    upload_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("upload.id", ondelete="CASCADE"), primary_key=True, nullable=False
        )
    )
    seq: int = Field(primary_key=True)
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class ImportJob(SQLModel, table=True):
    __tablename__ = "import_job"
    id: int | None = Field(default=None, primary_key=True)
    list_id: int | None = _fk("mailing_list.id", ondelete="SET NULL", nullable=True, index=False)
    filename: str = Field(default="", max_length=500)
    path: str = Field(default="", max_length=1000)  # jobs queued before uploads moved to upload
    upload_id: int | None = _fk("upload.id", ondelete="SET NULL", nullable=True)
    mode: str = Field(default="upsert", max_length=16)
    mapping: dict[str, Any] = _json()
    consent: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    status: str = Field(default="queued", max_length=16)  # queued running done failed
    total_bytes: int = Field(default=0)
    processed_bytes: int = Field(default=0)
    rows: int = Field(default=0)
    inserted: int = Field(default=0)
    updated: int = Field(default=0)
    skipped: int = Field(default=0)
    errors: int = Field(default=0)
    report: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_by: str = Field(default="", max_length=320)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    finished_at: datetime | None = Field(default=None, sa_type=DateTime)
    heartbeat_at: datetime | None = Field(default=None, sa_type=DateTime)  # while running
    last_row: int = Field(default=0)  # the last CSV row committed: a resumed run goes on after it
    error: str = Field(default="", max_length=1000)  # why a failed job failed


class SettingValue(SQLModel, table=True):
    """Settings changed from the admin (SMTP servers, DKIM, rate limits) over the config files."""

    __tablename__ = "setting_value"
    key: str = Field(max_length=64, primary_key=True)
    value: Any = Field(default=None, sa_column=Column(JSON))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)


class DomainBackoff(SQLModel, table=True):
    """A receiving domain (or a `domain_limits` entry) that asked us to slow down: its rows
    wait until `until` (shared by every worker)."""

    __tablename__ = "domain_backoff"
    domain: str = Field(max_length=255, primary_key=True)
    until: datetime = Field(sa_type=DateTime)
    level: int = Field(default=1)  # throttling replies in a row: the wait doubles with each


class DomainSlot(SQLModel, table=True):
    """One message-in-flight slot of a domain limit's concurrency, held by a sending job
    until it gives it back or its lease ends (a killed worker's slots expire)."""

    __tablename__ = "domain_slot"
    id: int | None = Field(default=None, primary_key=True)
    domain: str = Field(max_length=255, index=True)
    holder: str = Field(max_length=200, index=True)
    lease_until: datetime = Field(sa_type=DateTime)


class SendVolume(SQLModel, table=True):
    """Campaign messages handed over on one UTC day, over all workers (the warm-up cap)."""

    __tablename__ = "send_volume"
    day: str = Field(max_length=10, primary_key=True)  # YYYY-MM-DD
    used: int = Field(default=0)


class WorkerProcess(SQLModel, table=True):
    """A process running background jobs, as its last heartbeat says (`listmgr status`)."""

    __tablename__ = "worker_process"
    name: str = Field(primary_key=True, max_length=120)  # host:pid:random, unique per start
    host: str = Field(default="", max_length=255)
    pid: int = Field(default=0)
    threads: int = Field(default=0)
    started_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    seen_at: datetime = Field(default_factory=utcnow, index=True, sa_type=DateTime)
