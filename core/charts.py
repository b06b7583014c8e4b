"""Plotly figures as inline, CSP-safe charts.

The figure travels as JSON inside ``<script type="application/json">`` (data, never executed) and is
drawn by ``static/js/charts.js`` from this origin, so no inline script and no CDN is needed.
"""

import json
import uuid

from django.utils.html import format_html, json_script
from django.utils.safestring import SafeString
from plotly.graph_objects import Figure


def figure_to_json(figure: Figure) -> dict[str, object]:
    data: dict[str, object] = json.loads(figure.to_json())
    return data


def chart_html(figure: Figure, *, title: str, element_id: str | None = None) -> SafeString:
    """Markup for one chart: a labelled figure, its JSON payload, and a text fallback for non-JS readers."""
    element_id = element_id or f"chart-{uuid.uuid4().hex[:12]}"
    payload_id = f"{element_id}-data"
    payload = figure_to_json(figure)
    payload["config"] = {"displaylogo": False, "responsive": True}
    return format_html(
        '<figure class="chart"><figcaption>{}</figcaption>'
        '<div id="{}" class="chart-canvas" data-plotly-chart="{}" role="img" aria-label="{}"></div>'
        "{}</figure>",
        title,
        element_id,
        payload_id,
        title,
        json_script(payload, payload_id),
    )
