"""Machine endpoints: inbound mail from an MTA or a provider webhook."""
from __future__ import annotations

from flask import Blueprint

from listmgr.web.extensions import csrf

bp = Blueprint("hooks", __name__, url_prefix="/hooks")
csrf.exempt(bp)
