"""Campaign templates: the sandbox refuses Python internals at save time, missing values render
as nothing, the footer appears when the body lacks it, and the build keeps every construct."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from listmgr.errors import TemplateError
from listmgr.mail import campaign as fast
from listmgr.mail import content
from listmgr.models import AuditLog, Campaign
from listmgr.services import campaigns
from listmgr.tokens import Tokens
from tests.campaign_support import make_list

LISTS = {1: fast.ListView(1, "News", "news", "", "1 Test Street")}
CTX = fast.sample_context(LISTS, fields={"city": "Berlin"})

ESCAPES = [
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ subscriber.__class__.__init__.__globals__ }}",
    "{{ ''|attr('__class__') }}",
    "{{ ''|attr(name) }}",
    "{{ ''['__class__'] }}",
    "{{ cycler.__init__.__globals__.os }}",
    "{{ self._TemplateReference__context }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{% set k = '_' ~ '_class__' %}{{ subscriber[k] }}",
    "{{ subscriber.fields.get.__self__ }}",
    "{{ range.__call__ }}",
    "{% include 'x' %}",
    "{% import 'x' as y %}",
    "{{ 'a' * 100000000 }}",
    "{{ 9 ** 999999 }}",
    "{{ range(100000000)|list }}",
    "{% set x = [] %}{{ x.append(1) }}",
    "{{ (1).__class__ }}",
    "{{ lipsum.__globals__ }}",
]


@pytest.mark.parametrize("source", ESCAPES)
def test_sandbox_escapes_fail_at_save_time(source: str) -> None:
    with pytest.raises(TemplateError) as info:
        content.check(content.Content(subject="s", body=f"<p>x</p>\n{source}"), CTX)
    assert info.value.field == "body"
    assert info.value.detail["line"] in (2, None)


@pytest.mark.parametrize("source", ESCAPES[:6])
def test_sandbox_escapes_in_every_part(source: str) -> None:
    for part in ("subject", "preheader", "text"):
        values = {"subject": "s", "body": "<p>b</p>", part: source}
        with pytest.raises(TemplateError) as info:
            content.check(content.Content(**values), CTX)
        assert info.value.field == part


def test_sandbox_errors_through_the_service_change_nothing(rt) -> None:
    make_list(rt, "news")
    for source in ESCAPES[:5]:
        with pytest.raises(TemplateError):
            campaigns.create(rt, name="x", subject="s", lists=["news"], body=source)
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Campaign)) == 0
        assert s.scalar(select(func.count()).select_from(AuditLog)) == 0


def test_missing_values_render_as_nothing() -> None:
    body = (
        "<p>[{{ subscriber.fields.nope }}][{{ subscriber.fields.nope.deeper }}]"
        "[{{ subscriber.fields.nope + 1 }}][{{ nothing|default('dflt') }}]"
        "[{{ subscriber.fields['city'] }}][{{ subscriber.fields.city|upper }}]</p>"
    )
    built = content.check(content.Content(subject="s", body=body), CTX)
    html = content.compile_part(built.html, "body", html=True).render(CTX)
    assert "[][][][dflt][Berlin][BERLIN]" in html


def test_syntax_errors_name_part_and_line() -> None:
    with pytest.raises(TemplateError) as info:
        content.check(content.Content(subject="s", body="a\nb\n{% if %}\n"), CTX)
    assert info.value.detail["line"] == 3 and "line 3" in info.value.message
    with pytest.raises(TemplateError) as info:
        content.check(content.Content(subject="s", body="ok", text="one\n{{ 1 / 0 }}"), CTX)
    assert info.value.field == "text" and info.value.detail["line"] == 2
    with pytest.raises(TemplateError) as info:
        content.check(content.Content(subject="s", body="ok", content_format="rtf"), CTX)


def test_footer_only_when_the_body_lacks_it() -> None:
    own = (
        '<p>{{ list.postal_address }} <a href="{{ unsubscribe_url }}">leave</a> '
        '<a href="{{ manage_url }}">prefs</a></p>'
    )
    built = content.check(content.Content(subject="s", body=own), CTX)
    assert "lm-footer" not in built.html
    built = content.check(content.Content(subject="s", body="<p>no links</p>"), CTX)
    assert built.html.count("{{ unsubscribe_url }}") == 1 and "lm-footer" in built.html
    assert "{{ unsubscribe_url }}" in built.text and "{{ list.postal_address }}" in built.text
    # A hand-written text part gets its own footer when it lacks the links.
    built = content.check(content.Content(subject="s", body=own, text="Plain words."), CTX)
    assert (
        built.text.startswith("Plain words.") and "Unsubscribe: {{ unsubscribe_url }}" in built.text
    )


def test_constructs_survive_css_inlining_and_tables() -> None:
    body = (
        "<style>p { color: red; }</style><table>{% for i in range(2) %}"
        "<tr><td><p>row {{ i }} for {{ subscriber.name }}</p></td></tr>{% endfor %}</table>"
        '<a href="{{ manage_url }}?x=1&amp;y={{ subscriber.fields.city }}">m</a>'
    )
    built = content.check(content.Content(subject="s", body=body), CTX)
    html = content.compile_part(built.html, "body", html=True).render(CTX)
    assert html.count("row ") == 2 and "row 1 for Sample Person" in html
    assert 'style="color: red;"' in html
    assert "/p/sample?x=1&amp;y=Berlin" in html


def test_values_are_escaped_in_html_and_plain_in_text() -> None:
    ctx = dict(
        CTX,
        subscriber=fast.SubscriberView(
            "a@example.org", "<b>Tom & Jerry</b>", fast.FieldsView({}), ()
        ),
    )
    built = content.check(content.Content(subject="s", body="<p>{{ subscriber.name }}</p>"), CTX)
    r = fast.CampaignRenderer(
        fast.Setup(
            1,
            "c",
            content.Content("s", "b"),
            "F",
            "f@example.org",
            "",
            LISTS,
            "example.org",
            "https://x.org",
        ),
        built,
        Tokens("k" * 32),
    )
    subject, text, html = r.parts(ctx)
    assert "&lt;b&gt;Tom &amp; Jerry&lt;/b&gt;" in html and "<b>Tom & Jerry</b>" in text
