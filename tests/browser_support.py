"""Run `listmgr serve` as a subprocess and drive it with headless Chromium (Playwright)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

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


def require_chromium() -> None:
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.skip(
            "headless Chromium is not installed (apt-get install chromium); .ci/run installs it"
        )


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
        deadline = time.monotonic() + 40
        while True:
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
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
def browser_page() -> Iterator[object]:
    """A Playwright page in headless Debian Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = browser.new_page()
            yield page
        finally:
            browser.close()


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


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
    page.fill("input[name=email]", OUTBOX_ADMIN[0])
    page.fill("input[name=password]", OUTBOX_ADMIN[1])
    page.click("button[type=submit]")
