"""Machine endpoints: inbound mail from an MTA or a provider webhook."""

from __future__ import annotations

import hashlib
import hmac

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from listmgr.errors import TooLarge, Unauthorized
from listmgr.services import inbound
from listmgr.web import limits
from listmgr.web.extensions import csrf, current_runtime

bp = Blueprint("hooks", __name__, url_prefix="/hooks")
csrf.exempt(bp)


def _authenticate(secret: str, body: bytes) -> None:
    """Bearer secret, or an HMAC-SHA256 of the body in X-Listmgr-Signature: sha256=<hex>."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer ") and hmac.compare_digest(
        header[7:].strip().encode(), secret.encode()
    ):
        return
    signature = request.headers.get("X-Listmgr-Signature", "")
    if signature.startswith("sha256="):
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        if hmac.compare_digest(signature[7:].strip().lower().encode(), expected.encode()):
            return
    raise Unauthorized(
        "send the inbound secret as a Bearer token or sign the body "
        "(X-Listmgr-Signature: sha256=HMAC)"
    )


@bp.post("/inbound")
@limits.inbound_hook()
def receive() -> ResponseReturnValue:
    """Take one raw RFC 5322 message as the body; 202 with the stored id."""
    rt = current_runtime()
    limit = rt.settings.max_inbound_bytes
    length = request.content_length
    if length is not None and length > limit:
        raise TooLarge(f"the message is larger than {limit} bytes")
    # A chunked body has no length to check first, and a stream cut at the limit reads as a
    # whole message: read one byte past it, so "longer than allowed" can be told apart.
    request.max_content_length = limit + 1
    body = request.get_data(cache=False)
    if len(body) > limit:
        raise TooLarge(f"the message is larger than {limit} bytes")
    _authenticate(rt.settings.inbound_secret, body)
    stored = inbound.store(
        rt,
        body,
        envelope_from=request.headers.get("X-Envelope-From") or request.args.get("sender", ""),
        envelope_to=request.headers.get("X-Envelope-To") or request.args.get("recipient", ""),
    )
    return jsonify(id=stored.id, duplicate=stored.duplicate), 202
