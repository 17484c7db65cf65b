"""Split-conformal intervals: hand-computed ranks, scaling, and honest out-of-fold coverage."""

from __future__ import annotations

import numpy as np
import pytest

from forecasting.errors import ConfigError
from forecasting.intervals import (
    absolute_scaled_errors,
    conformal_quantiles,
    interval_columns,
    out_of_fold_coverage,
)


def _gaussian_backtest(
    n_folds: int = 3, n_windows_per_fold: int = 300, horizon: int = 6, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """y = y_hat + N(0, sigma_step) with sigma growing by step; scale 1; folds in blocks."""
    rng = np.random.default_rng(seed)
    n_windows = n_folds * n_windows_per_fold
    sigma = 1.0 + 0.5 * np.arange(horizon)
    y_hat = rng.normal(10.0, 3.0, size=(n_windows, horizon))
    y = y_hat + rng.normal(0.0, 1.0, size=(n_windows, horizon)) * sigma
    fold = np.repeat(np.arange(n_folds), n_windows_per_fold)
    return y, y_hat, np.ones(n_windows), fold


def test_out_of_fold_coverage_is_near_nominal_on_gaussian_errors() -> None:
    coverage = out_of_fold_coverage(*_gaussian_backtest())
    assert abs(coverage["coverage_80"] - 80) <= 5
    assert abs(coverage["coverage_95"] - 95) <= 5
    assert list(coverage) == ["coverage_80", "width_80", "coverage_95", "width_95"]


def test_half_widths_grow_with_the_step_like_the_noise() -> None:
    y, y_hat, scale, _ = _gaussian_backtest()
    quantiles = conformal_quantiles(absolute_scaled_errors(y, y_hat, scale))
    sigma = 1.0 + 0.5 * np.arange(6)
    for level, z in [(80, 1.2816), (95, 1.9600)]:
        assert np.all(np.diff(quantiles[level]) > 0)
        np.testing.assert_allclose(quantiles[level], z * sigma, rtol=0.15)


@pytest.mark.parametrize(
    ("n_windows", "level", "rank"),
    [(9, 80, 8), (9, 50, 5), (19, 95, 19), (10, 80, 9), (99, 7, 7)],
    ids=["n9-80", "n9-50", "n19-95", "n10-80", "n99-7-float-ceil-would-give-8"],
)
def test_quantile_is_the_hand_computed_order_statistic(
    n_windows: int, level: int, rank: int
) -> None:
    column = np.random.default_rng(1).permutation(np.arange(1.0, n_windows + 1))
    errors = np.column_stack([column, 10 * column[::-1]])
    assert conformal_quantiles(errors, (level,))[level].tolist() == [rank, 10 * rank]


def test_too_few_residuals_for_the_level_give_an_infinite_half_width() -> None:
    quantiles = conformal_quantiles(np.arange(10.0).reshape(10, 1) + 1)
    assert quantiles[80].tolist() == [9.0]  # ceil(11 * 0.8) = 9
    assert quantiles[95].tolist() == [np.inf]  # ceil(11 * 0.95) = 11 > 10


def test_unbounded_intervals_cover_everything_with_infinite_width() -> None:
    y = np.arange(20.0).reshape(10, 2)
    coverage = out_of_fold_coverage(y, y + 1, np.ones(10), np.repeat([0, 1], 5))
    assert coverage["coverage_95"] == 100.0
    assert coverage["width_95"] == np.inf
    assert np.isfinite(coverage["width_80"])


def test_a_point_on_the_bound_counts_as_covered() -> None:
    y_hat = np.zeros((10, 2))
    coverage = out_of_fold_coverage(y_hat + 1, y_hat, np.ones(10), np.repeat([0, 1], 5))
    assert coverage["coverage_80"] == 100.0  # every miss is 1, and so is the half-width


def test_half_width_is_proportional_to_the_series_scale() -> None:
    quantiles = {80: np.array([1.0, 2.0]), 95: np.array([3.0, 4.0])}
    columns = interval_columns(np.zeros((2, 2)), np.array([1.0, 2.0]), quantiles)
    assert columns["y_hat_hi_80"].tolist() == [[1.0, 2.0], [2.0, 4.0]]
    assert columns["y_hat_hi_95"].tolist() == [[3.0, 4.0], [6.0, 8.0]]


def test_intervals_are_symmetric_nested_and_ordered_by_level() -> None:
    y, y_hat, scale, _ = _gaussian_backtest(n_folds=1)
    scale = np.linspace(0.5, 2.0, len(scale))
    quantiles = conformal_quantiles(absolute_scaled_errors(y, y_hat, scale), (95, 80))
    columns = interval_columns(y_hat, scale, quantiles)
    assert list(columns) == ["y_hat_lo_80", "y_hat_hi_80", "y_hat_lo_95", "y_hat_hi_95"]
    np.testing.assert_allclose(columns["y_hat_hi_80"] - y_hat, y_hat - columns["y_hat_lo_80"])
    assert np.all(columns["y_hat_lo_95"] <= columns["y_hat_lo_80"])
    assert np.all(columns["y_hat_hi_80"] <= columns["y_hat_hi_95"])


def test_a_fold_is_never_calibrated_on_its_own_residuals() -> None:
    # Folds 0 and 1 miss by 1, fold 2 by 10. Out of fold, folds 0 and 1 see fold 2's large
    # residuals and are fully covered (half-width 10); fold 2 sees only misses of 1 and is
    # never covered (half-width 1). Calibrating on all folds would cover everything.
    n_windows_per_fold = 50
    miss = np.repeat([1.0, 1.0, 10.0], n_windows_per_fold)
    sign = np.where(np.arange(3 * n_windows_per_fold) % 2 == 0, 1.0, -1.0)
    y_hat = np.zeros((3 * n_windows_per_fold, 2))
    y = y_hat + (miss * sign)[:, None]
    fold = np.repeat([0, 1, 2], n_windows_per_fold)
    coverage = out_of_fold_coverage(y, y_hat, np.ones(len(fold)), fold)
    for level in (80, 95):
        assert coverage[f"coverage_{level}"] == pytest.approx(200 / 3)  # fold 2 covers 0 %
        assert coverage[f"width_{level}"] == pytest.approx((20 + 20 + 2) / 3)


def test_a_single_fold_has_nothing_to_calibrate_on() -> None:
    coverage = out_of_fold_coverage(*_gaussian_backtest(n_folds=1))
    assert list(coverage) == ["coverage_80", "width_80", "coverage_95", "width_95"]
    assert all(np.isnan(value) for value in coverage.values())


@pytest.mark.parametrize("levels", [(0,), (100,), (80.0,), (80, 150)])
def test_levels_outside_1_to_99_are_rejected(levels: tuple) -> None:
    with pytest.raises(ConfigError, match="levels"):
        conformal_quantiles(np.ones((5, 2)), levels)


def test_non_positive_scale_is_rejected() -> None:
    with pytest.raises(ValueError, match="scale"):
        absolute_scaled_errors(np.ones((2, 1)), np.zeros((2, 1)), np.array([1.0, 0.0]))
