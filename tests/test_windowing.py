"""Backtest folds, scaling and windows line up exactly, and no fold sees past its block."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting.config import EvaluationConfig, ModelConfig
from forecasting.evaluation import held_out_truth, insample_scale, predict_windows
from forecasting.windowing import (
    WindowSet,
    calendar_channels,
    calendar_cycles,
    fold_bounds,
    full_history_windows,
    last_inputs,
    make_folds,
    mase_scale,
)


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
EVALUATION = EvaluationConfig(validation_fraction=0.1, n_folds=3, fold_size=8)
LENGTHS = (100, 80)


class SumAhead:
    """Oracle: on an arange series the next values are the last value plus 1, 2, ... steps
    (in scaled units, one step is 1 / std)."""

    kind = "oracle"

    def __init__(self, step: np.ndarray, horizon: int) -> None:
        self.step, self.horizon = step, horizon

    def predict(self, inputs: np.ndarray, series: np.ndarray | None = None) -> np.ndarray:
        last = inputs[:, -1:, 0].astype(np.float64)
        return last + self.step[:, None] * np.arange(1, self.horizon + 1)


def test_windows_hold_the_right_inputs_and_targets() -> None:
    for windows in make_folds(arange_panel(LENGTHS), ["y"], MODEL, EVALUATION):
        for split in (windows.train, windows.validation, windows.test):
            mean = windows.scaling.mean[split.series, 0][:, None]
            std = windows.scaling.std[split.series, 0][:, None]
            raw_inputs = split.inputs[:, :, 0] * std + mean
            raw_targets = split.targets * std + mean
            offset = 1000 * split.series[:, None]
            start = split.target_start[:, None]
            np.testing.assert_allclose(raw_inputs, offset + start + np.arange(-10, 0), atol=1e-3)
            np.testing.assert_allclose(raw_targets, offset + start + np.arange(4), atol=1e-3)


def test_windows_are_cut_on_demand_as_the_series_stacked_would_give_them() -> None:
    """Any rows, subsets of subsets and chunks cut the same windows as slicing each scaled
    series at each window's position; a split stores no window and no index per window."""
    panel = arange_panel((60, 45, 70))
    panel["covariate"] = np.sin(np.arange(len(panel)))
    windows = make_folds(panel, ["y", "covariate"], MODEL, EVALUATION)[-1]
    scaled = windows.scaling.scale(windows.values)
    rng = np.random.default_rng(0)
    for split in (windows.train, windows.validation, windows.test):
        assert all(len(field) == len(scaled) for field in (split.offset, split.first, split.count))
        series, starts = split.series, split.target_start
        expected = np.stack(
            [scaled[s][t - 10 : t + 4] for s, t in zip(series, starts, strict=True)]
        )
        inputs, targets = split.take()
        np.testing.assert_allclose(inputs, expected[:, :10], rtol=1e-6)
        np.testing.assert_allclose(targets, expected[:, 10:, 0], rtol=1e-6)
        np.testing.assert_array_equal(split.targets, targets)
        rows = rng.permutation(len(split))[: len(split) // 2]
        part = split.subset(rows).subset(slice(1, None, 2))
        np.testing.assert_array_equal(part.take()[0], inputs[rows[1::2]])
        np.testing.assert_array_equal(part.series, series[rows[1::2]])
        np.testing.assert_array_equal(part.target_start, starts[rows[1::2]])
        chunks = list(split.chunks(max_bytes=split.nbytes // 3))
        assert len(chunks) >= 3
        np.testing.assert_array_equal(np.concatenate([c.inputs for c in chunks]), inputs)


def test_windows_given_whole_come_back_whole() -> None:
    rng = np.random.default_rng(1)
    inputs, targets = rng.normal(size=(7, 5, 2)), rng.normal(size=(7, 3))
    series, starts = np.array([2, 0, 2, 1, 0, 0, 1]), np.array([9, 4, 5, 6, 7, 8, 3])
    windows = WindowSet.of(inputs, targets, series, starts)
    np.testing.assert_array_equal(windows.inputs, inputs)
    np.testing.assert_array_equal(windows.take([4, 1])[1], targets[[4, 1]])
    np.testing.assert_array_equal(windows.series, series)
    np.testing.assert_array_equal(windows.subset([6, 2]).target_start, starts[[6, 2]])
    assert windows.inputs.dtype == np.float64 and windows.window_shape == (5, 2)


def test_folds_are_consecutive_blocks_ending_at_the_last_step() -> None:
    folds = make_folds(arange_panel(LENGTHS), ["y"], MODEL, EVALUATION)
    assert len(folds) == 3
    for index, length in enumerate(LENGTHS):
        bounds = fold_bounds(length, MODEL.horizon, EVALUATION)
        assert [b[1] for b in bounds] == [length - 24, length - 16, length - 8]
        for windows, (train_end, block_start, block_end) in zip(folds, bounds, strict=True):

            def targets(split, index=index):
                starts = split.target_start[split.series == index]
                return starts, set((starts[:, None] + np.arange(MODEL.horizon)).ravel())

            (_, train), (_, val), (test_starts, test) = (
                targets(windows.train),
                targets(windows.validation),
                targets(windows.test),
            )
            assert max(train) < train_end <= min(val) and max(val) < block_start
            # every stride-1 window whose targets lie in the block, and only those
            assert list(test_starts) == list(range(block_start, block_end - MODEL.horizon + 1))
            assert min(test) == block_start and max(test) == block_end - 1
            assert len(windows.values[index]) == block_end
            assert block_start - train_end == max(MODEL.horizon, int(block_start * 0.1))


def test_oracle_forecast_descales_to_the_exact_truth_in_every_fold() -> None:
    for windows in make_folds(arange_panel(LENGTHS), ["y"], MODEL, EVALUATION):
        oracle = SumAhead(1 / windows.scaling.std[:, 0][windows.test.series], MODEL.horizon)
        y_hat = predict_windows(oracle, windows, windows.test)
        np.testing.assert_allclose(y_hat, held_out_truth(windows), atol=1e-3)


def test_each_fold_scales_on_its_own_training_block_only() -> None:
    frame = arange_panel((100,)).assign(temperature=lambda f: f["y"] ** 2)
    folds = make_folds(frame, ["y", "temperature"], MODEL, EVALUATION)
    for windows in folds:
        end = windows.train_end[0]
        np.testing.assert_allclose(
            windows.scaling.mean[0], [np.arange(end).mean(), (np.arange(end) ** 2).mean()]
        )
        # The target: divided by its MASE scale (lag-24 MAE of an arange is 24); covariates
        # keep their z-score.
        assert windows.scaling.std[0, 0] == pytest.approx(24.0)
        assert windows.scaling.std[0, 1] == pytest.approx((np.arange(end) ** 2).std())
    assert len({w.scaling.mean[0, 0] for w in folds}) == 3  # refitted per fold


def test_zscore_target_scaling_divides_by_the_standard_deviation() -> None:
    model = MODEL.model_copy(update={"target_scaling": "zscore"})
    for windows in make_folds(arange_panel((100,)), ["y"], model, EVALUATION):
        assert windows.scaling.std[0, 0] == pytest.approx(np.arange(windows.train_end[0]).std())


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (np.arange(60.0) % 24 + np.arange(60.0) // 24 * 2.0, 2.0),  # seasonal naive MAE
        (np.tile(np.arange(24.0), 3), np.mean(np.abs(np.diff(np.tile(np.arange(24.0), 3))))),
        (np.array([0.0, 1, 0, 1]), 1.0),  # shorter than a season: one-step MAE
        (np.full(50, 7.0), 1.0),  # constant: never divides by 0
        (np.array([3.0]), 1.0),
    ],
    ids=["seasonal", "exact-season-falls-back-to-one-step", "short", "constant", "one-value"],
)
def test_mase_scale_falls_back_instead_of_dividing_by_zero(target, expected) -> None:
    assert mase_scale(target, 24) == pytest.approx(expected)


def test_a_constant_series_gets_finite_windows() -> None:
    frame = arange_panel((100, 100))
    frame.loc[frame["unique_id"] == "s1", "y"] = 5.0
    windows = make_folds(frame, ["y"], MODEL, EVALUATION)[-1]
    assert windows.scaling.std[1, 0] == 1.0
    assert np.isfinite(windows.train.inputs).all() and np.isfinite(windows.test.targets).all()


@pytest.mark.parametrize(
    ("target_scaling", "calendar"), [("mase", False), ("zscore", False), ("mase", True)]
)
def test_no_fold_sees_its_block_in_training_or_anything_after_it(target_scaling, calendar) -> None:
    """The MASE scale and every fitted statistic use the fold's training block only: changing
    everything from the fold's block on leaves them, and its training windows, unchanged."""
    model = MODEL.model_copy(update={"target_scaling": target_scaling, "calendar": calendar})
    frame = arange_panel(LENGTHS).assign(temperature=lambda f: np.sin(f["y"]))
    features = ["y", "temperature"]
    before = make_folds(frame, features, model, EVALUATION)
    for fold, windows in enumerate(before):
        changed = frame.copy()
        for index, (_, group) in enumerate(changed.groupby("unique_id", sort=False)):
            changed.loc[group.index[windows.test_start[index] :], features] = 1e6
        after = make_folds(changed, features, model, EVALUATION)
        np.testing.assert_array_equal(windows.scaling.mean, after[fold].scaling.mean)
        np.testing.assert_array_equal(windows.scaling.std, after[fold].scaling.std)
        np.testing.assert_array_equal(insample_scale(windows, 24), insample_scale(after[fold], 24))
        for name in ("train", "validation"):
            old, new = getattr(windows, name), getattr(after[fold], name)
            np.testing.assert_array_equal(old.inputs, new.inputs)
            np.testing.assert_array_equal(old.targets, new.targets)
        assert not np.array_equal(windows.test.targets, after[fold].test.targets)
        for earlier in range(fold):  # earlier folds end before this block: untouched
            np.testing.assert_array_equal(before[earlier].test.targets, after[earlier].test.targets)


def test_covariates_are_extra_input_features_not_targets() -> None:
    frame = arange_panel((100,)).assign(temperature=lambda f: -f["y"])
    windows = make_folds(frame, ["y", "temperature"], MODEL, EVALUATION)[-1]
    assert windows.train.inputs.shape[1:] == (10, 2)
    assert windows.train.targets.shape[1:] == (4,)
    mean, std = windows.scaling.mean[0], windows.scaling.std[0]
    raw = windows.train.inputs * std + mean
    np.testing.assert_allclose(raw[:, :, 1], -raw[:, :, 0], atol=1e-2)


def test_full_history_and_last_inputs_reach_the_last_observation() -> None:
    windows = make_folds(arange_panel(LENGTHS), ["y"], MODEL, EVALUATION)[-1]
    history = full_history_windows(windows, MODEL.input_size, MODEL.horizon)
    assert history.target_start[history.series == 0].max() == 100 - MODEL.horizon
    last = last_inputs(windows, MODEL.input_size)
    std, mean = windows.scaling.std[:, 0], windows.scaling.mean[:, 0]
    np.testing.assert_allclose(
        last[1, :, 0] * std[1] + mean[1], 1000 + np.arange(70, 80), atol=1e-3
    )


def test_calendar_channels_equal_the_formula_for_known_timestamps() -> None:
    ds = pd.Series(pd.to_datetime(["2024-01-01 00:00", "2024-01-03 06:00", "2024-03-31 18:30"]))
    day = np.array([0.0, 6 / 24, 18.5 / 24])
    week = (np.array([0, 2, 6]) + day) / 7  # Monday, Wednesday, Sunday
    year = (np.array([0, 0, 2]) + (np.array([0, 2, 30]) + day) / np.array([31, 31, 31])) / 12
    channels = calendar_channels(ds, ("day", "week", "year"))
    expected = [f(2 * np.pi * phase) for phase in (day, week, year) for f in (np.sin, np.cos)]
    np.testing.assert_allclose(channels, np.stack(expected, axis=1), atol=1e-12)
    np.testing.assert_allclose(channels[1, :2], [1.0, 0.0], atol=1e-12)  # 06:00: a quarter day


@pytest.mark.parametrize(
    ("step", "cycles"),
    [
        ("15min", ("day", "week")),
        ("1h", ("day", "week")),
        ("1D", ("week", "year")),
        ("7D", ("year",)),
        ("31D", ("year",)),
        ("365D", ()),
    ],
)
def test_calendar_cycles_are_the_two_shortest_longer_than_the_step(step, cycles) -> None:
    assert calendar_cycles(pd.Timedelta(step)) == cycles


def test_calendar_channels_are_unscaled_inputs_up_to_the_last_window() -> None:
    """Hourly data get day and week channels after the target, left unscaled (mean 0, std 1),
    in every split and in the future forecast's inputs."""
    frame = arange_panel(LENGTHS)
    windows = make_folds(frame, ["y"], MODEL.model_copy(update={"calendar": True}), EVALUATION)[-1]
    assert windows.features == [
        "y", "calendar_day_sin", "calendar_day_cos", "calendar_week_sin", "calendar_week_cos",
    ]  # fmt: skip
    np.testing.assert_array_equal(windows.scaling.mean[:, 1:], 0.0)
    np.testing.assert_array_equal(windows.scaling.std[:, 1:], 1.0)
    ds = frame.loc[frame.unique_id == "s1", "ds"].reset_index(drop=True)
    formula = calendar_channels(ds, ("day", "week")).astype(np.float32)
    first = windows.train.series.tolist().index(1)
    start = windows.train.target_start[first] - MODEL.input_size
    np.testing.assert_array_equal(
        windows.train.inputs[first, :, 1:], formula[start : start + MODEL.input_size]
    )
    last = last_inputs(windows, MODEL.input_size)
    np.testing.assert_array_equal(last[1, :, 1:], formula[-MODEL.input_size :])
    assert windows.train.targets.shape[1:] == (MODEL.horizon,)
