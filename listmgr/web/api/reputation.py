"""API: /api/reputation — the reputation page's figures, the flagged subscribers and the
actions on them."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from flask import jsonify
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ConfigDict, Field

from listmgr.services import flags, lists, repermission
from listmgr.services import reputation as rep
from listmgr.web.api.base import DbId, Page, actor, parse_body, parse_query, route
from listmgr.web.auth import record, withholds
from listmgr.web.extensions import current_runtime

Flag = Literal["soft_bounce", "role", "never_engaged"]
Ids = list[DbId]  # named here: the models below have a field called "list"


class FlagsQuery(Page):
    model_config = ConfigDict(extra="forbid")
    flag: Flag = "soft_bounce"
    list: str | None = Field(default=None, max_length=64)


class FlagAction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    flag: Flag
    action: Literal["suppress", "repermission"]
    subscriber_ids: Ids | None = Field(default=None, max_length=10000)
    list: str | None = Field(default=None, max_length=64)  # a list's slug


class FlagActionOut(BaseModel):
    flag: str
    action: str
    count: int


def _rates(r: rep.Rates) -> dict[str, Any]:
    if withholds(r.handed_over):  # too few messages for this role to see what came of them
        return {"handed_over": None, "withheld": True}
    return {
        "handed_over": r.handed_over,
        "hard_bounces": r.hard_bounces,
        "complaints": r.complaints,
        "unsubscribes": r.unsubscribes,
        "bounce_rate": r.bounce_rate,
        "complaint_rate": r.complaint_rate,
        "unsubscribe_rate": r.unsubscribe_rate,
        "bounce_level": rep.level("bounce", r.bounce_rate),
        "complaint_level": rep.level("complaint", r.complaint_rate),
    }


def _timing(t: rep.Timing) -> dict[str, Any]:
    return {**asdict(t), "within_limit": t.within_limit}


def _row(row: rep.Row) -> dict[str, Any]:
    return {
        "key": row.key,
        "name": row.name,
        "windows": {
            str(d): {**_rates(row.rates[d]), "unsubscribe_time": _timing(row.times[d])}
            for d in rep.WINDOWS
        },
    }


def _list_id(slug: str | None) -> int | None:
    return lists.get(current_runtime(), slug).id if slug else None


@route("/reputation", permission="stats", tag="reputation")
def get_reputation() -> ResponseReturnValue:
    """Hard-bounce, complaint and unsubscribe rates over 7 and 30 days (overall, per list, per
    receiving domain: the largest 10) against the bulk-sender thresholds, the time from an
    unsubscribe request to its effect (median and maximum seconds, per path), and the daily
    series of the last 30 days."""
    report = rep.report(current_runtime())
    return jsonify(
        generated_at=report.now.isoformat(timespec="seconds"),
        thresholds={
            "complaint_recommended": rep.COMPLAINT_GOOD,
            "complaint_limit": rep.COMPLAINT_LIMIT,
            "bounce_limit": rep.BOUNCE_LIMIT,
            "unsubscribe_seconds": rep.UNSUBSCRIBE_LIMIT_SECONDS,
        },
        windows={
            str(d): {
                **_rates(report.overall[d]),
                "unsubscribe_time": {k: _timing(t) for k, t in report.times[d].items()},
            }
            for d in rep.WINDOWS
        },
        unsubscribe_paths=rep.PATHS,
        judged_paths=list(rep.JUDGED_PATHS),
        lists=[_row(r) for r in report.lists],
        domains=[_row(r) for r in report.domains],
        daily=[
            asdict(d) if not withholds(d.handed_over) else {"day": d.day, "withheld": True}
            for d in report.daily
        ],
    )


@route("/reputation/flags", permission="people:read", query=FlagsQuery, tag="reputation")
def get_reputation_flags() -> ResponseReturnValue:
    """Subscribers flagged for one reason (`flag`: soft_bounce, role, never_engaged), of one
    list's confirmed members if `list` is given, with the count of every flag."""
    q = parse_query(FlagsQuery)
    offset, limit = q.bounds()
    rt = current_runtime()
    list_id = _list_id(q.list)
    items, total = flags.members(rt, q.flag, list_id=list_id, offset=offset, limit=limit)
    return jsonify(
        items=[asdict(x) for x in items],
        page=q.page,
        per_page=q.per_page,
        total=total,
        summary=asdict(flags.summary(rt, list_id=list_id)),
    )


@route(
    "/reputation/flags",
    ["POST"],
    permission="people:write",
    body=FlagAction,
    response=FlagActionOut,
    tag="reputation",
)
def act_on_flags() -> ResponseReturnValue:
    """Suppress the people a flag holds, or mail each a re-confirmation link (re-permission:
    who does not confirm in time is unsubscribed); all of them, or those of `subscriber_ids`
    that are still flagged."""
    body = parse_body(FlagAction)
    rt = current_runtime()
    list_id = _list_id(body.list)
    ids = list(body.subscriber_ids) if body.subscriber_ids is not None else None
    if body.action == "suppress":
        n = flags.suppress_flagged(rt, body.flag, actor=actor(), list_id=list_id, ids=ids)
    else:
        n = repermission.ask(rt, body.flag, actor=actor(), list_id=list_id, ids=ids)
    record(f"reputation.{body.action}", "flag", body.flag, list=body.list, count=n, via="api")
    return jsonify(flag=body.flag, action=body.action, count=n)
