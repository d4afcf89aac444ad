"""The readable export: one use of the mailed data link shows a page with everything the JSON
export holds (escaped), and carries that same JSON as a file beside it."""

from __future__ import annotations

import base64
import json
import re

from markupsafe import escape
from sqlalchemy import update

from listmgr.models import Campaign
from listmgr.services import fielddefs
from tests.conftest import drain
from tests.test_privacy import _data_link, _person


def _scalars(value, path="$"):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _scalars(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _scalars(v, f"{path}[{i}]")
    else:
        yield path, value


def _report(rt, api, client, sink):
    sid = _person(rt, api, client, sink)
    link = _data_link(rt, client, sink, sid, "export")
    page = client.get(link)
    assert page.status_code == 200 and b'value="page"' in page.data
    resp = client.post(link, data={"format": "page"})
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    assert resp.headers["Cache-Control"] == "no-store"
    return link, resp.get_data(as_text=True)


def test_the_page_holds_every_value_of_the_json(rt, api, client, sink):
    link, html = _report(rt, api, client, sink)
    assert "Everything we hold about you" in html
    found = re.search(r'href="data:application/json;base64,([^"]+)" download="my-data.json"', html)
    assert found
    data = json.loads(base64.b64decode(found.group(1)))
    assert data["format"] == "listmgr-export/1"
    assert {"consent_history", "deliveries", "engagement", "activity"} <= set(data)
    # every part of the export holds something here, so a part the page leaves out is caught
    # below (a new part of the JSON needs rows in tests.test_privacy._person)
    assert [key for key, value in data.items() if value in (None, [], {}, "")] == []
    visible = html.split("<main", 1)[1].replace(found.group(0), "")
    checked = 0
    for path, value in _scalars(data):
        if value is None or isinstance(value, bool):
            continue
        assert str(escape(str(value))) in visible, f"{path} = {value!r} is not on the page"
        checked += 1
    assert checked > 100
    # fields are named by their label, consent events show how and where they were given
    labels = {f.key: f.label for f in fielddefs.list_fields(rt)}
    for key in data["fields"]:
        assert str(escape(labels[key])) in visible
    assert "Wording you agreed to" in visible and "IP address" in visible
    assert "Privacy notice shown (version)" in visible
    assert "When we asked whether you still want our mail" in visible
    assert "deliverability@staff.example.org" in visible and "soft_bounce" in visible
    assert "Spring news" in visible and "https://example.org/spring" in visible
    # the link was spent by the page: neither the page nor the file comes a second time
    again = client.post(link, data={"format": "page"})
    assert again.status_code in (400, 403, 410) and b"already used" in again.data
    assert client.post(link).status_code == again.status_code


def test_markup_in_the_data_is_shown_as_text(rt, api, client, sink):
    sid = _person(rt, api, client, sink)
    api.patch(f"/api/subscribers/{sid}", json={"name": "<script>alert(1)</script>"})
    html = client.post(
        _data_link(rt, client, sink, sid, "export"), data={"format": "page"}
    ).get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_a_preference_link_never_shows_the_page(rt, api, client, sink):
    sid = _person(rt, api, client, sink)
    sent = len(sink.messages)
    resp = client.post(f"/p/{rt.tokens.manage(sid)}/export", data={"format": "page"})
    assert resp.status_code == 200 and b"Everything we hold" not in resp.data
    drain(rt)
    assert len(sink.wait_for(sent + 1)) == sent + 1  # only a link is mailed
    assert client.post("/p/not-a-token/export", data={"format": "page"}).status_code in (
        400,
        403,
        404,
    )


def test_a_templated_subject_is_shown_as_read_and_as_written(rt, api, client, sink):
    sid = _person(rt, api, client, sink)
    with rt.db.session() as s:
        s.execute(
            update(Campaign)
            .where(Campaign.name == "Spring")
            .values(subject="News for {{ subscriber.name }}")
        )
    html = client.post(
        _data_link(rt, client, sink, sid, "export"), data={"format": "page"}
    ).get_data(as_text=True)
    assert "&ldquo;News for Sample Person&rdquo;" in html or "“News for Sample Person”" in html
    assert "(as written: News for {{ subscriber.name }})" in html
