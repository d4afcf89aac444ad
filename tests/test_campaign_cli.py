"""`listmgr campaign create / send ID --wait / status ID` from the command line."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from listmgr import runtime
from listmgr.cli import main
from listmgr.models import Campaign
from tests.campaign_support import make_list, person, recipients
from tests.conftest import SECRET, settings_for


@pytest.fixture
def cli(database_url, sink, tmp_path):
    env = {
        "LISTMGR_DATABASE_URL": database_url,
        "LISTMGR_BROKER_URL": "",
        "LISTMGR_SMTP_URL": sink.url,
        "LISTMGR_SECRET_KEY": SECRET,
        "LISTMGR_MAIL_DOMAIN": "lists.example.test",
        "LISTMGR_VAR_DIR": str(tmp_path),
        "LISTMGR_BASE_URL": "http://listmgr.test",
    }
    rt = runtime.build(settings_for(database_url, sink))
    runner = CliRunner()

    def run(*args: str):
        result = runner.invoke(main, list(args), env=env, catch_exceptions=False)
        runtime.set_current(rt)
        return result

    yield rt, run
    runtime.set_current(None)


def test_create_send_wait_status(cli, sink, tmp_path):
    rt, run = cli
    make_list(rt, "news")
    for i in range(3):
        person(rt, f"c{i}@example.org", ["news"], name=f"C {i}")
    body = tmp_path / "body.md"
    body.write_text("# Hello {{ subscriber.name }}\n\nThe news.\n")
    result = run(
        "campaign",
        "create",
        "--name",
        "CLI",
        "--subject",
        "Hi {{ subscriber.name }}",
        "--list",
        "news",
        "--markdown",
        str(body),
    )
    assert result.exit_code == 0, result.output
    cid = int(result.output.strip())
    result = run("campaign", "send", str(cid), "--wait")
    assert result.exit_code == 0, result.output
    assert "sending to 3 people" in result.output and "sent 3" in result.output
    assert recipients(sink, cid) == {f"c{i}@example.org": 1 for i in range(3)}
    result = run("campaign", "status", str(cid), "--json")
    data = json.loads(result.output)
    assert data["status"] == "sent" and data["stats"]["sent"] == 3
    result = run("campaign", "list")
    assert f"{cid}\tsent\t3/3\tCLI" in result.output


def test_bad_input_is_one_line_and_changes_nothing(cli, tmp_path):
    rt, run = cli
    make_list(rt, "news")
    body = tmp_path / "body.html"
    body.write_text("<p>ok</p>\n<p>{{ ''.__class__ }}</p>\n")
    result = run(
        "campaign", "create", "--name", "x", "--subject", "s", "--list", "news", "--html", str(body)
    )
    assert result.exit_code == 1
    assert "template error in body, line 2" in result.output
    result = run("campaign", "create", "--name", "x", "--subject", "s", "--list", "news")
    assert result.exit_code == 1 and "--html" in result.output
    result = run("campaign", "send", "999")
    assert result.exit_code == 1 and "no campaign 999" in result.output
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Campaign)) == 0
