"""What every page carries: a favicon served by the app, and a skip link to the main content as
the first thing a keyboard reaches."""

from __future__ import annotations

import re

import pytest

from listmgr.services import lists
from tests.admin_support import accounts_by_role, session_login  # noqa: F401


def _first_link(html: str) -> str:
    body = html[html.index("<body") :]
    return re.search(r"<a\b[^>]*>", body)[0]


def _check(client, html: str) -> None:
    icon = re.search(r'<link rel="icon" type="image/svg\+xml" href="([^"]+)"', html)
    assert icon, "no favicon link"
    served = client.get(icon[1])
    assert served.status_code == 200 and served.mimetype == "image/svg+xml"
    assert served.data.lstrip().startswith(b"<svg")
    first = _first_link(html)
    assert 'class="skip-link"' in first and 'href="#main"' in first, first
    assert html.count('id="main"') == 1


@pytest.mark.parametrize("path", ["/subscribe/news", "/admin/login", "/u/not-a-token", "/nowhere"])
def test_public_pages_carry_the_favicon_and_the_skip_link(client, rt, path):
    lists.create(rt, slug="news", name="News")
    resp = client.get(path)
    assert resp.mimetype == "text/html"
    _check(client, resp.text)


def test_admin_pages_carry_the_favicon_and_the_skip_link(client, rt, accounts_by_role):
    session_login(client, rt, accounts_by_role["owner"])
    for path in ("/admin/", "/admin/lists", "/admin/subscribers", "/admin/settings"):
        resp = client.get(path, follow_redirects=True)
        assert resp.status_code == 200, path
        _check(client, resp.text)


ADMIN_FORMS = (
    "/admin/lists/news",
    "/admin/lists/new",
    "/admin/subscribers",
    "/admin/subscribers/new",
    "/admin/fields",
    "/admin/imports",
    "/admin/segments/new",
    "/admin/campaigns/new",
    "/admin/suppression",
    "/admin/audit",
    "/admin/settings",
    "/admin/users",
    "/admin/tokens",
    "/admin/password",
)


def _unlabelled(html: str) -> list[str]:
    """Form controls a screen reader would announce without a name."""
    from lxml import html as lxml_html

    doc = lxml_html.fromstring(html)
    labelled_ids = {label.get("for") for label in doc.iter("label") if label.get("for")}
    missing = []
    for el in doc.iter("input", "select", "textarea"):
        if el.get("type") in ("hidden", "submit", "button", "image", "reset"):
            continue
        if el.get("aria-label") or el.get("aria-labelledby") or el.get("id") in labelled_ids:
            continue
        if any(a.tag == "label" for a in el.iterancestors()):
            continue
        missing.append(lxml_html.tostring(el, encoding="unicode")[:120])
    return missing


def test_every_admin_form_control_has_a_label(client, rt, accounts_by_role):
    lists.create(rt, slug="news", name="News")
    session_login(client, rt, accounts_by_role["owner"])
    found = {}
    for path in ADMIN_FORMS:
        resp = client.get(path)
        assert resp.status_code == 200, path
        if missing := _unlabelled(resp.text):
            found[path] = missing
    assert not found, found


def test_every_text_input_type_in_the_pages_is_styled():
    """A text-like input type the stylesheet does not name renders as the browser's narrow
    default (the search boxes once did)."""
    from listmgr import resource_dir

    css = (resource_dir("static") / "app.css").read_text(encoding="utf-8")
    # The selectors of the one rule that gives text inputs their look.
    [selectors] = [r for r in re.findall(r"([^{}]+)\{", css) if "input[type=text]" in r]
    styled = set(re.findall(r"input\[type=([a-z-]+)\]", selectors))
    not_text = {"hidden", "submit", "button", "checkbox", "radio", "file", "reset", "image"}
    used = set()
    for page in resource_dir("templates").rglob("*.html"):
        for tag in re.findall(r"<input\b[^>]*>", page.read_text(encoding="utf-8")):
            kind = re.search(r'type="([a-z-]+)"', tag)
            used.add(kind[1] if kind else "text")
    assert "search" in used
    assert used - not_text <= styled, sorted(used - not_text - styled)
