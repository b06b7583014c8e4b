"""Plotly figures of the patient page: one trace per source, so every point shows where it came from."""

from collections import defaultdict
from datetime import timedelta

from plotly import graph_objects as go

from patients.chart import BMI, DIASTOLIC, SYSTOLIC, WEIGHT, Point

# The time axis around a chart's only moment: a month either side.
_ONE_MOMENT_SPAN = timedelta(days=30)
# Colour-blind-safe (Okabe-Ito), assigned to sources in a stable order.
SOURCE_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")


def _layout(figure: go.Figure, *, unit: str) -> go.Figure:
    figure.update_layout(
        height=300,
        margin={"l": 50, "r": 10, "t": 10, "b": 40},
        legend={"orientation": "h", "y": -0.2},
        showlegend=True,  # also for one trace: the legend says which source a colour is
        yaxis_title=unit,
        hovermode="closest",
    )
    return figure


def _by_source(points: list[Point]) -> dict[str, list[Point]]:
    grouped: dict[str, list[Point]] = defaultdict(list)
    for point in points:
        grouped[point.source].append(point)
    return dict(sorted(grouped.items()))


def source_colours(sources: list[str]) -> dict[str, str]:
    return {
        source: SOURCE_COLOURS[index % len(SOURCE_COLOURS)] for index, source in enumerate(sorted(sources))
    }


def series_figure(
    series: dict[str, list[Point]],
    *,
    codes: dict[str, str],
    unit: str,
    right: tuple[str, str] | None = None,
) -> go.Figure | None:
    """Lines per measurement (``codes``: LOINC code -> label), markers coloured by source; None when empty.

    A source has the same colour in every chart of the patient (the colours go to all the sources of
    ``series``, not to those of this chart). ``right``: (code, unit) of a measurement drawn on an axis of its
    own, on the right (BMI beside weight)."""
    if not any(series.get(code) for code in codes):
        return None
    colours = source_colours(sorted({point.source for points in series.values() for point in points}))
    figure = go.Figure()
    for dash, (code, label) in zip(("solid", "dot", "dash"), codes.items(), strict=False):
        for source, points in _by_source(series.get(code, [])).items():
            figure.add_trace(
                go.Scatter(
                    x=[point.when.isoformat() for point in points],
                    y=[point.value for point in points],
                    mode="lines+markers",
                    name=f"{label} ({source})",
                    line={"dash": dash, "color": colours[source]},
                    marker={"color": colours[source], "size": 7},
                    yaxis="y2" if right is not None and code == right[0] else "y",
                )
            )
    figure = _layout(figure, unit=unit)
    moments = {point.when for code in codes for point in series.get(code, [])}
    if len(moments) == 1:
        # One moment alone: plotly would zoom its time axis to fractions of a second around it.
        (moment,) = moments
        figure.update_xaxes(
            type="date",
            range=[(moment - _ONE_MOMENT_SPAN).isoformat(), (moment + _ONE_MOMENT_SPAN).isoformat()],
        )
    if right is not None and series.get(right[0]):
        figure.update_layout(yaxis2={"title": right[1], "overlaying": "y", "side": "right"})
        figure.update_layout(margin={"r": 50})
    return figure


def blood_pressure_figure(series: dict[str, list[Point]]) -> go.Figure | None:
    return series_figure(series, codes={SYSTOLIC: "Systolic", DIASTOLIC: "Diastolic"}, unit="mmHg")


def weight_figure(series: dict[str, list[Point]]) -> go.Figure | None:
    return series_figure(
        series, codes={WEIGHT: "Weight (kg)", BMI: "BMI (kg/m2)"}, unit="kg", right=(BMI, "kg/m2")
    )
