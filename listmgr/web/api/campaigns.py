"""API: /api/campaigns (+ /copy, /preview, /checklist, /test, /send, /schedule, /pause, /resume,
/cancel, /stats, /audience)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from flask import jsonify
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ConfigDict, Field

from listmgr import zonetimes
from listmgr.errors import ValidationError
from listmgr.services import campaign_checklist, campaigns
from listmgr.web import limits
from listmgr.web.api.base import DbId, Page, actor, paginated, parse_body, parse_query, route
from listmgr.web.auth import may, personal, shown_count, shown_stats
from listmgr.web.extensions import current_runtime


class _Content(BaseModel):
    model_config = ConfigDict(extra="forbid")
    html: str | None = None
    markdown: str | None = None
    body: str | None = None
    content_format: Literal["html", "markdown", "visual"] | None = None

    def content(self) -> dict[str, Any]:
        """body + content_format from whichever of html / markdown / body was sent."""
        given = [k for k in ("html", "markdown", "body") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValidationError("send one of html, markdown or body", field=given[1])
        if not given:
            return {"content_format": self.content_format} if self.content_format else {}
        key = given[0]
        fmt = key if key != "body" else (self.content_format or "html")
        return {"body": getattr(self, key), "content_format": fmt}


FIGURES = (
    "sent",
    "tracked",
    "opened",
    "clicked",
    "open_rate",
    "click_rate",
)  # per A/B test variant


class AbVariant(BaseModel):
    """One alternative: its subject, and its body in a content test."""

    model_config = ConfigDict(extra="forbid")
    subject: str
    body: str | None = Field(None, description="only in a content test (HTML or Markdown)")


class AbTest(BaseModel):
    """An A/B test: the campaign's own subject (and body) is variant A; each alternative is
    B, C, D. test_percent of the audience (in total, split evenly) gets the variants; after
    wait_minutes the variant with the most people who clicked (or opened) goes to the rest."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["subject", "content"] = Field(
        "subject", description="what varies: the subject, or the subject and the body"
    )
    metric: Literal["clicks", "opens"] = Field(
        "clicks", description="the winner has the most unique clicks (or opens)"
    )
    test_percent: int = Field(
        20, ge=1, le=99, strict=True, description="the test share of the audience"
    )
    wait_minutes: int = Field(
        240, ge=0, le=43200, strict=True, description="from the start to the winner"
    )
    alternatives: list[AbVariant] = Field(
        description="variants B to D", json_schema_extra={"minItems": 1, "maxItems": 3}
    )


class AbResult(BaseModel):
    decide_at: str | None = Field(description="when the winner is due (UTC)")
    decided_at: str | None
    winner: Literal["A", "B", "C", "D"] | None


class CampaignIn(_Content):
    name: str
    subject: str
    lists: list[str]
    segment: dict[str, Any] | None = None
    segment_id: DbId | None = None
    text: str = ""
    preheader: str = ""
    layout: str = ""
    from_name: str = ""
    from_email: str = ""
    reply_to: str = ""
    ab_test: AbTest | None = None


class CampaignPatch(_Content):
    name: str | None = None
    subject: str | None = None
    lists: list[str] | None = None
    segment: dict[str, Any] | None = None
    segment_id: DbId | None = None
    text: str | None = None
    preheader: str | None = None
    layout: str | None = None
    from_name: str | None = None
    from_email: str | None = None
    reply_to: str | None = None
    ab_test: AbTest | None = Field(None, description="null: no A/B test")


class StatsOut(BaseModel):
    """null figures with "fewer_than": withheld from a role without access to people because
    the audience is smaller than that."""

    model_config = ConfigDict(extra="allow")
    audience: int | None
    sent: int | None
    failed: int | None
    skipped: int | None
    remaining: int | None
    fewer_than: int | None = None


class CampaignOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: int
    name: str
    status: Literal["draft", "scheduled", "sending", "paused", "sent", "cancelled"]
    status_reason: str = Field(
        "",
        description="why the campaign paused itself: its template failed for several "
        "recipients, or the circuit breaker found too many hard bounces or complaints "
        "(e.g. 'paused by the circuit breaker: hard bounces 6.2 % of the last 1,000 "
        "messages (limit 5 %)')",
    )
    stats: StatsOut
    ab_test: AbTest | None = None
    ab_result: AbResult | None = None
    ledger_deleted_at: str | None = Field(
        None,
        description="when the per-recipient ledger was deleted, its retention period "
        "(retention_delivery_days) over; the figures were kept first and read from then on",
    )


class Who(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subscriber_id: DbId | None = None
    email: str | None = None


class TestIn(Who):
    to: list[str]


class ScheduleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: str | None = Field(
        description="ISO 8601 date and time, e.g. 2030-05-31T09:00:00+02:00; with an offset "
        "(or Z) that instant; without one a wall-clock time in `timezone` (UTC when none: a "
        "time the clocks skip is refused, a repeated one means its first occurrence); null "
        "unschedules"
    )
    timezone: str | None = Field(
        None,
        description="IANA time zone, e.g. Europe/Berlin: how a time without an offset is "
        "read, and how the schedule is shown back (kept with the campaign)",
    )


class ScheduleOut(BaseModel):
    id: int
    status: str
    scheduled_at: str | None = Field(description="UTC, without an offset")
    timezone: str
    scheduled_at_local: str | None = Field(description="in `timezone`, with its offset")


class AudienceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lists: list[str]
    segment: dict[str, Any] | None = None
    segment_id: DbId | None = None


class StatusOut(BaseModel):
    id: int
    status: str


class CheckOut(BaseModel):
    code: str = Field(description="stable, e.g. subject, dkim, size, local_links, audience")
    level: Literal["blocker", "warning", "ok"]
    message: str


class ChecklistOut(BaseModel):
    blockers: int = Field(description="checks that refuse sending and scheduling")
    warnings: int
    checks: list[CheckOut]


def _out(campaign_id: int, *, timeline: bool = False) -> Any:
    return _shown(
        asdict(
            campaigns.get(current_runtime(), campaign_id, timeline=timeline, personal=personal())
        )
    )


def _shown(info: dict[str, Any]) -> dict[str, Any]:
    """A campaign as this caller may see it: a small audience's figures are withheld."""
    return {**info, "stats": shown_stats(info["stats"])}


def _state(campaign_id: int) -> dict[str, Any]:
    info = campaigns.get(current_runtime(), campaign_id)
    return {"id": info.id, "status": info.status, "audience": info.stats["audience"]}


@route("/campaigns", permission="campaigns:read", query=Page, tag="campaigns")
def all_campaigns() -> ResponseReturnValue:
    """Campaigns, newest first, with their progress."""
    page = parse_query(Page)
    offset, limit = page.bounds()
    items, total = campaigns.all_campaigns(
        current_runtime(), offset=offset, limit=limit, personal=personal()
    )
    return paginated([_shown(asdict(x)) for x in items], total, page)


@route(
    "/campaigns",
    ["POST"],
    permission="campaigns:write",
    body=CampaignIn,
    response=CampaignOut,
    status=201,
    tag="campaigns",
)
def create_campaign() -> ResponseReturnValue:
    """Create a draft; template errors are reported now, with part and line."""
    body = parse_body(CampaignIn)
    values = body.model_dump(exclude={"html", "markdown", "body", "content_format"})
    cid = campaigns.create(current_runtime(), actor=actor(), **values, **body.content())
    return jsonify(_out(cid)), 201


@route(
    "/campaigns/audience", ["POST"], permission="campaigns:read", body=AudienceIn, tag="campaigns"
)
def count_audience() -> ResponseReturnValue:
    """How many people lists (+ segment) would reach right now."""
    body = parse_body(AudienceIn)
    return jsonify(
        shown_count(
            campaigns.count_audience(
                current_runtime(),
                lists=body.lists,
                segment=body.segment,
                segment_id=body.segment_id,
                personal=personal(),
            )
        ).as_json()
    )


@route(
    "/campaigns/<int:campaign_id>",
    permission="campaigns:read",
    response=CampaignOut,
    tag="campaigns",
)
def get_campaign(campaign_id: int) -> ResponseReturnValue:
    """One campaign with its progress (sent / failed / skipped / remaining …)."""
    return jsonify(_out(campaign_id))


@route(
    "/campaigns/<int:campaign_id>",
    ["PATCH"],
    permission="campaigns:write",
    body=CampaignPatch,
    response=CampaignOut,
    tag="campaigns",
)
def update_campaign(campaign_id: int) -> ResponseReturnValue:
    """Change a draft or scheduled campaign."""
    body = parse_body(CampaignPatch)
    values = body.model_dump(
        exclude_unset=True, exclude={"html", "markdown", "body", "content_format"}
    )
    campaigns.update(current_runtime(), campaign_id, actor=actor(), **values, **body.content())
    return jsonify(_out(campaign_id))


@route(
    "/campaigns/<int:campaign_id>",
    ["DELETE"],
    permission="campaigns:write",
    status=204,
    tag="campaigns",
)
def delete_campaign(campaign_id: int) -> ResponseReturnValue:
    """Delete a draft; 409 for any other status (unschedule a scheduled one first)."""
    campaigns.delete(current_runtime(), campaign_id, actor=actor())
    return "", 204


@route("/campaigns/<int:campaign_id>/audience", permission="campaigns:read", tag="campaigns")
def campaign_audience(campaign_id: int) -> ResponseReturnValue:
    """The audience now (before sending) or as it was fixed at the start."""
    return jsonify(shown_count(campaigns.audience(current_runtime(), campaign_id)).as_json())


@route(
    "/campaigns/<int:campaign_id>/preview",
    ["GET", "POST"],
    permission="campaigns:write",
    query=Who,
    tag="campaigns",
)
def preview(campaign_id: int) -> ResponseReturnValue:
    """The message as a chosen subscriber (subscriber_id or email) or a sample person sees it."""
    from flask import request

    who = parse_body(Who) if request.method == "POST" else parse_query(Who)
    view = campaigns.preview(
        current_runtime(), campaign_id, subscriber_id=who.subscriber_id, email=who.email
    )
    return jsonify(
        subject=view.subject,
        html=view.html,
        text=view.text,
        **{"from": view.from_header, "to": view.to, "list": view.list},
    )


@route(
    "/campaigns/<int:campaign_id>/checklist",
    permission="campaigns:read",
    response=ChecklistOut,
    tag="campaigns",
)
def checklist(campaign_id: int) -> ResponseReturnValue:
    """The campaign checklist of the message as it would be sent (for a sample person): From
    domain aligned with DKIM, size (Gmail clips HTML over 102 KB), a text part, images without
    alt text, links to local hosts or plain http:// (production), subject and preheader length,
    the audience (empty; mostly never engaged) and each list's bounce and complaint rates of
    the last 30 days. Blockers refuse /send and /schedule (422 `checklist_blocked`, with this
    checklist in `detail.checklist`); warnings never do."""
    return jsonify(campaign_checklist.for_campaign(current_runtime(), campaign_id).as_json())


@route(
    "/campaigns/<int:campaign_id>/test",
    ["POST"],
    permission="campaigns:write",
    body=TestIn,
    tag="campaigns",
)
@limits.test_send()
def send_test(campaign_id: int) -> ResponseReturnValue:
    """Send the message, marked as a test, to up to 10 addresses now."""
    body = parse_body(TestIn)
    results = campaigns.send_test(
        current_runtime(),
        campaign_id,
        to=body.to,
        subscriber_id=body.subscriber_id,
        email=body.email,
        actor=actor(),
        detailed=may("settings"),
    )
    return jsonify(results=results)


@route(
    "/campaigns/<int:campaign_id>/send",
    ["POST"],
    permission="campaigns:write",
    response=StatusOut,
    status=202,
    tag="campaigns",
)
def send_now(campaign_id: int) -> ResponseReturnValue:
    """Send now: the audience is fixed and the workers start (202); refused (422
    `checklist_blocked`) while the checklist has blockers."""
    campaigns.start(current_runtime(), campaign_id, actor=actor())
    return jsonify(_state(campaign_id)), 202


@route(
    "/campaigns/<int:campaign_id>/schedule",
    ["POST"],
    permission="campaigns:write",
    body=ScheduleIn,
    response=ScheduleOut,
    tag="campaigns",
)
def schedule(campaign_id: int) -> ResponseReturnValue:
    """Schedule for `at` (ISO 8601) read in `timezone`, or unschedule with null; refused (422
    `checklist_blocked`) while the checklist has blockers (checked again at the start)."""
    body = parse_body(ScheduleIn)
    at = zonetimes.read(body.at) if body.at is not None else None
    rt = current_runtime()
    campaigns.schedule(rt, campaign_id, at=at, timezone=body.timezone, actor=actor())
    info = campaigns.get(rt, campaign_id)
    zone = zonetimes.zone_name(info.schedule_timezone)
    utc = info.scheduled_at_utc
    local = zonetimes.local_iso(utc, zone) if utc is not None else None
    return jsonify(
        id=info.id,
        status=info.status,
        scheduled_at=info.scheduled_at,
        timezone=zone,
        scheduled_at_local=local,
    )


@route(
    "/campaigns/<int:campaign_id>/copy",
    ["POST"],
    permission="campaigns:write",
    response=CampaignOut,
    status=201,
    tag="campaigns",
)
def copy_campaign(campaign_id: int) -> ResponseReturnValue:
    """A new draft "Copy of …" with the campaign's content, sender, lists and segment (any
    status; never its schedule, ledger or figures)."""
    cid = campaigns.copy(current_runtime(), campaign_id, actor=actor())
    return jsonify(_out(cid)), 201


@route(
    "/campaigns/<int:campaign_id>/pause",
    ["POST"],
    permission="campaigns:write",
    response=StatusOut,
    tag="campaigns",
)
def pause(campaign_id: int) -> ResponseReturnValue:
    """Pause sending (the message in flight finishes)."""
    campaigns.pause(current_runtime(), campaign_id, actor=actor())
    return jsonify(_state(campaign_id))


@route(
    "/campaigns/<int:campaign_id>/resume",
    ["POST"],
    permission="campaigns:write",
    response=StatusOut,
    tag="campaigns",
)
def resume(campaign_id: int) -> ResponseReturnValue:
    """Resume a paused campaign."""
    campaigns.resume(current_runtime(), campaign_id, actor=actor())
    return jsonify(_state(campaign_id))


@route(
    "/campaigns/<int:campaign_id>/cancel",
    ["POST"],
    permission="campaigns:write",
    response=StatusOut,
    tag="campaigns",
)
def cancel(campaign_id: int) -> ResponseReturnValue:
    """Cancel for good; nothing more is sent."""
    campaigns.cancel(current_runtime(), campaign_id, actor=actor())
    return jsonify(_state(campaign_id))


@route("/campaigns/<int:campaign_id>/stats", permission="campaigns:read", tag="campaigns")
def stats(campaign_id: int) -> ResponseReturnValue:
    """Counts and per-minute outcomes: audience, sent, failed, skipped, bounced, complained,
    unsubscribed (attributed by the token's campaign), remaining; and `engagement`: unique and
    total opens and clicks of the recipients who allow tracking, rates over them, clicks per
    link and per hour, and how many opens by mail privacy proxies and clicks by link
    scanners were left out; with an A/B test, `ab_test`: per variant sent, how many of those
    allow tracking (`tracked`), unique opens (a click counts) and clicks (machine opens and
    scanner clicks left out), their rates over `tracked`, and which won when."""
    rt = current_runtime()
    figures = shown_stats(asdict(campaigns.stats(rt, campaign_id)))
    comparison = campaigns.ab_comparison(rt, campaign_id)
    if comparison is not None:
        variants = [asdict(v) for v in comparison.variants]
        if figures.get("fewer_than"):  # withheld like the campaign's own figures
            variants = [{**v, **dict.fromkeys(FIGURES)} for v in variants]
        figures["ab_test"] = {**asdict(comparison), "variants": variants}
    return jsonify(figures)
