"""Scoring published forecasts against the actuals that arrived later, and watching the trend."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from forecasting.errors import ForecastingError
from forecasting.store.history import empty, merge_accuracy, normalized
from forecasting.store.layout import Location, child, run_key
from forecasting.store.reader import read_accuracy, read_run, sealed_runs


def score_forecast(
    forecast: pd.DataFrame,
    actuals: pd.DataFrame,
    scale: dict[str, float],
    scored_at: pd.Timestamp,
) -> pd.DataFrame | None:
    """Scores one published forecast once all its actuals have arrived.

    Args:
        forecast: A published run's forecast (`FORECAST_COLUMNS`, plus `y_hat_lo_80`,
            `y_hat_hi_80`, `y_hat_lo_95`, `y_hat_hi_95` when the run published intervals).
        actuals: The current validated data, long `unique_id`, `ds`, `y`.
        scale: Per series, the MASE denominator (in-sample seasonal naive MAE); a series
            missing here gets a NaN `scaled_error`.
        scored_at: As-of time of the run doing the scoring, same time-zone kind as `ds`.

    Returns:
        One row per (series, horizon step) in `ACCURACY_COLUMNS`, or None while any forecast
        (series, ds) has no actual yet, so that each run is scored once, when complete.
        `in_80`/`in_95` say whether `y` lies in [lo, hi] (inclusive); NA without intervals.
    """
    scored = forecast.merge(actuals[["unique_id", "ds", "y"]], on=["unique_id", "ds"], how="left")
    if scored["y"].isna().any():  # validated actuals are finite, so NaN means not arrived yet
        return None
    scored["abs_error"] = (scored["y"] - scored["y_hat"]).abs()
    denominator = scored["unique_id"].map(scale).astype("float64")
    scored["scaled_error"] = scored["abs_error"] / denominator
    for level in (80, 95):
        scored[f"in_{level}"] = _inside(scored, level)
    scored["scored_at_as_of"] = pd.Timestamp(scored_at)
    return normalized(scored.sort_values(["unique_id", "horizon_step"]))


def _inside(scored: pd.DataFrame, level: int) -> pd.Series:
    lower, upper = f"y_hat_lo_{level}", f"y_hat_hi_{level}"
    if lower not in scored or upper not in scored:
        return pd.Series(pd.NA, index=scored.index, dtype="boolean")
    y = scored["y"].astype("Float64")  # nullable, so a missing bound gives NA, not False
    return (y >= scored[lower].astype("Float64")) & (y <= scored[upper].astype("Float64"))


def run_summary(accuracy: pd.DataFrame) -> pd.DataFrame:
    """One row per scored run, ordered by as_of (then run_id).

    Columns `run_id`, `model`, `as_of`; `mae` and `mase`, means over every series and step
    (`mase` over those with a scale; NaN when none has); `coverage_80`, `coverage_95`, the
    percent of points inside each interval (NaN when the run published none); `n_points`.
    """
    frame = accuracy.assign(
        in_80=accuracy["in_80"].astype("float64"), in_95=accuracy["in_95"].astype("float64")
    )
    summary = frame.groupby("run_id", as_index=False, sort=False).agg(
        model=("model", "first"),
        as_of=("as_of", "first"),
        mae=("abs_error", "mean"),
        mase=("scaled_error", "mean"),
        coverage_80=("in_80", "mean"),
        coverage_95=("in_95", "mean"),
        n_points=("abs_error", "size"),
    )
    summary[["coverage_80", "coverage_95"]] *= 100.0
    summary["n_points"] = summary["n_points"].astype("int64")
    return summary.sort_values(["as_of", "run_id"], kind="stable", ignore_index=True)


def accuracy_drop(
    summary: pd.DataFrame, threshold_percent: float = 20.0, window: int = 5
) -> str | None:
    """A one-line warning when the newest scored run's MASE is more than `threshold_percent`
    worse than the mean MASE of up to `window` runs before it; else None.

    Runs with a NaN MASE are left out of the baseline; None when the newest run's MASE is NaN
    (nothing new to judge) or no earlier run has a MASE.
    """
    ordered = summary.sort_values(["as_of", "run_id"], kind="stable")
    if ordered.empty or pd.isna(ordered["mase"].iloc[-1]):
        return None
    newest = ordered.iloc[-1]
    earlier = ordered["mase"].iloc[:-1].dropna().tail(window)
    if earlier.empty:
        return None
    baseline, latest = float(earlier.mean()), float(newest["mase"])
    change = (latest / baseline - 1.0) * 100.0 if baseline > 0 else float("inf")
    if change <= threshold_percent:
        return None
    return (
        f"Accuracy dropped: run {newest['run_id']} ({newest['model']}) scored MASE "
        f"{latest:.3f} against a mean of {baseline:.3f} over the {len(earlier)} runs before "
        f"it, {change:+.1f}% (threshold {threshold_percent:g}%)."
    )


@dataclass(frozen=True)
class Tracking:
    """Earlier published forecasts scored in this run.

    Attributes:
        new_rows: Rows to merge into accuracy.parquet (empty when nothing new was complete).
        summary: `run_summary` of every scored run, old and new.
        warning: `accuracy_drop`'s warning, or None.
    """

    new_rows: pd.DataFrame
    summary: pd.DataFrame
    warning: str | None

    def live_mase(self, model: str, runs: int = 5) -> float | None:
        """Mean MASE of the last `runs` scored forecasts published by `model`."""
        recent = self.summary.loc[self.summary["model"] == model, "mase"].dropna().tail(runs)
        return float(recent.mean()) if len(recent) else None

    def manifest_entry(self, runs: int = 5) -> dict:
        recent = self.summary.tail(runs).assign(as_of=lambda f: f["as_of"].astype(str))
        return {
            "newly_scored": sorted(self.new_rows["run_id"].unique().tolist()),
            "recent": recent.to_dict(orient="records"),
            "warning": self.warning,
        }


def track(
    pipeline_dir: Location,
    actuals: pd.DataFrame,
    scale: dict[str, float],
    as_of: pd.Timestamp,
    threshold_percent: float,
) -> Tracking:
    """Scores every sealed run of the pipeline, not yet in accuracy.parquet, whose forecast's
    actuals have all arrived by `as_of`. A run that fails verification is skipped."""
    try:
        existing = read_accuracy(pipeline_dir)
    except Exception:  # noqa: BLE001 - a damaged history (the writer warns when it publishes)
        existing = None
    scored = set() if existing is None else set(existing["run_id"])
    rows = []
    for run_id in sealed_runs(pipeline_dir):
        if run_id in scored:
            continue
        try:
            forecast = read_run(child(pipeline_dir, run_key(run_id))).forecast
        except ForecastingError:
            continue
        if len(forecast) and forecast["as_of"].iloc[0] < as_of:
            row = score_forecast(forecast, actuals, scale, as_of)
            if row is not None:
                rows.append(row)
    new_rows = normalized(pd.concat(rows)) if rows else empty()
    merged = merge_accuracy(existing, new_rows)
    summary = run_summary(merged) if len(merged) else pd.DataFrame(columns=_SUMMARY)
    warning = accuracy_drop(summary, threshold_percent) if len(new_rows) else None
    return Tracking(new_rows, summary, warning)


_SUMMARY = ["run_id", "model", "as_of", "mae", "mase", "coverage_80", "coverage_95", "n_points"]
