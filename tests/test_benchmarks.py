"""The benchmark protocol itself: splits, windows and FLOP counts that published comparisons
rest on. (The benchmarks' numbers come from running the scripts, never from tests.)"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from forecasting.config import ModelConfig
from tests.conftest import ETTH1, PROJECT

sys.path.insert(0, str(PROJECT / "benchmarks"))
import ett  # noqa: E402
import m4_hourly  # noqa: E402
import speed  # noqa: E402


def test_ett_windows_follow_the_informer_borders():
    raw = pd.read_csv(ETTH1)["OT"].to_numpy(np.float64)
    scaled = ett.load_ot("ETTh1")
    train = raw[:8640]
    np.testing.assert_allclose(scaled, (raw[:14400] - train.mean()) / train.std())
    windows = ett.split_windows(scaled, per_hour=1, horizon=24)
    test = windows["test"]
    # Every stride-1 window with all targets in [11520, 14400): 2880 - 24 + 1 of them.
    assert len(test) == 2857
    assert test.target_start[0] == 11520 and test.target_start[-1] + 24 == 14400
    np.testing.assert_allclose(test.targets[0], scaled[11520:11544], rtol=1e-6)
    np.testing.assert_allclose(test.inputs[0, :, 0], scaled[11520 - 336 : 11520], rtol=1e-6)
    # Training windows never reach the validation rows; validation never reaches the test rows.
    assert windows["train"].target_start.max() + 24 <= 8640
    assert windows["validation"].target_start.min() == 8640
    assert windows["validation"].target_start.max() + 24 <= 11520


def test_ett_naive_row_is_the_last_value_repeated():
    windows = ett.split_windows(ett.load_ot("ETTh1"), per_hour=1, horizon=24)
    row = ett.run_kind("naive", windows, horizon=24, season=24)
    last = windows["test"].inputs[:, -1, 0]
    expected = np.mean((windows["test"].targets - last[:, None]) ** 2)
    assert row["mse"] == pytest.approx(expected)
    assert row["n_test_windows"] == 2857


def test_flop_count_of_a_segmented_gru():
    config = ModelConfig(horizon=24, input_size=168, units=64, segment_length=24)
    # 7 steps of 3 gates over 24 inputs + 64 units, the Dense head, times 3 for training.
    expected = 3 * (7 * 2 * 3 * 64 * (24 + 64) + 2 * 64 * 24)
    assert speed.train_flops("gru", config) == expected
    assert speed.train_flops("lstm", config) > speed.train_flops("gru", config)


def test_m4_naive2_reseasonalizes_a_seasonal_series_and_repeats_noise():
    pattern = 1 + 0.5 * np.sin(2 * np.pi * np.arange(24) / 24)
    seasonal = 10 * np.tile(pattern, 30)[5:]  # 715 steps, starting mid-season
    # a 2 x 24 moving average of an exact multiplicative season is the level itself, so the
    # forecast continues the pattern where the history stops
    expected = 10 * pattern[(len(seasonal) + 5 + np.arange(48)) % 24]
    np.testing.assert_allclose(m4_hourly.naive2(seasonal), expected)
    noise = np.random.default_rng(0).normal(size=700) + 100  # no autocorrelation at lag 24
    np.testing.assert_array_equal(m4_hourly.naive2(noise), np.full(48, noise[-1]))
