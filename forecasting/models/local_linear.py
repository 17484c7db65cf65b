"""A per-series ridge candidate: each series' own windows mapped linearly to its horizon.

`linear` fits one ridge for all series; `local_linear` fits one per series, every series in one
batched NumPy solve, and publishes them as one Keras model that looks each series' weights up.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from forecasting.models.linear import (
    RIDGE_RECIPE,
    last_value_shift,
    regression_data,
    require_windows,
)
from forecasting.models.registry import KERAS_FILE, ModelSpec

if TYPE_CHECKING:
    from forecasting.config import ModelConfig
    from forecasting.windowing import WindowSet

# Ridge penalties tried on validation, one decade apart. The penalty is on the sum of squared
# errors of one series' windows (a few hundred). On M4 Hourly (benchmarks/local_linear.py) a
# wider grid (up to 1e6) chose worse on validation and scored worse on the test.
ALPHAS = np.array([1.0, 10.0, 100.0, 1000.0, 10000.0])
# Series per batch, and windows per batch unless one series has more: bound the padded
# (series, windows, inputs) float64 arrays to tens of MB.
_SERIES_PER_BATCH = 64
_WINDOWS_PER_BATCH = 32_768


@dataclass(frozen=True)
class _Groups:
    """Windows stacked per series and padded with zeros after each series' `counts` rows.

    Attributes:
        values: Shape (n_series, max_count, *trailing).
        counts: Windows per series, shape (n_series,).
    """

    values: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray, series: np.ndarray, n_series: int) -> _Groups:
        """Groups `values` (n, *trailing), sorted by `series` (n,), into (n_series, ...)."""
        counts = np.bincount(series, minlength=n_series)
        row = np.arange(len(series)) - np.repeat(np.cumsum(counts) - counts, counts)
        padded = np.zeros((n_series, max(int(counts.max(initial=0)), 1), *values.shape[1:]))
        padded[series, row] = values
        return cls(padded, counts)

    def mask(self) -> np.ndarray:
        """True for real rows, shape (n_series, max_count, 1)."""
        return (np.arange(self.values.shape[1]) < self.counts[:, None])[:, :, None]

    def real(self, grouped: np.ndarray) -> np.ndarray:
        """The real rows of per-series values (n_series, max_count, *k), series by series."""
        return grouped[self.mask()[:, :, 0]]


class _SeriesRows:
    """The rows of each series among windows' `series` (n,), for series 0 .. n_series - 1."""

    def __init__(self, series: np.ndarray, n_series: int) -> None:
        self.order = np.argsort(series, kind="stable")
        self.ends = np.cumsum(np.bincount(series, minlength=n_series))

    def of(self, first: int, stop: int) -> np.ndarray:
        """The rows of series first .. stop - 1, sorted by series."""
        return self.order[(self.ends[first - 1] if first else 0) : self.ends[stop - 1]]


def _batches(series: np.ndarray, n_series: int):
    """Yields (first series, last series + 1, the rows of those series sorted by series): at
    most `_SERIES_PER_BATCH` series and `_WINDOWS_PER_BATCH` rows (or one series' rows)."""
    rows, first = _SeriesRows(series, n_series), 0
    while first < n_series:
        begin = rows.ends[first - 1] if first else 0
        limit = min(first + _SERIES_PER_BATCH, n_series)
        fitting = np.searchsorted(rows.ends[first:limit], begin + _WINDOWS_PER_BATCH, "right")
        stop = first + max(1, int(fitting))
        yield first, stop, rows.of(first, stop)
        first = stop


@dataclass(frozen=True)
class _LocalRidgePath:
    """Some series' ridge solutions for any penalty, from one batched eigendecomposition.

    The algebra of `linear._RidgePath` with a leading series axis: each series' centred Gram
    matrix is decomposed once (`np.linalg.eigh` over the stack), so each penalty is a
    rescaling. Shapes, with n_inputs = input_size * n_features:

    Attributes:
        feature_mean: (n_series, n_inputs).
        target_mean: (n_series, horizon).
        eigenvalues: (n_series, n_inputs), clipped at 0.
        eigenvectors: (n_series, n_inputs, n_inputs).
        projected: eigenvectors' @ centred X' @ centred y, (n_series, n_inputs, horizon).
    """

    feature_mean: np.ndarray
    target_mean: np.ndarray
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    projected: np.ndarray

    @classmethod
    def fit(cls, features: _Groups, targets: _Groups) -> _LocalRidgePath:
        """Decomposes grouped features (n_series, m, n_inputs) against targets (.., horizon)."""
        counts = np.maximum(features.counts, 1)[:, None]
        feature_mean = features.values.sum(axis=1) / counts
        target_mean = targets.values.sum(axis=1) / counts
        mask = features.mask()
        centred = (features.values - feature_mean[:, None]) * mask
        centred_targets = (targets.values - target_mean[:, None]) * mask
        centred_t = centred.transpose(0, 2, 1)
        eigenvalues, eigenvectors = np.linalg.eigh(centred_t @ centred)
        projected = eigenvectors.transpose(0, 2, 1) @ (centred_t @ centred_targets)
        return cls(feature_mean, target_mean, np.maximum(eigenvalues, 0.0), eigenvectors, projected)

    def solve(self, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Solutions for each series' penalty `alpha` (n_series,): (coefficients (n_series,
        n_inputs, horizon), intercept (n_series, horizon))."""
        shrink = 1.0 / (self.eigenvalues + alpha[:, None])
        coefficients = self.eigenvectors @ (self.projected * shrink[..., None])
        intercept = self.target_mean - (self.feature_mean[:, None, :] @ coefficients)[:, 0]
        return coefficients, intercept


class LocalLinearForecaster:
    """One ridge per series from its flattened input window to every horizon step (direct).

    Each series gets its own coefficients, intercept and penalty, from its own windows only,
    with the same inputs as `linear` (every input step of every feature, row-major, and with
    `normalize_window` the last target value subtracted and added back). A series' penalty is
    the one in `ALPHAS` with the lowest mean absolute error on its validation windows, in
    scaled units (exact ties go to the larger): MAE, not MSE, because it is the tournament's
    MASE when the target is scaled by the MASE scale, and on M4 Hourly the MSE chose a penalty
    whose test MASE was 15% worse (benchmarks/local_linear.py). Series are solved in batches of
    `_SERIES_PER_BATCH` with one BLAS thread: thousands of 168 x 168 problems gain nothing from
    BLAS threads and lose much to them on a busy machine. Closed-form and deterministic.

    Attributes:
        alpha: Each series' chosen penalty, shape (n_series,) (None until fitted).
        validation_mae: Each alpha's validation MAE per series, shape (len(ALPHAS), n_series).
        coefficients: Shape (n_series, input_size * n_features, horizon).
        intercept: Shape (n_series, horizon).
        fitted_series: Whether each series had training windows, shape (n_series,).
    """

    kind = "local_linear"
    trains = True

    def __init__(self, config: ModelConfig, seed: int) -> None:
        self.config = config
        self.seed = seed
        self.epochs_trained = 0
        self.best_epoch = 0
        self.stopped_by_budget = False
        self.alpha: np.ndarray | None = None
        self.validation_mae: np.ndarray | None = None
        self.coefficients: np.ndarray | None = None
        self.intercept: np.ndarray | None = None
        self.fitted_series: np.ndarray | None = None
        self._window_shape: tuple[int, int] = (config.input_size, 0)

    @property
    def _normalize(self) -> bool:
        return self.config.normalize_window

    def fit(self, train: WindowSet, validation: WindowSet, callbacks: list | None = None):
        """Fits every series' ridge for each alpha in `ALPHAS` and keeps, per series, the one
        with the lowest MAE on that series' `validation` windows.

        Args:
            train: Training windows of all series; inputs (n, input_size, n_features), targets
                (n, horizon), `series` each window's series index.
            validation: Windows that choose each series' alpha.
            callbacks: Ignored (there are no epochs).

        Raises:
            ValueError: A split is empty or holds NaN or infinite values.
        """
        require_windows(train, "train")
        require_windows(validation, "validation")
        n_series = int(max(train.series.max(), validation.series.max())) + 1
        self.alpha, self.validation_mae = np.empty(n_series), np.empty((len(ALPHAS), n_series))
        n_inputs = int(np.prod(train.window_shape))
        self.coefficients = np.empty((n_series, n_inputs, self.config.horizon))
        self.intercept = np.empty((n_series, self.config.horizon))
        val_rows = _SeriesRows(validation.series, n_series)
        with _one_blas_thread():
            for first, stop, rows in _batches(train.series, n_series):
                part, size = slice(first, stop), stop - first
                path = _LocalRidgePath.fit(*self._groups(train, rows, first, size, "train"))
                validation_groups = self._groups(
                    validation, val_rows.of(first, stop), first, size, "validation"
                )
                errors = _validation_mae(path, *validation_groups)
                best = len(ALPHAS) - 1 - np.argmin(errors[::-1], axis=0)  # ties: larger alpha
                self.validation_mae[:, part], self.alpha[part] = errors, ALPHAS[best]
                self.coefficients[part], self.intercept[part] = path.solve(self.alpha[part])
        self.fitted_series = np.bincount(train.series, minlength=n_series) > 0
        self._window_shape = train.window_shape
        self.epochs_trained = self.best_epoch = 1
        return self

    def finetune(self, windows: WindowSet, epochs: int) -> LocalLinearForecaster:
        """Refits every series with its chosen alpha on `windows` (all history) when `epochs`
        > 0, as `LinearForecaster.finetune` does; a series without windows keeps its fit."""
        if epochs == 0:
            return self
        coefficients, intercept, fitted_series = self._weights()
        if self.alpha is None:
            raise RuntimeError("LocalLinearForecaster is not fitted; call fit() before finetune().")
        n_series = len(coefficients)
        with _one_blas_thread():
            for first, stop, rows in _batches(windows.series, n_series):
                groups = self._groups(windows, rows, first, stop - first, "fine-tuning")
                path = _LocalRidgePath.fit(*groups)
                refit = groups[0].counts > 0
                solved = path.solve(self.alpha[first:stop])
                coefficients[first:stop][refit] = solved[0][refit]
                intercept[first:stop][refit] = solved[1][refit]
        fitted_series |= np.bincount(windows.series, minlength=n_series) > 0
        return self

    def predict(self, inputs: np.ndarray, series: np.ndarray | None = None) -> np.ndarray:
        """Maps scaled inputs (n, input_size, n_features) to scaled forecasts (n, horizon).

        Args:
            series: Each window's series index (n,), as in `WindowSet.series`; may be left out
                only when one series was fitted.

        Raises:
            ValueError: `series` is missing, or names a series that had no training windows.
        """
        coefficients, intercept, fitted_series = self._weights()
        series = self._check_series(series, len(inputs), fitted_series)
        shifted, level = last_value_shift(np.asarray(inputs, dtype=np.float64), self._normalize)
        flat = shifted.reshape(len(shifted), -1)
        forecast = np.empty((len(flat), coefficients.shape[2]))
        with _one_blas_thread():
            for first, stop, rows in _batches(series, len(coefficients)):
                groups = _Groups.of(flat[rows], series[rows] - first, stop - first)
                part = slice(first, stop)
                grouped = groups.values @ coefficients[part] + intercept[part, None]
                forecast[rows] = groups.real(grouped)
        return forecast + level

    def _groups(
        self, windows: WindowSet, rows: np.ndarray, first: int, size: int, split: str
    ) -> tuple[_Groups, _Groups]:
        """The features and targets of windows `rows` (of series first .. first + size - 1),
        grouped by series; rows may be empty (a batch of series with no validation windows).

        Raises:
            ValueError: The windows hold NaN or infinite values.
        """
        if len(rows) == 0:
            features = np.zeros((0, int(np.prod(windows.window_shape))))
            targets = np.zeros((0, windows.horizon))
        else:
            chosen = windows.subset(rows)
            features, targets = regression_data(chosen, split, self._normalize, np.float64)
        series = windows.series[rows] - first
        return _Groups.of(features, series, size), _Groups.of(targets, series, size)

    @staticmethod
    def _check_series(series: np.ndarray | None, n: int, fitted_series: np.ndarray) -> np.ndarray:
        """`series` as an index array, after checking every window's series was fitted."""
        if series is None:
            if len(fitted_series) != 1:
                raise ValueError(
                    "local_linear holds one model per series, so predict() needs each window's "
                    f"series index. Received: series=None with {len(fitted_series)} series fitted"
                )
            return np.zeros(n, dtype=int)
        series = np.asarray(series)
        unknown = (series < 0) | (series >= len(fitted_series))
        unknown[~unknown] = ~fitted_series[series[~unknown]]
        if unknown.any():
            raise ValueError(
                "local_linear has no model for some windows' series (they had no training "
                f"windows). Received: series {np.unique(series[unknown])[:5].tolist()}"
            )
        return series

    def to_bytes(self) -> bytes:
        """Serializes an equivalent float64 Keras model to a `.keras` file's bytes.

        It takes two inputs, `window` (n, input_size, n_features; scaled and shifted as for
        `linear`) and `series` (n, 1; the index into preprocessing.json's `series_ids`), and
        returns `Flatten(window) @ coefficients[series] + intercept[series]`: the weights are
        the Embedding layers `coefficients` (n_series, n_inputs * horizon, row-major over
        (input step, feature, horizon step)) and `intercept` (n_series, horizon).
        """
        import keras

        coefficients, intercept, _ = self._weights()
        input_size, n_features = self._window_shape
        n_series, n_inputs, horizon = coefficients.shape
        window = keras.Input((input_size, n_features), name="window", dtype="float64")
        series = keras.Input((1,), name="series", dtype="int32")
        weights = keras.layers.Embedding(
            n_series, n_inputs * horizon, name="coefficients", dtype="float64"
        )(series)
        weights = keras.layers.Reshape((n_inputs, horizon), dtype="float64")(weights)
        flat = keras.layers.Flatten(dtype="float64")(window)
        linear_part = keras.layers.Dot(axes=(1, 1), dtype="float64")([flat, weights])
        bias = keras.layers.Embedding(n_series, horizon, name="intercept", dtype="float64")(series)
        bias = keras.layers.Flatten(dtype="float64")(bias)
        forecast = keras.layers.Add(name="forecast", dtype="float64")([linear_part, bias])
        model = keras.Model({"window": window, "series": series}, forecast, name=self.kind)
        model.get_layer("coefficients").set_weights([coefficients.reshape(n_series, -1)])
        model.get_layer("intercept").set_weights([intercept])
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.keras"
            model.save(path)
            return path.read_bytes()

    def _weights(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(coefficients, intercept, fitted_series); calling it before `fit` is a bug."""
        if self.coefficients is None or self.intercept is None or self.fitted_series is None:
            raise RuntimeError("LocalLinearForecaster is not fitted; call fit() before using it.")
        return self.coefficients, self.intercept, self.fitted_series


def _validation_mae(path: _LocalRidgePath, features: _Groups, targets: _Groups) -> np.ndarray:
    """Each alpha's MAE on each series' validation windows, shape (len(ALPHAS), n_series); a
    series without validation windows scores 0 for every alpha (so it gets the largest)."""
    errors = np.empty((len(ALPHAS), len(features.counts)))
    for index, alpha in enumerate(ALPHAS):
        coefficients, intercept = path.solve(np.full(len(features.counts), alpha))
        residuals = features.values @ coefficients + intercept[:, None] - targets.values
        total = np.sum(np.abs(residuals) * features.mask(), axis=(1, 2))
        errors[index] = total / (np.maximum(features.counts, 1) * residuals.shape[2])
    return errors


def _one_blas_thread():
    """A context in which NumPy's BLAS and LAPACK calls run on one thread."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def _build_local_linear(
    kind: str, config: ModelConfig, n_features: int, season_length: int, seed: int
) -> LocalLinearForecaster:
    return LocalLinearForecaster(config, seed)


SPECS = (
    ModelSpec(
        name=LocalLinearForecaster.kind,
        rank=35,  # right after linear: per-series weights are more complex than shared ones
        trains=True,
        recurrent=False,
        per_series=True,
        build=_build_local_linear,
        recipe_fields=RIDGE_RECIPE,
        model_file=KERAS_FILE,
    ),
)
