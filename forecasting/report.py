"""What a person sees of a run in the UI: leaderboard table rows, a self-contained SVG forecast
chart and the run's Markdown report. Pure functions; the flow publishes them as artifacts."""

from __future__ import annotations

import base64
import math
import reprlib
from collections.abc import Callable
from html import escape

import numpy as np
import pandas as pd

from forecasting.selection import REFERENCES

LEADERBOARD_COLUMNS = [
    "model", "status", "mase", "mae", "rmse", "smape", "coverage_80", "width_80", "coverage_95",
    "width_95", "p_vs_simple_rnn", "p_vs_seasonal_naive", "seconds", "epochs", "reason",
]  # fmt: skip
_COUNT_COLUMNS = {"epochs"}  # a float column only because naive rows hold NaN
_PLOT_LEFT, _PLOT_RIGHT, _PLOT_TOP, _PLOT_BOTTOM = 64, 16, 30, 26  # margins in pixels
_ACTUALS, _FORECAST = "#555555", "#1f6fb4"
_SHOWN_SERIES = 10  # series named in the filled-gaps line before "and N more"
_BACKTEST_SCORES = [  # column, label, unit of the champion's backtest line
    ("mase", "MASE", ""),
    ("mae", "MAE", ""),
    ("coverage_80", "80% coverage", "%"),
    ("coverage_95", "95% coverage", "%"),
]


def leaderboard_rows(leaderboard: pd.DataFrame) -> list[dict]:
    """Rows for a table artifact: `LEADERBOARD_COLUMNS` that are present, floats rounded to 4
    significant digits, NaN as None and an infinite interval width as the string "inf", so the
    rows are plain JSON."""
    columns = [column for column in LEADERBOARD_COLUMNS if column in leaderboard.columns]
    records = leaderboard[columns].to_dict(orient="records")
    return [{key: _cell(value, key in _COUNT_COLUMNS) for key, value in r.items()} for r in records]


def _cell(value: object, count: bool) -> object:
    """One JSON-safe value; `to_dict` has already made numpy scalars Python ones."""
    if pd.api.types.is_scalar(value) and pd.isna(value):
        return None
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return int(value) if count and float(value).is_integer() else float(f"{value:.4g}")
    return value


def forecast_chart_svg(
    history: pd.DataFrame,
    forecast: pd.DataFrame,
    series_id: str | None = None,
    history_steps: int = 168,
    width: int = 720,
    height: int = 280,
) -> str:
    """A self-contained SVG of one series: its last `history_steps` actuals and the forecast as
    lines (classes "actuals", "forecast"), the 95% and 80% intervals as bands ("band-95",
    "band-80"; an unbounded interval reaches the plot's edge), a dashed line at the forecast
    start, min/max and start/end labels, a legend and a <title>. Same input, same bytes.

    Args:
        history: Long `unique_id`, `ds`, `y`; other columns are ignored.
        forecast: The published forecast, with `y_hat` and `y_hat_{lo,hi}_{80,95}`.
        series_id: The series to draw; the first in `forecast` when None.

    Raises:
        ValueError: `forecast` has no rows for the series.
    """
    if series_id is None and len(forecast):
        series_id = forecast["unique_id"].iloc[0]
    ahead = forecast[forecast["unique_id"] == series_id].sort_values("ds", kind="stable")
    if ahead.empty:
        raise ValueError(
            f"The forecast has no rows for series {series_id!r}, so there is nothing to draw. "
            f"Pick one of {reprlib.repr(sorted(map(str, forecast['unique_id'].unique())))}. "
            f"Received: series_id={series_id!r}"
        )
    past = history[history["unique_id"] == series_id].sort_values("ds", kind="stable")
    return _draw(past.tail(history_steps), ahead, _chart_title(ahead, series_id), width, height)


def _draw(past: pd.DataFrame, ahead: pd.DataFrame, title: str, width: int, height: int) -> str:
    """The chart's SVG; `past` may be empty, `ahead` may not."""
    past_x, ahead_x = _seconds(past["ds"]), _seconds(ahead["ds"])
    bands = {level: _bounds(ahead, level) for level in (95, 80)}
    values = np.concatenate([past["y"], ahead["y_hat"], *(b.ravel() for b in bands.values())])
    values = values[np.isfinite(values)] if np.isfinite(values).any() else np.zeros(1)
    times = np.concatenate([past_x, ahead_x])
    top, bottom, left, right = _PLOT_TOP, height - _PLOT_BOTTOM, _PLOT_LEFT, width - _PLOT_RIGHT
    x = _scale(times.min(), times.max(), left, right)
    y = _scale(values.min(), values.max(), bottom, top)
    start = x(ahead_x[:1])[0]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" '
        'fill="none" stroke="#dddddd"/>',
        _band(ahead_x, bands[95], x, y, 95, 0.15),
        _band(ahead_x, bands[80], x, y, 80, 0.3),
    ]
    if len(past):
        parts.append(_line(x(past_x), y(past["y"].to_numpy(float)), "actuals", _ACTUALS))
    parts += [
        _line(x(ahead_x), y(ahead["y_hat"].to_numpy(float)), "forecast", _FORECAST),
        f'<line class="forecast-start" x1="{start:.1f}" y1="{top}" x2="{start:.1f}" '
        f'y2="{bottom}" stroke="#999999" stroke-dasharray="4 3"/>',
        _text(left - 6, top + 4, f"{values.max():.4g}", "end"),
        _text(left - 6, bottom, f"{values.min():.4g}", "end"),
        _text(left, height - 8, _date(pd.concat([past["ds"], ahead["ds"]]).iloc[0]), "start"),
        _text(right, height - 8, _date(ahead["ds"].iloc[-1]), "end"),
        _legend(left),
        "</svg>",
    ]
    return "\n".join(parts) + "\n"


def _seconds(ds: pd.Series) -> np.ndarray:
    """Seconds since the epoch; tz-aware times count in UTC, so zones can be mixed."""
    times = pd.to_datetime(ds)
    if times.dt.tz is not None:
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    return (times - pd.Timestamp(0)).dt.total_seconds().to_numpy(float)


def _scale(low: float, high: float, start: float, end: float) -> Callable[[np.ndarray], np.ndarray]:
    """Linear map of [low, high] onto [start, end]; a flat range is centred."""
    span = float(high - low)
    if span <= 0:
        return lambda values: np.full(len(values), (start + end) / 2.0)
    return lambda values: start + (np.clip(values, low, high) - low) * (end - start) / span


def _bounds(ahead: pd.DataFrame, level: int) -> np.ndarray:
    """(2, horizon): lower and upper bounds of one interval level."""
    return ahead[[f"y_hat_lo_{level}", f"y_hat_hi_{level}"]].to_numpy(float).T


def _band(
    times: np.ndarray, bounds: np.ndarray, x: Callable, y: Callable, level: int, opacity: float
) -> str:
    keep = ~np.isnan(bounds).any(axis=0)  # an infinite bound is clipped to the edge, not dropped
    xs, lows, highs = x(times[keep]), y(bounds[0, keep]), y(bounds[1, keep])
    points = _points(np.concatenate([xs, xs[::-1]]), np.concatenate([highs, lows[::-1]]))
    return (
        f'<polygon class="band-{level}" points="{points}" fill="{_FORECAST}" '
        f'fill-opacity="{opacity}" stroke="none"/>'
    )


def _line(xs: np.ndarray, ys: np.ndarray, name: str, color: str) -> str:
    return (
        f'<polyline class="{name}" points="{_points(xs, ys)}" fill="none" '
        f'stroke="{color}" stroke-width="1.5"/>'
    )


def _points(xs: np.ndarray, ys: np.ndarray) -> str:
    return " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(xs, ys, strict=True))


def _text(x: float, y: float, text: str, anchor: str) -> str:
    return f'<text x="{x}" y="{y}" text-anchor="{anchor}" fill="#333333">{escape(text)}</text>'


def _legend(left: int) -> str:
    swatches = [  # label, colour, opacity, height: lines are thin swatches; 80 sits on 95
        ("actuals", _ACTUALS, 1, 2),
        ("forecast", _FORECAST, 1, 2),
        ("80% interval", _FORECAST, 0.4, 12),
        ("95% interval", _FORECAST, 0.15, 12),
    ]
    items = []
    for index, (label, color, opacity, size) in enumerate(swatches):
        at = left + 100 * index
        items.append(
            f'<rect x="{at}" y="{12 - size / 2:g}" width="18" height="{size}" fill="{color}" '
            f'fill-opacity="{opacity}"/>' + _text(at + 22, 16, label, "start")
        )
    return '<g class="legend">' + "".join(items) + "</g>"


def _chart_title(ahead: pd.DataFrame, series_id: object) -> str:
    title = f"Forecast for {series_id}"
    if "model" in ahead.columns:
        title += f" by {ahead['model'].iloc[0]}"
    if "run_id" in ahead.columns:
        title += f", run {ahead['run_id'].iloc[0]}"
    return title


def _date(moment: pd.Timestamp) -> str:
    zone = f" {moment.tzname()}" if moment.tzinfo is not None else ""
    return moment.strftime("%Y-%m-%d %H:%M") + zone


def chart_markdown(svg: str, alt: str) -> str:
    """Markdown showing `svg` as an image through a base64 data URI."""
    encoded = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    text = " ".join(alt.split())
    for character in "\\[]":
        text = text.replace(character, "\\" + character)
    return f"![{text}](data:image/svg+xml;base64,{encoded})"


def run_report(
    manifest: dict,
    leaderboard: pd.DataFrame,
    forecast: pd.DataFrame,
    history: pd.DataFrame,
    paths: dict[str, str],
) -> str:
    """The run's Markdown report: champion and why, its margins and the champion-challenger
    decision, the data, how the backtest was fitted to short data and which series a baseline
    forecast (when that happened), how earlier published forecasts scored, a chart of the
    first series and the published files."""
    sections = [
        f"# Forecast run {manifest['run_id']}\n\nAs of {manifest['as_of']}.",
        _champion_section(manifest.get("champion") or {}, leaderboard),
        _data_section(manifest.get("data") or {}),
        *filter(None, [_backtest_section(manifest)]),
        _accuracy_section(manifest.get("published_accuracy") or {}),
        _chart_section(history, forecast),
        "## Published files\n\n" + "\n".join(f"- {k}: {_code(v)}" for k, v in paths.items()),
    ]
    return "\n\n".join(sections) + "\n"


def _champion_section(champion: dict, leaderboard: pd.DataFrame) -> str:
    model = champion.get("model", "unknown")
    margins = champion.get("margins_percent") or {}
    lines = [f"## Champion: {model}", "", champion.get("reason", ""), ""]
    for kind in REFERENCES:
        value = margins.get(kind)
        if kind == model:
            margin = f"n/a ({kind} is the champion)"
        elif value is None or math.isnan(value):
            margin = "n/a"
        else:
            margin = f"{abs(value):.1f}% {'better' if value >= 0 else 'worse'}"
        lines.append(f"- Margin over {kind}: {margin}")
    lines.append(f"- Decision: {_decision_line(champion)}")
    row = leaderboard[leaderboard["model"] == model]
    scores = [
        f"{label} {_number(row[column].iloc[0], unit)}"
        for column, label, unit in _BACKTEST_SCORES
        if column in row and len(row)
    ]
    if scores:
        lines.append("- Backtest: " + ", ".join(scores))
    return "\n".join(lines)


def _decision_line(champion: dict) -> str:
    decision = champion.get("decision") or {}
    incumbent = decision.get("incumbent") or {}
    held = f"{incumbent.get('model')} (run {incumbent.get('run_id')})"
    problem = str(incumbent.get("problem") or "no reason recorded").rstrip(".")
    lines = {
        "first_run": "First run: no incumbent, so the best candidate is champion.",
        "kept": f"Kept the published champion {held}.",
        "promoted": f"Promoted {champion.get('model')} over {held}.",
        "incumbent_unavailable": f"Incumbent {held} could not defend: {problem}.",
        "incumbent_not_trained": f"Incumbent {held} could not defend: it did not finish training.",
    }
    action = decision.get("action")
    return lines.get(str(action), f"not recorded (action {action!r}).")


def _data_section(data: dict) -> str:
    filled = {k: v for k, v in (data.get("filled_by_series") or {}).items() if v}
    gaps = "none"
    if data.get("filled_values"):
        named = sorted(filled.items(), key=lambda item: (-item[1], str(item[0])))
        shown = ", ".join(f"{_code(str(k))}: {v}" for k, v in named[:_SHOWN_SERIES])
        more = (
            f", and {len(named) - _SHOWN_SERIES} more series" if len(named) > _SHOWN_SERIES else ""
        )
        gaps = f"{data['filled_values']} values ({shown}{more})" if named else "some values"
    lines = [
        "## Data",
        "",
        f"- Source: {_code(str(data.get('source', 'unknown')))}",
        f"- Range: {data.get('first_ds')} to {data.get('last_ds')} ({data.get('rows')} rows, "
        f"{data.get('series')} series, frequency {data.get('freq')})",
        f"- Filled gaps: {gaps}",
        f"- Duplicates dropped: {data.get('duplicates_dropped', 0)}",
        f"- Rows after as-of, left out: {data.get('rows_after_as_of', 0)}",
    ]
    return "\n".join(lines)


def _backtest_section(manifest: dict) -> str:
    """How the backtest was fitted to short data and which series it left to a baseline;
    empty when neither happened (or the run predates these keys)."""
    adapted = (manifest.get("backtest") or {}).get("adapted")
    short = manifest.get("short_series") or []
    if not adapted and not short:
        return ""
    lines = ["## Backtest fitted to the data", ""]
    if adapted:
        lines.append(f"- {adapted}")
    if short:
        named = ", ".join(
            f"{_code(str(entry.get('unique_id')))} ({entry.get('model')}, "
            f"{entry.get('length')} of {entry.get('needed')} steps)"
            for entry in short[:_SHOWN_SERIES]
        )
        more = f", and {len(short) - _SHOWN_SERIES} more" if len(short) > _SHOWN_SERIES else ""
        lines.append(
            f"- {len(short)} series too short for the backtest, forecast by a baseline and "
            f"left out of the tournament: {named}{more}."
        )
    return "\n".join(lines)


def _accuracy_section(accuracy: dict) -> str:
    lines = ["## Published forecasts scored against actuals", ""]
    if accuracy.get("warning"):
        lines += [f"> **Warning:** {accuracy['warning']}", ""]
    recent = accuracy.get("recent") or []
    if not recent:
        return "\n".join([*lines, "None scored yet: no published forecast's actuals are all in."])
    lines += [
        "| Run | Model | As of | MAE | MASE | 80% coverage | 95% coverage |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in recent:
        cells = [str(row.get(key, "")) for key in ("run_id", "model", "as_of")]
        cells += [_number(row.get(key)) for key in ("mae", "mase")]
        cells += [_number(row.get(key), "%") for key in ("coverage_80", "coverage_95")]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


def _chart_section(history: pd.DataFrame, forecast: pd.DataFrame) -> str:
    if forecast.empty:
        return "## Forecast\n\nThe forecast has no rows to draw."
    series = forecast["unique_id"].unique()
    first = series[0]
    note = f"Series {_code(str(first))}" + (
        f", the first of {len(series)}." if len(series) > 1 else "."
    )
    svg = forecast_chart_svg(history, forecast, first)
    return f"## Forecast\n\n{note}\n\n{chart_markdown(svg, f'Forecast for {first}')}"


def _number(value: object, unit: str = "") -> str:
    """4 significant digits and `unit`, or "n/a" for a missing value."""
    if value is None or (isinstance(value, float | np.floating) and math.isnan(value)):
        return "n/a"
    return (f"{value:.4g}" if isinstance(value, float | int | np.number) else str(value)) + unit


def _code(text: str) -> str:
    """`text` as a Markdown code span, whatever backticks it holds."""
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def superseded_report(run_name: str, as_of: str, reason: str) -> str:
    """A short Markdown report for a scheduled run that stood down for a newer one."""
    return (
        f"# Forecast run {run_name}: superseded\n\nAs of {as_of}.\n\n{reason}\n\n"
        "Nothing was published: the published forecast and champion are unchanged by this run.\n"
    )
