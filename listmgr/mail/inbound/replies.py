"""The first lines a person wrote in a reply: without quotes, attributions, forwarded
originals, signatures, sign-offs and newsletter footers."""

from __future__ import annotations

import re
from email.message import Message

from listmgr.mail.inbound import phrases
from listmgr.mail.inbound.htmltext import html_to_text
from listmgr.mail.inbound.message import TEXT_LIMIT, decode_part, is_attachment

REPLY_LIMIT = 12_000  # characters handed to the reply parser
REPLY_LINE_LIMIT = 300  # characters of one line handed to the reply parser
REPLY_LINES = 8  # "first lines" of a reply that may ask to unsubscribe

URL_RE = re.compile(r"https?://|www\.|mailto:", re.IGNORECASE)


def reply_lines(parts: list[tuple[Message, str]]) -> list[str]:
    """The first lines the sender wrote: no quotes, attributions, forwards or signatures."""
    text = _compact(_reply_body(parts)[:TEXT_LIMIT])
    if not text.strip():
        return []
    try:
        from mailparser_reply import EmailReplyParser

        parsed = EmailReplyParser(languages=["en", "de", "fr", "es", "it", "nl", "pl", "sv"]).read(
            text
        )
        if parsed.replies:
            # The first fragment is a prefix of the text. When the text starts with a quote
            # header the fragment keeps that header, so our own rules still see it for what
            # it is (the parser's .body would drop it and pass the quoted original off as
            # the reply).
            latest = parsed.replies[0]
            kept = latest.content
            # Its signature guess also fires on "Thanks, but please unsubscribe me": only a
            # sign-off line of its own, a "--" line or "Sent from my ..." counts.
            first = phrases.normalize(latest.signatures.strip().split("\n")[0].strip())
            if (
                latest.signatures
                and latest.signatures in kept
                and (
                    phrases.SIGNOFF_RE.match(first)
                    or phrases.SIGNATURE_RE.match(first)
                    or re.match(r"^[-_]{2,}\s*$", first)
                )
            ):
                kept = kept[: kept.index(latest.signatures)]
            if kept.strip():
                text = kept
    except Exception:
        pass
    return _own_lines(text)


def _compact(text: str) -> str:
    """Bound the text handed to the reply parser (its patterns are slow on long input): runs of
    quoted lines become one, lines and the whole are cut to size."""
    out: list[str] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        quoted = line.lstrip().startswith(">")
        if quoted and out and out[-1].lstrip().startswith(">"):
            continue
        out.append(line[:REPLY_LINE_LIMIT])
        if len(out) >= 400:
            break
    return "\n".join(out)[:REPLY_LIMIT]


def _own_lines(text: str) -> list[str]:
    raw_lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    out: list[str] = []
    i = 0
    while i < len(raw_lines) and len(out) < REPLY_LINES:
        line = raw_lines[i].strip()
        norm = phrases.normalize(line)
        i += 1
        if not line:
            continue
        if line.startswith((">", "|")):
            continue
        if phrases.SIGNATURE_RE.match(norm) or phrases.SEPARATOR_RE.match(norm):
            break
        if phrases.ATTRIBUTION_RE.match(norm):
            continue
        if phrases.ATTRIBUTION_START_RE.match(norm) and re.search(r"\d", norm):
            # an attribution wrapped over up to three lines ("On Tue, 4 Mar 2025 at 10:02, A <"
            # / "a@example.org> wrote:"); its first line always carries the date
            joined = norm
            for k in range(i, min(i + 2, len(raw_lines))):
                joined += " " + phrases.normalize(raw_lines[k].strip())
                if phrases.ATTRIBUTION_RE.match(joined):
                    i = k + 1
                    break
            else:
                joined = ""
            if joined:
                continue
        if phrases.HEADER_LINE_RE.match(norm):
            nxt = [phrases.normalize(x.strip()) for x in raw_lines[i : i + 4] if x.strip()]
            if any(phrases.HEADER_LINE_RE.match(x) for x in nxt[:3]):
                break
        if phrases.FOOTER_RE.search(norm) or (out and phrases.SIGNOFF_RE.match(norm)):
            break
        if URL_RE.search(norm):
            continue
        out.append(line[:500])
    return out


def _reply_body(parts: list[tuple[Message, str]]) -> str:
    """Text of a reply: its first text/plain part, else its HTML without quoted blocks."""
    html = ""
    for part, ct in parts:
        if is_attachment(part):
            continue
        if ct == "text/plain":
            body = decode_part(part)
            if body.strip():
                return body
        elif ct == "text/html" and not html:
            html = decode_part(part)
    return html_to_text(html, strip_quotes=True) if html else ""
