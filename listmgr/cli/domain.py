"""`listmgr check-domain [DOMAIN]`: SPF, DKIM, DMARC and MX findings with the records to publish."""

from __future__ import annotations

import json

import click

from listmgr.cli.base import fail, get_runtime, main
from listmgr.errors import BadDomain
from listmgr.services import domain_check

MARKS = {"ok": "[ok]     ", "warning": "[warning]", "error": "[error]  "}
EXIT_ERRORS = 1  # some finding is an error
EXIT_BAD_DOMAIN = 2  # DOMAIN is not a domain name


@main.command("check-domain")
@click.argument("domain", required=False, default="")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as one JSON object.")
def check_domain(domain: str, as_json: bool) -> None:
    """Check the DNS of a From DOMAIN (default: that of default_from_email) for sending with
    this configuration: SPF of the mail domain covers the SMTP servers, the DKIM record is the
    configured key, DMARC exists and aligns, the mail domain's MX reaches inbound_host.

    Exits 0 when no finding is an error, 1 when one is, 2 when DOMAIN is not a domain name.
    """
    rt = get_runtime()
    try:
        report = domain_check.run(rt, domain or None)
    except BadDomain as exc:
        fail(exc.message, EXIT_BAD_DOMAIN)
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False))
    else:
        click.echo(f"Domain check of {report.domain}: {report.status}")
        for finding in report.findings:
            click.echo(f"{MARKS[finding.status]} {finding.check}: {finding.message}")
            if finding.record:
                click.echo(f"           publish: {finding.record.zone_line()}")
    if report.status == "error":
        raise SystemExit(EXIT_ERRORS)
