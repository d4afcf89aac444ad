"""`listmgr status`: is this installation well — database, broker, workers, sending, backlog."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from listmgr.cli.base import get_runtime, main
from listmgr.services import heartbeats, monitoring


def _ago(seconds: float) -> str:
    return f"{int(seconds)} s ago"


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
    data = monitoring.status(get_runtime(migrate=False))
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
