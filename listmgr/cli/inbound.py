"""`listmgr` commands for inbound."""

from __future__ import annotations

import json
import sys

import click

from listmgr.cli.base import configure_logs, fail, get_runtime, main, metrics_option, serve_metrics


@main.command("classify")
@click.argument("files", nargs=-1, required=True)
@click.option("--evidence", is_flag=True, help="Also print the rule, evidence and confidence.")
def classify_command(files: tuple[str, ...], evidence: bool) -> None:
    """Classify messages (bounce, complaint, autoreply, unsubscribe, other) without acting.

    Prints one JSON line per FILE ("-" reads standard input). Nothing is stored and nobody is
    unsubscribed: this is for operators checking what listmgr would make of a message.
    "proof" lists what ties it to us (token, message-id, outbox-message-id, dmarc, dkim);
    without it, processing would change nobody.
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
        result = classify(
            raw,
            tokens=rt.tokens,
            mail_domain=rt.settings.mail_domain,
            authserv_id=rt.settings.inbound_authserv_id,
        )
        line: dict[str, object] = {
            "file": name,
            "kind": result.kind,
            "permanent": result.permanent,
            "recipients": list(result.recipients),
            "subscriber": result.subscriber_id,
            "list": result.list_id,
            "campaign": result.campaign_id,
            # what ties it to us (token, message-id, dmarc, dkim); Message-IDs are only
            # matched to the person they went to when the message is processed
            "proof": result.proof.kinds(),
        }
        if evidence:
            line["confidence"] = result.confidence
            line["evidence"] = result.evidence
            line["proof_detail"] = result.proof.as_dict()
        click.echo(json.dumps(line, ensure_ascii=False))
    if failed:
        sys.exit(1)


EX_DATAERR = 65  # sysexits: the message is bad; the MTA bounces it
EX_TEMPFAIL = 75  # sysexits: try again later; the MTA keeps the message


@main.command("inbound")
@click.option("--recipient", default="", help="Envelope recipient (e.g. Postfix ${recipient}).")
@click.option("--sender", default="", help="Envelope sender (e.g. Postfix ${sender}).")
def inbound_command(recipient: str, sender: str) -> None:
    """Store one message from standard input for processing (an MTA pipe transport)."""
    from listmgr import runtime
    from listmgr.errors import ListmgrError, TooLarge, ValidationError
    from listmgr.services import inbound
    from listmgr.settings import load_settings

    try:
        settings = load_settings()
    except ListmgrError as exc:
        click.echo(f"listmgr: {exc.message}", err=True)
        sys.exit(EX_TEMPFAIL)
    configure_logs(settings)
    # Read one byte past the limit, never the whole of an endless pipe: too long is refused.
    raw = sys.stdin.buffer.read(settings.max_inbound_bytes + 1)
    if len(raw) > settings.max_inbound_bytes:
        click.echo(
            f"listmgr: the message is larger than {settings.max_inbound_bytes} bytes", err=True
        )
        sys.exit(EX_DATAERR)
    try:
        rt = runtime.build(settings=settings, migrate=False)
        stored = inbound.store(rt, raw, envelope_from=sender, envelope_to=recipient)
    except (ValidationError, TooLarge) as exc:
        click.echo(f"listmgr: {exc.message}", err=True)
        sys.exit(EX_DATAERR)
    except ListmgrError as exc:
        click.echo(f"listmgr: {exc.message}", err=True)
        sys.exit(EX_TEMPFAIL)
    except Exception as exc:  # database or broker unreachable: the MTA must retry
        click.echo(
            f"listmgr: temporary failure: {exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}",
            err=True,
        )
        sys.exit(EX_TEMPFAIL)
    click.echo(f"stored #{stored.id}{' (duplicate)' if stored.duplicate else ''}")


@main.command("inbound-server")
@click.option("--lmtp", "lmtp_addr", metavar="HOST:PORT", help="Listen for LMTP.")
@click.option("--smtp", "smtp_addr", metavar="HOST:PORT", help="Listen for SMTP.")
@metrics_option
def inbound_server_command(
    lmtp_addr: str | None, smtp_addr: str | None, metrics_addr: str | None
) -> None:
    """Receive inbound mail over LMTP or SMTP; answers 250 only once a message is stored."""
    import signal
    import threading

    from listmgr import boot, inbound_server

    if bool(lmtp_addr) == bool(smtp_addr):
        fail("give exactly one of --lmtp HOST:PORT or --smtp HOST:PORT")
    addr = lmtp_addr or smtp_addr or ""
    host, _, port = addr.rpartition(":")
    if not host or not port.isdigit():
        fail(f"bad address {addr!r}: use HOST:PORT, e.g. 127.0.0.1:2424")
    rt = get_runtime()
    boot.attach_queue(rt)
    serve_metrics(rt, metrics_addr)
    controller = inbound_server.start(rt, host, int(port), lmtp=bool(lmtp_addr))
    click.echo(f"listmgr inbound {'LMTP' if lmtp_addr else 'SMTP'} listening on {host}:{port}")
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    controller.stop()
