"""Classify one inbound message: bounce, complaint, auto-reply, unsubscribe request, or other.

Pure: no database, no web, no network. `classify()` never raises; whatever it is given, it
answers with a `Classification` (kind "other" when nothing fits, or when the input is garbage).

The rules and their order are in `rules.py`; each family of rules has a module of its own
(`reports`, `bounces`, `autoreply`, `unsubscribe`), on top of the shared views of the message
(`message`, `context`, `htmltext`), our tokens (`tokens`), reply text (`replies`) and the
per-language wording (`phrases`).

Subscriber/list/campaign ids come from our signed tokens only (VERP bounces+TOKEN@, the
List-Unsubscribe of an embedded original, unsubscribe+TOKEN@), never from a guessed address.
Without a `Tokens` instance tokens are not verified and ids stay None.

What ties a message to us (`Classification.proof`, module `proof`) is collected beside the
kind: nothing acts on a person without it.
"""

from __future__ import annotations

from listmgr.mail.inbound.classification import KINDS, Classification, Envelope, Proof
from listmgr.mail.inbound.rules import classify

__all__ = ["KINDS", "Classification", "Envelope", "Proof", "classify"]
