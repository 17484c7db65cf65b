"""Split-conformal prediction intervals per horizon step, calibrated on backtest residuals."""

from __future__ import annotations

import numpy as np

from forecasting.errors import ConfigError

LEVELS = (80, 95)


def absolute_scaled_errors(y: np.ndarray, y_hat: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """`|y - y_hat| / scale`, shape (n_windows, horizon), so series of any scale can be pooled.

    `y`, `y_hat`: (n_windows, horizon); `scale`: each window's series scale (in-sample seasonal
    naive MAE, as in MASE), (n_windows,).

    Raises:
        ValueError: A scale is not positive and finite.
    """
    if not np.all(np.isfinite(scale) & (scale > 0)):
        raise ValueError(f"Every scale must be positive and finite. Received: scale={scale!r}")
    return np.abs(y - y_hat) / scale[:, None]


def conformal_quantiles(
    abs_scaled_errors: np.ndarray, levels: tuple[int, ...] = LEVELS
) -> dict[int, np.ndarray]:
    """Per level, the finite-sample split-conformal half-width of each horizon step.

    With n calibration windows the half-width is the ceil((n + 1) * level / 100)-th smallest
    value of the step's column, ranked in integer arithmetic (n=99 at 7% is rank 7, where float
    ceil(100 * 0.07) gives 8). When the rank exceeds n there are too few residuals to promise
    the level, and the half-width is +inf: an unbounded interval rather than a falsely narrow one.

    Args:
        abs_scaled_errors: `absolute_scaled_errors` output, shape (n_windows, horizon).
        levels: Coverage levels in percent, integers in 1-99.

    Returns:
        Level (ascending) -> half-widths in scaled units, shape (horizon,). They are nested: a
        higher level takes a higher rank of the same sorted column.

    Raises:
        ConfigError: A level is not an integer in 1-99.
    """
    if any(not isinstance(level, int | np.integer) or not 0 < level < 100 for level in levels):
        raise ConfigError(f"Interval levels must be integers in 1-99. Received: levels={levels}")
    n_windows, horizon = abs_scaled_errors.shape
    ordered = np.sort(abs_scaled_errors, axis=0)
    quantiles = {}
    for level in sorted(levels):
        rank = ((n_windows + 1) * level + 99) // 100  # ceil((n + 1) * level / 100)
        quantiles[level] = ordered[rank - 1] if rank <= n_windows else np.full(horizon, np.inf)
    return quantiles


def interval_columns(
    y_hat: np.ndarray, scale: np.ndarray, quantiles: dict[int, np.ndarray]
) -> dict[str, np.ndarray]:
    """Symmetric intervals `y_hat -/+ quantiles[level][step] * scale`, in original units.

    `y_hat`: (n_windows, horizon); `scale`: (n_windows,); `quantiles`: `conformal_quantiles`
    output. Returns `y_hat_lo_<level>`, `y_hat_hi_<level>`, each (n_windows, horizon), levels
    ascending (lo_80, hi_80, lo_95, hi_95); an infinite half-width gives -inf / +inf bounds.
    """
    columns = {}
    for level in sorted(quantiles):
        half_width = quantiles[level][None, :] * scale[:, None]
        columns[f"y_hat_lo_{level}"] = y_hat - half_width
        columns[f"y_hat_hi_{level}"] = y_hat + half_width
    return columns


def out_of_fold_coverage(
    y: np.ndarray,
    y_hat: np.ndarray,
    scale: np.ndarray,
    fold: np.ndarray,
    levels: tuple[int, ...] = LEVELS,
) -> dict[str, float]:
    """Honest coverage: each fold is measured with quantiles calibrated on the other folds only.

    Args:
        y: Truth, shape (n_windows, horizon).
        y_hat: Forecasts, shape (n_windows, horizon).
        scale: Each window's series scale, shape (n_windows,).
        fold: Each window's backtest fold index, shape (n_windows,).
        levels: Coverage levels in percent, integers in 1-99.

    Returns:
        `coverage_<level>` (percent of points inside [lo, hi], 0-100) and `width_<level>` (mean
        hi - lo, original units) over every point of every fold. Where the other folds hold too
        few residuals for a level, its intervals are unbounded: they cover everything and the
        width is inf, which says "no usable interval" instead of hiding it. With a single fold
        there is nothing to calibrate on, and every value is NaN.
    """
    folds = np.unique(fold)
    if len(folds) < 2:
        names = [f"{kind}_{level}" for level in sorted(levels) for kind in ("coverage", "width")]
        return dict.fromkeys(names, float("nan"))
    errors = absolute_scaled_errors(y, y_hat, scale)
    bounds: dict[str, np.ndarray] = {}  # each window's interval, from the other folds' residuals
    for held_out in folds:
        test = fold == held_out
        quantiles = conformal_quantiles(errors[~test], levels)
        for name, values in interval_columns(y_hat[test], scale[test], quantiles).items():
            bounds.setdefault(name, np.empty(y.shape))[test] = values
    result = {}
    for level in sorted(levels):
        lo, hi = bounds[f"y_hat_lo_{level}"], bounds[f"y_hat_hi_{level}"]
        result[f"coverage_{level}"] = 100.0 * float(np.mean((y >= lo) & (y <= hi)))
        result[f"width_{level}"] = float(np.mean(hi - lo))
    return result
