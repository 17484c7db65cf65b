"""Diebold-Mariano test: is one forecast's loss significantly lower than another's?

`d = loss_a - loss_b` per forecast origin; the variance of its mean is Newey-West with Bartlett
weights over `horizon - 1` lags (h-step forecasts from consecutive origins overlap), and the
statistic gets the Harvey-Leybourne-Newbold correction and a two-sided t(n - 1) p-value.

Minimum sample: `horizon + 1` origins (so at least 2), since the correction factor
`(n + 1 - 2h + h(h - 1)/n) / n = (n - h)(n - h + 1) / n**2` is positive only for `n > h`. With
fewer, or a variance estimate that is not positive (constant `d`, identical losses), there is no
statistic: NaN, p-value 1.0 and a note, which reads as "not significant".

References: Diebold & Mariano (1995), Comparing predictive accuracy, JBES 13(3); Harvey,
Leybourne & Newbold (1997), Testing the equality of prediction mean squared errors, IJF 13(2);
Newey & West (1987), A simple, positive semi-definite, heteroskedasticity and autocorrelation
consistent covariance matrix, Econometrica 55(3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DMResult:
    """Outcome of `diebold_mariano`.

    Attributes:
        statistic: HLN-corrected DM statistic; NaN when not computable.
        p_value: Two-sided, Student t with `n - 1` df; 1.0 when not computable.
        n: Number of loss differentials (forecast origins).
        mean_difference: Mean of `loss_a - loss_b`; negative when `a` has the lower loss.
        note: Empty normally; otherwise why there is no statistic.
    """

    statistic: float
    p_value: float
    n: int
    mean_difference: float
    note: str = ""

    def a_better(self, alpha: float = 0.05) -> bool:
        """Whether `a` has the lower mean loss and equal accuracy is rejected at `alpha`."""
        return self.p_value < alpha and self.mean_difference < 0


def diebold_mariano(loss_a: np.ndarray, loss_b: np.ndarray, horizon: int) -> DMResult:
    """Test equal predictive accuracy of forecasts `a` and `b` from the same origins.

    Args:
        loss_a: Loss of forecast `a` per origin, in time order, shape (n,); the caller averages
            over the horizon's steps and over series.
        loss_b: The same for forecast `b`, shape (n,).
        horizon: Steps each forecast covers; sets `horizon - 1` Newey-West lags.

    Returns:
        The result; with NaN statistic, p-value 1.0 and a note when it cannot be computed.

    Raises:
        ValueError: The losses are not 1-D, differ in length or hold NaN or infinite values,
            or `horizon` is below 1.
    """
    d = _loss_differential(loss_a, loss_b, horizon)
    n = len(d)
    mean_difference = float(np.mean(d)) if n else math.nan
    if n < horizon + 1:
        note = f"needs at least horizon + 1 = {horizon + 1} forecast origins, has {n}"
        return DMResult(math.nan, 1.0, n, mean_difference, note)
    variance = _newey_west_variance(d, lags=horizon - 1)
    # A constant d leaves rounding noise of ~n*eps relative in its deviations; that is no variance.
    if variance <= (n * np.finfo(np.float64).eps) ** 2 * float(np.mean(d**2)):
        return DMResult(math.nan, 1.0, n, mean_difference, "variance estimate not positive")
    from scipy import stats

    correction = (n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n
    statistic = mean_difference / math.sqrt(variance / n) * math.sqrt(correction)
    p_value = float(2 * stats.t.sf(abs(statistic), df=n - 1))
    return DMResult(statistic, p_value, n, mean_difference)


def _loss_differential(loss_a: np.ndarray, loss_b: np.ndarray, horizon: int) -> np.ndarray:
    """`loss_a - loss_b` as float64, after checking shapes, values and `horizon`."""
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1. Received: horizon={horizon!r}")
    a, b = np.asarray(loss_a, dtype=np.float64), np.asarray(loss_b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(
            "loss_a and loss_b must be 1-D arrays of equal length, one loss per forecast "
            f"origin. Received: loss_a.shape={a.shape}, loss_b.shape={b.shape}"
        )
    bad = np.flatnonzero(~(np.isfinite(a) & np.isfinite(b)))
    if bad.size:
        raise ValueError(
            "Losses must be finite; drop or fix the origins whose forecast or truth is missing. "
            f"Received: NaN or infinite loss at positions {bad[:5].tolist()}"
        )
    return a - b


def _newey_west_variance(d: np.ndarray, lags: int) -> float:
    """Long-run variance of `d`: gamma_0 + 2 * sum_k (1 - k/(lags + 1)) * gamma_k."""
    deviations = d - d.mean()
    variance = float(deviations @ deviations) / len(d)
    for lag in range(1, lags + 1):
        autocovariance = float(deviations[lag:] @ deviations[:-lag]) / len(d)
        variance += 2 * (1 - lag / (lags + 1)) * autocovariance
    return variance
