"""Drive the app with headless Chromium (Playwright): against the test app served in-process
(the `server` and `page` fixtures) or against `listmgr serve` run as a subprocess (`serve`).

A browser test module imports the fixtures it uses and marks itself:

    from tests.browser_support import page, server  # noqa: F401

    pytestmark = [*BROWSER_TEST, pytest.mark.slow]

and asks for other browser context options (viewport, time zone) by defining its own
`page_options` fixture."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from werkzeug.serving import make_server

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
VIEWPORT = {"width": 1366, "height": 900}
PASSWORD = "a long enough password"
NO_CHROMIUM = "headless Chromium is not installed (apt-get install chromium); .ci/run installs it"


def chromium_missing() -> bool:
    return not Path(CHROMIUM).exists() or shutil.which("chromium") is None


BROWSER_TEST = [pytest.mark.browser, pytest.mark.skipif(chromium_missing(), reason=NO_CHROMIUM)]


def require_chromium() -> None:
    if chromium_missing():
        pytest.skip(NO_CHROMIUM)


@pytest.fixture
def server(app) -> Iterator[str]:
    """The test app served in-process on a free port; yields its base URL."""
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.port}"
    srv.shutdown()


@pytest.fixture
def page_options() -> dict:
    """Extra browser context options for `page`; a module overrides this fixture to change them."""
    return {}


@pytest.fixture
def page(server, page_options):
    """A Chromium page for `server` that records console errors, page errors and 4xx/5xx
    responses in `page.problems`."""
    require_chromium()
    with browser_page(**page_options) as pg:
        yield pg


@contextmanager
def serve(workdir: Path, port: int, **env: str) -> Iterator[str]:
    """A running `listmgr serve` on 127.0.0.1:port; yields its base URL."""
    base = f"http://127.0.0.1:{port}"
    full = {
        **os.environ,
        "LISTMGR_BASE_URL": base,
        "LISTMGR_SECRET_KEY": "browser-test-secret-0123456789",
        **env,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "listmgr", "serve", "--port", str(port)],
        cwd=workdir,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120  # a loaded machine starts it slowly
        while True:
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    # Still running past the deadline: stop it first, or reading its
                    # output (to the end) would wait for ever.
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait(15)
                    raise AssertionError(
                        proc.stdout.read().decode() if proc.stdout else ""
                    ) from None
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def browser_page(**context_options) -> Iterator[object]:
    """A Playwright page in headless Debian Chromium (1366x900 unless `viewport` is given, 20 s
    timeouts); what goes wrong on it is collected in `page.problems`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            context = browser.new_context(**{"viewport": VIEWPORT, **context_options})
            page = context.new_page()
            page.set_default_timeout(20_000)
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on(
                "response",
                lambda r: (
                    problems.append(f"status of {r.status}: {r.url}")
                    if r.status >= 400 and not r.url.endswith("/favicon.ico")
                    else None
                ),
            )
            page.problems = problems
            yield page
        finally:
            browser.close()


def artifact(name: str) -> Path:
    """Where a test keeps a file for people to look at, e.g. artifact("admin/settings.png")."""
    path = ARTIFACTS / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def screenshot(page, name: str) -> None:
    """A full-page screenshot in test-artifacts/; `name` may start with a folder."""
    page.screenshot(path=str(artifact(f"{name}.png")), full_page=True)


def fill_login(page, email: str, password: str) -> None:
    """Fill in and send the sign-in form the page shows."""
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def sign_in(page, server: str, email: str, password: str = PASSWORD) -> None:
    """Sign in to the admin: /admin/ asks for the login first, then lands on the dashboard."""
    page.goto(f"{server}/admin/")
    assert "/admin/login" in page.url
    fill_login(page, email, password)
    page.wait_for_url(f"{server}/admin/")


OUTBOX_ADMIN = ("dev@example.org", "correct horse battery")


def create_outbox_admin(workdir: Path, env: dict[str, str]) -> None:
    """An admin for the dev outbox (it shows every mail with its links: admins and owners only)."""
    email, password = OUTBOX_ADMIN
    subprocess.run(
        [sys.executable, "-m", "listmgr", "user", "create", "--email", email, "--role", "admin"],
        cwd=workdir,
        check=True,
        env={**os.environ, **env, "LISTMGR_NEW_PASSWORD": password},
    )


def sign_in_to_outbox(page, base: str) -> None:
    """Sign the browser in as the outbox admin."""
    page.goto(f"{base}/dev/outbox")
    assert "/admin/login" in page.url
    fill_login(page, *OUTBOX_ADMIN)


def click_confirmed(page, selector: str) -> None:
    """Click a button that asks first (data-confirm: a native confirm), answering yes in the
    page itself: on a loaded machine a native dialog can be gone before the test's handler
    answers it, and then nothing is submitted."""
    page.evaluate("window.confirm = function () { return true; }")
    page.click(selector)
