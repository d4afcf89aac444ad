"""What a web process tells its operator: a request id on every request (and the jobs it
enqueues), one access log line and HTTP metrics per request, and `GET /metrics`."""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Flask, Response, g, request

from listmgr import logs, metrics
from listmgr.services import monitoring
from listmgr.web.extensions import client_ip, current_runtime, limiter

log = logging.getLogger("listmgr.web")
bp = Blueprint("observe", __name__)
UNMATCHED = "<unmatched>"  # a path no route knows: one label, whatever was asked


def init_app(app: Flask) -> None:
    """Hook the request id, the access log and the HTTP metrics into every request."""
    app.before_request(_begin)
    app.after_request(_end)
    app.teardown_request(_forget)
    app.register_blueprint(bp)


def _begin() -> None:
    g.started = time.perf_counter()
    rid = logs.sane_request_id(request.headers.get(logs.REQUEST_ID_HEADER))
    g.request_id = rid or logs.new_request_id()
    g.request_id_token = logs.bind_request_id(g.request_id)


def _end(resp: Response) -> Response:
    rid = g.get("request_id")
    if rid:
        resp.headers[logs.REQUEST_ID_HEADER] = rid
    started = g.get("started")
    if started is None:
        return resp
    seconds = time.perf_counter() - started
    route = request.url_rule.rule if request.url_rule is not None else UNMATCHED
    m = metrics.metrics()
    m.http_requests.labels(route, request.method, str(resp.status_code)).inc()
    m.http_seconds.labels(route, request.method).observe(seconds)
    # The route, never the path: paths carry unsubscribe and preference tokens.
    log.info(
        "%s %s %s %.1fms %s", request.method, route, resp.status_code, seconds * 1000, client_ip()
    )
    return resp


def _forget(_exc: BaseException | None = None) -> None:
    token = g.pop("request_id_token", None)
    if token is not None:
        logs.reset_request_id(token)


@bp.get("/metrics")
@limiter.exempt
def scrape() -> Response:
    """Prometheus text: the processes' counters and the database's figures."""
    rt = current_runtime()
    status = metrics.access(rt.settings, client_ip(), request.headers.get("Authorization", ""))
    if status != 200:
        words = {401: "a token is needed", 403: "not allowed", 404: "not found"}[status]
        resp = Response(words + "\n", status=status, mimetype="text/plain")
        if status == 401:
            resp.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return resp
    body, content_type = metrics.exposition([monitoring.DatabaseCollector(rt)])
    resp = Response(body, status=200, content_type=content_type)
    resp.headers["Cache-Control"] = "no-store"
    return resp
