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

from forecasting.models.linear import last_value_shift
from forecasting.models.registry import KERAS_FILE, ModelSpec

if TYPE_CHECKING:
    from forecasting.config import ModelConfig
    from forecasting.windowing import WindowSet

# Ridge penalties tried on validation, one decade apart. The penalty is on the sum of squared
# errors of one series' windows (a few hundred), so the grid runs from almost none to one that
# keeps little more than the intercept; benchmarks/m4_hourly.py measured the choice.
ALPHAS = np.array([1.0, 10.0, 100.0, 1000.0, 10000.0])
# Series per batched Gram product: bounds the padded (series, windows, inputs) array's memory.
_SERIES_PER_BATCH = 64


@dataclass(frozen=True)
class _Groups:
    """Windows stacked per series and padded: row `count` on of a series is padding.

    Attributes:
        values: Shape (n_series, max_count, *trailing), zeros where padded.
        counts: Windows per series, shape (n_series,).
        order: Position in the original stack of each real row, row-major over (series, row).
    """

    values: np.ndarray
    counts: np.ndarray
    order: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray, series: np.ndarray, n_series: int) -> _Groups:
        """Groups `values` (n, *trailing) by `series` (n,), keeping each series' order."""
        order = np.argsort(series, kind="stable")
        counts = np.bincount(series, minlength=n_series)
        row = np.arange(len(series)) - np.repeat(np.cumsum(counts) - counts, counts)
        padded = np.zeros((n_series, max(int(counts.max(initial=0)), 1), *values.shape[1:]))
        padded[series[order], row] = values[order]
        return cls(padded, counts, order)

    def mask(self) -> np.ndarray:
        """True for real rows, shape (n_series, max_count, 1)."""
        return (np.arange(self.values.shape[1]) < self.counts[:, None])[:, :, None]

    def ungroup(self, grouped: np.ndarray) -> np.ndarray:
        """Turns per-series rows (n_series, max_count, *k) back into the original order."""
        real = grouped[self.mask()[:, :, 0]]
        result = np.empty_like(real)
        result[self.order] = real
        return result


@dataclass(frozen=True)
class _LocalRidgePath:
    """Every series' ridge solutions for any penalty, from one batched eigendecomposition.

    The same algebra as `linear._RidgePath`, with a leading series axis: each series' centred
    Gram matrix is decomposed once (`np.linalg.eigh` over the stack), so each penalty is a
    rescaling. Shapes: n_inputs = input_size * n_features.

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
        n_series, _, n_inputs = features.values.shape
        gram = np.empty((n_series, n_inputs, n_inputs))
        cross = np.empty((n_series, n_inputs, targets.values.shape[2]))
        mask = features.mask()
        for start in range(0, n_series, _SERIES_PER_BATCH):
            part = slice(start, start + _SERIES_PER_BATCH)
            centred = (features.values[part] - feature_mean[part, None]) * mask[part]
            centred_t = centred.transpose(0, 2, 1)
            gram[part] = centred_t @ centred
            cross[part] = centred_t @ (
                (targets.values[part] - target_mean[part, None]) * mask[part]
            )
        eigenvalues, eigenvectors = np.linalg.eigh(gram)
        projected = eigenvectors.transpose(0, 2, 1) @ cross
        return cls(feature_mean, target_mean, np.maximum(eigenvalues, 0.0), eigenvectors, projected)

    def solve(self, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        """(coefficients (n_series, n_inputs, horizon), intercept (n_series, horizon))."""
        coefficients = self.eigenvectors @ (self.projected / (self.eigenvalues + alpha)[..., None])
        intercept = self.target_mean - (self.feature_mean[:, None, :] @ coefficients)[:, 0]
        return coefficients, intercept


class LocalLinearForecaster:
    """One ridge per series from its flattened input window to every horizon step (direct).

    Each series gets its own coefficients and intercept, fitted on its own training windows
    only, with the same inputs as `linear` (every input step of every feature, row-major, and
    with `normalize_window` the last target value subtracted and added back). One penalty, the
    one with the lowest validation MSE summed over all series' windows (scaled units; exact
    ties go to the larger), is shared by all series: a series' own validation slice is a few
    dozen overlapping windows, too few to choose its own. Closed-form and deterministic.

    Attributes:
        alpha: The chosen penalty (None until fitted).
        validation_mse: Validation MSE of each alpha in `ALPHAS`, in scaled units.
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
        self.alpha: float | None = None
        self.validation_mse: np.ndarray | None = None
        self.coefficients: np.ndarray | None = None
        self.intercept: np.ndarray | None = None
        self.fitted_series: np.ndarray | None = None
        self._window_shape: tuple[int, int] = (config.input_size, 0)

    def _grouped(
        self, windows: WindowSet, split: str, n_series: int
    ) -> tuple[_Groups, _Groups, np.ndarray]:
        """(features, shifted targets, level) of finite windows, grouped by series."""
        for name, values in (("inputs", windows.inputs), ("targets", windows.targets)):
            if not np.all(np.isfinite(values)):
                raise ValueError(
                    f"The {split} {name} hold NaN or infinite values, which ridge regression "
                    "cannot fit; windows must come from validated, scaled data. "
                    f"Received: {split} windows={len(values)}"
                )
        shifted, level = last_value_shift(windows.inputs.astype(np.float64), self._normalize)
        features = _Groups.of(shifted.reshape(len(shifted), -1), windows.series, n_series)
        targets = windows.targets.astype(np.float64) - level
        return features, _Groups.of(targets, windows.series, n_series), level

    @property
    def _normalize(self) -> bool:
        return self.config.normalize_window

    def fit(self, train: WindowSet, validation: WindowSet, callbacks: list | None = None):
        """Fits every series' ridge for each alpha in `ALPHAS`; keeps the best on `validation`.

        Args:
            train: Training windows of all series; inputs (n, input_size, n_features), targets
                (n, horizon), `series` each window's series index.
            validation: Windows that choose alpha (of the same series).
            callbacks: Ignored (there are no epochs).

        Raises:
            ValueError: A split is empty or holds NaN or infinite values.
        """
        for split, windows in (("train", train), ("validation", validation)):
            if len(windows) == 0:
                raise ValueError(f"The {split} windows are empty. Received: {split} windows=0")
        n_series = int(max(train.series.max(), validation.series.max())) + 1
        features, targets, _ = self._grouped(train, "train", n_series)
        path = _LocalRidgePath.fit(features, targets)
        val_features, val_targets, _ = self._grouped(validation, "validation", n_series)
        errors = []
        for alpha in ALPHAS:
            coefficients, intercept = path.solve(alpha)
            forecast = val_features.values @ coefficients + intercept[:, None]
            residuals = (forecast - val_targets.values) * val_features.mask()
            errors.append(float(np.sum(residuals**2) / (len(validation) * self.config.horizon)))
        self.validation_mse = np.array(errors)
        best = len(ALPHAS) - 1 - int(np.argmin(self.validation_mse[::-1]))  # ties: larger alpha
        self.alpha = float(ALPHAS[best])
        self.coefficients, self.intercept = path.solve(self.alpha)
        self.fitted_series = features.counts > 0
        self._window_shape = (train.inputs.shape[1], train.inputs.shape[2])
        self.epochs_trained = self.best_epoch = 1
        return self

    def finetune(self, windows: WindowSet, epochs: int) -> LocalLinearForecaster:
        """Refits every series with the chosen alpha on `windows` (all history) when `epochs` > 0,
        as `LinearForecaster.finetune` does."""
        if epochs == 0:
            return self
        if self.alpha is None or self.coefficients is None:
            raise RuntimeError("LocalLinearForecaster is not fitted; call fit() before finetune().")
        features, targets, _ = self._grouped(windows, "fine-tuning", len(self.coefficients))
        self.coefficients, self.intercept = _LocalRidgePath.fit(features, targets).solve(self.alpha)
        self.fitted_series = features.counts > 0
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
        if series is None:
            if len(coefficients) != 1:
                raise ValueError(
                    f"local_linear holds one model per series, so predict() needs each window's "
                    f"series index. Received: series=None with {len(coefficients)} series fitted"
                )
            series = np.zeros(len(inputs), dtype=int)
        series = np.asarray(series)
        unknown = (series < 0) | (series >= len(coefficients))
        unknown[~unknown] = ~fitted_series[series[~unknown]]
        if unknown.any():
            raise ValueError(
                "local_linear has no model for some windows' series (they had no training "
                f"windows). Received: series {np.unique(series[unknown])[:5].tolist()}"
            )
        shifted, level = last_value_shift(np.asarray(inputs, dtype=np.float64), self._normalize)
        grouped = _Groups.of(shifted.reshape(len(shifted), -1), series, len(coefficients))
        forecast = grouped.ungroup(grouped.values @ coefficients + intercept[:, None])
        return forecast + level

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
        recipe_fields=(
            "model.horizon",
            "model.input_size",
            "model.normalize_window",
            "model.finetune_epochs",  # 0 keeps the backtest's coefficients, > 0 refits them
            "data.covariates",
        ),
        model_file=KERAS_FILE,
    ),
)
