"""`listmgr status`: is this installation well — database, broker, workers, sending, backlog."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from listmgr import queue
from listmgr.cli.base import get_runtime, main
from listmgr.services import heartbeats, monitoring


def _error(exc: BaseException) -> str:
    """The first line of what went wrong (the driver's own message, not SQLAlchemy's wrapping)."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {text[0]}" if text else type(inner).__name__


def _ago(seconds: float) -> str:
    return f"{int(seconds)} s ago"


def gather() -> dict[str, Any]:
    """Every check, as plain data (what --json prints)."""
    rt = get_runtime(migrate=False)
    out: dict[str, Any] = {"ok": True}
    try:
        schema = monitoring.schema(rt)
        out["database"] = {
            "ok": schema.up_to_date,
            "dialect": rt.db.dialect,
            "revision": ",".join(schema.current) or None,
            "expected": ",".join(schema.head),
        }
        if not schema.up_to_date:
            out["database"]["error"] = "the schema is not current: run `listmgr db upgrade`"
    except Exception as exc:  # whatever the driver raises: the database is away
        out["database"] = {"ok": False, "dialect": rt.db.dialect, "error": _error(exc)}
    try:
        out["broker"] = {"ok": True, "kind": queue.ping(rt.settings.broker_url)}
    except Exception as exc:  # whatever the client raises: the broker is away
        out["broker"] = {"ok": False, "error": _error(exc)}
    out["ok"] = out["database"]["ok"] and out["broker"]["ok"]
    if not out["database"]["ok"]:
        return out
    snap = monitoring.snapshot(rt)
    out["workers"] = [
        {
            "name": w.name,
            "threads": w.threads,
            "started_at": w.started_at.isoformat() + "Z",
            "seen_seconds_ago": round((snap.at - w.seen_at).total_seconds(), 1),
        }
        for w in snap.workers
    ]
    out["campaigns"] = [
        {
            "id": c.id,
            "name": c.name,
            "status": c.status,
            "audience": c.audience,
            "done": c.done,
            "due": c.due,
            "states": c.states,
        }
        for c in snap.campaigns
    ]
    out["backlog"] = {
        "deliveries_due": snap.backlog,
        "outbox": {k: snap.outbox.get(k, 0) for k in monitoring.OUTBOX_WAITING},
        "inbound_waiting": snap.inbound.get("stored", 0),
        "inbound_failed": snap.inbound.get("failed", 0),
        "imports": {k: snap.imports.get(k, 0) for k in monitoring.IMPORT_WAITING},
    }
    return out


def _human(data: dict[str, Any]) -> list[str]:
    db, broker = data["database"], data["broker"]
    lines = []
    if db["ok"]:
        lines.append(f"database   ok    {db['dialect']}, schema {db['revision']}")
    else:
        lines.append(f"database   DOWN  {db.get('error')}")
    lines.append(
        f"broker     ok    {broker['kind']}"
        if broker["ok"]
        else f"broker     DOWN  {broker['error']}"
    )
    if "workers" not in data:
        return lines
    workers = data["workers"]
    within = heartbeats.SEEN_SECONDS
    if workers:
        lines.append(f"workers    {len(workers)} seen in the last {within} s")
        lines += [
            f"  {w['name']}  {w['threads']} threads, seen {_ago(w['seen_seconds_ago'])}"
            for w in workers
        ]
    else:
        lines.append(f"workers    NONE seen in the last {within} s: nothing is being sent")
    sending = data["campaigns"]
    lines.append(f"campaigns  {sum(c['status'] == 'sending' for c in sending)} sending")
    for c in sending:
        share = f" ({100 * c['done'] // c['audience']}%)" if c["audience"] else ""
        states = c["states"]
        lines.append(
            f"  #{c['id']} {c['name']}  {c['status']}: {c['done']}/{c['audience']} done{share}, "
            f"{states.get('sent', 0)} sent, {states.get('failed', 0)} failed, {c['due']} due"
        )
    b = data["backlog"]
    lines.append(
        f"backlog    {b['deliveries_due']} campaign messages due; "
        f"transactional mail {b['outbox']['pending']} pending, {b['outbox']['failed']} failed; "
        f"inbound {b['inbound_waiting']} waiting, {b['inbound_failed']} failed; "
        f"imports {b['imports']['queued']} queued, {b['imports']['running']} running"
    )
    return lines


@main.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
def status_command(as_json: bool) -> None:
    """Database, broker, workers seen in the last minute, campaigns sending and the backlog;
    exits 1 when the database or the broker is down or the schema is not current."""
    data = gather()
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False))
    elif data["ok"]:
        click.echo("\n".join(_human(data)))
    else:
        failing = [
            f"{name} {'DOWN' if 'revision' not in data[name] else 'not current'}: "
            f"{data[name]['error']}"
            for name in ("database", "broker")
            if not data[name]["ok"]
        ]
        click.echo(f"listmgr: {'; '.join(failing)}", err=True)
    if not data["ok"]:
        sys.exit(1)
