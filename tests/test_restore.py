"""A pg_dump taken while a campaign is half sent, restored into a new database: the campaign
resumes there, never mails anyone the dump shows as sent, and marks only the message that was
in flight as possibly duplicate (as after a killed worker)."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, make_url, text

from listmgr import boot, runtime
from listmgr import db as dbmod
from listmgr.services import campaigns, delivery
from tests.campaign_support import campaign, deliveries, make_list, person, recipients
from tests.conftest import PG_URL, Sink, settings_for, start_sink

pytestmark = pytest.mark.skipif(
    not PG_URL or shutil.which("pg_dump") is None or shutil.which("pg_restore") is None,
    reason="needs PostgreSQL (LISTMGR_TEST_DATABASE_URL) and pg_dump / pg_restore",
)
PEOPLE = 40
BLOCK_AT = 24  # the recipient whose RCPT waits while the dump is taken


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def new_database() -> Iterator[str]:
    """An empty database on the same server: the new host's."""
    name = f"lmrestore_{uuid.uuid4().hex[:10]}"
    admin = create_engine(make_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    dbmod.dispose_engines()
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_a_restored_half_sent_campaign_resumes_without_resending(
    database_url, sink, new_database, tmp_path
):
    sending = {"send_connections": 1, "lease_seconds": 1, "send_batch_size": 10}
    old = runtime.build(settings_for(database_url, sink, **sending))  # no broker: we drive it
    make_list(old, "news")
    for i in range(PEOPLE):
        person(old, f"p{i:02d}@example.org", ["news"])
    cid = campaign(old)
    assert campaigns.start(old, cid) == PEOPLE

    seen, reached, go_on = [0], threading.Event(), threading.Event()

    def hold(address: str) -> None:
        seen[0] += 1
        if seen[0] == BLOCK_AT:
            reached.set()
            go_on.wait(60)

    sink.rcpt_hook = hold
    worker = threading.Thread(target=delivery.send_batch, args=(old, cid))
    worker.start()
    assert reached.wait(60), "the campaign never got that far"
    dump = tmp_path / "listmgr.dump"
    subprocess.run(
        ["pg_dump", "--format=custom", f"--file={dump}", _libpq(database_url)],
        check=True,
        timeout=120,
    )
    go_on.set()  # the old host goes on sending after the dump (those sends are not in it)
    worker.join(60)

    subprocess.run(
        ["pg_restore", "--no-owner", f"--dbname={_libpq(new_database)}", str(dump)],
        check=True,
        timeout=120,
    )
    new_sink = Sink()
    controller = start_sink(new_sink)
    try:
        new = runtime.build(settings_for(new_database, new_sink, **sending))
        restored = deliveries(new, cid)
        sent_before = {e for e, d in restored.items() if d.status == "sent"}
        in_flight = {e for e, d in restored.items() if d.status == "claimed"}
        assert len(sent_before) == BLOCK_AT - 1 and in_flight  # half sent, a claim open
        time.sleep(1.5)  # the dead claim's lease (1 s) is over
        bg = boot.start(new, threads=2, sweep=False)  # re-enqueues the sending campaign
        try:
            deadline = time.monotonic() + 120
            while campaigns.get(new, cid).status != "sent":
                assert time.monotonic() < deadline, campaigns.get(new, cid)
                time.sleep(0.1)
        finally:
            bg.stop()
            runtime.set_current(None)
        got = recipients(new_sink, cid)
        rows = deliveries(new, cid)
    finally:
        controller.stop()
    assert not set(got) & sent_before  # nobody the dump shows as sent is mailed again
    assert set(got) == set(restored) - sent_before and set(got.values()) == {1}
    assert all(d.status == "sent" for d in rows.values())
    marked = {e for e, d in rows.items() if d.possibly_duplicate}
    # The message handed to SMTP when the dump was taken may have arrived: it alone is marked
    # (one connection: one message a round).
    assert len(marked) == 1 and marked <= in_flight
    assert f"p{BLOCK_AT - 1:02d}@example.org" in marked
