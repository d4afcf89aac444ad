"""A rolling upgrade rehearsed with real processes on PostgreSQL and Redis: the previous
release of listmgr (its code taken from the repository's history) runs web and worker on its
own schema; the new release migrates the database under them; then old and new processes share
the database and the broker. Campaigns enqueued by either release reach everyone once, the old
web still signs people up and unsubscribes them, and each release reads what the other wrote."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, make_url, select, text

from listmgr import boot, runtime, schema
from listmgr import db as dbmod
from listmgr.app import create_app
from listmgr.models import Membership, Subscriber, WorkerProcess
from listmgr.services import campaigns
from tests.campaign_support import campaign, deliveries, recipients
from tests.conftest import BROKER_URL, PG_URL, Sink, free_port, settings_for, start_sink
from tests.conftest import wait_until as _wait_until
from tests.worker_support import start_worker, stop_workers, worker_env

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (PG_URL and BROKER_URL.startswith("redis")),
        reason="old and new releases side by side are separate web and worker processes, "
        "which listmgr runs on PostgreSQL with a broker (on SQLite one `listmgr serve` is "
        "stopped, upgraded and started): needs LISTMGR_TEST_DATABASE_URL and a Redis "
        "LISTMGR_TEST_BROKER_URL",
    ),
]

ROOT = Path(__file__).resolve().parents[1]
# The previous release: main just before the uploads moved into the database (migration t17a:
# new tables upload and upload_chunk, new column import_job.upload_id, none of which its code
# knows). Its processes migrate at every start, so none of them may start once the new release
# has migrated (it stops on a revision it does not know); those already running go on. From the
# release after it (`listmgr migrate`, listmgr/schema.py) on, old processes also start on a
# newer schema: when the next migration lands, move OLD_RELEASE to the commit before it.
OLD_RELEASE = "6060b625b7273b845eb6dee384a0ad3d7cd16fb4"
OLD_HEAD = "t17b"
PEOPLE = 60
START = 180  # seconds a process may take to start on a loaded machine
SENDING = {"SEND_RATE": "20", "SEND_BATCH_SIZE": "10", "LEASE_SECONDS": "5"}
EXTRA = {
    "DEFAULT_FROM_EMAIL": "news@lists.example.test",
    "DEFAULT_POSTAL_ADDRESS": "Example Org, 1 Test Street, Testville",
    "INBOUND_SECRET": "inbound-test-secret",
    "SWEEP_SECONDS": "1",
}
# Run by the old release's Python: it writes the list, its people and an API token into its own
# schema, and says where its listmgr came from.
OLD_SETUP = """
import sys, listmgr
from listmgr import runtime
from listmgr.services import accounts, lists, subscribers
rt = runtime.build(migrate=True)
lists.create(rt, slug="news", name="News", postal_address="Example Org, 1 Test Street, Testville")
for i in range(int(sys.argv[1])):
    subscribers.create(rt, email=f"p{i:04d}@example.org", lists=["news"], status="confirmed",
                       consent="signed up at the fair")
print(listmgr.__file__)
print(accounts.issue_token(rt, role="owner", name="upgrade").token)
"""


def wait_until(condition: Any, timeout: float, what: str, *logs: Path) -> Any:
    """conftest's wait_until, with the tails of the processes' logs when it times out."""
    try:
        return _wait_until(condition, timeout, what)
    except AssertionError as exc:
        tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs if p.exists())
        raise AssertionError(f"{exc}\n{tails}") from None


def _git(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, check=False)


@pytest.fixture(scope="module")
def old_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The older release's listmgr package (with its templates and configuration), extracted
    from this repository's history; a clone without that history fails here, not silently."""
    if shutil.which("git") is None or _git("rev-parse", "--git-dir").returncode != 0:
        pytest.fail(
            f"{ROOT} is no git checkout: the rolling-upgrade test takes the older release from its history"
        )
    if _git("cat-file", "-e", f"{OLD_RELEASE}^{{commit}}").returncode != 0:
        shallow = _git("rev-parse", "--is-shallow-repository").stdout.strip() == b"true"
        pytest.fail(
            f"commit {OLD_RELEASE[:12]} (the older release) is not in this clone's history"
            + (": it is a shallow clone, run `git fetch --unshallow`" if shallow else "")
        )
    archive = _git("archive", "--format=tar", OLD_RELEASE, "listmgr", "templates", "config")
    assert archive.returncode == 0, archive.stderr.decode()
    dest = tmp_path_factory.mktemp("old-release")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return dest


@pytest.fixture
def empty_url() -> Iterator[str]:
    """A PostgreSQL database nobody has migrated yet (the old release migrates it first)."""
    name = f"lmupgrade_{uuid.uuid4().hex[:10]}"
    admin = create_engine(make_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    dbmod.dispose_engines()
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def second_sink() -> Iterator[Sink]:
    """The new release's workers send here, the old ones to `sink`: who sent what shows."""
    handler = Sink()
    controller = start_sink(handler)
    yield handler
    controller.stop()


def _old(env: dict[str, str], tree: Path) -> dict[str, str]:
    """A process of the old release: its package first on the path."""
    return {**env, "PYTHONPATH": str(tree)}


def _run(args: list[str], env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
    return done.stdout


def _spawn(args: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, *args], env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT
        )


def _http(
    url: str, form: dict[str, str] | None = None, *, body: Any = None, token: str = ""
) -> tuple[int, str]:
    """GET, or POST a form or a JSON `body` (with an API `token`); the status and the text."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    elif form is not None:
        data = urllib.parse.urlencode(form).encode()
    try:
        request = urllib.request.Request(url, data=data, headers=headers)
        with urllib.request.urlopen(request, timeout=20) as r:
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()
    except OSError:
        return 0, ""


def _all_mail(*sinks: Sink) -> list[Any]:
    return [m for s in sinks for m in list(s.messages)]


def _confirm_token(address: str, *sinks: Sink) -> str:
    """The token of the confirmation link mailed to `address`."""
    for m in _all_mail(*sinks):
        if address in m.rcpt_tos:
            body = m.message.get_body(("plain",))
            found = re.search(r"/confirm/([^\s>]+)", body.get_content() if body else "")
            if found:
                return found.group(1)
    raise AssertionError(f"no confirmation mail to {address}")


def _unsubscribe_token(cid: int, address: str, *sinks: Sink) -> str:
    """The one-click token in the List-Unsubscribe header of campaign `cid`'s mail to `address`."""
    for m in _all_mail(*sinks):
        if address in m.rcpt_tos and f"Message-ID: <{cid}.".encode() in m.data:
            return str(m.message["List-Unsubscribe"]).split("/u/")[1].split(">")[0]
    raise AssertionError(f"no mail of campaign {cid} to {address}")


def _membership(rt: runtime.Runtime, address: str) -> str:
    with rt.db.session() as s:
        return str(
            s.scalar(
                select(Membership.status)
                .join(Subscriber, Subscriber.id == Membership.subscriber_id)
                .where(Subscriber.email == address)
            )
        )


def _columns(url: str) -> dict[str, set[str]]:
    engine = create_engine(url)
    try:
        found = inspect(engine)
        return {t: {c["name"] for c in found.get_columns(t)} for t in found.get_table_names()}
    finally:
        engine.dispose()


def _sent_once(rt: runtime.Runtime, cid: int, expected: set[str], *sinks: Sink) -> Counter[str]:
    """Campaign `cid` went to exactly `expected`, each once, and its ledger says so; how many
    each sink (each release's workers) received."""
    got: Counter[str] = Counter()
    for s in sinks:
        got.update(recipients(s, cid))
    assert set(got) == expected, (sorted(expected - set(got)), sorted(set(got) - expected))
    assert max(got.values()) == 1, [a for a, n in got.items() if n > 1]
    rows = deliveries(rt, cid)
    assert set(rows) == expected and all(r.status == "sent" for r in rows.values())
    assert not any(r.possibly_duplicate for r in rows.values())
    stats = campaigns.stats(rt, cid)
    assert (stats.sent, stats.remaining) == (len(expected), 0)
    return Counter({i: sum(recipients(s, cid).values()) for i, s in enumerate(sinks)})


def test_old_and_new_release_side_by_side_during_a_rolling_upgrade(
    old_tree, empty_url, sink, second_sink, tmp_path
):
    url = empty_url
    namespace = f"upg{uuid.uuid4().hex[:8]}"
    settings = {**SENDING, **EXTRA}
    old_env = _old(worker_env(url, sink, namespace, tmp_path / "old", **settings), old_tree)
    new_env = worker_env(url, second_sink, namespace, tmp_path / "new", **settings)
    port = free_port()
    web = f"http://127.0.0.1:{port}"
    logs = {name: tmp_path / f"{name}.log" for name in ("web", "a", "b")}
    procs: list[subprocess.Popen[bytes]] = []
    rt: runtime.Runtime | None = None
    try:
        # -- The previous release alone: it migrates an empty database to its head and runs.
        _run(["-m", "listmgr", "db", "upgrade"], old_env, old_tree)
        old_tables = _columns(url)
        procs.append(
            _spawn(
                ["-m", "listmgr", "web", "--port", str(port), "--workers", "1"],
                old_env,
                old_tree,
                logs["web"],
            )
        )
        setup = _spawn(["-c", OLD_SETUP, str(PEOPLE)], old_env, old_tree, tmp_path / "setup.log")
        procs.append(start_worker(old_env, logs["a"], cwd=old_tree, timeout=START))
        assert setup.wait(START) == 0, (tmp_path / "setup.log").read_text()
        # The old release's code ran, not this checkout's (the same packages otherwise).
        where, api_token = (tmp_path / "setup.log").read_text().splitlines()[-2:]
        assert where == str(old_tree / "listmgr" / "__init__.py"), where
        wait_until(lambda: _http(f"{web}/healthz")[0] == 200, START, "the old web", logs["web"])
        # Someone signs up on the old web; the old worker mails the link; the old web confirms.
        assert _http(f"{web}/subscribe/news", {"email": "early@example.org"})[0] == 200
        wait_until(lambda: sink.to("early@example.org"), 60, "the confirmation", logs["a"])
        token = _confirm_token("early@example.org", sink)
        assert _http(f"{web}/confirm/{token}", {})[0] == 200

        # -- Deploy: the new release migrates the database under the running old processes.
        out = _run(["-m", "listmgr", "migrate"], new_env, ROOT)
        assert f"migrated the database from {OLD_HEAD} to {schema.head()}" in out, out
        new_tables = _columns(url)
        added = sorted(set(new_tables) - set(old_tables))
        widened = sorted(f"{t}.{c}" for t in old_tables for c in new_tables[t] - old_tables[t])
        assert "upload" in added and "import_job.upload_id" in widened, (added, widened)

        # The new release's handle (it enqueues; worker processes do the sending).
        rt = runtime.build(
            settings_for(
                url,
                second_sink,
                broker_namespace=namespace,
                **{k.lower(): v for k, v in SENDING.items()},
            )
        )
        boot.attach_queue(rt)
        # What the old release wrote, read by the new code.
        assert _membership(rt, "early@example.org") == "confirmed"
        assert _membership(rt, "p0000@example.org") == "confirmed"

        # -- A campaign of the new release, taken up by the old worker on the new schema ...
        c1 = campaign(rt, name="New release news")
        everyone = {f"p{i:04d}@example.org" for i in range(PEOPLE)} | {"early@example.org"}
        assert campaigns.start(rt, c1) == len(everyone)
        wait_until(
            lambda: sum(recipients(sink, c1).values()) >= 5,
            60,
            "the old worker's first mail",
            logs["a"],
        )
        # ... and a new worker joins on the same broker while it sends (a host upgraded).
        procs.append(start_worker(new_env, logs["b"], cwd=ROOT, timeout=START))
        wait_until(
            lambda: campaigns.get(rt, c1).status == "sent",
            120,
            "campaign 1 sent",
            logs["a"],
            logs["b"],
        )
        split = _sent_once(rt, c1, everyone, sink, second_sink)
        assert split[0] >= 5, split
        with rt.db.session() as s:  # both write their heartbeat into one table
            beats = {w.pid for w in s.scalars(select(WorkerProcess))}
        assert {procs[1].pid, procs[2].pid} <= beats, beats

        # -- The old web on the new schema: the form, a sign-up confirmed, one-click leaves.
        status, page = _http(f"{web}/subscribe/news")
        assert status == 200 and 'name="email"' in page
        assert _http(f"{web}/subscribe/news", {"email": "late@example.org"})[0] == 200
        wait_until(
            lambda: sink.to("late@example.org") or second_sink.to("late@example.org"),
            60,
            "the confirmation",
            logs["a"],
            logs["b"],
        )
        token = _confirm_token("late@example.org", sink, second_sink)
        assert _http(f"{web}/confirm/{token}", {})[0] == 200
        assert _membership(rt, "late@example.org") == "confirmed"
        # Links in mail that either release built, followed on the old web ...
        by_old = sorted(recipients(sink, c1))
        by_new = sorted(recipients(second_sink, c1))
        leaving = [by_old[0], *by_new[:1]]
        for address in leaving:
            link = f"{web}/u/{_unsubscribe_token(c1, address, sink, second_sink)}"
            assert _http(link, {"List-Unsubscribe": "One-Click"})[0] == 200
            assert _membership(rt, address) == "unsubscribed"
        # ... and a link the old release built, followed on the new web.
        leaving.append(by_old[1])
        token = _unsubscribe_token(c1, by_old[1], sink)
        client = create_app(rt=rt, migrate=False).test_client()
        assert client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"}).status_code == 200
        assert _membership(rt, by_old[1]) == "unsubscribed"

        # -- The old worker's host is upgraded (it stops), and the old web's API sends a
        # campaign that the new worker takes up alone.
        stop_workers([procs[1]])
        assert procs[1].returncode == 0, logs["a"].read_text()[-3000:]
        status, made = _http(
            f"{web}/api/campaigns",
            body={
                "name": "Old web news",
                "subject": "Old news",
                "lists": ["news"],
                "html": "<p>Hi</p>",
            },
            token=api_token,
        )
        assert status == 201, made
        c2 = int(json.loads(made)["id"])
        status, answer = _http(f"{web}/api/campaigns/{c2}/send", body={}, token=api_token)
        assert status == 202, answer
        expected = (everyone | {"late@example.org"}) - set(leaving)
        assert campaigns.get(rt, c2).stats["audience"] == len(expected)
        wait_until(
            lambda: campaigns.get(rt, c2).status == "sent", 120, "campaign 2 sent", logs["b"]
        )
        assert _sent_once(rt, c2, expected, sink, second_sink)[1] == len(expected)
        assert schema.current(rt.db.engine) == schema.head()  # nobody migrated it back
    finally:
        stop_workers(procs)
        if rt is not None and rt.queue is not None:
            rt.queue.close()
        runtime.set_current(None)
    for name, log in logs.items():
        text_ = log.read_text() if log.exists() else ""
        assert "Traceback" not in text_, f"{name}:\n{text_[-4000:]}"
