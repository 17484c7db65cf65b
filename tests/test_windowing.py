"""Splits, scaling and windows line up exactly, and the test block never leaks into training."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting.config import EvaluationConfig, ModelConfig
from forecasting.evaluation import held_out_truth, predict_windows
from forecasting.windowing import full_history_windows, last_inputs, make_windows, split_sizes


def arange_panel(lengths: tuple[int, ...]) -> pd.DataFrame:
    """Series whose value equals its position plus 1000 * series index."""
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "unique_id": f"s{i}",
                    "ds": pd.date_range("2024-01-01", periods=n, freq="h"),
                    "y": np.arange(n, dtype=float) + 1000 * i,
                }
            )
            for i, n in enumerate(lengths)
        ],
        ignore_index=True,
    )


MODEL = ModelConfig(input_size=10, horizon=4)
EVALUATION = EvaluationConfig(validation_fraction=0.1, test_fraction=0.2)


class SumAhead:
    """Oracle: on an arange series the next values are the last value plus 1, 2, ... steps
    (in scaled units, one step is 1 / std)."""

    kind = "oracle"

    def __init__(self, step: np.ndarray, horizon: int) -> None:
        self.step, self.horizon = step, horizon

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        last = inputs[:, -1:, 0].astype(np.float64)
        return last + self.step[:, None] * np.arange(1, self.horizon + 1)


def test_windows_hold_the_right_inputs_and_targets() -> None:
    windows = make_windows(arange_panel((100, 80)), ["y"], MODEL, EVALUATION)
    for split in (windows.train, windows.validation, windows.test):
        mean = windows.scaling.mean[split.series, 0][:, None]
        std = windows.scaling.std[split.series, 0][:, None]
        raw_inputs = split.inputs[:, :, 0] * std + mean
        raw_targets = split.targets * std + mean
        offset = 1000 * split.series[:, None]
        start = split.target_start[:, None]
        np.testing.assert_allclose(raw_inputs, offset + start + np.arange(-10, 0), atol=1e-3)
        np.testing.assert_allclose(raw_targets, offset + start + np.arange(4), atol=1e-3)


def test_split_target_periods_do_not_overlap_and_cover_the_tail() -> None:
    lengths = (100, 80)
    windows = make_windows(arange_panel(lengths), ["y"], MODEL, EVALUATION)
    for index, length in enumerate(lengths):
        n_val, n_test = split_sizes(length, MODEL.horizon, EVALUATION)

        def targets(split, index=index):
            starts = split.target_start[split.series == index]
            return set((starts[:, None] + np.arange(MODEL.horizon)).ravel())

        train, val, test = (
            targets(windows.train),
            targets(windows.validation),
            targets(windows.test),
        )
        assert max(train) < min(val) and max(val) < min(test)
        assert min(test) == length - n_test and max(test) == length - 1
        assert min(val) == length - n_test - n_val
        assert windows.train_end[index] == length - n_test - n_val


def test_oracle_forecast_descales_to_the_exact_truth() -> None:
    windows = make_windows(arange_panel((100, 80)), ["y"], MODEL, EVALUATION)
    oracle = SumAhead(1 / windows.scaling.std[:, 0][windows.test.series], MODEL.horizon)
    y_hat = predict_windows(oracle, windows, windows.test)
    np.testing.assert_allclose(y_hat, held_out_truth(windows), atol=1e-3)


def test_scaler_is_fitted_on_the_training_block_only() -> None:
    windows = make_windows(arange_panel((100,)), ["y"], MODEL, EVALUATION)
    end = windows.train_end[0]
    assert windows.scaling.mean[0, 0] == pytest.approx(np.arange(end).mean())
    assert windows.scaling.std[0, 0] == pytest.approx(np.arange(end).std())


def test_changing_test_values_changes_neither_scaler_nor_training_windows() -> None:
    frame = arange_panel((100, 80))
    before = make_windows(frame, ["y"], MODEL, EVALUATION)
    changed = frame.copy()
    for index, (_, group) in enumerate(changed.groupby("unique_id", sort=False)):
        tail = group.index[before.test_start[index] :]
        changed.loc[tail, "y"] = 1e6
    after = make_windows(changed, ["y"], MODEL, EVALUATION)
    np.testing.assert_array_equal(before.scaling.mean, after.scaling.mean)
    np.testing.assert_array_equal(before.scaling.std, after.scaling.std)
    for name in ("train", "validation"):
        np.testing.assert_array_equal(getattr(before, name).inputs, getattr(after, name).inputs)
        np.testing.assert_array_equal(getattr(before, name).targets, getattr(after, name).targets)
    assert not np.array_equal(before.test.targets, after.test.targets)


def test_covariates_are_extra_input_features_not_targets() -> None:
    frame = arange_panel((100,)).assign(temperature=lambda f: -f["y"])
    windows = make_windows(frame, ["y", "temperature"], MODEL, EVALUATION)
    assert windows.train.inputs.shape[1:] == (10, 2)
    assert windows.train.targets.shape[1:] == (4,)
    np.testing.assert_allclose(
        windows.train.inputs[:, :, 1], -windows.train.inputs[:, :, 0], atol=1e-5
    )


def test_full_history_and_last_inputs_reach_the_last_observation() -> None:
    windows = make_windows(arange_panel((100, 80)), ["y"], MODEL, EVALUATION)
    history = full_history_windows(windows, MODEL.input_size, MODEL.horizon)
    assert history.target_start[history.series == 0].max() == 100 - MODEL.horizon
    last = last_inputs(windows, MODEL.input_size)
    std, mean = windows.scaling.std[:, 0], windows.scaling.mean[:, 0]
    np.testing.assert_allclose(
        last[1, :, 0] * std[1] + mean[1], 1000 + np.arange(70, 80), atol=1e-3
    )
