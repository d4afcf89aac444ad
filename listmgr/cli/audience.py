"""`listmgr import` and `listmgr export`: people in and out as CSV."""

from __future__ import annotations

import csv
import getpass
import io
import sys
from pathlib import Path

import click

from listmgr.cli.base import fail, get_runtime, main
from listmgr.services import exports, imports

SHOWN_ISSUES = 20


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--list", "list_slug", help="The list to add people to (optional with --mode suppress)."
)
@click.option(
    "--mapping",
    default="",
    help="Column=target pairs, e.g. 'E-Mail=email,"
    "Firma=fields.company'; targets: email, name, first_name, last_name, interests, "
    "ignore, fields.<key>. Obvious headers are mapped without it.",
)
@click.option(
    "--mode",
    type=click.Choice(imports.MODES),
    default="upsert",
    show_default=True,
    help="upsert: add and update; add: only new people; suppress: put the addresses "
    "on the suppression list.",
)
@click.option(
    "--consent",
    default="",
    help="The basis on which these people agreed, e.g. "
    "'imported: existing customers, consent recorded on 2024-05-01'.",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report of skipped and broken rows (CSV) to this file.",
)
@click.option(
    "--workers",
    type=click.IntRange(0, 1),
    default=0,
    show_default=True,
    help="What reads and validates the file ahead of the writes: 0, a thread of this "
    "process (it runs while the database works); 1, a process of its own.",
)
def import_cmd(
    file: Path,
    list_slug: str | None,
    mapping: str,
    mode: str,
    consent: str,
    report_path: Path | None,
    workers: int,
) -> None:
    """Import people from a CSV FILE (any common encoding and delimiter)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    rt = get_runtime()
    job_id = imports.create_job(
        rt,
        path=file,
        list_slug=list_slug,
        mapping=mapping,
        mode=mode,
        consent=consent,
        actor=f"cli:{getpass.getuser()}",
    )
    job = imports.get(rt, job_id)
    click.echo(
        f"import {job_id}: columns " + ", ".join(f"{c} -> {t}" for c, t in job.columns.items()),
        err=True,
    )
    if job.ignored_columns:
        click.echo("ignored columns: " + ", ".join(job.ignored_columns), err=True)
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=None, transient=False) as bar:
        task = bar.add_task("importing", total=job.total_bytes)

        def show(info: imports.ImportInfo) -> None:
            bar.update(
                task,
                completed=info.processed_bytes,
                description=f"{info.rows:,} rows, {info.inserted:,} new, "
                f"{info.updated:,} updated, {info.skipped + info.errors:,} "
                "not imported",
            )

        info = imports.run_job(rt, job_id, progress=show, workers=workers)
    if info is None:
        fail(f"import {job_id} is already being run elsewhere")
    click.echo(
        f"import {job_id} {info.status}: {info.rows:,} rows, {info.inserted:,} new, "
        f"{info.updated:,} updated, {info.skipped:,} skipped, {info.errors:,} with "
        "errors",
        err=True,
    )
    text = imports.report(rt, job_id)
    lines = list(csv.reader(io.StringIO(text)))[1:]
    if report_path is not None:
        report_path.write_text(text, encoding="utf-8")
        click.echo(f"report: {report_path}", err=True)
    elif lines:
        click.echo("rows not imported:", err=True)
        for row, line, email, result, reason in lines[:SHOWN_ISSUES]:
            where = f"row {row} (line {line})" if row else "  "
            click.echo(f"  {where} {email!r} {result}: {reason}", err=True)
        if len(lines) > SHOWN_ISSUES:
            click.echo(f"  ... {len(lines) - SHOWN_ISSUES} more: use --report FILE", err=True)
    if info.status != "done":
        fail(info.error or "the import failed")


@main.command("export")
@click.option("--list", "list_slug", required=True, help="The list to export.")
@click.option(
    "--segment", "segment_id", type=int, help="Only members matching this saved segment's rules."
)
@click.option(
    "--fields",
    default="",
    help="Columns, e.g. email,name,status,fields.plan "
    "(default: email, name, status, dates, source, every field, interests).",
)
@click.option("--status", default=None, help="Only members with this status.")
def export_cmd(list_slug: str, segment_id: int | None, fields: str, status: str | None) -> None:
    """Write a list's members as CSV to standard output."""
    rt = get_runtime()
    export = exports.prepare(
        rt,
        list_slug=list_slug,
        fields=fields,
        segment_id=segment_id,
        status=status,
        actor=f"cli:{getpass.getuser()}",
    )
    out = sys.stdout
    for chunk in exports.rows(rt, export):
        out.write(chunk)
    out.flush()
