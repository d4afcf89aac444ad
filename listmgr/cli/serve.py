"""`listmgr serve | web | worker | migrate | db upgrade`: the processes and the schema."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from typing import Any

import click
from flask import Flask
from gunicorn import glogging

from listmgr import boot
from listmgr.cli.base import fail, get_runtime, main, metrics_option, serve_metrics
from listmgr.services import users

STOP_SECONDS = 50  # a worker process's time to finish its round (the unit allows 60)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--threads",
    default=None,
    type=int,
    help="In-process worker threads (default: the worker_threads setting).",
)
def serve(host: str, port: int, threads: int | None) -> None:
    """Everything in one process: web, worker, scheduler and (by default) the dev outbox."""
    from werkzeug.serving import make_server

    from listmgr.app import create_app
    from listmgr.services import settings_store

    if "LISTMGR_BASE_URL" not in os.environ:
        os.environ["LISTMGR_BASE_URL"] = f"http://{host}:{port}"  # links point at this server
    rt = get_runtime()
    boot.attach_queue(rt)
    app = create_app(rt=rt)
    bg = boot.start(rt, threads=rt.settings.worker_threads if threads is None else threads)
    server = make_server(host, port, app, threaded=True)
    click.echo(f"listmgr is running at http://{host}:{server.port}/")
    if settings_store.effective(rt).dev_outbox_shown:
        click.echo(
            f"mail goes to the dev outbox (for admins and owners): "
            f"http://{host}:{server.port}/dev/outbox"
        )
    click.echo(
        f"admin: http://{host}:{server.port}/admin/"
        + (
            ""
            if users.any_users(rt)
            else "  (no user yet: listmgr user create --email you@example.org --role owner)"
        )
    )
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        bg.stop()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int, help="gunicorn workers")
def web(host: str, port: int, workers: int) -> None:
    """The web application under gunicorn (production; pair with `listmgr worker`)."""
    from gunicorn.app.base import BaseApplication

    # Each gunicorn worker counts its own requests: a scrape of any worker adds every worker up.
    _shared_metrics()
    rt = get_runtime()
    if not rt.settings.broker_url:
        click.echo(
            "listmgr: warning: no LISTMGR_BROKER_URL; workers will pick up work only "
            "on their periodic sweep",
            err=True,
        )

    class App(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            # listmgr writes the access lines itself (route, status, time, request id) through
            # the logging every process shares; gunicorn's own lines go there too.
            self.cfg.set("accesslog", None)
            self.cfg.set("logger_class", SharedLogs)
            self.cfg.set("child_exit", _worker_gone)

        def load(self) -> Flask:
            from listmgr import runtime
            from listmgr.app import create_app

            worker_rt = runtime.build(migrate=False)
            boot.attach_queue(worker_rt)
            return create_app(rt=worker_rt, migrate=False)

    App().run()


def _shared_metrics() -> None:
    """One directory where this process's children keep their metrics (made here unless the
    operator gave one, removed at exit), so one scrape adds them all up."""
    from listmgr import metrics

    if not os.environ.get(metrics.MULTIPROC_ENV):
        folder = tempfile.mkdtemp(prefix="listmgr-metrics-")
        os.environ[metrics.MULTIPROC_ENV] = folder
        atexit.register(_remove_in, os.getpid(), folder)


def _remove_in(pid: int, folder: str) -> None:
    """At exit of the process `pid` only (forked gunicorn workers run the same exit hooks)."""
    if os.getpid() == pid:
        shutil.rmtree(folder, ignore_errors=True)


def _worker_gone(_server: Any, worker: Any) -> None:
    """A gunicorn worker ended: its live gauges leave the sums (its counters stay)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


class SharedLogs(glogging.Logger):
    """gunicorn's messages go through the handler every listmgr process uses (listmgr.logs)."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            logger.handlers.clear()
            logger.propagate = True


@main.command()
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 256))
@click.option(
    "--processes",
    default=1,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Worker processes of --threads threads each (one process uses about one core).",
)
@metrics_option
def worker(threads: int, processes: int, metrics_addr: str | None) -> None:
    """Dramatiq worker processes (need LISTMGR_BROKER_URL=redis://… or amqp://…)."""
    if processes > 1:
        _shared_metrics()  # before the runtime: the children's counters add up in one scrape
    rt = get_runtime()
    if not rt.settings.broker_url or rt.settings.broker_url.startswith("stub"):
        fail(
            "`listmgr worker` needs LISTMGR_BROKER_URL (redis://… or amqp://…); "
            "use `listmgr serve` for the all-in-one embedded mode"
        )
    serve_metrics(rt, metrics_addr)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    if processes > 1:
        sys.exit(_supervise(processes, threads, done))
    bg = boot.start(rt, threads=threads)
    click.echo(f"listmgr worker running with {threads} threads")
    done.wait()
    bg.stop()


def _supervise(processes: int, threads: int, done: threading.Event) -> int:
    """Run `processes` worker processes until told to stop (0) or until one of them ends by
    itself: then the others are stopped too and the exit code is its own, so that the service
    manager restarts the whole worker."""
    from prometheus_client import multiprocess

    command = [sys.executable, "-m", "listmgr", "worker", "--threads", str(threads)]
    children = [subprocess.Popen(command) for _ in range(processes)]
    click.echo(f"listmgr worker running {processes} processes of {threads} threads")
    code = 0
    while not done.wait(0.5):
        ended = next((c for c in children if c.poll() is not None), None)
        if ended is not None and not done.is_set():  # (a stop signal reaches them all at once)
            code = ended.returncode or 1
            click.echo(
                f"listmgr: worker process {ended.pid} ended ({ended.returncode}): stopping the "
                "others",
                err=True,
            )
            break
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        multiprocess.mark_process_dead(child.pid)
    return code


def _migrate() -> None:
    rt = get_runtime(migrate=False)
    done = rt.db.upgrade()
    if done.applied:
        click.echo(f"migrated the database from {done.before or 'empty'} to {done.after}")
    else:
        click.echo(f"database is up to date ({done.after})")


@main.command()
def migrate() -> None:
    """Apply the missing migrations, once per deploy (safe to repeat, and to run on several
    hosts at once: one applies them, the others wait and find nothing to do)."""
    _migrate()


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """The same as `listmgr migrate`."""
    _migrate()
