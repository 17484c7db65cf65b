"""What a person sees of a run: JSON-safe leaderboard rows, a self-contained SVG chart whose
geometry follows the numbers, and a Markdown report that says every decision and fact."""

from __future__ import annotations

import base64
import json
import math
import re
import xml.etree.ElementTree as ElementTree

import numpy as np
import pandas as pd
import pytest

from forecasting.report import (
    chart_markdown,
    forecast_chart_svg,
    leaderboard_rows,
    run_report,
    superseded_report,
)

SVG = "{http://www.w3.org/2000/svg}"
Y_HAT = np.array([3.0, 9.0, 1.0, 5.0])  # not monotone, so the mapping test can fail


def history_frame(
    tz: str | None = None, series: tuple[str, ...] = ("a", "b"), start: str = "2024-01-01"
) -> pd.DataFrame:
    ds = pd.date_range(start, periods=24, freq="h", tz=tz)
    frames = [
        pd.DataFrame({"unique_id": uid, "ds": ds, "y": np.sin(np.arange(24) / 4) + n, "x": 0.0})
        for n, uid in enumerate(series)
    ]
    return pd.concat(frames, ignore_index=True)


def forecast_frame(
    tz: str | None = None, uid: str = "a", y_hat: np.ndarray = Y_HAT, start: str = "2024-01-02"
) -> pd.DataFrame:
    ds = pd.date_range(start, periods=len(y_hat), freq="h", tz=tz)
    return pd.DataFrame(
        {
            "unique_id": uid,
            "ds": ds,
            "horizon_step": np.arange(1, len(y_hat) + 1),
            "y_hat": y_hat,
            "y_hat_lo_80": y_hat - 1,
            "y_hat_hi_80": y_hat + 1,
            "y_hat_lo_95": y_hat - 2,
            "y_hat_hi_95": y_hat + 2,
            "model": "gru",
            "run_id": "20240101T230000-abc",
            "as_of": ds[0] - pd.Timedelta("1h"),
        }
    )


def points(element: ElementTree.Element) -> np.ndarray:
    """(n, 2) x, y coordinates of a polyline or polygon."""
    pairs = [pair.split(",") for pair in element.attrib["points"].split()]
    return np.array(pairs, dtype=float)


def shapes(svg: str, tag: str) -> dict[str, ElementTree.Element]:
    return {e.attrib["class"]: e for e in ElementTree.fromstring(svg).iter(SVG + tag)}


def test_chart_is_self_contained_xml_with_a_title() -> None:
    svg = forecast_chart_svg(history_frame(), forecast_frame())
    root = ElementTree.fromstring(svg)
    assert root.tag == SVG + "svg"
    assert "a" in root.find(SVG + "title").text
    assert "<script" not in svg.lower()
    assert re.findall(r"https?://[^\s\"'<>]+", svg) == ["http://www.w3.org/2000/svg"]
    assert "href" not in svg


def test_chart_draws_one_line_per_curve_and_both_bands_95_lighter() -> None:
    svg = forecast_chart_svg(history_frame(), forecast_frame())
    root = ElementTree.fromstring(svg)
    assert sorted(shapes(svg, "polyline")) == ["actuals", "forecast"]
    assert list(root.iter(SVG + "path")) == []
    bands = shapes(svg, "polygon")
    assert sorted(bands) == ["band-80", "band-95"]
    opacity = {name: float(band.attrib["fill-opacity"]) for name, band in bands.items()}
    assert opacity["band-95"] < opacity["band-80"]
    assert len(points(bands["band-95"])) == 2 * len(Y_HAT)  # upper edge, then lower


def test_higher_forecast_is_drawn_higher_and_later_is_further_right() -> None:
    svg = forecast_chart_svg(history_frame(), forecast_frame())
    xy = points(shapes(svg, "polyline")["forecast"])
    assert np.all(np.diff(xy[:, 0]) > 0)
    for i in range(len(Y_HAT)):
        for j in range(len(Y_HAT)):
            if Y_HAT[i] > Y_HAT[j]:
                assert xy[i, 1] < xy[j, 1]
    band_95, band_80 = (points(shapes(svg, "polygon")[f"band-{n}"]) for n in (95, 80))
    assert band_95[:, 1].min() < band_80[:, 1].min()  # the wider band reaches higher


def test_chart_shows_the_last_history_steps_of_the_first_series_before_the_forecast() -> None:
    svg = forecast_chart_svg(history_frame(), forecast_frame(), history_steps=10)
    lines = shapes(svg, "polyline")
    actuals, ahead = points(lines["actuals"]), points(lines["forecast"])
    assert len(actuals) == 10
    assert actuals[:, 0].max() < ahead[:, 0].min()


def test_chart_spaces_tz_aware_times_by_instant_across_a_dst_change() -> None:
    # Berlin skips 02:00-03:00 on 2024-03-31; hourly points stay equally spaced in real time.
    history = history_frame("Europe/Berlin", start="2024-03-30 12:00")
    forecast = forecast_frame("Europe/Berlin", start="2024-03-31 13:00")
    aware = forecast_chart_svg(history, forecast)
    actuals = points(shapes(aware, "polyline")["actuals"])
    np.testing.assert_allclose(np.diff(actuals[:, 0]), np.diff(actuals[:, 0]).mean(), atol=0.11)
    for frame in (history, forecast):
        frame["ds"] = frame["ds"].dt.tz_convert("UTC").dt.tz_localize(None)
    naive = forecast_chart_svg(history, forecast)
    for name in ("actuals", "forecast"):
        np.testing.assert_array_equal(
            points(shapes(aware, "polyline")[name]), points(shapes(naive, "polyline")[name])
        )
    assert "2024-03-30 12:00 CET" in aware and "2024-03-31 16:00 CEST" in aware


def test_chart_is_deterministic() -> None:
    first = forecast_chart_svg(history_frame(), forecast_frame())
    assert forecast_chart_svg(history_frame(), forecast_frame()) == first


def test_chart_escapes_series_ids() -> None:
    uid = 'pump <3> & "west"'
    svg = forecast_chart_svg(history_frame(series=(uid,)), forecast_frame(uid=uid))
    assert uid in ElementTree.fromstring(svg).find(SVG + "title").text


def test_chart_clips_an_unbounded_interval_to_the_plot() -> None:
    forecast = forecast_frame()
    forecast["y_hat_hi_95"] = np.inf
    forecast["y_hat_lo_95"] = -np.inf
    svg = forecast_chart_svg(history_frame(), forecast)
    assert np.isfinite(points(shapes(svg, "polygon")["band-95"])).all()
    assert "inf" not in svg and "nan" not in svg


def test_chart_of_a_series_missing_from_the_forecast_raises() -> None:
    with pytest.raises(ValueError, match="no rows for series 'zz'"):
        forecast_chart_svg(history_frame(), forecast_frame(), series_id="zz")


def test_chart_markdown_round_trips_through_the_data_uri() -> None:
    svg = forecast_chart_svg(history_frame(), forecast_frame())
    markdown = chart_markdown(svg, "Forecast for a")
    match = re.fullmatch(
        r"!\[Forecast for a\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", markdown
    )
    assert match is not None
    assert base64.b64decode(match.group(1)).decode("utf-8") == svg


def test_leaderboard_rows_are_json_safe_and_rounded() -> None:
    board = pd.DataFrame(
        {
            "model": ["gru", "seasonal_naive"],
            "status": ["ok", "ok"],
            "mase": [0.812345, 1.0],
            "rmse": [12345.678, np.nan],
            "width_95": [np.inf, 2.5],
            "dm_vs_simple_rnn": [1.5, np.nan],  # not a table column
            "epochs": [12.0, np.nan],
            "reason": [np.nan, "no training"],
        }
    )
    rows = leaderboard_rows(board)
    assert list(rows[0]) == ["model", "status", "mase", "rmse", "width_95", "epochs", "reason"]
    assert rows[0]["mase"] == 0.8123 and rows[0]["rmse"] == 12350.0
    assert rows[0]["width_95"] == "inf" and rows[0]["epochs"] == 12
    assert rows[1]["rmse"] is None and rows[1]["epochs"] is None and rows[0]["reason"] is None
    json.dumps(rows, allow_nan=False)


def manifest(action: str = "kept", **champion: object) -> dict:
    incumbent = None if action == "first_run" else {"model": "gru", "run_id": "r0"}
    if incumbent and action == "incumbent_unavailable":
        incumbent["problem"] = "its model file does not load."
    return {
        "run_id": "20240101T230000-abc",
        "as_of": "2024-01-01T23:00:00",
        "data": {
            "source": "data/load.csv",
            "first_ds": "2024-01-01T00:00:00",
            "last_ds": "2024-01-01T23:00:00",
            "rows": 48,
            "series": 2,
            "freq": "h",
            "filled_values": 3,
            "filled_by_series": {"a": 2, "b": 1},
            "duplicates_dropped": 1,
            "rows_after_as_of": 5,
        },
        "champion": {
            "model": "lstm" if action == "promoted" else "gru",
            "reason": "gru has the lowest backtest MASE (0.812).",
            "margins_percent": {"simple_rnn": 4.3, "seasonal_naive": 26.0},
            "decision": {"action": action, "incumbent": incumbent},
            **champion,
        },
        "published_accuracy": {
            "warning": "Accuracy dropped: run r0 (gru) scored MASE 1.300.",
            "recent": [
                {
                    "run_id": "r0",
                    "model": "gru",
                    "as_of": "2023-12-31 23:00:00",
                    "mae": 1.23456,
                    "mase": 1.3,
                    "coverage_80": 75.0,
                    "coverage_95": math.nan,
                },
            ],  # fmt: skip
        },
    }


LEADERBOARD = pd.DataFrame({"model": ["gru"], "status": ["ok"], "mase": [0.812], "mae": [1.5]})
PATHS = {"run folder": "/out/runs/r1", "forecast.csv": "/out/runs/r1/forecast.csv"}


def report(document: dict) -> str:
    return run_report(document, LEADERBOARD, forecast_frame(), history_frame(), PATHS)


def test_report_states_the_champion_margins_data_warning_and_paths() -> None:
    text = report(manifest())
    assert text.startswith("# Forecast run 20240101T230000-abc")
    assert "2024-01-01T23:00:00" in text
    assert "Champion: gru" in text and "lowest backtest MASE (0.812)" in text
    assert "simple_rnn: 4.3% better" in text and "seasonal_naive: 26.0% better" in text
    assert "2024-01-01T00:00:00 to 2024-01-01T23:00:00 (48 rows, 2 series, frequency h)" in text
    assert "3 values (`a`: 2, `b`: 1)" in text
    assert "Duplicates dropped: 1" in text and "Rows after as-of, left out: 5" in text
    assert "Accuracy dropped: run r0" in text
    assert "| r0 | gru | 2023-12-31 23:00:00 | 1.235 | 1.3 | 75% | n/a |" in text
    for path in PATHS.values():
        assert f"`{path}`" in text


def test_report_says_worse_and_na_for_margins() -> None:
    text = report(manifest(margins_percent={"simple_rnn": -2.04}))
    assert "simple_rnn: 2.0% worse" in text and "seasonal_naive: n/a" in text


@pytest.mark.parametrize(
    ("action", "line"),
    [
        ("first_run", "First run: no incumbent"),
        ("kept", "Kept the published champion gru (run r0)."),
        ("promoted", "Promoted lstm over gru (run r0)."),
        ("incumbent_unavailable", "Incumbent gru (run r0) could not defend: its model file does"),
        ("incumbent_not_trained", "Incumbent gru (run r0) could not defend: it did not finish"),
    ],
)
def test_report_states_the_champion_challenger_decision(action: str, line: str) -> None:
    assert f"- Decision: {line}" in report(manifest(action))


def test_report_leaves_out_an_absent_warning_and_embeds_a_valid_chart() -> None:
    document = manifest()
    document["published_accuracy"] = {"warning": None, "recent": []}
    text = report(document)
    assert "Warning" not in text and "None scored yet" in text
    encoded = re.search(r"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)", text).group(1)
    ElementTree.fromstring(base64.b64decode(encoded))


def test_report_names_the_fitted_folds_and_the_series_left_to_a_baseline() -> None:
    assert "Backtest fitted to the data" not in report(manifest())  # defaults fit: no section
    document = manifest()
    document["backtest"] = {"n_folds": 3, "fold_size": 42, "adapted": "The series are too short."}
    document["short_series"] = [
        {"unique_id": f"s{i}", "length": 10, "needed": 198, "model": "naive"} for i in range(12)
    ]
    text = report(document)
    assert "## Backtest fitted to the data" in text
    assert "- The series are too short." in text
    assert "12 series too short for the backtest, forecast by a baseline" in text
    assert "`s0` (naive, 10 of 198 steps)" in text and "`s9`" in text
    assert "`s10`" not in text and "and 2 more" in text


def test_superseded_report_says_nothing_was_published() -> None:
    text = superseded_report("brave-otter", "2024-01-02T00:00:00", "A newer run started.")
    assert text.startswith("# Forecast run brave-otter")
    assert "2024-01-02T00:00:00" in text and "A newer run started." in text
    assert "Nothing was published" in text
