"""Diebold-Mariano test against hand computations, its edge cases and its size under the null."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from forecasting.significance import diebold_mariano

D = [0.4, -1.2, 0.3, -0.8, -0.1, 0.9, -1.5, -0.6, 0.2, -0.7, -0.3, -1.0]


def test_statistic_and_p_value_match_hand_computation() -> None:
    n, horizon = len(D), 3
    mean = sum(D) / n
    gamma = []
    for lag in range(3):
        total = 0.0
        for t in range(lag, n):
            total += (D[t] - mean) * (D[t - lag] - mean)
        gamma.append(total / n)
    variance = gamma[0] + 2 * (2 / 3 * gamma[1] + 1 / 3 * gamma[2])
    correction = (n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n
    assert correction == pytest.approx((n - horizon) * (n - horizon + 1) / n**2)
    expected = mean / math.sqrt(variance / n) * math.sqrt(correction)
    expected_p = 2 * stats.t.sf(abs(expected), df=n - 1)

    # Losses on a common base, so the subtraction is exercised too.
    base = np.linspace(1.0, 3.0, n)
    result = diebold_mariano(base + np.array(D), base, horizon=horizon)

    assert result.statistic == pytest.approx(expected, rel=1e-12)
    assert result.p_value == pytest.approx(expected_p, rel=1e-12)
    assert result.n == n
    assert result.mean_difference == pytest.approx(mean, rel=1e-12)
    assert result.note == ""


def test_horizon_one_is_the_one_sample_t_test() -> None:
    # With no lags V = (n-1)/n * s**2, so DM = t * sqrt(n/(n-1)); HLN multiplies by sqrt((n-1)/n).
    d = np.random.default_rng(3).normal(-0.2, 1.0, size=40)
    expected = stats.ttest_1samp(d, 0.0)

    result = diebold_mariano(d, np.zeros_like(d), horizon=1)

    assert result.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-12)


def test_clearly_better_forecast_is_significant_and_swapping_flips_the_sign() -> None:
    rng = np.random.default_rng(0)
    loss_b = 1.0 + rng.normal(0.0, 0.3, size=100)
    loss_a = 0.6 + rng.normal(0.0, 0.3, size=100)

    forward = diebold_mariano(loss_a, loss_b, horizon=3)
    backward = diebold_mariano(loss_b, loss_a, horizon=3)

    assert forward.statistic < 0
    assert forward.p_value < 0.01
    assert forward.a_better()
    assert backward.statistic == pytest.approx(-forward.statistic)
    assert backward.p_value == pytest.approx(forward.p_value)
    assert not backward.a_better()


@pytest.mark.parametrize("offset", [0.0, 0.1], ids=["identical", "constant-difference"])
def test_no_variance_gives_no_statistic(offset: float) -> None:
    # 0.1 is not exact in binary, so a - (a + 0.1) varies in the last bits: rounding, not variance.
    loss_a = np.random.default_rng(1).uniform(0.0, 10.0, size=50)

    result = diebold_mariano(loss_a, loss_a + offset, horizon=2)

    assert math.isnan(result.statistic)
    assert result.p_value == 1.0
    assert "variance" in result.note
    assert not result.a_better()


@pytest.mark.parametrize(("n", "horizon"), [(24, 24), (12, 24), (1, 1), (0, 1)])
def test_too_few_origins_gives_no_statistic(n: int, horizon: int) -> None:
    loss_b = np.arange(n, dtype=np.float64)

    result = diebold_mariano(loss_b - 5.0, loss_b, horizon=horizon)

    assert math.isnan(result.statistic)
    assert result.p_value == 1.0
    assert result.note == f"needs at least horizon + 1 = {horizon + 1} forecast origins, has {n}"
    assert not result.a_better()


def test_horizon_plus_one_origins_is_enough() -> None:
    result = diebold_mariano(np.array([0.1, 0.5, 0.2, 0.9]), np.ones(4), horizon=3)

    assert math.isfinite(result.statistic)
    assert result.note == ""


def _null_rejection_rate(horizon: int) -> float:
    """Share of 400 null samples (n=200, MA(3) loss differential) rejected at 5%."""
    rng = np.random.default_rng(2024)
    rejections = 0
    for _ in range(400):
        noise = rng.standard_normal(203)
        d = noise[3:] + noise[2:-1] + noise[1:-2] + noise[:-3]
        rejections += diebold_mariano(d, np.zeros_like(d), horizon=horizon).p_value < 0.05
    return rejections / 400


def test_size_under_the_null_with_overlapping_forecasts() -> None:
    # Bartlett weights over horizon - 1 lags under-weight an MA(3)'s autocovariances (V is about
    # 11/16 of the long-run variance), so the test over-rejects to ~10% here; ignoring the
    # autocorrelation (horizon 1, no lags) rejects ~33% of the time.
    with_lags = _null_rejection_rate(horizon=4)
    without_lags = _null_rejection_rate(horizon=1)

    assert 0.02 <= with_lags <= 0.15
    assert without_lags > 0.25


@pytest.mark.parametrize(
    ("loss_a", "loss_b", "horizon", "message"),
    [
        (np.ones(5), np.ones(4), 1, "equal length"),
        (np.ones((5, 2)), np.ones((5, 2)), 1, "1-D"),
        (np.array([1.0, np.nan, 2.0]), np.ones(3), 1, "positions \\[1\\]"),
        (np.ones(3), np.array([1.0, 2.0, np.inf]), 1, "finite"),
        (np.ones(3), np.ones(3), 0, "horizon must be at least 1"),
    ],
    ids=["lengths", "two-d", "nan", "inf", "horizon"],
)
def test_bad_input_raises(
    loss_a: np.ndarray, loss_b: np.ndarray, horizon: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        diebold_mariano(loss_a, loss_b, horizon=horizon)
