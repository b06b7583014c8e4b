"""The patient page's charts (``patients.figures``), built from chart points without a database."""

from collections import defaultdict
from datetime import UTC, datetime

from patients.chart import BMI, DIASTOLIC, SYSTOLIC, WEIGHT, Point
from patients.figures import blood_pressure_figure, series_figure, weight_figure


def _series(*points: tuple[str, str, float]) -> dict[str, list[Point]]:
    series: dict[str, list[Point]] = defaultdict(list)
    for day, (code, source, value) in enumerate(points, start=1):
        series[code].append(Point(datetime(2024, 1, day, tzinfo=UTC), value, source))
    return series


def _colours(figure: object) -> dict[str, str]:
    return {trace.name.rsplit("(", 1)[1].rstrip(")"): trace.marker.color for trace in figure.data}  # type: ignore[attr-defined]


def test_a_source_has_one_colour_in_every_chart_of_the_patient() -> None:
    # The clinic measured weight only: alone in a chart it would take the first colour, the CRM's in the other.
    series = _series(
        (SYSTOLIC, "crm", 120), (DIASTOLIC, "crm", 80), (SYSTOLIC, "hospital", 130), (DIASTOLIC, "hospital", 85),
        (WEIGHT, "clinic", 70), (WEIGHT, "hospital", 71),
    )  # fmt: skip

    pressure, weight = blood_pressure_figure(series), weight_figure(series)

    assert pressure is not None
    assert weight is not None
    pressure_colours, weight_colours = _colours(pressure), _colours(weight)
    assert pressure_colours["hospital"] == weight_colours["hospital"]
    assert weight_colours["clinic"] not in (pressure_colours["crm"], pressure_colours["hospital"])
    assert series_figure(series, codes={"2345-7": "Glucose"}, unit="mmol/L") is None


def test_bmi_is_drawn_on_an_axis_of_its_own() -> None:
    series = _series((WEIGHT, "clinic", 70), (BMI, "clinic", 24.2))

    figure = weight_figure(series)

    assert figure is not None
    axes = {trace.name: trace.yaxis for trace in figure.data}
    assert axes == {"Weight (kg) (clinic)": "y", "BMI (kg/m2) (clinic)": "y2"}
    assert figure.layout.yaxis2.side == "right"
    assert figure.layout.yaxis2.title.text == "kg/m2"


def test_a_chart_of_one_moment_shows_the_month_around_it() -> None:
    series = _series((WEIGHT, "clinic", 70), (BMI, "clinic", 24.2))  # two days: one moment each code
    one_moment = _series((WEIGHT, "clinic", 70))

    figure, spread = weight_figure(one_moment), weight_figure(series)

    assert figure is not None
    assert spread is not None
    assert tuple(figure.layout.xaxis.range) == ("2023-12-02T00:00:00+00:00", "2024-01-31T00:00:00+00:00")
    assert spread.layout.xaxis.range is None  # plotly's own range for points at several moments
    # A chart of one trace still says which source its colour is.
    assert figure.layout.showlegend is True
