"""Charts render as data plus a same-origin script: no inline executable script, CSP header present."""

import json
import re

import plotly.graph_objects as go
from django.contrib.auth.models import User
from django.test import Client

from core.charts import chart_html
from core.roles import EXECUTIVE


def test_chart_html_embeds_the_figure_as_json_data() -> None:
    figure = go.Figure(go.Scatter(x=[1, 2, 3], y=[120, 125, 118], name="Systolic"))

    html = str(chart_html(figure, title="Blood pressure", element_id="bp"))

    assert '<div id="bp" class="chart-canvas" data-plotly-chart="bp-data"' in html
    assert 'aria-label="Blood pressure"' in html
    payload = re.search(r'<script id="bp-data" type="application/json">(.*?)</script>', html, re.S)
    assert payload is not None
    data = json.loads(payload.group(1))
    assert data["data"][0]["y"] == [120, 125, 118]
    assert data["config"]["displaylogo"] is False


def test_chart_title_is_escaped() -> None:
    html = str(chart_html(go.Figure(), title="<b>x</b>", element_id="c"))

    assert "<b>x</b>" not in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html


def test_analytics_page_is_csp_safe(role_users: dict[str, User]) -> None:
    client = Client()
    client.force_login(role_users[EXECUTIVE])

    response = client.get("/analytics/")

    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy)
    assert nonce is not None
    assert "script-src 'self' 'nonce-" in policy
    html = response.content.decode()
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag or 'type="application/json"' in tag, f"inline executable script: {tag}"
    assert "/static/plotly/plotly.min.js" in html
    assert f'<style id="plotly.js-style-global" nonce="{nonce.group(1)}">' in html
    assert "https://" not in re.sub(
        r'<script id="[^"]+" type="application/json">.*?</script>', "", html, flags=re.S
    )
