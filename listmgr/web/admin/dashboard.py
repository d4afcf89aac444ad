"""The dashboard: headline numbers, audience growth and recent campaigns as charts."""

from __future__ import annotations

from flask import render_template
from flask.typing import ResponseReturnValue

from listmgr.services import dashboard as stats
from listmgr.web.admin import bp, charts  # noqa: F401  (chart routes)
from listmgr.web.auth import require, withholds
from listmgr.web.extensions import current_runtime


@bp.get("/")
@require("stats")
def dashboard() -> ResponseReturnValue:
    """Numbers and charts every role may see (aggregates only)."""
    rt = current_runtime()
    rates = stats.campaign_rates(rt)
    return render_template(
        "pages/admin/dashboard.html",
        totals=stats.totals(rt),
        campaigns=rates,
        withheld={c.id for c in rates if withholds(c.audience)},
        fewer_than=rt.settings.aggregate_min_count,
        title="Dashboard",
    )
