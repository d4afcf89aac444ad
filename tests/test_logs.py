"""Logs: one configuration for every process, addresses masked unless the debug setting says
otherwise, JSON lines that parse, and the request id carried from a web request into the job
it enqueued."""

from __future__ import annotations

import json
import logging
import re

import pytest
from click.testing import CliRunner

from listmgr import logs
from listmgr.app import create_app
from listmgr.cli import main
from listmgr.services import lists
from listmgr.settings import load_settings
from tests.conftest import SECRET, drain, wait_until

ENTRY_POINTS = ("serve", "web", "worker", "inbound-server", "inbound", "status")
pytestmark = pytest.mark.usefixtures("restored_logging")
ADDRESSES = ("jane.doe@example.org", "Bob+news@Mail.Example.CO.UK", "ülla@exämple.de")


def _log_everything(name: str) -> None:
    """A line with addresses in the message, the arguments and a traceback."""
    log = logging.getLogger(f"listmgr.{name}")
    log.warning("mail to %s refused: <%s>", ADDRESSES[0], ADDRESSES[1])
    try:
        raise ValueError(f"no such person {ADDRESSES[2]}")
    except ValueError:
        log.exception("lookup failed for %s?email=%s", "x", "jane.doe%40example.org")


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_addresses_are_masked_in_every_process(entry, fmt, capsys):
    logs.configure(load_settings({"log_format": fmt, "secret_key": SECRET}), entry)
    _log_everything(entry)
    err = capsys.readouterr().err
    for address in ADDRESSES:
        assert address not in err
        assert address.lower() not in err.lower()
    assert "jane.doe%40example.org" not in err
    assert "j***@example.org~" in err
    assert "B***@Mail.Example.CO.UK~" in err
    assert "ü***@exämple.de~" in err or "\\u00fc***@" in err
    # The same address reads the same on every line (and process): one can follow it.
    assert len(set(re.findall(r"j\*\*\*@example\.org~[0-9a-f]{6}", err))) == 1
    if fmt == "json":
        lines = [json.loads(line) for line in err.splitlines()]
        assert [line["level"] for line in lines] == ["WARNING", "ERROR"]
        assert all(line["process"] == entry for line in lines)
        assert "ValueError" in lines[1]["exception"]
        assert "ülla" not in lines[1]["exception"]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_the_debug_setting_shows_addresses(fmt, capsys):
    logs.configure(
        load_settings({"log_format": fmt, "log_addresses": True, "secret_key": SECRET}), "web"
    )
    _log_everything("web")
    err = capsys.readouterr().err
    assert ADDRESSES[0] in err
    assert ADDRESSES[1] in err


def test_configuring_twice_keeps_one_handler(capsys):
    settings = load_settings({"secret_key": SECRET})
    logs.configure(settings, "web")
    logs.configure(settings, "web")
    logging.getLogger("listmgr.x").warning("once")
    assert capsys.readouterr().err.count("once") == 1


@pytest.fixture
def cli_env(database_url, tmp_path):
    return {
        "LISTMGR_DATABASE_URL": database_url,
        "LISTMGR_BROKER_URL": "",
        "LISTMGR_SECRET_KEY": SECRET,
        "LISTMGR_VAR_DIR": str(tmp_path),
        "LISTMGR_LOG_FORMAT": "json",
    }


@pytest.mark.parametrize(
    ("args", "stdin"),
    [
        (["worker"], None),  # refuses the in-process broker, after setting logging up
        (["status"], None),
        (["inbound", "--sender", "a@example.net"], b"Subject: x\r\n\r\nhello\r\n"),
    ],
)
def test_commands_log_as_the_settings_say(cli_env, capsys, args, stdin):
    from listmgr import runtime

    result = CliRunner().invoke(main, args, env=cli_env, input=stdin)
    runtime.set_current(None)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    # What the process logs afterwards goes out as the settings said: JSON, masked.
    logging.getLogger("listmgr.after").warning("for %s", ADDRESSES[0])
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    line = next(x for x in lines if x["logger"] == "listmgr.after")
    assert line["process"] == args[0]
    assert ADDRESSES[0] not in line["message"]


def test_request_id_goes_from_the_request_into_its_job(rt, client, caplog):
    logs.configure(rt.settings, "serve")
    caplog.set_level(logging.INFO)
    lists.create(rt, slug="news", name="News", postal_address="1 Test Street")
    resp = client.post(
        "/subscribe/news",
        data={"email": "ada@example.org"},
        headers={"X-Request-ID": "edge-7d2f9a41"},
    )
    assert resp.status_code == 200
    assert resp.headers["X-Request-ID"] == "edge-7d2f9a41"
    drain(rt)

    def job_records() -> list[logging.LogRecord]:
        return [
            r
            for r in caplog.records
            if r.name == "listmgr.jobs" and "send_outbox" in r.getMessage()
        ]

    records = wait_until(job_records, what="the job's log line")
    assert {r.request_id for r in records} == {"edge-7d2f9a41"}  # type: ignore[attr-defined]
    access = [
        r for r in caplog.records if r.name == "listmgr.web" and "/subscribe/" in r.getMessage()
    ]
    assert access and access[0].request_id == "edge-7d2f9a41"  # type: ignore[attr-defined]
    assert "ada@example.org" not in access[0].getMessage()  # the route, not the path or form
    assert logs.request_id() == ""  # nothing lingers on this thread after the request


@pytest.mark.parametrize(
    "given",
    [
        "",
        "short",
        "x" * 65,
        "evil\tINFO forged line",
        "ünicode-id-12345",
        "id with spaces 1234",
        "<script>12345",
    ],
)
def test_an_unusable_request_id_is_replaced(rt, client, caplog, given):
    logs.configure(rt.settings, "web")
    caplog.set_level(logging.INFO)
    lists.create(rt, slug="news", name="News", postal_address="1 Test Street")
    resp = client.post(
        "/subscribe/news", data={"email": "bo@example.org"}, headers={"X-Request-ID": given}
    )
    rid = resp.headers["X-Request-ID"]
    assert rid != given
    assert re.fullmatch(r"[0-9a-f]{16}", rid)
    drain(rt)
    records = wait_until(
        lambda: [r for r in caplog.records if r.name == "listmgr.jobs"], what="the job's line"
    )
    assert records[0].request_id == rid  # type: ignore[attr-defined]


def test_jobs_nobody_requested_carry_their_message_id(rt, caplog):
    logs.configure(rt.settings, "worker")
    caplog.set_level(logging.INFO)
    rt.enqueue("sweep")
    drain(rt)
    records = wait_until(
        lambda: [r for r in caplog.records if r.name == "listmgr.jobs"], what="the sweep's line"
    )
    assert records[0].request_id  # type: ignore[attr-defined]


def test_a_web_page_answers_with_its_request_id(rt):
    client = create_app(rt=rt, migrate=False).test_client()
    first = client.get("/healthz").headers["X-Request-ID"]
    second = client.get("/healthz").headers["X-Request-ID"]
    assert first != second
