"""Import: common headers are mapped by themselves (in several languages, whatever their case,
accents, spaces or punctuation), the proposed mapping can be changed, and a field can be
defined while mapping (role-checked, CSRF-protected, bad input refused)."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from listmgr import importrows
from listmgr.models import AuditLog, FieldDef, Subscriber
from listmgr.services import fielddefs, lists
from tests.admin_support import accounts_by_role, csrf_from, session_login  # noqa: F401
from tests.conftest import drain

F = importrows.FieldInfo
COMPANY = {"company": F("company", "text", "Company")}


@pytest.mark.parametrize(
    "header, target",
    [
        ("E-Mail", "email"),
        ("Email Address", "email"),
        ("  e_mail  ", "email"),
        ("Mail", "email"),
        ("E-Mail-Adresse", "email"),
        ("Courriel", "email"),
        ("EMAIL", "email"),
        ("Name", "name"),
        ("Full name", "name"),
        ("First", "first_name"),
        ("First name", "first_name"),
        ("first-name", "first_name"),
        ("Given name", "first_name"),
        ("Vorname", "first_name"),
        ("Prénom", "first_name"),
        ("PRENOM", "first_name"),
        ("Last", "last_name"),
        ("Last name", "last_name"),
        ("Surname", "last_name"),
        ("Family name", "last_name"),
        ("Nachname", "last_name"),
        ("Nom", "last_name"),
        ("Interests", "interests"),
        ("Shoe size", None),
        ("", None),
        ("Firma", None),  # a company needs a field to go into
    ],
)
def test_usual_headers_are_recognised(header, target):
    assert importrows.guess_target(header, {}) == target


@pytest.mark.parametrize(
    "header", ["Company", "Organisation", "organization", "Firma", "Société", "SOCIETE"]
)
def test_company_headers_go_into_a_company_field(header):
    assert importrows.guess_target(header, COMPANY) == "fields.company"


@pytest.mark.parametrize(
    "fields, header, target",
    [
        ({"phone": F("phone", "text", "Phone")}, "Telefon", "fields.phone"),
        ({"tel": F("tel", "text", "Téléphone")}, "Phone", "fields.tel"),
        ({"city": F("city", "text", "City")}, "Stadt", "fields.city"),
        ({"town": F("town", "text", "Wohnort")}, "Ville", "fields.town"),
        ({"country": F("country", "text", "Country")}, "Land", "fields.country"),
        ({"land": F("land", "text", "Land")}, "Pays", "fields.land"),
        ({"org": F("org", "text", "Organisation")}, "Firma", "fields.org"),
        # a field named like the column comes first
        ({"mail": F("mail", "text", "Mail")}, "Mail", "fields.mail"),
        ({"plan": F("plan", "text", "Tarif")}, "Tarif", "fields.plan"),
        ({"plan": F("plan", "text", "Plan")}, "fields.plan", "fields.plan"),
        # first and last names go to fields of that kind when there are such
        ({"first_name": F("first_name", "text", "First name")}, "Vorname", "fields.first_name"),
        ({"surname": F("surname", "text", "Nachname")}, "Last name", "fields.surname"),
        ({"city": F("city", "text", "City")}, "Vorname", "first_name"),
    ],
)
def test_headers_go_into_fields_of_their_kind(fields, header, target):
    assert importrows.guess_target(header, fields) == target


def test_a_whole_german_header_is_mapped():
    header = ["Vorname", "Nachname", "E-Mail", "Firma"]
    mapping, ignored = importrows.resolve(header, {}, {})
    assert mapping == {0: "first_name", 1: "last_name", 2: "email"}
    assert ignored == ["Firma"]
    mapping, ignored = importrows.resolve(header, {}, COMPANY)
    assert mapping == {0: "first_name", 1: "last_name", 2: "email", 3: "fields.company"}
    assert ignored == []


def test_an_explicit_mapping_still_wins_and_a_second_email_column_is_ignored():
    mapping, ignored = importrows.resolve(["Mail", "E-Mail"], {"E-Mail": "email"}, {})
    assert mapping == {1: "email"}
    assert ignored == ["Mail (another column already holds email)"]


# -- the mapping page ----------------------------------------------------------------------------
GERMAN = "Vorname;Nachname;E-Mail;Firma\nAda;Lovelace;ada@example.org;Analytical Engines\n"


def _login(client, rt, accounts_by_role, role):
    session_login(client, rt, accounts_by_role[role])
    return client


@pytest.fixture
def admin(client, rt, accounts_by_role):
    lists.create(rt, slug="news", name="News")
    return _login(client, rt, accounts_by_role, "admin")


def _upload(client, text=GERMAN):
    return client.post(
        "/admin/imports",
        data={
            "csrf_token": csrf_from(client.get("/admin/imports").text),
            "list": "news",
            "mode": "upsert",
            "file": (io.BytesIO(text.encode()), "leute.csv"),
        },
        content_type="multipart/form-data",
    )


def _selected(html: str) -> dict[int, str]:
    out = {}
    for i, body in re.findall(r'<select name="map_(\d+)"[^>]*>(.*?)</select>', html, re.S):
        found = re.search(r'<option value="([^"]*)" selected>', body)
        out[int(i)] = found.group(1) if found else ""
    return out


def _form(page: str, **extra):
    token = re.search(r'name="token" value="([0-9a-f]{32})"', page).group(1)
    data = {
        "csrf_token": csrf_from(page),
        "token": token,
        "filename": "leute.csv",
        "columns": "4",
        "list": "news",
        "mode": "upsert",
        "consent": "trade fair list",
    }
    for i, col in enumerate(["Vorname", "Nachname", "E-Mail", "Firma"]):
        data[f"col_{i}"] = col
    data.update({f"map_{i}": v for i, v in _selected(page).items()})
    data.update(extra)
    return data


def _field_keys(rt):
    with rt.db.session() as s:
        return list(s.scalars(select(FieldDef.key).order_by(FieldDef.id)))


def test_the_page_proposes_the_mapping_and_a_field_for_the_rest(admin, rt):
    page = _upload(admin)
    assert page.status_code == 200
    assert _selected(page.text) == {0: "first_name", 1: "last_name", 2: "email", 3: "ignore"}
    assert "proposed from its name" in page.text
    # the new-field form starts at the column nothing holds, keyed after what it is
    assert re.search(r'<option value="3" selected>Firma</option>', page.text)
    assert 'name="new_field_key" value="company"' in page.text


def test_a_field_created_while_mapping_takes_the_column_and_keeps_the_other_choices(admin, rt):
    page = _upload(admin).text
    resp = admin.post(
        "/admin/imports/new-field",
        data=_form(
            page,
            map_1="ignore",  # the person changed this one: it stays changed
            new_field_column="3",
            new_field_key="company",
            new_field_label="Firma",
            new_field_type="text",
        ),
    )
    assert resp.status_code == 200
    assert _field_keys(rt) == ["company"]
    assert _selected(resp.text) == {0: "first_name", 1: "ignore", 2: "email", 3: "fields.company"}
    assert "Field company created: the column Firma goes into it." in resp.text
    with rt.db.session() as s:
        entry = s.scalar(select(AuditLog).where(AuditLog.action == "field.create"))
    assert entry.target_id == "company" and entry.detail == {"during": "import"}
    # and the import takes it
    start = admin.post("/admin/imports/start", data=_form(resp.text, map_1="last_name"))
    assert start.status_code == 302
    drain(rt)
    deadline = time.monotonic() + 30
    url = start.headers["Location"] + "/progress.json"
    while not admin.get(url).json["done"] and time.monotonic() < deadline:
        time.sleep(0.1)
    with rt.db.session() as s:
        sub = s.scalar(select(Subscriber).where(Subscriber.email == "ada@example.org"))
    assert sub.name == "Ada Lovelace"
    assert sub.fields == {"company": "Analytical Engines"}


@pytest.mark.parametrize(
    "extra, status, message",
    [
        ({"new_field_key": "Firma!"}, 422, "key must start with a letter"),
        ({"new_field_key": "email"}, 422, "built-in"),
        ({"new_field_key": ""}, 422, "key must start with a letter"),
        ({"new_field_type": "blob"}, 422, "type must be one of"),
        ({"new_field_type": "choice"}, 422, "choices"),
        ({"new_field_column": "9"}, 422, "Choose the column"),
        ({"new_field_column": "-1"}, 422, "Choose the column"),
        ({"new_field_label": "a\u2028b" * 150}, 422, "label"),
    ],
)
def test_bad_new_fields_are_refused_and_nothing_is_created(admin, rt, extra, status, message):
    page = _upload(admin).text
    data = _form(
        page,
        new_field_column="3",
        new_field_key="company",
        new_field_label="Firma",
        new_field_type="text",
    )
    resp = admin.post("/admin/imports/new-field", data={**data, **extra})
    assert resp.status_code == status
    assert message in resp.text
    assert _field_keys(rt) == []
    assert _selected(resp.text)[2] == "email"  # the page is still there, choices kept


def test_a_field_that_exists_already_is_a_clear_conflict(admin, rt):
    fielddefs.create_field(rt, key="company", label="Company", type="text")
    page = _upload(admin).text
    assert _selected(page)[3] == "fields.company"  # and the column went into it anyway
    resp = admin.post(
        "/admin/imports/new-field",
        data=_form(page, new_field_column="0", new_field_key="company", new_field_type="text"),
    )
    assert resp.status_code == 409 and "already exists" in resp.text


def test_a_gone_upload_is_a_clear_error(admin, rt):
    page = _upload(admin).text
    data = _form(page, new_field_column="3", new_field_key="company", new_field_type="text")
    resp = admin.post("/admin/imports/new-field", data={**data, "token": "../../etc/passwd"})
    assert resp.status_code == 422 and "upload is gone" in resp.text
    assert _field_keys(rt) == []


def test_creating_a_field_while_mapping_needs_the_form_token(admin, rt):
    page = _upload(admin).text
    data = _form(page, new_field_column="3", new_field_key="company", new_field_type="text")
    del data["csrf_token"]
    resp = admin.post("/admin/imports/new-field", data=data)
    assert resp.status_code == 400
    assert _field_keys(rt) == []


@pytest.mark.parametrize("role", ["analyst", "editor"])
def test_creating_a_field_while_mapping_follows_the_roles(
    client, rt, accounts_by_role, role, tmp_path: Path
):
    lists.create(rt, slug="news", name="News")
    owner = _login(client, rt, accounts_by_role, "owner")
    page = _upload(owner).text
    data = _form(page, new_field_column="3", new_field_key="company", new_field_type="text")
    user = _login(client, rt, accounts_by_role, role)
    data["csrf_token"] = csrf_from(user.get("/admin/").text)
    resp = user.post("/admin/imports/new-field", data=data)
    assert resp.status_code == 403
    assert _field_keys(rt) == []


def _visible(html: str) -> str:
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"<[^>]+>", " ", html)


def test_the_import_pages_speak_plainly(admin, rt):
    pages = [admin.get("/admin/imports").text, _upload(admin).text]
    for html in pages:
        text = _visible(html).lower()
        for word in ("upsert", "first_name", "last_name", "multi_choice"):
            assert word not in text
    templates = Path(__file__).resolve().parent.parent / "templates"
    for path in templates.rglob("*.html"):
        assert "upsert" not in path.read_text().lower(), path
