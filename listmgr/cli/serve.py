"""`listmgr serve | web | worker | migrate | db upgrade`: the processes and the schema."""

from __future__ import annotations

import logging
import os
import signal
import threading

import click
from flask import Flask

from listmgr import boot
from listmgr.cli.base import fail, get_runtime, main
from listmgr.services import users


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

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
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
            self.cfg.set("accesslog", "-")

        def load(self) -> Flask:
            from listmgr import runtime
            from listmgr.app import create_app

            worker_rt = runtime.build(migrate=False)
            boot.attach_queue(worker_rt)
            return create_app(rt=worker_rt, migrate=False)

    App().run()


@main.command()
@click.option("--threads", default=8, show_default=True, type=int)
def worker(threads: int) -> None:
    """A Dramatiq worker process (needs LISTMGR_BROKER_URL=redis://… or amqp://…)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    rt = get_runtime()
    if not rt.settings.broker_url or rt.settings.broker_url.startswith("stub"):
        fail(
            "`listmgr worker` needs LISTMGR_BROKER_URL (redis://… or amqp://…); "
            "use `listmgr serve` for the all-in-one embedded mode"
        )
    bg = boot.start(rt, threads=threads)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    click.echo(f"listmgr worker running with {threads} threads")
    done.wait()
    bg.stop()


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
