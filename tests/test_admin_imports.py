"""Import with column mapping and progress, the error report, and the audited export."""

from __future__ import annotations

import io
import re
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from listmgr.models import AuditLog, ImportJob, Subscriber, Upload, utcnow
from listmgr.services import lists
from tests.admin_support import accounts_by_role, csrf_from, session_login  # noqa: F401
from tests.conftest import drain

pytest.importorskip("listmgr.services.imports")
CSV = (
    "E-mail,Full name,Town\nada@example.org,Ada,Berlin\nalan@example.org,Alan,Paris\n"
    "broken-address,Nobody,Nowhere\n"
)


@pytest.fixture
def admin(client, rt, accounts_by_role):
    from listmgr.services import fielddefs

    lists.create(rt, slug="news", name="News")
    fielddefs.create_field(rt, key="city", label="City", type="text")
    session_login(client, rt, accounts_by_role["admin"])
    return client


def _tokens(rt) -> set[str]:
    """The tokens of the uploads stored."""
    with rt.db.session() as s:
        return set(s.scalars(select(Upload.token)))


def _upload(client, text: str = CSV, token: str | None = None):
    token = token if token is not None else csrf_from(client.get("/admin/imports").text)
    return client.post(
        "/admin/imports",
        data={
            "csrf_token": token,
            "list": "news",
            "mode": "upsert",
            "file": (io.BytesIO(text.encode()), "people.csv"),
        },
        content_type="multipart/form-data",
    )


def test_upload_map_import_and_report(admin, rt):
    page = _upload(admin)
    assert page.status_code == 200 and "Map the columns of people.csv" in page.text
    token = re.search(r'name="token" value="([0-9a-f]{32})"', page.text).group(1)
    assert 'value="email" selected' in page.text  # E-mail was recognised
    form = {
        "csrf_token": csrf_from(page.text),
        "token": token,
        "filename": "people.csv",
        "columns": "3",
        "col_0": "E-mail",
        "col_1": "Full name",
        "col_2": "Town",
        "map_0": "email",
        "map_1": "name",
        "map_2": "fields.city",
        "list": "news",
        "mode": "upsert",
        "consent": "",
    }
    refused = admin.post("/admin/imports/start", data=form)
    assert refused.status_code == 422 and "on what basis" in refused.text
    with rt.db.session() as s:
        assert s.scalar(select(func.count(ImportJob.id))) == 0
    form["csrf_token"] = csrf_from(refused.text)
    resp = admin.post("/admin/imports/start", data={**form, "consent": "fair sign-up sheet"})
    assert resp.status_code == 302
    job_url = resp.headers["Location"]
    drain(rt)
    deadline = time.monotonic() + 30
    while not admin.get(f"{job_url}/progress.json").json["done"] and time.monotonic() < deadline:
        time.sleep(0.1)
    progress = admin.get(f"{job_url}/progress.json").json
    assert progress["status"] == "done" and progress["inserted"] == 2 and progress["errors"] == 1
    detail = admin.get(job_url)
    assert "broken-address" in detail.text
    assert "Add new people and update known ones" in detail.text and "upsert" not in detail.text
    report = admin.get(f"{job_url}/report.csv")
    assert report.mimetype == "text/csv" and "broken-address" in report.text
    with rt.db.session() as s:
        assert s.scalar(select(Subscriber.fields).where(Subscriber.email == "ada@example.org")) == {
            "city": "Berlin"
        }
        assert (
            s.scalar(select(func.count(AuditLog.id)).where(AuditLog.action == "people.import")) == 1
        )


def test_upload_without_token_or_file_changes_nothing(admin, rt):
    before = _tokens(rt)
    assert _upload(admin, token="forged").status_code == 400
    assert _tokens(rt) == before
    empty = admin.post(
        "/admin/imports",
        data={"csrf_token": csrf_from(admin.get("/admin/imports").text), "list": "news"},
        content_type="multipart/form-data",
    )
    assert empty.status_code == 422
    gone = admin.post(
        "/admin/imports/start",
        data={
            "csrf_token": csrf_from(admin.get("/admin/imports").text),
            "token": "../../etc/passwd",
            "columns": "0",
            "consent": "x",
        },
    )
    assert gone.status_code == 422 and "upload the file again" in gone.text


def test_export_is_streamed_and_audited(admin, rt, client, accounts_by_role):
    from listmgr.services import subscribers
    from listmgr.services.subscriptions import Origin

    subscribers.create(
        rt,
        email="ada@example.org",
        name="=cmd|' /C calc'!A0",
        lists=["news"],
        status="confirmed",
        consent="x",
        origin=Origin(source="test"),
    )
    resp = admin.get("/admin/export?list=news&status=confirmed")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    body = resp.get_data(as_text=True)
    assert "ada@example.org" in body and "'=cmd" in body  # no spreadsheet formula
    with rt.db.session() as s:
        assert (
            s.scalar(select(func.count(AuditLog.id)).where(AuditLog.action == "people.export")) == 1
        )
    assert admin.get("/admin/export?list=nope").status_code == 404
    session_login(client, rt, accounts_by_role["editor"])
    assert client.get("/admin/export?list=news").status_code == 403
    assert client.get("/admin/imports").status_code == 403


def test_abandoned_uploads_are_forgotten(admin, rt, tmp_path):
    from listmgr.services import imports, recovery, subscribers, uploads
    from listmgr.services.subscriptions import Origin

    def age(token: str) -> None:
        with rt.db.session() as s:
            s.execute(
                update(Upload)
                .where(Upload.token == token)
                .values(created_at=utcnow() - timedelta(hours=3))
            )

    assert _upload(admin).status_code == 200
    [fresh] = _tokens(rt)
    assert _upload(admin).status_code == 200
    [old] = _tokens(rt) - {fresh}
    age(old)
    busy_file = tmp_path / "busy.csv"
    busy_file.write_text("email\nbusy@example.org\n")
    busy_job = imports.create_job(
        rt, path=busy_file, list_slug="news", consent="fair", actor="t"
    )  # queued
    [busy] = _tokens(rt) - {fresh, old}
    age(busy)

    assert uploads.forget(rt) == 1  # older than two hours and read by no job: gone
    assert _tokens(rt) == {fresh, busy}

    # An erasure takes every upload still waiting for its mapping: it may hold the address.
    sid = subscribers.create(rt, email="ada@example.org", lists=["news"], consent="fair")
    from listmgr.services import privacy

    privacy.erase_subscriber(rt, sid, origin=Origin(source="admin"))
    assert _tokens(rt) == {busy}
    # the workers' periodic sweep does the same
    stale = uploads.store(rt, io.BytesIO(b"email\nstale@example.org\n"), filename="stale.csv")
    age(stale.token)
    assert recovery.sweep(rt)["uploads_forgotten"] == 1 and stale.token not in _tokens(rt)
    # The same sweep woke the queued import: it found its upload kept, imported from it, and
    # then let it go.
    drain(rt)
    with rt.db.session() as s:
        assert s.get(ImportJob, busy_job).status == "done"
        assert s.scalar(select(Subscriber.id).where(Subscriber.email == "busy@example.org"))
    assert _tokens(rt) == set()
    form = {
        "csrf_token": csrf_from(admin.get("/admin/imports").text),
        "token": fresh,
        "filename": "people.csv",
        "list": "news",
        "consent": "x",
        "columns": "0",
    }
    resp = admin.post("/admin/imports/start", data=form)
    assert resp.status_code == 422 and "upload the file again" in resp.text
