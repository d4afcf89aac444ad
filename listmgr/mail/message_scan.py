"""What a built message holds, read back from its bytes: the decoded subject, the From domain,
the HTML and text parts, the links, images and visible text of the HTML, and whether a link's
host is one only this machine or a private network reaches. Pure; no I/O."""

from __future__ import annotations

import email
import email.policy
import ipaddress
import re
import socket
from dataclasses import dataclass
from email.message import EmailMessage
from html.parser import HTMLParser

URL_IN_TEXT = re.compile(r"https?://[^\s<>\"'()\[\]]+", re.IGNORECASE)
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$", re.IGNORECASE)


@dataclass(frozen=True)
class Message:
    """What the checks read from a built message."""

    subject: str
    from_domain: str
    html: str
    text: str | None  # None: no text part
    size: int


def read_message(data: bytes) -> Message:
    """The decoded subject, the From domain, the HTML and text parts and the size."""
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    html, text = "", None
    for part in msg.walk():
        kind = part.get_content_type()
        if part.is_multipart() or kind not in ("text/html", "text/plain"):
            continue
        assert isinstance(part, EmailMessage)
        body = str(part.get_content())
        if kind == "text/html":
            html = html or body
        elif text is None:
            text = body
    sender = msg.get("From")
    addresses = getattr(sender, "addresses", ()) if sender is not None else ()
    domain = addresses[0].domain if addresses else ""
    return Message(str(msg.get("Subject") or ""), domain, html, text, len(data))


class Scan(HTMLParser):
    """Links, images and visible text of an HTML document."""

    HIDDEN = frozenset({"head", "style", "script", "title", "template"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []
        self.images = 0
        self.no_alt = 0
        self.data_uri = 0
        self.text: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: (v or "") for k, v in attrs}
        if tag in self.HIDDEN:
            self._hidden += 1
        if tag in ("a", "area") and values.get("href"):
            self.urls.append(values["href"].strip())
        if tag == "img":
            self.images += 1
            # alt="" is right for a decorative image (WCAG); only a missing alt is flagged.
            if "alt" not in values:
                self.no_alt += 1
            src = values.get("src", "").strip()
            if src.lower().startswith("data:"):
                self.data_uri += 1
            elif src:
                self.urls.append(src)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag in self.HIDDEN:
            self._hidden -= 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN and self._hidden:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.text.append(data)

    def visible(self) -> str:
        return " ".join(" ".join(self.text).split())


def scan(html: str) -> Scan:
    """The links, images and visible text of the HTML."""
    found = Scan()
    found.feed(html)
    found.close()
    return found


def local_host(host: str) -> bool:
    """A host only this machine or a private network reaches: localhost, loopback, private,
    link-local or unspecified addresses (in any spelling browsers accept), single-label names."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if not name:
        return False
    if name == "localhost" or name.endswith((".localhost", ".local", ".internal")):
        return True
    try:
        ip = ipaddress.ip_address(name.split("%")[0])
    except ValueError:
        if _NUMERIC_HOST.match(name):  # 127.1, 2130706433, 0x7f.1: still an IPv4 address
            try:
                ip = ipaddress.ip_address(socket.inet_aton(name))
            except OSError:
                return False
        else:
            return "." not in name  # an intranet name
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_unspecified
