"""`listmgr` commands for inbound."""
from __future__ import annotations

import json
import sys

import click

from listmgr.cli.base import get_runtime, main


@main.command("classify")
@click.argument("files", nargs=-1, required=True)
@click.option("--evidence", is_flag=True, help="Also print the rule, evidence and confidence.")
def classify_command(files: tuple[str, ...], evidence: bool) -> None:
    """Classify messages (bounce, complaint, autoreply, unsubscribe, other) without acting.

    Prints one JSON line per FILE ("-" reads standard input). Nothing is stored and nobody is
    unsubscribed: this is for operators checking what listmgr would make of a message.
    """
    from listmgr.mail.inbound import classify

    rt = get_runtime(migrate=False)  # settings and token secret only; the database is not used
    failed = False
    for name in files:
        try:
            if name == "-":
                raw = sys.stdin.buffer.read()
            else:
                with open(name, "rb") as fh:
                    raw = fh.read()
        except OSError as exc:
            click.echo(f"listmgr: cannot read {name}: {exc.strerror or exc}", err=True)
            failed = True
            continue
        result = classify(raw, tokens=rt.tokens, mail_domain=rt.settings.mail_domain)
        line: dict[str, object] = {
            "file": name,
            "kind": result.kind,
            "permanent": result.permanent,
            "recipients": list(result.recipients),
            "subscriber": result.subscriber_id,
            "list": result.list_id,
            "campaign": result.campaign_id,
        }
        if evidence:
            line["confidence"] = result.confidence
            line["evidence"] = result.evidence
        click.echo(json.dumps(line, ensure_ascii=False))
    if failed:
        sys.exit(1)
