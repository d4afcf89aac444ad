"""Render the transactional mails in templates/email/<name>/ (subject.txt, body.txt, and
body.html; a mail without body.html is plain text)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    select_autoescape,
)

from listmgr import resource_dir


@lru_cache(maxsize=1)
def _env() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(resource_dir("templates") / "email")),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        keep_trailing_newline=False,
    )


def render(name: str, context: dict[str, Any]) -> tuple[str, str, str]:
    """(subject, text, html) of one transactional mail ("" html: plain text only)."""
    env = _env()
    subject = env.get_template(f"{name}/subject.txt").render(context).strip()
    text = env.get_template(f"{name}/body.txt").render(context)
    try:
        html = env.get_template(f"{name}/body.html").render(context)
    except TemplateNotFound:
        html = ""
    return " ".join(subject.split()), text, html
