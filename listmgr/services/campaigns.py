"""Campaigns: draft, update, copy, delete, preview, test, schedule, start (audience -> ledger), pause, resume,
cancel, stats, and the scheduler's start_due / the sweeper's requeue. Scheduling and starting
are refused while the campaign checklist (services.campaign_checklist) has blockers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy import update as sql_update
from sqlalchemy.orm import Session
from sqlmodel import col

from listmgr import zonetimes
from listmgr.addresses import normalize_email
from listmgr.db import rows_changed
from listmgr.errors import Conflict, ListmgrError, ValidationError
from listmgr.mail import content
from listmgr.mail.compose import clean_header
from listmgr.models import (
    Campaign,
    CampaignStatus,
    Delivery,
    Segment,
    by_id,
    utcnow,
)
from listmgr.runtime import Runtime
from listmgr.services import abtests, audit, campaign_checklist, ledger, settings_store
from listmgr.services.campaign_preview import (  # noqa: F401
    MAX_TEXT,
    Preview,
    preview,
    preview_values,
    send_test,
)
from listmgr.services.campaign_setup import (
    COMPILED,
    CONTENT_FIELDS,
    checked,
    get_row,
    id_of,
    list_rows,
    resolve_lists,
)
from listmgr.services.campaign_stats import Stats, stats, stats_of  # noqa: F401
from listmgr.services.segments import rules_in_force
from listmgr.settings import Settings

S = CampaignStatus
EDITABLE = (
    *CONTENT_FIELDS,
    "lists",
    "segment",
    "segment_id",
    "ab_test",
)


# -- views -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CampaignInfo:
    id: int
    name: str
    subject: str
    preheader: str
    from_name: str
    from_email: str
    reply_to: str
    content_format: str
    body: str
    text: str
    layout: str
    lists: list[str]
    segment: dict[str, Any] | None
    segment_id: int | None
    status: str
    status_reason: str  # why it paused itself ("" otherwise)
    scheduled_at: str | None  # UTC
    schedule_timezone: str  # the IANA zone its schedule was chosen in ("": none, UTC)
    started_at: str | None
    finished_at: str | None
    created_at: str
    updated_at: str
    created_by: str
    stats: dict[str, Any]
    ab_test: dict[str, Any] | None  # the A/B test's settings (services/abtests.py)
    ab_result: dict[str, Any] | None  # when its winner is due, and which won when
    # when its ledger's rows went after the retention period, their figures kept (None: kept)
    ledger_deleted_at: str | None = None

    @property
    def scheduled_at_utc(self) -> datetime | None:
        return datetime.fromisoformat(self.scheduled_at) if self.scheduled_at else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _info(
    s: Session, row: Campaign, *, timeline: bool = False, personal: bool = True
) -> CampaignInfo:
    from listmgr.services.segments import shown_rules

    counts = asdict(stats_of(s, row, timeline=timeline))
    if not timeline:
        counts.pop("timeline")
        counts.pop("engagement")
    return CampaignInfo(
        id_of(row),
        row.name,
        row.subject,
        row.preheader,
        row.from_name,
        row.from_email,
        row.reply_to,
        row.content_format,
        row.body,
        row.text,
        row.layout,
        list(row.lists or []),
        shown_rules(s, row.segment_rules, personal=personal),
        row.segment_id,
        row.status,
        row.status_reason,
        _iso(row.scheduled_at),
        row.schedule_timezone,
        _iso(row.started_at),
        _iso(row.finished_at),
        row.created_at.isoformat(),
        row.updated_at.isoformat(),
        row.created_by,
        counts,
        row.ab_test,
        _ab_result(row),
        row.ledger_summary["kept_at"] if row.ledger_summary else None,
    )


def _ab_result(row: Campaign) -> dict[str, Any] | None:
    if not row.ab_test or row.ab_decide_at is None:
        return None
    winner = abtests.LETTERS[row.ab_winner] if row.ab_winner is not None else None
    return {
        "decide_at": _iso(row.ab_decide_at),
        "decided_at": _iso(row.ab_decided_at),
        "winner": winner,
    }


def _audit(s: Session, actor: str, action: str, campaign_id: int, **detail: Any) -> None:
    s.add(
        audit.entry(
            actor=actor or "system",
            action=action,
            target_type="campaign",
            target_id=campaign_id,
            detail=detail,
        )
    )


# -- validation ------------------------------------------------------------------------------
def _line(value: Any, field: str, limit: int, *, required: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be text", field=field)
    value = value.strip()
    if required and not value:
        raise ValidationError(f"{field} is required", field=field)
    if len(value) > limit:
        raise ValidationError(f"{field} is longer than {limit} characters", field=field)
    return clean_header(value, field)


def _text(value: Any, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be text", field=field)
    if len(value) > MAX_TEXT:
        raise ValidationError(f"{field} is too large", field=field)
    return value


def _clean(
    s: Session, settings: Settings, values: dict[str, Any], *, campaign_id: int | None = None
) -> tuple[dict[str, Any], Any]:
    """Validated values for a campaign row and its segment rules compiled; raises naming the
    first bad field."""
    out: dict[str, Any] = {}
    out["name"] = _line(values.get("name"), "name", 200, required=True)
    out["from_name"] = _line(values.get("from_name"), "from_name", 200)
    for key in ("from_email", "reply_to"):
        raw = values.get(key) or ""
        out[key] = normalize_email(raw) if raw else ""
    out["content_format"] = values.get("content_format") or "html"
    if out["content_format"] not in content.FORMATS:
        raise ValidationError(content.FORMAT_ERROR, field="content_format")
    for key in ("subject", "preheader", "body", "text", "layout"):
        out[key] = _text(values.get(key), key)
    if not out["body"].strip():
        raise ValidationError("the message body is required", field="body")
    lists = values.get("lists")
    if not isinstance(lists, list) or not lists or not all(isinstance(x, str) for x in lists):
        raise ValidationError("choose at least one list (a list of list slugs)", field="lists")
    out["lists"] = list(dict.fromkeys(lists))
    resolve_lists(s, out["lists"])
    segment_id = values.get("segment_id")
    rules = values.get("segment")
    if segment_id is not None and (
        not isinstance(segment_id, int) or by_id(s, Segment, segment_id) is None
    ):
        raise ValidationError(f"there is no segment {segment_id!r}", field="segment_id")
    if rules is not None and not isinstance(rules, dict):
        raise ValidationError("segment must be a rule object or null", field="segment")
    out["segment_id"], out["segment_rules"] = segment_id, (rules or None)
    out["ab_test"] = abtests.clean(values.get("ab_test"), subject=out["subject"], body=out["body"])
    compiled = COMPILED.rules(s, rules_in_force(s, segment_id, rules))  # unknown fields etc.
    _check_content(s, settings, out, campaign_id)
    return out, compiled


def _editable(row: Campaign) -> dict[str, Any]:
    """The campaign's editable values as create() and update() take them."""
    values = {k: getattr(row, k) for k in EDITABLE if k != "segment"}
    values["segment"] = row.segment_rules
    return values


def _audience_where(s: Session, lists: Sequence[str], rules: Any) -> Any:
    from listmgr.services import segments

    return segments.expression(s, lists=list(lists), rules=rules)


def _check_content(
    s: Session, settings: Settings, values: dict[str, Any], campaign_id: int | None
) -> content.Built:
    """The campaign's content checked, and every A/B test alternative with it."""
    views = list_rows(settings, resolve_lists(s, values["lists"]))

    def check(source: content.Content) -> content.Built:
        return checked(
            s, settings, campaign_id=campaign_id, name=values["name"], source=source, views=views
        )

    base = content.Content(
        subject=values["subject"],
        body=values["body"],
        content_format=values["content_format"],
        text=values["text"],
        preheader=values["preheader"],
        layout=values["layout"],
    )
    built = check(base)
    abtests.check_variants(base, values["ab_test"], check)
    return built


# -- drafts ----------------------------------------------------------------------------------
def create(rt: Runtime, *, actor: str = "", **values: Any) -> int:
    """A new draft; every template is checked now, never at send time."""
    unknown = set(values) - set(EDITABLE)
    if unknown:
        raise ValidationError(f"unknown property {sorted(unknown)[0]!r}", field=sorted(unknown)[0])
    settings = settings_store.effective(rt)
    with rt.db.session() as s:
        clean, _ = _clean(s, settings, values)
        row = Campaign(**clean, created_by=actor[:200])
        s.add(row)
        s.flush()
        _audit(s, actor, "campaign.create", id_of(row))
        return id_of(row)


def update(rt: Runtime, campaign_id: int, *, actor: str = "", **values: Any) -> None:
    """Change a draft or scheduled campaign (all fields checked again together)."""
    unknown = set(values) - set(EDITABLE)
    if unknown:
        raise ValidationError(f"unknown property {sorted(unknown)[0]!r}", field=sorted(unknown)[0])
    settings = settings_store.effective(rt)
    with rt.db.session() as s:
        row = get_row(s, campaign_id, lock=True)
        if row.status not in (S.draft.value, S.scheduled.value):
            raise Conflict(f"a {row.status} campaign cannot be changed", field="status")
        current = _editable(row)
        current.update(values)
        clean, _ = _clean(s, settings, current, campaign_id=campaign_id)
        for key, value in clean.items():
            setattr(row, key, value)
        row.updated_at = utcnow()
        _audit(s, actor, "campaign.edit", campaign_id, fields=sorted(values))


def copy(rt: Runtime, campaign_id: int, *, actor: str = "") -> int:
    """A new draft "Copy of …" with a campaign's content, sender, lists and segment, whatever
    its status; never its schedule, ledger or figures. A started campaign kept the rules it was
    sent with: its copy follows its saved segment as that is now when it had one (as the
    composer shows it), else those rules. Checked like any new draft."""
    settings = settings_store.effective(rt)
    with rt.db.session() as s:
        row = get_row(s, campaign_id)
        values = _editable(row)
        if row.status not in (S.draft.value, S.scheduled.value) and row.segment_id is not None:
            values["segment"] = None
        values["name"] = f"Copy of {row.name}"[:200].strip()
        clean, _ = _clean(s, settings, values)
        new = Campaign(**clean, created_by=actor[:200])
        s.add(new)
        s.flush()
        _audit(s, actor, "campaign.copy", id_of(new), source=campaign_id)
        return id_of(new)


def delete(rt: Runtime, campaign_id: int, *, actor: str = "") -> None:
    """Delete a draft (a campaign that was scheduled or started is never deleted: what it sent
    keeps its ledger and stats). Its id is never given to another campaign."""
    with rt.db.session() as s:
        row = get_row(s, campaign_id, lock=True)
        if row.status == S.scheduled.value:
            raise Conflict(
                "only drafts can be deleted: unschedule it first (it goes back to draft)",
                field="status",
            )
        if row.status != S.draft.value:
            raise Conflict(
                f"only drafts can be deleted, and this campaign is {row.status}: "
                "it keeps its history and figures",
                field="status",
            )
        name = row.name
        s.delete(row)
        _audit(s, actor, "campaign.delete", campaign_id, name=name)


def get(
    rt: Runtime, campaign_id: int, *, timeline: bool = False, personal: bool = True
) -> CampaignInfo:
    """One campaign (personal=False: segment values that could name someone masked)."""
    with rt.db.session() as s:
        return _info(s, get_row(s, campaign_id), timeline=timeline, personal=personal)


def ab_comparison(rt: Runtime, campaign_id: int) -> abtests.Comparison | None:
    """The A/B test's variants side by side (None: the campaign has no test)."""
    with rt.db.session() as s:
        return abtests.compare(s, get_row(s, campaign_id))


def all_campaigns(
    rt: Runtime,
    *,
    status: str | None = None,
    offset: int = 0,
    limit: int = 50,
    personal: bool = True,
) -> tuple[list[CampaignInfo], int]:
    with rt.db.session() as s:
        query = select(Campaign)
        if status:
            query = query.where(col(Campaign.status) == status)
        total = int(s.scalar(select(func.count()).select_from(query.subquery())) or 0)
        rows = s.scalars(query.order_by(col(Campaign.id).desc()).offset(offset).limit(limit))
        return [_info(s, r, personal=personal) for r in rows], total


def count_audience(
    rt: Runtime,
    *,
    lists: Sequence[str],
    segment: dict[str, Any] | None = None,
    segment_id: int | None = None,
    personal: bool = True,
) -> int:
    """How many people a campaign to these lists (and segment) would reach right now
    (personal=False: for a caller without access to personal data)."""
    from listmgr.services import segments

    with rt.db.session() as s:
        resolve_lists(s, list(lists))
        rules = rules_in_force(s, segment_id, segment)
        if not personal:
            segments.refuse_identifying(s, rules)
        return segments.counted(s, _audience_where(s, lists, rules))


def audience(rt: Runtime, campaign_id: int) -> int:
    """The campaign's audience now (before sending) or as materialized (after)."""
    from listmgr.services import segments

    with rt.db.session() as s:
        row = get_row(s, campaign_id)
        if row.status not in (S.draft.value, S.scheduled.value):
            return row.audience
        where = _audience_where(s, row.lists, rules_in_force(s, row.segment_id, row.segment_rules))
        return segments.counted(s, where)


# -- lifecycle -------------------------------------------------------------------------------
def _ready(s: Session, settings: Settings, row: Campaign) -> Any:
    """Refuse to send what cannot be sent compliantly (checked again at start); returns the
    segment rules compiled."""
    _, rules = _clean(s, settings, _editable(row), campaign_id=row.id)
    for lst in list_rows(settings, resolve_lists(s, row.lists)).values():
        if not lst.postal_address:
            raise ValidationError(
                f"the list {lst.slug!r} has no postal address and there is no "
                "default_postal_address: every campaign mail must show one",
                field="lists",
            )
    return rules


def schedule(
    rt: Runtime,
    campaign_id: int,
    *,
    at: datetime | None,
    timezone: str | None = None,
    actor: str = "",
) -> None:
    """Schedule for a time, or back to draft with at=None. A naive `at` is a wall-clock time in
    `timezone` (UTC when none; daylight saving rules in listmgr.zonetimes); an aware one is that
    instant, `timezone` then only how it is shown. The zone stays with the campaign. Refused
    (errors.Blocked) while the campaign checklist has blockers."""
    zone = zonetimes.zone_name(timezone)
    utc = zonetimes.to_utc(at, zone) if at is not None else None
    if utc is not None and utc < utcnow() - timedelta(minutes=1):
        when = zonetimes.shown(utc, zone).label
        raise ValidationError(f"{when} is in the past: choose a time in the future", field="at")
    settings = settings_store.effective(rt)
    if utc is not None:  # unscheduling is always allowed
        campaign_checklist.refuse_blocked(rt, campaign_id, settings=settings)
    with rt.db.session() as s:
        row = get_row(s, campaign_id, lock=True)
        if row.status not in (S.draft.value, S.scheduled.value):
            raise Conflict(f"a {row.status} campaign cannot be scheduled", field="status")
        if utc is None:
            row.status, row.scheduled_at = S.draft.value, None
        else:
            _ready(s, settings, row)
            row.status, row.scheduled_at = S.scheduled.value, utc
        if timezone is not None:
            row.schedule_timezone = zone
        row.updated_at = utcnow()
        _audit(s, actor, "campaign.schedule", campaign_id, at=_iso(utc), timezone=zone)


def start(
    rt: Runtime,
    campaign_id: int,
    *,
    actor: str = "",
    only_from: tuple[str, ...] = (S.draft.value, S.scheduled.value),
) -> int:
    """Send now: materialize the audience into the ledger in one INSERT … SELECT, then wake
    the workers. Returns the audience; Conflict when another process started it first,
    errors.Blocked while the campaign checklist has blockers."""
    now = utcnow()
    settings = settings_store.effective(rt)
    # Checked in sessions of its own, before this one (SQLite takes its write lock at BEGIN).
    campaign_checklist.refuse_blocked(rt, campaign_id, settings=settings)
    with rt.db.session() as s:
        row = get_row(s, campaign_id)
        if row.status not in only_from:
            raise Conflict(f"the campaign is {row.status}", field="status")
        rules = _ready(s, settings, row)
        # The status change is the lock: of several schedulers, one UPDATE matches.
        won = rows_changed(
            s,
            sql_update(Campaign)
            .where(col(Campaign.id) == campaign_id, col(Campaign.status).in_(only_from))
            .values(
                status=S.sending.value,
                started_at=now,
                updated_at=now,
                scheduled_at=None,
                breaker_since=now,
            ),
        )
        if not won:
            raise Conflict("the campaign was started by someone else", field="status")
        list_ids = list(resolve_lists(s, row.lists))
        chosen = rules_in_force(s, row.segment_id, row.segment_rules)
        if s.get_bind().dialect.name == "postgresql":
            s.execute(text("SET LOCAL work_mem = '256MB'"))  # one hash join, no spill
        # An A/B test's audience is held, all but its test share (released by abtests).
        held = ledger.HELD if row.ab_test else ledger.QUEUED
        count = rows_changed(
            s, ledger.materialize_statement(campaign_id, list_ids, rules, now, held)
        )
        # The rules it was sent with stay with the campaign, whatever becomes of the segment.
        values: dict[str, Any] = {"audience": count, "segment_rules": chosen or None}
        if count == 0:
            values.update(status=S.sent.value, finished_at=now)
        elif row.ab_test:
            values["ab_decide_at"] = abtests.assign(s, row, count, now)
        s.execute(sql_update(Campaign).where(col(Campaign.id) == campaign_id).values(**values))
        _audit(s, actor, "campaign.send", campaign_id, audience=count)
    if count:
        rt.enqueue("send_batch", campaign_id)
    return count


def _transition(
    rt: Runtime,
    campaign_id: int,
    *,
    allowed: tuple[str, ...],
    to: str,
    action: str,
    actor: str,
    **extra: Any,
) -> None:
    with rt.db.session() as s:
        row = get_row(s, campaign_id)
        done = rows_changed(
            s,
            sql_update(Campaign)
            .where(col(Campaign.id) == campaign_id, col(Campaign.status).in_(allowed))
            .values(status=to, updated_at=utcnow(), **extra),
        )
        if not done:
            raise Conflict(f"a {row.status} campaign cannot be {action}d", field="status")
        _audit(s, actor, f"campaign.{action}", campaign_id)


def pause(rt: Runtime, campaign_id: int, *, actor: str = "") -> None:
    """Stop sending after the message in flight; resume continues where it stopped."""
    _transition(
        rt,
        campaign_id,
        allowed=(S.sending.value,),
        to=S.paused.value,
        action="pause",
        actor=actor,
        status_reason="",
    )


def resume(rt: Runtime, campaign_id: int, *, actor: str = "") -> None:
    """Send on (a person's decision: the circuit breaker's window starts again now)."""
    _transition(
        rt,
        campaign_id,
        allowed=(S.paused.value,),
        to=S.sending.value,
        action="resume",
        actor=actor,
        status_reason="",
        breaker_since=utcnow(),
    )
    rt.enqueue("send_batch", campaign_id)


def cancel(rt: Runtime, campaign_id: int, *, actor: str = "") -> None:
    """Stop for good; what was not sent stays unsent."""
    _transition(
        rt,
        campaign_id,
        allowed=(S.draft.value, S.scheduled.value, S.sending.value, S.paused.value),
        to=S.cancelled.value,
        action="cancel",
        actor=actor,
        finished_at=utcnow(),
    )


def start_due(rt: Runtime) -> int:
    """Start every scheduled campaign whose time has come (safe with several schedulers)."""
    import logging

    with rt.db.session() as s:
        due = [
            cid
            for cid in s.scalars(
                select(col(Campaign.id)).where(
                    col(Campaign.status) == S.scheduled.value,
                    col(Campaign.scheduled_at) <= utcnow(),
                )
            )
            if cid is not None
        ]
    started = 0
    for cid in due:
        try:
            start(rt, cid, actor="scheduler", only_from=(S.scheduled.value,))
            started += 1
        except Conflict:
            continue  # another scheduler won
        except ListmgrError as exc:  # cannot be sent as it is: back to draft, with the reason
            logging.getLogger(__name__).warning(
                "scheduled campaign %s not started: %s", cid, exc.message
            )
            with rt.db.session() as s:
                s.execute(
                    sql_update(Campaign)
                    .where(col(Campaign.id) == cid, col(Campaign.status) == S.scheduled.value)
                    .values(status=S.draft.value, updated_at=utcnow())
                )
                _audit(s, "scheduler", "campaign.schedule", cid, error=exc.message)
    return started


def requeue(rt: Runtime) -> int:
    """Wake a worker for every sending campaign with rows left (its jobs fan out again, and
    an A/B test whose wait is over gets its winner); finish the ones with nothing left."""
    pending = (ledger.QUEUED, ledger.CLAIMED, ledger.HELD)  # held: an A/B test's winner is due
    woken = []
    with rt.db.session() as s:
        sending = select(col(Campaign.id)).where(col(Campaign.status) == S.sending.value)
        for cid in list(s.scalars(sending)):
            left = s.scalar(
                select(col(Delivery.id))
                .where(col(Delivery.campaign_id) == cid, col(Delivery.status).in_(pending))
                .limit(1)
            )
            if left is not None:
                woken.append(cid)
            else:
                s.execute(
                    sql_update(Campaign)
                    .where(col(Campaign.id) == cid, col(Campaign.status) == S.sending.value)
                    .values(status=S.sent.value, finished_at=utcnow())
                )
    for cid in woken:
        rt.enqueue("send_batch", cid)
    return len(woken)
