"""The settings in force: the files' settings with the admin's changes, read (never adopted)
once per job and once per web request; the stored DKIM key as a private file."""

from __future__ import annotations

import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event

from listmgr.runtime import Runtime
from listmgr.services import lists, settings_store
from tests.conftest import drain


@contextmanager
def reads_of_settings(rt: Runtime) -> Iterator[list[int]]:
    """The threads (by id) that read the stored settings while the block runs, one per read."""
    threads: list[int] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM setting_value" in statement:
            threads.append(threading.get_ident())

    event.listen(rt.db.engine, "before_cursor_execute", seen)
    try:
        yield threads
    finally:
        event.remove(rt.db.engine, "before_cursor_execute", seen)


def test_effective_reads_the_admin_changes_and_changes_nothing(rt):
    files = rt.settings
    settings_store.update(rt, {"mail_domain": "lists.example.org", "send_rate": 5})
    assert rt.settings is files and rt.settings.mail_domain == "lists.example.test"
    now = settings_store.effective(rt)
    assert (now.mail_domain, now.send_rate) == ("lists.example.org", 5.0)
    assert now.secret_key == files.secret_key  # what the admin cannot change stays
    settings_store.update(rt, {}, reset=["mail_domain", "send_rate"])
    assert settings_store.effective(rt) == files


def test_the_stored_dkim_key_is_written_whole_and_private(rt):
    settings_store.generate_dkim(rt, selector="mail2024")
    path = Path(settings_store.effective(rt).dkim_private_key_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    assert settings_store.effective(rt).dkim_private_key_path == str(path)  # written once


def test_one_read_per_request_and_per_job(client, rt):
    """A sign-up request asks for two rate limits and renders a page: one read; the worker's
    job that sends the confirmation mail: one read."""
    lists.create(rt, slug="news", name="News")
    drain(rt)
    with reads_of_settings(rt) as threads:
        resp = client.post("/subscribe/news", data={"email": "new@example.org"})
        assert resp.status_code == 200
        in_request = threads.count(threading.get_ident())
        drain(rt)
    assert in_request == 1
    assert len(threads) - in_request == 1
