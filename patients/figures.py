"""Plotly figures of the patient page: one trace per source, so every point shows where it came from."""

from collections import defaultdict

from plotly import graph_objects as go

from patients.chart import BMI, DIASTOLIC, SYSTOLIC, WEIGHT, Point

# Colour-blind-safe (Okabe-Ito), assigned to sources in a stable order.
SOURCE_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")


def _layout(figure: go.Figure, *, unit: str) -> go.Figure:
    figure.update_layout(
        height=300,
        margin={"l": 50, "r": 10, "t": 10, "b": 40},
        legend={"orientation": "h", "y": -0.2},
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


def series_figure(series: dict[str, list[Point]], *, codes: dict[str, str], unit: str) -> go.Figure | None:
    """Lines per measurement (``codes``: LOINC code -> label), markers coloured by source; None when empty."""
    sources = sorted({point.source for code in codes for point in series.get(code, [])})
    if not sources:
        return None
    colours = source_colours(sources)
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
                )
            )
    return _layout(figure, unit=unit)


def blood_pressure_figure(series: dict[str, list[Point]]) -> go.Figure | None:
    return series_figure(series, codes={SYSTOLIC: "Systolic", DIASTOLIC: "Diastolic"}, unit="mmHg")


def weight_figure(series: dict[str, list[Point]]) -> go.Figure | None:
    return series_figure(series, codes={WEIGHT: "Weight (kg)", BMI: "BMI (kg/m2)"}, unit="kg · kg/m2")
