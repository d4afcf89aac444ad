"""Open and click tracking in campaign sources, and telling people from machines. Pure; no I/O.

Only links written out in the campaign (an `<a href>` with an absolute http(s) URL and no
template code in it, or the same URL in the text part) are tracked: their targets are stored
with the campaign, so a redirect never takes its target from the URL it was reached by.
Links made by template code (unsubscribe, preferences, the web version, anything personal)
are left as they are.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass

TRAP = 0  # the link id of the hidden link no person can click

_ANCHOR_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
_TEXT_URL = re.compile(r"""https?://[^\s<>()\[\]"'{}]+""")
_BODY_OPEN = re.compile(r"<body\b[^>]*>", re.IGNORECASE)
_BODY_CLOSE = re.compile(r"</body\s*>", re.IGNORECASE)
# Our own pages: never rewritten even when written out in full.
OWN_PATHS = ("/u/", "/p/", "/w/", "/t/", "/o/", "/archive/", "/confirm/", "/subscribe/")
MAX_URL = 2000


def _target(value: str, base_url: str) -> str | None:
    """The URL an href value names, when it is one to track."""
    if "{" in value or "}" in value:  # template code: personal or ours
        return None
    url = html.unescape(value).strip()
    if not url.lower().startswith(("http://", "https://")) or len(url) > MAX_URL:
        return None
    if not url.isascii() or any(c.isspace() or ord(c) < 32 for c in url):
        return None
    base = base_url.rstrip("/")
    if url.startswith(base + "/") and url[len(base) :].startswith(OWN_PATHS):
        return None
    return url


def trackable_links(html_source: str, text_source: str, base_url: str) -> list[str]:
    """The campaign's trackable URLs in order of first appearance (HTML first, then text)."""
    seen: dict[str, None] = {}
    for m in _ANCHOR_HREF.finditer(html_source):
        url = _target(m.group(3), base_url)
        if url is not None:
            seen.setdefault(url, None)
    for m in _TEXT_URL.finditer(text_source):
        url = _target(m.group(0), base_url)
        if url is not None:
            seen.setdefault(url, None)
    return list(seen)


@dataclass(frozen=True)
class Tracked:
    """Sources with a marker where each tracked URL, the trap link and the pixel go."""

    html: str
    text: str


def marker(nonce: str, key: str) -> str:
    return f"\x1d{nonce}:{key}\x1d"


def markers_pattern(nonce: str) -> re.Pattern[str]:
    return re.compile("\x1d" + re.escape(nonce) + r":(o|\d+)\x1d")


def tracked_sources(
    html_source: str, text_source: str, base_url: str, link_ids: Mapping[str, int], nonce: str
) -> Tracked:
    """The HTML with tracked hrefs, a hidden trap link after <body> and an open pixel before
    </body>; the text with its tracked URLs. Markers are filled per recipient."""

    def href(m: re.Match[str]) -> str:
        url = _target(m.group(3), base_url)
        if url is None or url not in link_ids:
            return m.group(0)
        return f"{m.group(1)}{m.group(2)}{marker(nonce, str(link_ids[url]))}{m.group(2)}"

    def plain(m: re.Match[str]) -> str:
        url = _target(m.group(0), base_url)
        if url is None or url not in link_ids:
            return m.group(0)
        return marker(nonce, str(link_ids[url]))

    out = _ANCHOR_HREF.sub(href, html_source)
    trap = (
        f'<a href="{marker(nonce, str(TRAP))}" style="display:none" aria-hidden="true" '
        'tabindex="-1"></a>'
    )
    pixel = (
        f'<img src="{marker(nonce, "o")}" width="1" height="1" alt="" '
        'style="display:block;width:1px;height:1px;border:0">'
    )
    opened = _BODY_OPEN.search(out)
    out = out[: opened.end()] + trap + out[opened.end() :] if opened else trap + out
    closings = list(_BODY_CLOSE.finditer(out))
    at = closings[-1].start() if closings else len(out)
    out = out[:at] + pixel + out[at:]
    return Tracked(out, _TEXT_URL.sub(plain, text_source))


# -- people or machines ----------------------------------------------------------------------
# Mail privacy proxies fetch every image when a message arrives (Apple's presents itself as a
# bare "Mozilla/5.0"); security gateways and link checkers follow every link.
_MACHINE_AGENTS = (
    "bot",
    "crawler",
    "spider",
    "preview",
    "python-",
    "curl/",
    "wget/",
    "go-http-client",
    "java/",
    "okhttp",
    "headless",
    "libwww",
    "httpclient",
    "barracuda",
    "proofpoint",
    "mimecast",
    "safelinks",
    "scanner",
    "urldefense",
    "symantec",
    "trendmicro",
    "forcepoint",
    "fortiguard",
)
_PROXY_OPENERS = ("mozilla/5.0",)  # the whole User-Agent of Apple's mail privacy proxy


def _machine_agent(user_agent: str) -> bool:
    ua = user_agent.strip().lower()
    return not ua or any(word in ua for word in _MACHINE_AGENTS)


def machine_open(user_agent: str, seconds_after_send: float | None, window: float) -> bool:
    """True for an open by a machine: a privacy proxy or a fetch within `window` seconds of
    the message leaving (nobody reads mail that fast), or a robot."""
    if user_agent.strip().lower() in _PROXY_OPENERS or _machine_agent(user_agent):
        return True
    return seconds_after_send is not None and seconds_after_send < window


def scanner_click(
    user_agent: str, seconds_after_send: float | None, window: float, *, trap: bool
) -> bool:
    """True for a click by a security scanner: the hidden trap link, a robot, or a click within
    `window` seconds of the message leaving."""
    if trap or _machine_agent(user_agent):
        return True
    return seconds_after_send is not None and seconds_after_send < window
