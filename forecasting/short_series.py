"""Series too short for the backtest, in a file of many: each is forecast by the best baseline
that fits it, outside the model tournament, so one short series cannot sink a run."""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecasting.backtest import Backtest
from forecasting.config import ModelConfig
from forecasting.intervals import LEVELS, conformal_quantiles, interval_columns
from forecasting.models import make_forecaster, spec
from forecasting.outputs import future_frame
from forecasting.validation import ValidatedData
from forecasting.windowing import mase_scale

BASELINES = ("seasonal_naive", "naive")  # the order when this run's backtest cannot rank them


def baseline_order(scores: dict[str, float]) -> list[str]:
    """The baselines, best first: by this run's backtest score (`scores`, lower wins, ties to
    the simpler kind) when both were candidates and finished, else seasonal_naive first."""
    if all(kind in scores for kind in BASELINES):
        return sorted(BASELINES, key=lambda kind: (scores[kind], spec(kind).rank))
    return list(BASELINES)


def choose_baselines(
    lengths: dict[str, int], season_length: int, order: list[str]
) -> dict[str, str]:
    """Per short series, the first baseline of `order` it is long enough for: seasonal_naive
    repeats the last season, so it needs `season_length` steps; naive needs one."""
    needs = {"seasonal_naive": season_length, "naive": 1}
    return {
        series_id: next(kind for kind in order if length >= needs[kind])
        for series_id, length in lengths.items()
    }


def histories(data: ValidatedData) -> dict[str, np.ndarray]:
    """Per short series, its whole history of the target."""
    short = data.frame[data.frame["unique_id"].isin(list(data.short_series))]
    return {
        str(series_id): group["y"].to_numpy(np.float64)
        for series_id, group in short.groupby("unique_id", sort=False)
    }


def scales(data: ValidatedData) -> dict[str, float]:
    """Per short series, MASE's denominator over its whole history (it has no backtest)."""
    return {
        series_id: mase_scale(history, data.season_length)
        for series_id, history in histories(data).items()
    }


def forecast_short(
    data: ValidatedData,
    model: ModelConfig,
    backtest: Backtest,
    scores: dict[str, float],
    seed: int,
) -> pd.DataFrame:
    """The short series' forecasts: `forecast_future`'s columns plus `model`, the baseline
    that forecast each series (empty when no series is short).

    Intervals come from the chosen baseline's backtest errors on the other series, scaled by
    the short series' own MASE scale; when that baseline was not a candidate there are no
    residuals to calibrate on, and the intervals are unbounded (as `conformal_quantiles` gives
    for too few residuals), not falsely narrow.

    Args:
        backtest: The tournament's backtest, for the baselines' errors.
        scores: This run's backtest score per finished candidate (the selection metric).
    """
    choices = choose_baselines(data.short_series, data.season_length, baseline_order(scores))
    if not choices:
        return pd.DataFrame()
    history = histories(data)
    scale = {series_id: mase_scale(y, data.season_length) for series_id, y in history.items()}
    parts = []
    for kind in dict.fromkeys(choices.values()):
        ids = [series_id for series_id, chosen in choices.items() if chosen == kind]
        forecaster = make_forecaster(kind, model, 1, data.season_length, seed)
        y_hat = np.concatenate([forecaster.predict(history[i][None, :, None]) for i in ids])
        quantiles = (
            conformal_quantiles(backtest.abs_scaled_errors(kind))
            if kind in backtest.predictions
            else {level: np.full(model.horizon, np.inf) for level in LEVELS}
        )
        bounds = interval_columns(y_hat, np.array([scale[i] for i in ids]), quantiles)
        parts.append(future_frame(ids, y_hat, bounds, data).assign(model=kind))
    order = {series_id: index for index, series_id in enumerate(choices)}
    frame = pd.concat(parts, ignore_index=True)
    return frame.sort_values("unique_id", key=lambda ids: ids.map(order), kind="stable")
