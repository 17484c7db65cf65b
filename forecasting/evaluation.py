"""Metrics with one shared signature, and scoring of candidates on held-out test windows."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from forecasting.windowing import Windows, WindowSet, mase_scale

if TYPE_CHECKING:
    from forecasting.models import Forecaster

Metric = Callable[[np.ndarray, np.ndarray, np.ndarray], float]


def mae(y: np.ndarray, y_hat: np.ndarray, scale: np.ndarray) -> float:
    """Mean absolute error. `y`, `y_hat`: (n_windows, horizon); `scale` is unused."""
    return float(np.mean(np.abs(y - y_hat)))


def rmse(y: np.ndarray, y_hat: np.ndarray, scale: np.ndarray) -> float:
    """Root mean squared error. `scale` is unused."""
    return float(np.sqrt(np.mean((y - y_hat) ** 2)))


def mase(y: np.ndarray, y_hat: np.ndarray, scale: np.ndarray) -> float:
    """Mean absolute scaled error: each window's errors divided by its series' in-sample
    seasonal naive MAE (`scale`, shape (n_windows,)), then averaged."""
    return float(np.mean(np.abs(y - y_hat) / scale[:, None]))


def smape(y: np.ndarray, y_hat: np.ndarray, scale: np.ndarray) -> float:
    """Symmetric MAPE in percent (0-200); a point where both values are 0 counts as 0."""
    denominator = np.abs(y) + np.abs(y_hat)
    ratio = np.divide(
        np.abs(y - y_hat), denominator, out=np.zeros_like(denominator), where=denominator > 0
    )
    return float(200.0 * np.mean(ratio))


METRICS: dict[str, Metric] = {"mae": mae, "rmse": rmse, "mase": mase, "smape": smape}


def insample_scale(windows: Windows, season_length: int) -> np.ndarray:
    """Per series, the seasonal naive forecast's MAE over its training block; (n_series,).

    The same scale the target is divided by under MASE scaling (`windowing.mase_scale`, with
    its fallbacks for a block shorter than a season, one that repeats its season exactly, and
    a constant one), so errors in scaled units are the metric's.
    """
    return np.array(
        [
            mase_scale(values[:end, 0], season_length)
            for values, end in zip(windows.values, windows.train_end, strict=True)
        ]
    )


def held_out_truth(windows: Windows) -> np.ndarray:
    """The test targets in original units, shape (n_windows, horizon)."""
    return windows.scaling.descale_target(
        windows.test.targets.astype(np.float64), windows.test.series
    )


def predict_descaled(
    forecaster: Forecaster, windows: Windows, inputs: np.ndarray, series: np.ndarray
) -> np.ndarray:
    """A candidate's forecasts in original units, shape (n_windows, horizon).

    Args:
        inputs: Scaled windows, shape (n_windows, input_size, n_features).
        series: Each window's series index, shape (n_windows,).

    Raises:
        FloatingPointError: The forecaster produced NaN or infinite values.
    """
    scaled = np.asarray(forecaster.predict(inputs, series), dtype=np.float64)
    if not np.all(np.isfinite(scaled)):
        raise FloatingPointError(f"{forecaster.kind} produced NaN or infinite forecasts")
    return windows.scaling.descale_target(scaled, series)


def predict_windows(forecaster: Forecaster, windows: Windows, split: WindowSet) -> np.ndarray:
    """A candidate's forecasts for `split`, in original units, shape (n_windows, horizon);
    the windows are cut a chunk at a time (see `predict_descaled`)."""
    parts = [
        predict_descaled(forecaster, windows, chunk.inputs, chunk.series)
        for chunk in split.chunks()
    ]
    return np.concatenate(parts) if parts else np.empty((0, split.horizon))


def score(
    y: np.ndarray, y_hat: np.ndarray, scale: np.ndarray, metrics: dict[str, Metric] = METRICS
) -> dict[str, float]:
    """Applies every metric to the same forecasts; `scale` is per window, shape (n_windows,)."""
    return {name: metric(y, y_hat, scale) for name, metric in metrics.items()}
