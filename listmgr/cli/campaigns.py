"""`listmgr campaign create | send ID [--wait] | status ID | list | test | pause | resume |
cancel`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from listmgr import boot, jsonin
from listmgr.cli.base import fail, get_runtime, main
from listmgr.services import campaigns

FINAL = ("sent", "cancelled", "paused", "draft")


def _read(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")


def _json(value: str | None, what: str) -> Any:
    if value is None:
        return None
    text = _read(value[1:]) if value.startswith("@") else value
    try:
        return jsonin.loads(text or "")
    except ValueError as exc:
        fail(f"{what} is not valid JSON: {exc}")


@main.group()
def campaign() -> None:
    """Campaigns: create, send and follow them."""


@campaign.command("create")
@click.option("--name", required=True)
@click.option("--subject", required=True, help="A template, e.g. 'Hello {{ subscriber.name }}'.")
@click.option("--list", "lists", multiple=True, required=True, help="List slug (repeatable).")
@click.option("--html", "html_file", type=click.Path(), help="HTML body file.")
@click.option("--markdown", "markdown_file", type=click.Path(), help="Markdown body file.")
@click.option("--text", "text_file", type=click.Path(), help="Text part (else derived).")
@click.option("--preheader", default="")
@click.option("--segment", help="Segment rules as JSON, or @FILE.")
@click.option("--segment-id", type=int)
@click.option("--from-name", default="")
@click.option("--from-email", default="")
@click.option("--reply-to", default="")
def create(
    name: str,
    subject: str,
    lists: tuple[str, ...],
    html_file: str | None,
    markdown_file: str | None,
    text_file: str | None,
    preheader: str,
    segment: str | None,
    segment_id: int | None,
    from_name: str,
    from_email: str,
    reply_to: str,
) -> None:
    """Create a draft campaign and print its id."""
    if bool(html_file) == bool(markdown_file):
        fail("give the body with exactly one of --html FILE or --markdown FILE")
    rt = get_runtime()
    cid = campaigns.create(
        rt,
        actor="cli",
        name=name,
        subject=subject,
        lists=list(lists),
        body=_read(html_file or markdown_file) or "",
        content_format="html" if html_file else "markdown",
        text=_read(text_file) or "",
        preheader=preheader,
        segment=_json(segment, "--segment"),
        segment_id=segment_id,
        from_name=from_name,
        from_email=from_email,
        reply_to=reply_to,
    )
    click.echo(cid)


def _progress(rt: Any, cid: int) -> str:
    """Show a progress bar until the campaign stops sending; returns the final status."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    info = campaigns.get(rt, cid)
    total = max(1, info.stats["audience"])
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[detail]}"),
    )
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(f"campaign {cid}", total=total, detail="")
        while True:
            info = campaigns.get(rt, cid)
            st = info.stats
            bar.update(
                task,
                completed=st["sent"] + st["failed"] + st["skipped"],
                detail=f"sent {st['sent']} failed {st['failed']} skipped "
                f"{st['skipped']} remaining {st['remaining']}",
            )
            if info.status in FINAL:
                return info.status
            time.sleep(0.5)


@campaign.command("send")
@click.argument("campaign_id", type=int)
@click.option("--wait", is_flag=True, help="Show progress until the campaign is sent.")
def send(campaign_id: int, wait: bool) -> None:
    """Send a campaign now (or follow one that is already sending)."""
    rt = get_runtime()
    queue = boot.attach_queue(rt)
    info = campaigns.get(rt, campaign_id)
    if info.status in ("draft", "scheduled"):
        audience = campaigns.start(rt, campaign_id, actor="cli")
        click.echo(f"campaign {campaign_id}: sending to {audience} people")
    elif info.status != "sending" or not wait:
        fail(f"campaign {campaign_id} is {info.status}")
    if not wait:
        if queue.in_process:
            click.echo(
                "the running `listmgr serve` picks it up within sweep_seconds; add "
                "--wait to send from this process"
            )
        return
    bg = (
        boot.start(rt, threads=max(1, rt.settings.send_connections), sweep=False)
        if queue.in_process
        else None
    )
    try:
        status = _progress(rt, campaign_id)
    finally:
        if bg is not None:
            bg.stop()
    stats = campaigns.get(rt, campaign_id).stats
    click.echo(
        f"campaign {campaign_id} {status}: sent {stats['sent']}, failed "
        f"{stats['failed']}, skipped {stats['skipped']}, remaining {stats['remaining']}"
    )
    if status != "sent":
        raise SystemExit(1)


@campaign.command("status")
@click.argument("campaign_id", type=int)
@click.option("--json", "as_json", is_flag=True)
def status(campaign_id: int, as_json: bool) -> None:
    """Status and counts of one campaign."""
    rt = get_runtime()
    info = campaigns.get(rt, campaign_id)
    if as_json:
        click.echo(json.dumps({"id": info.id, "status": info.status, "stats": info.stats}))
        return
    click.echo(f"{info.id} {info.name!r}: {info.status}")
    for key, value in info.stats.items():
        click.echo(f"  {key}: {value}")


@campaign.command("list")
def list_campaigns() -> None:
    """Campaigns, newest first."""
    items, _ = campaigns.all_campaigns(get_runtime(), limit=100)
    for info in items:
        st = info.stats
        click.echo(f"{info.id}\t{info.status}\t{st['sent']}/{st['audience']}\t{info.name}")


@campaign.command("test")
@click.argument("campaign_id", type=int)
@click.option("--to", "to", multiple=True, required=True)
def test(campaign_id: int, to: tuple[str, ...]) -> None:
    """Send the campaign, marked as a test, to these addresses."""
    results = campaigns.send_test(get_runtime(), campaign_id, to=list(to), actor="cli")
    for result in results:
        click.echo(f"{result['to']}: {'sent' if result['sent'] else result['error']}")
    if not all(r["sent"] for r in results):
        raise SystemExit(1)


def _change(fn: Any, campaign_id: int) -> None:
    rt = get_runtime()
    boot.attach_queue(rt)
    fn(rt, campaign_id, actor="cli")
    click.echo(f"campaign {campaign_id}: {campaigns.get(rt, campaign_id).status}")


@campaign.command("pause")
@click.argument("campaign_id", type=int)
def pause(campaign_id: int) -> None:
    """Pause a sending campaign."""
    _change(campaigns.pause, campaign_id)


@campaign.command("resume")
@click.argument("campaign_id", type=int)
def resume(campaign_id: int) -> None:
    """Resume a paused campaign."""
    _change(campaigns.resume, campaign_id)


@campaign.command("cancel")
@click.argument("campaign_id", type=int)
def cancel(campaign_id: int) -> None:
    """Cancel a campaign for good."""
    _change(campaigns.cancel, campaign_id)
