"""The built-in campaign layout and the compliance footer (Jinja sources; CSS is inlined at
build time). A campaign may bring its own layout: any HTML with {{ content }} in it."""

from __future__ import annotations

DEFAULT_LAYOUT = """<!DOCTYPE html>
<html><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { margin: 0; padding: 0; background-color: #f4f4f5; }
.lm-outer { width: 100%; background-color: #f4f4f5; }
.lm-main { width: 100%; max-width: 600px; background-color: #ffffff; }
.lm-content { padding: 24px; font-family: Arial, Helvetica, sans-serif; font-size: 16px;
  line-height: 1.5; color: #1f2933; }
.lm-content h1, .lm-content h2, .lm-content h3 { color: #111827; line-height: 1.25; }
.lm-content a { color: #1d4ed8; }
.lm-footer { margin-top: 32px; padding-top: 16px; border-top: 1px solid #e5e7eb;
  font-size: 12px; color: #6b7280; }
.lm-footer a { color: #6b7280; }
.lm-preheader { display: none; max-height: 0; overflow: hidden; opacity: 0; }
.lm-webversion { padding: 8px 24px; font-family: Arial, Helvetica, sans-serif; font-size: 12px;
  color: #6b7280; text-align: center; }
.lm-webversion a { color: #4b5563; }
</style></head>
<body>
<div class="lm-preheader">{{ preheader }}</div>
<table role="presentation" class="lm-outer" cellpadding="0" cellspacing="0"><tr><td align="center">
<table role="presentation" class="lm-main" cellpadding="0" cellspacing="0"><tr>
<td class="lm-webversion"><a href="{{ web_url }}">View this email in your browser</a></td></tr><tr>
<td class="lm-content">
{{ content }}
</td></tr></table>
</td></tr></table>
</body></html>
"""

FOOTER_HTML = """
<div class="lm-footer">
<p>{{ list.postal_address }}</p>
<p>You receive this because you subscribed to {{ list.name }}.
<a href="{{ unsubscribe_url }}">Unsubscribe</a> |
<a href="{{ privacy_url }}">Privacy</a> |
<a href="{{ manage_url }}">Manage your preferences</a></p>
</div>
"""

FOOTER_TEXT = """

--
{{ list.postal_address }}
You receive this because you subscribed to {{ list.name }}.
Unsubscribe: {{ unsubscribe_url }}
Privacy: {{ privacy_url }}
Manage your preferences: {{ manage_url }}
"""
