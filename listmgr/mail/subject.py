"""A campaign subject rendered for one context, as the message's Subject header reads it; the
text as written (marked) when it cannot be rendered. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from listmgr.mail import content
from listmgr.mail.campaign import header_text


@dataclass(frozen=True)
class Subject:
    text: str
    rendered: bool  # False: `text` is the subject as written, which does not render

    @property
    def label(self) -> str:
        """The text, marked when it is the template as written."""
        return self.text if self.rendered else f"{self.text} (as written: it does not render)"


def rendered(subject: str, context: dict[str, Any], limits: content.Limits) -> Subject:
    """The subject for this context (the one header line sending would write)."""
    try:
        template = content.compile_part(subject, "subject", html=False)
        out = content.render(template, context, limits)
    except Exception:  # any template failure: syntax, sandbox, budget, a value that breaks
        return Subject(subject, False)
    return Subject(" ".join(header_text(out).split()), True)
