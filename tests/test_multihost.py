"""listmgr on several hosts that share nothing but the network (tests/multihost.py): a
database host, two web hosts, two worker hosts and an SMTP sink host, each a network namespace
with a directory of its own. What one host does, the others see through PostgreSQL and Redis
only."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from listmgr import boot, runtime
from listmgr.models import AuditLog, Membership, utcnow
from listmgr.services import accounts, campaigns
from tests.campaign_support import campaign, deliveries, make_list, person
from tests.conftest import PG_URL, settings_for
from tests.multihost import (
    DatabaseHost,
    Host,
    Network,
    SinkHost,
    listmgr_env,
    unavailable,
    wait_for,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.multihost,
    pytest.mark.skipif(not PG_URL, reason="the multi-host suite runs with PostgreSQL"),
    pytest.mark.skipif(bool(unavailable()), reason=unavailable() or "-"),
]
LISTMGR = [sys.executable, "-m", "listmgr"]
CONNECTIONS = 2


class Site:
    """The hosts, and one installation (a database of its own) running on them."""

    def __init__(self, net: Network) -> None:
        self.net = net
        self.db = DatabaseHost(net.host("db"))
        self.sink = SinkHost(net.host("sink"))
        self.webs = [net.host("weba"), net.host("webb")]
        self.workers = [net.host("workc"), net.host("workd")]

    def install(self, *, migrate: bool = True, **settings: str) -> runtime.Runtime:
        """A fresh database (migrated once unless told not to), and the test's own handle."""
        self.database_url = self.db.database()
        self.sink.forget()
        self.namespace = f"mh{uuid.uuid4().hex[:8]}"
        self.settings = {
            "LISTMGR_BROKER_NAMESPACE": self.namespace,
            "LISTMGR_LEASE_SECONDS": "3",
            "LISTMGR_SWEEP_SECONDS": "1",
            "LISTMGR_SEND_CONNECTIONS": str(CONNECTIONS),
            "LISTMGR_SEND_BATCH_SIZE": "20",
            **settings,
        }
        if migrate:
            done = self.webs[0].spawn([*LISTMGR, "migrate"], self.env(self.webs[0]), "db.log")
            assert done.wait(120) == 0, self.webs[0].log("db.log")
        rt = runtime.build(
            settings_for(
                self.database_url,
                None,
                broker_url=f"{self.db.redis}/0",
                broker_namespace=self.namespace,
                smtp_url=self.sink.url,
            )
        )
        boot.attach_queue(rt)  # enqueue only: the worker hosts do the work
        return rt

    def env(self, host: Host) -> dict[str, str]:
        return listmgr_env(self.database_url, self.db, self.sink, host.workdir, **self.settings)

    def start_all(self) -> None:
        """Every web and worker host at once, as after a deploy."""
        self.start_webs(wait=False)
        self.start_workers()
        self.start_webs(spawn=False)

    def start_webs(self, *, spawn: bool = True, wait: bool = True) -> None:
        for host in self.webs if spawn else ():
            host.spawn(
                [*LISTMGR, "web", "--host", host.ip, "--port", "8000", "--workers", "1"],
                self.env(host),
                "web.log",
            )
        for host in self.webs if wait else ():
            wait_for(
                lambda h=host: _get(f"http://{h.ip}:8000/healthz") == 200,
                120,
                "a web host",
                lambda h=host: h.log("web.log")[-2000:],
            )

    def start_workers(self) -> None:
        for host in self.workers:
            host.spawn([*LISTMGR, "worker", "--threads", "4"], self.env(host), "worker.log")
        for host in self.workers:
            wait_for(
                lambda h=host: "worker running" in h.log("worker.log"),
                120,
                "a worker host",
                lambda h=host: h.log("worker.log")[-2000:],
            )

    def stop(self) -> None:
        for host in [*self.webs, *self.workers]:
            host.stop()


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def _post_json(url: str, body: dict[str, Any]) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@pytest.fixture(scope="module")
def net() -> Iterator[Network]:
    network = Network()
    try:
        yield network
    finally:
        network.close()


@pytest.fixture
def site(net: Network) -> Iterator[Site]:
    if not hasattr(net, "site"):
        net.site = Site(net)  # type: ignore[attr-defined]
    s: Site = net.site  # type: ignore[attr-defined]
    try:
        yield s
    finally:
        s.stop()
        runtime.set_current(None)


def test_a_campaign_goes_out_from_both_worker_hosts_and_a_vanished_host_loses_nothing(site):
    people = 600
    rt = site.install(LISTMGR_SEND_RATE="60")  # shared by both hosts through Redis
    make_list(rt, "news")
    for i in range(people):
        person(rt, f"p{i:04d}@example.org", ["news"])
    site.start_workers()
    cid = campaign(rt)
    assert campaigns.start(rt, cid) == people
    senders = {h.ip for h in site.workers}
    wait_for(
        lambda: {i["peer"] for i in site.sink.received(cid)} >= senders, 60, "both hosts sending"
    )
    site.workers[1].vanish()
    assert sum(site.sink.recipients(cid).values()) < people, "finished before the host vanished"
    wait_for(lambda: campaigns.get(rt, cid).status == "sent", 180, "the campaign to finish")

    got = site.sink.recipients(cid)
    rows = deliveries(rt, cid)
    assert set(got) == set(rows) and len(rows) == people  # everyone, nobody lost
    twice = {email for email, n in got.items() if n > 1}
    marked = {email for email, row in rows.items() if row.possibly_duplicate}
    assert twice <= marked, (twice, marked)
    assert len(marked) <= CONNECTIONS and all(n <= 2 for n in got.values())
    rt.queue.close()


def test_sign_up_limits_hold_across_both_web_hosts(site):
    rt = site.install(LISTMGR_SUBSCRIBE_RATE_LIMIT_IP="6/hour")
    make_list(rt, "news")
    site.start_webs()
    answers = [
        _post_json(
            f"http://{site.webs[i % 2].ip}:8000/subscribe/news", {"email": f"s{i}@example.org"}
        )
        for i in range(9)
    ]
    assert answers[:6] == [202] * 6 and answers[6:] == [429] * 3, answers
    rt.queue.close()


def test_a_campaign_scheduled_once_starts_once_with_two_worker_hosts(site):
    people = 60
    rt = site.install()
    make_list(rt, "news")
    for i in range(people):
        person(rt, f"q{i:03d}@example.org", ["news"])
    cid = campaign(rt)
    campaigns.schedule(rt, cid, at=utcnow() + timedelta(seconds=4))
    site.start_workers()
    wait_for(lambda: campaigns.get(rt, cid).status == "sent", 120, "the scheduled campaign")
    got = site.sink.recipients(cid)
    assert len(got) == people and set(got.values()) == {1}
    with rt.db.session() as s:
        sends = s.scalar(
            select(func.count())
            .select_from(AuditLog)
            .where(AuditLog.action == "campaign.send", AuditLog.target_id == str(cid))
        )
    assert sends == 1
    rt.queue.close()


def _multipart(fields: dict[str, str], filename: str, content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: text/csv\r\n\r\n".encode()
        + content
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _api(url: str, token: str, body: bytes | None = None, content_type: str = "") -> Any:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    if content_type:
        headers["Content-Type"] = content_type
    request = urllib.request.Request(url, data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.loads(resp.read())


def test_an_import_uploaded_to_one_web_host_is_run_by_a_worker_host(site):
    rt = site.install()
    make_list(rt, "news")
    token = accounts.create_token(rt, role="admin", name="multi-host")
    site.start_webs()
    site.start_workers()
    rows = "".join(f"i{i:03d}@example.org,Person {i}\n" for i in range(150))
    body, kind = _multipart(
        {"list": "news", "consent": "signed up at the fair", "mapping": ""},
        "people.csv",
        ("email,name\n" + rows).encode(),
    )
    job = _api(f"http://{site.webs[0].ip}:8000/api/imports", token, body, kind)
    info = wait_for(
        lambda: (lambda j: j if j["status"] in ("done", "failed") else None)(
            _api(f"http://{site.webs[1].ip}:8000/api/imports/{job['id']}", token)
        ),
        120,
        "the import to finish",
    )
    assert info["status"] == "done", info
    with rt.db.session() as s:
        members = s.scalar(select(func.count()).select_from(Membership))
    assert members == 150
    for host in [*site.webs, *site.workers]:  # nothing of it was left on any host's disk
        assert not [p for p in host.workdir.rglob("*.csv")], host.name
    rt.queue.close()


def test_all_hosts_starting_at_once_on_a_new_database_migrate_it_once(site):
    rt = site.install(migrate=False)  # every process start applies missing migrations
    site.start_all()
    from listmgr import schema

    assert schema.current(rt.db.engine) == schema.head()
    logs = "".join(h.log(n) for h in [*site.webs, *site.workers] for n in ("web.log", "worker.log"))
    assert "Traceback" not in logs, logs[-3000:]
    make_list(rt, "news")
    assert (
        _post_json(f"http://{site.webs[1].ip}:8000/subscribe/news", {"email": "a@example.org"})
        == 202
    )
    rt.queue.close()
