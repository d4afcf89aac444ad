"""Campaign content: the sandboxed Jinja environment, save-time checks and the once-per-campaign
build (Markdown, layout, footer, inlined CSS, text derived from the HTML). Pure; no I/O.

Markdown, CSS inlining and HTML-to-text run once per campaign on the *template*, not per
recipient: every Jinja construct is first swapped for an inert placeholder (an expression for a
word, a statement for an HTML comment), the HTML is transformed, and the constructs are put back.
"""

from __future__ import annotations

import html as htmllib
import re
import secrets
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError
from jinja2.sandbox import (
    UNSAFE_ASYNC_GENERATOR_ATTRIBUTES,
    UNSAFE_COROUTINE_ATTRIBUTES,
    UNSAFE_GENERATOR_ATTRIBUTES,
)

from listmgr.errors import TemplateError
from listmgr.mail.budget import Budget, BudgetExceeded, Limits, render
from listmgr.mail.layout import DEFAULT_LAYOUT, FOOTER_HTML, FOOTER_TEXT
from listmgr.mail.sandbox import CampaignEnvironment, SafeUndefined, compile_template, environment  # noqa: F401

PARTS = ("subject", "preheader", "body", "text", "layout")
# How a body is written: HTML by hand, Markdown, or HTML made by the visual editor (built as
# HTML is).
FORMATS = ("html", "markdown", "visual")
FORMAT_ERROR = "content_format must be 'html', 'markdown' or 'visual'"
DEEP = "a macro or loop calls itself too deeply"
UNSAFE_NAMES = (
    UNSAFE_GENERATOR_ATTRIBUTES
    | UNSAFE_COROUTINE_ATTRIBUTES
    | UNSAFE_ASYNC_GENERATOR_ATTRIBUTES
    | {"mro", "func_globals", "func_code", "f_globals", "f_locals", "tb_frame"}
)


def compile_part(source: str, part: str, *, html: bool) -> Any:
    """A compiled template whose error frames name the part (for line numbers)."""
    return compile_template(source, part, html=html)


# -- save-time checks ------------------------------------------------------------------------
def _error(part: str, line: int | None, message: str) -> TemplateError:
    where = f"{part}, line {line}" if line else part
    return TemplateError(
        f"template error in {where}: {message}",
        field=part,
        detail={"part": part, "line": line, "message": message},
    )


def _forbidden(name: str) -> bool:
    return name.startswith("_") or name in UNSAFE_NAMES


def _static_check(tree: nodes.Template, part: str) -> None:
    """Refuse reaching for Python internals before anything runs."""
    for node in tree.find_all(
        (
            nodes.Getattr,
            nodes.Getitem,
            nodes.Filter,
            nodes.Extends,
            nodes.Include,
            nodes.Import,
            nodes.FromImport,
        )
    ):
        if isinstance(node, (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
            raise _error(
                part,
                node.lineno,
                "extends, include and import are not available in campaign templates",
            )
        if isinstance(node, nodes.Getattr) and _forbidden(node.attr):
            raise _error(part, node.lineno, f"access to {node.attr!r} is not allowed")
        if (
            isinstance(node, nodes.Getitem)
            and isinstance(node.arg, nodes.Const)
            and isinstance(node.arg.value, str)
            and _forbidden(node.arg.value)
        ):
            raise _error(part, node.lineno, f"access to {node.arg.value!r} is not allowed")
        if isinstance(node, nodes.Filter) and node.name == "attr":
            arg = node.args[0] if node.args else None
            if not isinstance(arg, nodes.Const) or not isinstance(arg.value, str):
                raise _error(part, node.lineno, "the attr filter needs a literal name")
            if _forbidden(arg.value):
                raise _error(part, node.lineno, f"access to {arg.value!r} is not allowed")


def _line_of(exc: BaseException, part: str) -> int | None:
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == f"<{part}>":
            line = frame.lineno
    return line


def check_part(
    source: str, part: str, *, html: bool, context: dict[str, Any], budget: Budget | None = None
) -> nodes.Template:
    """Parse, refuse unsafe constructs and render once with sample data within the budget;
    errors name the line."""
    env = environment(html)
    try:
        tree = env.parse(source, name=part, filename=f"<{part}>")
    except TemplateSyntaxError as exc:
        raise _error(part, exc.lineno, exc.message or "syntax error") from None
    _static_check(tree, part)
    try:
        output = render(compile_part(source, part, html=html), context, budget or Budget(Limits()))
    except TemplateSyntaxError as exc:  # unknown filters and tests surface when compiling
        raise _error(part, exc.lineno, exc.message or "syntax error") from None
    except BudgetExceeded as exc:
        raise _error(part, _line_of(exc, part), str(exc)) from None
    except RecursionError as exc:
        raise _error(part, _line_of(exc, part), DEEP) from None
    except SecurityError as exc:
        raise _error(part, _line_of(exc, part), f"not allowed: {exc}") from None
    except Exception as exc:  # any failure with sample data would fail at send time too
        raise _error(part, _line_of(exc, part), f"{exc.__class__.__name__}: {exc}") from None
    del output  # its size was checked while it was rendered
    return tree


def mentions(tree: nodes.Template, name: str) -> bool:
    """True when the template uses a variable (e.g. unsubscribe_url)."""
    return any(n.name == name for n in tree.find_all(nodes.Name))


def mentions_attr(tree: nodes.Template, obj: str, attr: str) -> bool:
    return any(
        isinstance(n.node, nodes.Name) and n.node.name == obj and n.attr == attr
        for n in tree.find_all(nodes.Getattr)
    )


def needs_footer(tree: nodes.Template) -> bool:
    """A footer is added unless the part has both links and the postal address."""
    return not (
        mentions(tree, "unsubscribe_url")
        and mentions(tree, "manage_url")
        and mentions_attr(tree, "list", "postal_address")
    )


# -- placeholders ----------------------------------------------------------------------------
_BEGIN = {
    "variable_begin": "variable_end",
    "block_begin": "block_end",
    "comment_begin": "comment_end",
    "raw_begin": "raw_end",
}


class Slots:
    """Jinja constructs set aside while HTML tools work on the text around them."""

    def __init__(self) -> None:
        self.nonce = secrets.token_hex(4)
        self.sources: list[str] = []
        self.kinds: list[str] = []
        self._pattern = re.compile(rf"<!--lmx{self.nonce}s(\d+)x-->|lmx{self.nonce}([es])(\d+)x")

    def _add(self, source: str, kind: str) -> str:
        n = len(self.sources)
        self.sources.append(source)
        self.kinds.append(kind)
        return f"lmx{self.nonce}e{n}x" if kind == "e" else f"<!--lmx{self.nonce}s{n}x-->"

    def protect(self, source: str, *, escape_text: bool = False) -> str:
        """The source with every construct replaced by a placeholder (comments dropped)."""
        out: list[str] = []
        construct: list[str] = []
        end = ""
        kind = ""
        for _line, token, value in environment(True).lex(source):
            if end:
                construct.append(value)
                if token == end:
                    if kind != "c":
                        out.append(self._add("".join(construct), kind))
                    end = ""
            elif token in _BEGIN:
                end, construct = _BEGIN[token], [value]
                kind = {"variable_begin": "e", "comment_begin": "c"}.get(token, "s")
            else:
                out.append(htmllib.escape(value, quote=False) if escape_text else value)
        return "".join(out)

    def slot_named(self, text: str, name: str) -> str | None:
        """The placeholder of the `{{ name }}` construct in protected text, if any."""
        want = re.compile(rf"^\{{\{{-?\s*{name}\s*-?\}}\}}$")
        for match in self._pattern.finditer(text):
            if match.group(2) == "e" and want.match(self.sources[int(match.group(3))]):
                return match.group(0)
        return None

    def as_text_tokens(self, text: str) -> str:
        """Statement placeholders as plain words (HTML-to-text drops comments)."""
        return re.sub(rf"<!--(lmx{self.nonce}s\d+x)-->", r"\1", text)

    def restore(self, text: str, expected: set[int] | None = None) -> str | None:
        """The text with the constructs back, or None when a tool lost or copied one."""
        seen: list[int] = []

        def put(match: re.Match[str]) -> str:
            n = int(match.group(1) or match.group(3))
            seen.append(n)
            return self.sources[n]

        restored = re.sub(rf"<!--lmx{self.nonce}s(\d+)x-->|lmx{self.nonce}([es])(\d+)x", put, text)
        if expected is not None and sorted(seen) != sorted(expected):
            return None
        return restored

    def present(self, text: str) -> set[int]:
        return {int(m.group(1) or m.group(3)) for m in self._pattern.finditer(text)}


# -- the build -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Content:
    """What a marketer writes."""

    subject: str
    body: str
    content_format: str = "html"  # one of FORMATS
    text: str = ""  # empty: derived from the HTML
    preheader: str = ""
    layout: str = ""  # empty: the built-in layout; else HTML with {{ content }}


@dataclass(frozen=True)
class Built:
    """Template sources ready to compile once per campaign."""

    subject: str
    html: str
    text: str  # "" when text_from_html: derive per recipient (rare fallback)
    text_from_html: bool
    uses_interests: bool


def _markdown(source: str) -> str:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).render(source)


def _inline_css(document: str) -> str:
    import css_inline

    return css_inline.inline(document)


def _to_text(document: str) -> str:
    from inscriptis import get_text
    from inscriptis.model.config import ParserConfig

    return get_text(document, ParserConfig(display_links=True)).strip() + "\n"


def html_to_text(document: str) -> str:
    """Readable plain text for an HTML document, links kept visible."""
    return _to_text(document)


def build(content: Content, *, html_footer: bool, text_footer: bool) -> Built:
    """Markdown, layout, footer, inlined CSS and the text part, as Jinja sources."""
    slots = Slots()
    body = slots.protect(content.body)
    if content.content_format == "markdown":
        body = _markdown(body)
    if html_footer:
        body += slots.protect(FOOTER_HTML)
    layout = slots.protect(content.layout or DEFAULT_LAYOUT)
    content_slot = slots.slot_named(layout, "content")
    if content_slot is None:
        raise _error("layout", None, "the layout must contain {{ content }}")
    document = layout.replace(content_slot, body, 1)
    preheader_slot = slots.slot_named(document, "preheader")
    if preheader_slot is not None:
        document = document.replace(
            preheader_slot, slots.protect(content.preheader, escape_text=True), 1
        )
    expected = slots.present(document)
    try:
        html = slots.restore(_inline_css(document), expected)
    except ValueError:
        html = None
    if html is None:  # the inliner mangled a construct (e.g. Jinja inside <style>): skip it
        html = slots.restore(document, expected) or ""
    if content.text:
        text = content.text + (FOOTER_TEXT if text_footer else "")
        text_from_html = False
    else:
        textual = slots.as_text_tokens(f"<html><body>{body}</body></html>")
        derived = slots.restore(_to_text(textual), slots.present(body))
        text, text_from_html = (derived, False) if derived is not None else ("", True)
    uses_interests = (
        "interests"
        in content.body + content.text + content.subject + content.layout + content.preheader
    )
    return Built(
        subject=content.subject,
        html=html,
        text=text,
        text_from_html=text_from_html,
        uses_interests=uses_interests,
    )


def check(content: Content, context: dict[str, Any], limits: Limits | None = None) -> Built:
    """Every part checked with sample data, then built; raises TemplateError naming part+line.
    All the renders of one check share one budget (time and text)."""
    if any(c in content.subject for c in "\r\n"):
        raise _error("subject", None, "the subject must be one line")
    if not content.subject.strip():
        raise TemplateError("the subject is required", field="subject")
    if len(content.subject) > 998:
        raise TemplateError("the subject is too long (at most 998 characters)", field="subject")
    if content.content_format not in FORMATS:
        raise TemplateError(FORMAT_ERROR, field="content_format")
    budget = Budget(limits or Limits())
    check_part(content.subject, "subject", html=False, context=context, budget=budget)
    check_part(content.preheader, "preheader", html=False, context=context, budget=budget)
    body_tree = check_part(content.body, "body", html=True, context=context, budget=budget)
    if content.layout:
        layout_tree = check_part(
            content.layout,
            "layout",
            html=True,
            context={**context, "content": "", "preheader": ""},
            budget=budget,
        )
        if not mentions(layout_tree, "content"):
            raise _error("layout", None, "the layout must contain {{ content }}")
    text_footer = False
    if content.text:
        text_footer = needs_footer(
            check_part(content.text, "text", html=False, context=context, budget=budget)
        )
    built = build(content, html_footer=needs_footer(body_tree), text_footer=text_footer)
    # The assembled sources must compile and run too (they are what is sent).
    for part, source, html in (("body", built.html, True), ("text", built.text, False)):
        try:
            render(compile_part(source, part, html=html), context, budget)
        except BudgetExceeded as exc:
            raise _error(part, None, str(exc)) from None
        except Exception as exc:
            raise _error(part, None, f"the assembled message does not render: {exc}") from None
    return built


Renderer = Callable[[dict[str, Any]], str]
