"""Domain check: SPF, DKIM, DMARC and MX findings for a From domain, with records to publish."""

from __future__ import annotations

from flask import render_template, request
from flask.typing import ResponseReturnValue

from listmgr.errors import BadDomain
from listmgr.services import domain_check
from listmgr.web.admin import bp
from listmgr.web.auth import require
from listmgr.web.extensions import current_runtime


@bp.get("/domain")
@require("settings")
def domain_check_page() -> ResponseReturnValue:
    """Check the configured From domain, or the one typed in the form."""
    typed = request.args.get("domain", "")
    try:
        report = domain_check.run(current_runtime(), typed or None)
    except BadDomain as exc:
        return render_template(
            "pages/admin/domain_check.html",
            report=None,
            typed=typed,
            error=exc.message,
            title="Domain check",
        ), exc.status
    return render_template(
        "pages/admin/domain_check.html",
        report=report,
        typed=typed or report.domain,
        error="",
        title="Domain check",
    )
