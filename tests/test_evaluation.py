"""Metrics against hand-computed values, and MASE's in-sample scale."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting.config import EvaluationConfig, ModelConfig
from forecasting.evaluation import insample_scale, mae, mase, rmse, smape
from forecasting.windowing import make_folds

Y = np.array([[1.0, 2.0], [3.0, 4.0]])
Y_HAT = np.array([[2.0, 2.0], [1.0, 8.0]])
SCALE = np.array([1.0, 2.0])


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        (mae, (1 + 0 + 2 + 4) / 4),
        (rmse, np.sqrt((1 + 0 + 4 + 16) / 4)),
        (mase, (1 / 1 + 0 / 1 + 2 / 2 + 4 / 2) / 4),
        (smape, 200 * (1 / 3 + 0 / 4 + 2 / 4 + 4 / 12) / 4),
    ],
    ids=["mae", "rmse", "mase", "smape"],
)
def test_metric_matches_hand_computation(metric, expected: float) -> None:
    assert metric(Y, Y_HAT, SCALE) == pytest.approx(expected)


def test_smape_counts_zero_over_zero_as_zero() -> None:
    assert smape(np.zeros((1, 2)), np.zeros((1, 2)), np.ones(1)) == 0.0


def test_insample_scale_is_seasonal_naive_mae_of_the_training_block() -> None:
    steps = np.arange(200)
    y = np.where(steps % 4 < 2, 0.0, 1.0) + 0.5 * steps  # season 4 with trend 0.5 per step
    frame = pd.DataFrame(
        {"unique_id": "a", "ds": pd.date_range("2024", periods=200, freq="h"), "y": y}
    )
    windows = make_folds(
        frame, ["y"], ModelConfig(input_size=8, horizon=2), EvaluationConfig(n_folds=1)
    )[0]
    # seasonal differences at lag 4 remove the season and leave 4 * 0.5
    assert insample_scale(windows, 4)[0] == pytest.approx(2.0)
    # lag 1 differences alternate between 0.5 and 1.5 around the season edges
    end = windows.train_end[0]
    train = y[:end]
    assert insample_scale(windows, 1)[0] == pytest.approx(np.mean(np.abs(np.diff(train))))
