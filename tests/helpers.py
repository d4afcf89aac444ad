"""Small helpers for reading what the system sent."""

from __future__ import annotations

import re
from email.message import EmailMessage


def links(message: EmailMessage) -> list[str]:
    """Every http(s) URL in the text part."""
    part = message.get_body(("plain",))
    assert part is not None, "message has no text part"
    return re.findall(r"https?://\S+", part.get_content())


def link_with(message: EmailMessage, path: str) -> str:
    found = [u for u in links(message) if path in u]
    assert found, f"no {path} link in {links(message)}"
    return found[0]


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]
