"""The circuit breaker of a sending campaign: after a sending round records hard bounces, after
each batch while the window is under its minimum (and once per job), and when inbound mail
flags a hard bounce or a complaint, the campaign's window
(services/reputation.campaign_window) is judged by the rule (listmgr.mail.breaker). Past a
limit the campaign pauses itself once, however many workers judge at the same moment, says
why, and every active owner gets a mail. Only a person resumes it (campaigns.resume), and its
window then starts again."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlmodel import col

from listmgr.db import rows_changed
from listmgr.mail.breaker import Limits, verdict
from listmgr.models import Campaign, CampaignStatus, Outbox, Role, User, utcnow
from listmgr.runtime import Runtime
from listmgr.services import audit, reputation
from listmgr.settings import Settings

log = logging.getLogger(__name__)
MAIL = "campaign_paused"  # templates/email/campaign_paused/
PREFIX = "paused by the circuit breaker: "  # how its status_reason starts


def limits(settings: Settings) -> Limits:
    """The breaker's limits in these settings."""
    return Limits(
        bounce_rate=settings.breaker_bounce_rate,
        complaint_rate=settings.breaker_complaint_rate,
        window=settings.breaker_window,
        min_deliveries=settings.breaker_min_deliveries,
    )


@dataclass(frozen=True)
class Judgement:
    paused: bool  # this judgement paused the campaign
    early: bool  # fewer messages than the minimum: more messages alone may bring a verdict


def check(rt: Runtime, settings: Settings, campaign_id: int) -> Judgement:
    """Judge a sending campaign's window and pause it when a rate is over its limit (of
    judgements at the same moment, one pauses it)."""
    if not limits(settings).enabled:
        return Judgement(paused=False, early=False)
    with rt.db.session() as s:
        mail, early = _judge(s, rt, settings, campaign_id)
    notify(rt, mail)
    return Judgement(paused=mail is not None, early=early)


def notify(rt: Runtime, mail: list[int] | None) -> None:
    """Send the owners' mail of a pause, after its unit of work committed."""
    for oid in mail or ():
        rt.enqueue("send_outbox", oid)


def judge(s: Session, rt: Runtime, settings: Settings, campaign_id: int) -> list[int] | None:
    """check() in the caller's unit of work (which may have just flagged a delivery): None
    when the campaign goes on, else the outbox ids of the owners' mail, to send after commit."""
    return _judge(s, rt, settings, campaign_id)[0]


def _judge(
    s: Session, rt: Runtime, settings: Settings, campaign_id: int
) -> tuple[list[int] | None, bool]:
    rule = limits(settings)
    if not rule.enabled:
        return None, False
    row = s.execute(
        select(
            col(Campaign.status),
            col(Campaign.name),
            col(Campaign.breaker_since),
            col(Campaign.started_at),
        ).where(col(Campaign.id) == campaign_id)
    ).one_or_none()
    if row is None or row.status != CampaignStatus.sending.value:
        return None, False
    window = reputation.campaign_window(
        s, campaign_id, since=row.breaker_since or row.started_at, size=rule.window
    )
    reason = verdict(
        rule,
        handed=window.handed_over,
        bounces=window.hard_bounces,
        complaints=window.complaints,
    )
    if reason is None:
        return None, window.handed_over < rule.min_deliveries
    reason = PREFIX + reason
    # The status change decides: of several workers judging at once, one UPDATE matches.
    won = rows_changed(
        s,
        update(Campaign)
        .where(
            col(Campaign.id) == campaign_id,
            col(Campaign.status) == CampaignStatus.sending.value,
        )
        .values(status=CampaignStatus.paused.value, status_reason=reason, updated_at=utcnow()),
    )
    if not won:
        return None, False
    s.add(
        audit.entry(
            actor="circuit breaker",
            action="campaign.breaker",
            target_type="campaign",
            target_id=campaign_id,
            detail={
                "reason": reason,
                "messages": window.handed_over,
                "hard_bounces": window.hard_bounces,
                "complaints": window.complaints,
            },
        )
    )
    log.warning("campaign %s %s", campaign_id, reason)
    payload = {
        "campaign_name": row.name,
        "reason": reason[len(PREFIX) :],
        "campaign_url": rt.url(f"/admin/campaigns/{campaign_id}/stats"),
    }
    owners = list(
        s.scalars(
            select(col(User.email)).where(
                col(User.role) == Role.owner.value, col(User.active).is_(True)
            )
        )
    )
    mail = []
    for email in owners:
        notice = Outbox(kind=MAIL, to_email=email, payload=payload)
        s.add(notice)
        s.flush()
        assert notice.id is not None  # flushed
        mail.append(notice.id)
    return mail, False
