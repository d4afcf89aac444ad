"""What the processes count for Prometheus, who may read it, and the text a scrape gets.

Counters and histograms live in the process that does the work (a worker sends, a web process
answers requests). With PROMETHEUS_MULTIPROC_DIR set (gunicorn's workers, or worker processes
sharing one directory on a machine) each process writes its values there and a scrape adds them
up; otherwise a process reports its own. The metrics are made on first use, so `listmgr web` can
set that directory up before any exists. Labels are bounded: campaign ids, SMTP server labels,
route templates, actor names; never an address.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from listmgr.settings import Settings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Seconds: from a web request's few milliseconds to a slow export.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Seconds from a batch's claim to a message's hand-over: a batch takes up to a time box (30 s)
# or, under a rate limit, longer.
CLAIM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
JOB_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)


@dataclass(frozen=True)
class Metrics:
    """Every process-side metric of listmgr."""

    messages: Counter
    claim_to_send: Histogram
    outbox: Counter
    inbound_stored: Counter
    inbound_processed: Counter
    jobs: Counter
    job_seconds: Histogram
    http_requests: Counter
    http_seconds: Histogram


@functools.cache
def metrics() -> Metrics:
    """The metrics of this process (made once, in the mode the environment says)."""
    # prometheus_client picks its value store when it is imported; `listmgr web` names the
    # directory later (before any metric exists), so pick again now.
    values.ValueClass = values.get_value_class()
    return Metrics(
        messages=Counter(
            "listmgr_messages",
            "Campaign messages by outcome (sent, failed, deferred for a retry, skipped for "
            "lack of consent at send time), campaign and SMTP server.",
            ["campaign", "server", "outcome"],
        ),
        claim_to_send=Histogram(
            "listmgr_claim_to_send_seconds",
            "Time from claiming a delivery row to handing its message to SMTP.",
            buckets=CLAIM_BUCKETS,
        ),
        outbox=Counter(
            "listmgr_outbox_messages",
            "Transactional mail (confirmations, notices) by outcome.",
            ["outcome"],
        ),
        inbound_stored=Counter(
            "listmgr_inbound_stored",
            "Inbound messages stored (duplicates apart).",
            ["duplicate"],
        ),
        inbound_processed=Counter(
            "listmgr_inbound_processed",
            "Inbound messages classified and acted on, by kind.",
            ["kind"],
        ),
        jobs=Counter(
            "listmgr_jobs",
            "Background jobs finished, by actor and outcome (ok, error).",
            ["actor", "outcome"],
        ),
        job_seconds=Histogram(
            "listmgr_job_seconds",
            "Time a background job ran, by actor.",
            ["actor"],
            buckets=JOB_BUCKETS,
        ),
        http_requests=Counter(
            "listmgr_http_requests",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
        ),
        http_seconds=Histogram(
            "listmgr_http_request_seconds",
            "Time to answer an HTTP request, by route template and method.",
            ["route", "method"],
            buckets=HTTP_BUCKETS,
        ),
    )


def count_messages(campaign_id: int, counts: dict[tuple[str, str], int]) -> None:
    """Add one round's outcomes: {(server, outcome): n}."""
    m = metrics().messages
    for (server, outcome), n in counts.items():
        if n:
            m.labels(str(campaign_id), server or "-", outcome).inc(n)


def observe_claim_to_send(seconds: float, messages: int) -> None:
    """The messages of one round, handed over `seconds` after their batch was claimed."""
    h = metrics().claim_to_send
    for _ in range(messages):
        h.observe(seconds)


def exposition(extra: Iterable[Collector] = ()) -> tuple[bytes, str]:
    """The scrape's body and content type: this process's (or all processes') metrics and the
    collectors given (the figures read from the database at scrape time)."""
    metrics()  # every series shows up from the first scrape on
    registry = REGISTRY
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    scraped = CollectorRegistry()
    for collector in extra:
        scraped.register(collector)
    return generate_latest(registry) + generate_latest(scraped), CONTENT_TYPE_LATEST


def access(settings: Settings, client_ip: str, authorization: str) -> int:
    """Who may read /metrics: 200, or 404 (off), 403 (network or token refused), 401 (no
    token given where one is needed)."""
    networks = settings.metrics_networks
    token = settings.metrics_token.strip()
    if not networks and not token:
        return 404
    if networks:
        try:
            address = ipaddress.ip_address(client_ip)
        except ValueError:
            return 403
        if not any(address in net for net in networks):
            return 403
    if token:
        given = authorization[7:].strip() if authorization.startswith("Bearer ") else ""
        if not given:
            return 401
        if not hmac.compare_digest(given.encode(), token.encode()):
            return 403
    return 200


def wsgi_app(settings: Settings) -> Callable[..., Iterable[bytes]]:
    """`GET /metrics` of a process without the web application (a worker, the inbound
    listener): its own counters, under the same access rule."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        status = access(
            settings, environ.get("REMOTE_ADDR", ""), environ.get("HTTP_AUTHORIZATION", "")
        )
        if environ.get("PATH_INFO") != "/metrics" or environ.get("REQUEST_METHOD") != "GET":
            status = 404
        if status != 200:
            headers = [("Content-Type", "text/plain")]
            if status == 401:
                headers.append(("WWW-Authenticate", 'Bearer realm="metrics"'))
            start_response(f"{status} {HTTPStatus(status).phrase}", headers)
            return [HTTPStatus(status).phrase.lower().encode() + b"\n"]
        body, content_type = exposition()
        start_response("200 OK", [("Content-Type", content_type), ("Cache-Control", "no-store")])
        return [body]

    return app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not worth a log line each."""


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def serve(settings: Settings, host: str, port: int) -> WSGIServer:
    """Answer `GET /metrics` on host:port in a background thread."""
    server = make_server(
        host, port, wsgi_app(settings), server_class=_Server, handler_class=_QuietHandler
    )
    threading.Thread(target=server.serve_forever, name="listmgr-metrics", daemon=True).start()
    return server
