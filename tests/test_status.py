"""`listmgr status`: database, broker, workers seen, campaigns sending and the backlog; a
one-line refusal and a non-zero exit when the database or the broker cannot be reached."""

from __future__ import annotations

import json
import sqlite3

import pytest
from click.testing import CliRunner

from listmgr import runtime
from listmgr.cli import main
from listmgr.models import utcnow
from listmgr.services import campaigns, heartbeats
from tests.campaign_support import campaign, make_list, person
from tests.conftest import BROKER_URL, SECRET, wait_until

pytestmark = pytest.mark.usefixtures("restored_logging")


@pytest.fixture
def status(database_url, tmp_path):
    env = {
        "LISTMGR_DATABASE_URL": database_url,
        "LISTMGR_BROKER_URL": BROKER_URL,
        "LISTMGR_SECRET_KEY": SECRET,
        "LISTMGR_VAR_DIR": str(tmp_path),
    }

    def run(*args: str, rt: runtime.Runtime | None = None, **changes: str):
        result = CliRunner().invoke(main, ["status", *args], env={**env, **changes})
        runtime.set_current(rt)  # the command made its own runtime current: the test's again
        return result

    return run


def test_status_shows_workers_sending_campaigns_and_backlog(make_runtime, status):
    rt = make_runtime(threads=0)  # nothing sends: the campaign stays due
    make_list(rt, "news")
    for i in range(3):
        person(rt, f"p{i}@example.org", ["news"])
    cid = campaign(rt, name="Autumn news")
    campaigns.start(rt, cid)
    # A worker elsewhere says it is alive (what its heartbeat thread writes every 15 s).
    heartbeats.beat(rt, heartbeats.new_name(), threads=8, started_at=utcnow())

    result = status(rt=rt)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "database   ok" in out
    assert "broker     ok" in out
    assert "workers    1 seen in the last 60 s" in out
    assert "campaigns  1 sending" in out
    assert f"#{cid} Autumn news  sending: 0/3 done (0%), 0 sent, 0 failed, 3 due" in out
    assert "backlog    3 campaign messages due" in out
    assert "@" not in out

    result = status("--json", rt=rt)
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["ok"] is True
    assert data["database"]["revision"] == data["database"]["expected"]
    assert len(data["workers"]) == 1 and data["workers"][0]["threads"] == 8
    assert data["campaigns"][0]["id"] == cid
    assert data["campaigns"][0]["due"] == 3
    assert data["backlog"]["deliveries_due"] == 3
    assert data["backlog"]["outbox"]["pending"] == 0


def test_a_stopped_worker_leaves_the_list(make_runtime, status):
    from listmgr import boot

    rt = make_runtime(threads=0)
    bg = boot.start(rt, threads=1, sweep=False)
    wait_until(lambda: heartbeats.seen(rt), what="the heartbeat")
    bg.stop()
    assert heartbeats.seen(rt) == []
    assert "workers    NONE seen" in status(rt=rt).output


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://postgres@127.0.0.1:1/nothing",  # nobody listens there
        "sqlite:////nonexistent-directory/listmgr.db",
    ],
)
@pytest.mark.parametrize("as_json", [False, True])
def test_an_unreachable_database_exits_non_zero_with_one_line(status, url, as_json):
    result = status(*(["--json"] if as_json else []), LISTMGR_DATABASE_URL=url)
    assert result.exit_code == 1
    if as_json:
        data = json.loads(result.stdout)
        assert data["ok"] is False and data["database"]["ok"] is False
        assert "workers" not in data
    else:
        assert result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("listmgr: database DOWN: OperationalError")
        assert "Traceback" not in result.stderr


def test_an_unreachable_broker_exits_non_zero(status):
    result = status(LISTMGR_BROKER_URL="redis://127.0.0.1:1/0")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("listmgr: broker DOWN: ConnectionError")


def test_a_database_behind_the_code_is_named(status, tmp_path):
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    result = status(LISTMGR_DATABASE_URL=f"sqlite:///{empty}")
    assert result.exit_code == 1
    assert "database not current" in result.stderr
    assert "listmgr db upgrade" in result.stderr
