"""Plain text of an HTML body, optionally without the quoted original a reply carries."""

from __future__ import annotations

import re
from typing import Any

from listmgr.mail.inbound.message import TEXT_LIMIT

_QUOTE_XPATH = (
    "//blockquote | //*[contains(concat(' ', normalize-space(@class), ' '), ' gmail_quote ')]"
    " | //*[contains(@class, 'gmail_quote_container')] | //*[contains(@class, 'moz-cite-prefix')]"
    " | //*[contains(@class, 'yahoo_quoted')] | //*[contains(@class, 'protonmail_quote')]"
    " | //*[contains(@class, 'gmail_signature')] | //*[contains(@class, 'moz-signature')]"
    " | //*[@id='Signature'] | //*[contains(@class, 'zmail_extra')] | //div[@name='quote']"
    " | //*[contains(@class, '_quote')] | //*[contains(@class, 'quoted')]"
)

_CUT_XPATH = (
    "//*[@id='appendonsend'] | //*[@id='divRplyFwdMsg'] | //hr[@id='stopSpelling']"
    " | //*[@id='mail-editor-reference-message-container'] | //hr[@id='zwchr']"
    " | //*[contains(@class, 'OutlookMessageHeader')]"
    " | //div[contains(translate(@style, 'E', 'e'), 'border-top:solid #e1e1e1')]"
    " | //div[contains(translate(@style, 'B', 'b'), 'border-top:solid #b5c4df')]"
    # a ruled box starting with bold "From:"-style labels (Windows Mail, Outlook variants)
    " | //div[contains(@style, 'border-top')][.//b[substring(normalize-space(.),"
    " string-length(normalize-space(.))) = ':']]"
)


def html_to_text(html: str, strip_quotes: bool) -> str:
    """Plain text of an HTML body (inscriptis); quoted blocks removed when asked."""
    html = html[:TEXT_LIMIT]
    if not html.strip():
        return ""
    try:
        import lxml.html
        from inscriptis import get_text

        doc = lxml.html.document_fromstring(html)
        for bad in doc.xpath("//script | //style | //head"):
            bad.drop_tree()
        if strip_quotes:
            for el in doc.xpath(_CUT_XPATH)[:1]:
                _cut_from(el)
            for el in doc.xpath(_QUOTE_XPATH):
                if el.getparent() is not None:
                    el.drop_tree()
        return get_text(lxml.html.tostring(doc, encoding="unicode"))
    except Exception:
        text = re.sub(r"(?is)<(script|style|blockquote)\b.*?</\1>", " ", html)
        text = re.sub(r"(?i)<br\s*/?>|</p>|</div>", "\n", text)
        return re.sub(r"<[^>]+>", " ", text)


def _cut_from(el: Any) -> None:
    """Drop an element and everything after it in document order (text tails included)."""
    node = el
    while node is not None and node.getparent() is not None:
        for sib in list(node.itersiblings()):
            sib.tail = None
            sib.drop_tree()
        node.tail = None
        node = node.getparent()
    el.drop_tree()
