import plotly.graph_objects as go

from analytics.selectors import staff_count_by_role


def staff_by_role_figure() -> go.Figure:
    rows = staff_count_by_role()
    figure = go.Figure(
        go.Bar(x=[name for name, _ in rows], y=[count for _, count in rows], marker_color="#1f6feb")
    )
    figure.update_layout(
        margin={"l": 40, "r": 10, "t": 10, "b": 40}, height=280, yaxis_title="Active staff accounts"
    )
    return figure
