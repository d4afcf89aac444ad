"""GET /metrics: the counters of the processes that did the work and the database's figures
move when a real campaign goes to an SMTP server; only the allowed scrapers read them."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, update

from listmgr import metrics
from listmgr.app import create_app
from listmgr.models import Membership, Subscriber
from listmgr.services import campaigns, inbound
from tests.campaign_support import campaign, make_list, person, recipients, wait_status
from tests.conftest import drain, free_port, wait_until

TOKEN = "scrape-token-7f3a9c1e5b"


def samples(body: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape by name and labels (parsed as Prometheus would)."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(scrape: dict[Any, float], name: str, **labels: str) -> float:
    return scrape.get((name, frozenset(labels.items())), 0.0)


def scrape(client: Any, **kw: Any) -> dict[Any, float]:
    resp = client.get("/metrics", **kw)
    assert resp.status_code == 200, resp.data
    assert resp.headers["Content-Type"].startswith("text/plain; version=")
    return samples(resp.data)


def test_a_campaign_sent_to_smtp_moves_counters_and_gauges(make_runtime, sink):
    rt = make_runtime(threads=0)  # no worker yet: the campaign waits in the ledger
    client = create_app(rt=rt, migrate=False).test_client()
    make_list(rt, "news")
    for i in range(3):
        person(rt, f"reader{i}@example.org", ["news"], name=f"Reader {i}")
    person(rt, "gone@example.org", ["news"])
    cid = campaign(rt)
    label = f"{sink.host}:{sink.port}"
    before = scrape(client)

    campaigns.start(rt, cid)
    waiting = scrape(client)
    assert value(waiting, "listmgr_database_up") == 1
    assert value(waiting, "listmgr_campaigns", status="sending") == 1
    assert value(waiting, "listmgr_deliveries", campaign=str(cid), state="queued") == 4
    assert value(waiting, "listmgr_delivery_backlog", campaign=str(cid)) == 4
    assert value(waiting, "listmgr_workers_seen") == 0

    # One person leaves before the worker comes: skipped at send time, counted as such.
    with rt.db.session() as s:
        gone = s.scalar(select(Subscriber.id).where(Subscriber.email == "gone@example.org"))
        s.execute(
            update(Membership).where(Membership.subscriber_id == gone).values(status="unsubscribed")
        )
    worker = rt.queue.start_worker(2)
    try:
        wait_status(rt, cid)
        drain(rt)
    finally:
        worker.stop(timeout=10000)
    assert sum(recipients(sink, cid).values()) == 3

    after = scrape(client)
    sent = "listmgr_messages_total"
    assert (
        value(after, sent, campaign=str(cid), server=label, outcome="sent")
        - value(before, sent, campaign=str(cid), server=label, outcome="sent")
        == 3
    )
    assert (
        value(after, sent, campaign=str(cid), server="-", outcome="skipped")
        - value(before, sent, campaign=str(cid), server="-", outcome="skipped")
        == 1
    )
    timing = "listmgr_claim_to_send_seconds_count"
    assert value(after, timing) - value(before, timing) == 3
    jobs = "listmgr_jobs_total"
    assert value(after, jobs, actor="send_batch", outcome="ok") > value(
        before, jobs, actor="send_batch", outcome="ok"
    )
    # The campaign is done: it leaves the per-campaign gauges; the status count moved.
    assert value(after, "listmgr_campaigns", status="sent") == 1
    assert value(after, "listmgr_campaigns", status="sending") == 0
    assert ("listmgr_delivery_backlog", frozenset({("campaign", str(cid))})) not in after
    # HTTP requests are counted by route template, and the scrapes themselves show up.
    route = value(
        after, "listmgr_http_requests_total", route="/metrics", method="GET", status="200"
    )
    assert route >= 2
    assert value(after, "listmgr_http_request_seconds_count", route="/metrics", method="GET") >= 2
    # No label or value carries an address or a token.
    body = client.get("/metrics").data.decode()
    assert "@" not in body and "example.org" not in body


def test_inbound_and_http_routes_are_labelled_by_template(rt, client):
    before = scrape(client)
    raw = (
        b"From: someone@example.net\r\nTo: news@lists.example.test\r\nSubject: hi\r\n\r\nhello\r\n"
    )
    stored = inbound.store(rt, raw)
    inbound.store(rt, raw)  # the same message again: a duplicate
    client.get(f"/u/{'x' * 40}")  # a token in the path
    client.get("/no/such/page/at/all")
    drain(rt)
    after = scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("listmgr_inbound_stored_total", duplicate="no") == 1
    assert moved("listmgr_inbound_stored_total", duplicate="yes") == 1
    assert moved("listmgr_inbound_processed_total", kind="other") == 1
    assert value(after, "listmgr_inbound_messages", state="processed") == 1
    assert value(after, "listmgr_inbound_messages", state="stored") == 0
    assert stored.id
    routes = {dict(k[1]).get("route") for k in after if k[0] == "listmgr_http_requests_total"}
    assert "/u/<token>" in routes
    assert "<unmatched>" in routes
    assert not any(r and "xxxx" in r for r in routes)  # the token itself is no label


@pytest.mark.parametrize(
    ("settings", "remote", "header", "status"),
    [
        # The default: loopback only, no token.
        ({}, "127.0.0.1", None, 200),
        ({}, "203.0.113.9", None, 403),
        ({}, "203.0.113.9", f"Bearer {TOKEN}", 403),
        # A token, any network.
        ({"metrics_allow": "", "metrics_token": TOKEN}, "203.0.113.9", None, 401),
        ({"metrics_allow": "", "metrics_token": TOKEN}, "203.0.113.9", "Bearer wrong", 403),
        ({"metrics_allow": "", "metrics_token": TOKEN}, "203.0.113.9", f"Bearer {TOKEN}x", 403),
        ({"metrics_allow": "", "metrics_token": TOKEN}, "203.0.113.9", f"Basic {TOKEN}", 401),
        ({"metrics_allow": "", "metrics_token": TOKEN}, "203.0.113.9", f"Bearer {TOKEN}", 200),
        # Both: the network and the token.
        (
            {"metrics_allow": "10.0.0.0/8", "metrics_token": TOKEN},
            "10.2.3.4",
            f"Bearer {TOKEN}",
            200,
        ),
        ({"metrics_allow": "10.0.0.0/8", "metrics_token": TOKEN}, "10.2.3.4", None, 401),
        (
            {"metrics_allow": "10.0.0.0/8", "metrics_token": TOKEN},
            "192.0.2.1",
            f"Bearer {TOKEN}",
            403,
        ),
        ({"metrics_allow": "10.0.0.0/8,2001:db8::/32"}, "2001:db8::5", None, 200),
        # Neither: off.
        ({"metrics_allow": "", "metrics_token": ""}, "127.0.0.1", None, 404),
    ],
)
def test_who_may_scrape(make_runtime, settings, remote, header, status):
    rt = make_runtime(threads=0, **settings)
    client = create_app(rt=rt, migrate=False).test_client()
    headers = {"Authorization": header} if header else {}
    resp = client.get("/metrics", headers=headers, environ_base={"REMOTE_ADDR": remote})
    assert resp.status_code == status
    if status != 200:
        assert b"listmgr_" not in resp.data  # a refusal leaks nothing
        assert len(resp.data) < 40
    if status == 401:
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_forged_forwarded_for_does_not_open_metrics(make_runtime):
    rt = make_runtime(threads=0)  # no trusted proxies: X-Forwarded-For is ignored
    client = create_app(rt=rt, migrate=False).test_client()
    resp = client.get(
        "/metrics",
        headers={"X-Forwarded-For": "127.0.0.1"},
        environ_base={"REMOTE_ADDR": "203.0.113.9"},
    )
    assert resp.status_code == 403


def test_bad_networks_are_refused_at_start():
    from listmgr.errors import ConfigError
    from listmgr.settings import load_settings

    with pytest.raises(ConfigError, match=r"metrics_allow .* networks such as 10\.0\.0\.0/8"):
        load_settings({"metrics_allow": "10.0.0.0/33"})


def test_a_worker_answers_metrics_on_its_own_port(make_runtime):
    rt = make_runtime(threads=0, metrics_allow="127.0.0.1/32", metrics_token=TOKEN)
    port = free_port()
    server = metrics.serve(rt.settings, "127.0.0.1", port)
    try:
        url = f"http://127.0.0.1:{port}/metrics"

        def get(path: str = "/metrics", token: str | None = None) -> tuple[int, bytes]:
            req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
            if token:
                req.add_header("Authorization", f"Bearer {token}")
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    return resp.status, resp.read()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read()

        assert wait_until(lambda: get(token=TOKEN)[0] == 200, what=url)
        status, body = get(token=TOKEN)
        assert b"listmgr_messages_total" in body or b"# HELP listmgr_messages" in body
        assert get()[0] == 401
        assert get(token="nope")[0] == 403
        assert get("/other", token=TOKEN)[0] == 404
    finally:
        server.shutdown()
        server.server_close()


def test_a_directory_named_after_import_still_collects_every_process(tmp_path):
    """`listmgr web` names the multiprocess directory once listmgr (and prometheus_client)
    are imported: the metrics, made later, must still write there and be summed."""
    script = (
        "import os, sys\n"
        "import listmgr.cli\n"  # imports prometheus_client before the directory is known
        "from listmgr import metrics\n"
        "os.environ[metrics.MULTIPROC_ENV] = sys.argv[1]\n"
        "metrics.metrics().jobs.labels('sweep', 'ok').inc(2)\n"
        "sys.stdout.write(metrics.exposition()[0].decode())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != metrics.MULTIPROC_ENV}
    for _ in range(2):  # two processes, one directory
        done = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    assert any(p.name.startswith("counter_") for p in tmp_path.iterdir())
    got = samples(done.stdout.encode())
    assert value(got, "listmgr_jobs_total", actor="sweep", outcome="ok") == 4
