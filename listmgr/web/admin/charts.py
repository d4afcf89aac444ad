"""Charts as SVG images rendered on the server (pygal), served from routes for <img> tags."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import pygal
from flask import Response, request
from pygal.style import Style

from listmgr.errors import ValidationError
from listmgr.services import dashboard
from listmgr.web.admin import bp
from listmgr.web.auth import require, withholds
from listmgr.web.extensions import current_runtime

STYLE = Style(
    background="#ffffff",
    plot_background="#ffffff",
    foreground="#1f2933",
    foreground_strong="#1f2933",
    foreground_subtle="#9aa5b1",
    colors=("#2563eb", "#047857", "#b45309", "#7c3aed", "#be123c", "#0e7490", "#4d7c0f", "#a21caf"),
    font_family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif",
)
# The image runs nothing and loads nothing: pygal's optional scripts are left out (js=[]).
SVG_CSP = "default-src 'none'; style-src 'unsafe-inline'"
SCRIPT = re.compile(rb"<script\b.*?</script>", re.S | re.I)


def _config(**kw: object) -> dict[str, object]:
    return {
        "style": STYLE,
        "js": [],
        "width": 900,
        "height": 320,
        "legend_at_bottom": True,
        "legend_box_size": 10,
        "margin": 12,
        "x_label_rotation": 0,
        "show_minor_x_labels": False,
        "truncate_legend": 30,
        "truncate_label": -1,
        "print_values": False,
        **kw,
    }


def svg(data: bytes) -> Response:
    # pygal embeds its config as a script even with js=[]: drop it, the image needs none.
    data = SCRIPT.sub(b"", data)
    resp = Response(data, mimetype="image/svg+xml")
    resp.headers["Content-Security-Policy"] = SVG_CSP
    # Never shown from the browser's cache: beside the cards it must tell the same numbers.
    resp.headers["Cache-Control"] = "private, no-cache"
    return resp


def line(
    title: str,
    labels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    secondary: Mapping[str, Sequence[float | None]] | None = None,
    unit: str = "",
) -> bytes:
    """A line per series; `secondary` series are drawn against a scale of their own (right)."""
    options: dict[str, object] = {}
    if unit:  # rates: three significant digits and the unit
        options["value_formatter"] = lambda v: f"{v:.3g}{unit}"
    if secondary is not None:  # rates read against threshold lines: from zero, few steps
        options.update(include_x_axis=True, max_scale=6)
    chart = pygal.Line(**_config(title=title, show_dots=len(labels) <= 31, fill=False, **options))
    chart.x_labels = list(labels)
    chart.x_labels_major = list(labels)[:: max(1, len(labels) // 8)]
    if not series:
        chart.no_data_text = "No data yet"
    for name, values in series.items():
        chart.add(name, list(values))
    for name, values in (secondary or {}).items():
        chart.add(name, list(values), secondary=True)
    return chart.render()


def bars(
    title: str, labels: Sequence[str], series: Mapping[str, Sequence[float]], unit: str = ""
) -> bytes:
    chart = pygal.Bar(
        **_config(
            title=title, value_formatter=lambda v: f"{v:g}{unit}", show_legend=len(series) > 1
        )
    )
    chart.x_labels = list(labels)
    chart.x_labels_major = list(labels)
    chart.no_data_text = "No data yet"
    for name, values in series.items():
        chart.add(name, list(values))
    return chart.render()


def _days() -> int:
    try:
        return int(request.args.get("days", "30"))
    except ValueError:
        raise ValidationError("days must be a number", field="days") from None


@bp.get("/charts/growth.svg")
@require("stats")
def chart_growth() -> Response:
    """Confirmed members per list over time."""
    g = dashboard.growth(current_runtime(), days=_days())
    # a list that never held as many people as the threshold is left out for roles without
    # personal data (who joins or leaves a small list is about persons)
    series = {
        name: points for name, points in g.series.items() if not withholds(max(points, default=0))
    }
    return svg(line("Confirmed subscribers per list", [d[5:] for d in g.days], series))


@bp.get("/charts/campaigns.svg")
@require("stats")
def chart_campaigns() -> Response:
    """Key rates of the recent campaigns."""
    # a campaign to fewer people than the threshold is left out for roles without personal data
    rates = [
        r
        for r in reversed(dashboard.campaign_rates(current_runtime()))
        if not withholds(r.audience)
    ]
    labels = [r.name[:24] for r in rates]
    return svg(
        bars(
            "Recent campaigns (%; opened and clicked: of those tracked)",
            labels,
            {
                "opened": [r.share("opened") for r in rates],
                "clicked": [r.share("clicked") for r in rates],
                "unsubscribed": [r.share("unsubscribed") for r in rates],
                "bounced": [r.share("bounced") for r in rates],
            }
            if rates
            else {},
            unit="%",
        )
    )
