"""A ridge-regression candidate: the flattened input window mapped linearly to the horizon."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from forecasting.models.registry import KERAS_FILE, ModelSpec

if TYPE_CHECKING:
    from forecasting.config import ModelConfig
    from forecasting.windowing import WindowSet

# Ridge penalties tried on validation, half a decade apart. The penalty is on the sum of squared
# errors (as in scikit-learn's Ridge), so the grid reaches past the Gram matrix's eigenvalues
# (about n_windows for z-scored inputs) from a few hundred up to ~1e5 windows.
ALPHAS = np.logspace(-3, 5, 17)


def last_value_shift(inputs: np.ndarray, normalize: bool) -> tuple[np.ndarray, np.ndarray]:
    """Subtracts each window's last target value from its target feature (as NLinear does).

    Args:
        inputs: Scaled windows, shape (n_windows, input_size, n_features); feature 0 the target.
        normalize: Whether to shift; when False the inputs come back unchanged with level 0.

    Returns:
        (model inputs, level to add back to the model's output), shapes as `inputs` and
        (n_windows, 1), both of `inputs`' dtype.
    """
    if not normalize:
        return inputs, np.zeros((len(inputs), 1), dtype=inputs.dtype)
    level = inputs[:, -1:, 0].copy()
    shifted = inputs.copy()
    shifted[:, :, 0] -= level
    return shifted, level


def require_windows(windows: WindowSet, split: str) -> None:
    """Raises ValueError naming `split` when `windows` is empty."""
    if len(windows) == 0:
        raise ValueError(f"The {split} windows are empty. Received: {split} windows=0")


def regression_data(
    windows: WindowSet, split: str, normalize: bool, dtype: type | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Returns (features (n, n_inputs), shifted targets (n, horizon)) of finite windows, in
    `dtype` (default float32). The windows are cut whole: pass a chunk of a large split.

    Raises:
        ValueError: The windows are empty or hold NaN or infinite values.
    """
    require_windows(windows, split)
    inputs, targets = windows.take()
    for name, values in (("inputs", inputs), ("targets", targets)):
        bad = ~np.isfinite(values)
        if bad.any():
            rows = np.flatnonzero(bad.reshape(len(values), -1).any(axis=1))
            raise ValueError(
                f"The {split} {name} hold {int(bad.sum())} NaN or infinite values, which "
                "ridge regression cannot fit; windows must come from validated, scaled data. "
                f"Received: {split} windows at target positions "
                f"{windows.target_start[rows[:5]].tolist()} of series "
                f"{np.unique(windows.series[rows])[:5].tolist()}"
            )
    inputs = inputs.astype(dtype or inputs.dtype, copy=False)
    shifted, level = last_value_shift(inputs, normalize)
    return shifted.reshape(len(shifted), -1), targets.astype(inputs.dtype, copy=False) - level


def regression_chunks(windows: WindowSet, split: str, normalize: bool, dtype: type | None = None):
    """`regression_data` of each chunk of `windows` in turn (see `WindowSet.chunks`).

    Raises:
        ValueError: As `regression_data`.
    """
    require_windows(windows, split)
    for chunk in windows.chunks():
        yield regression_data(chunk, split, normalize, dtype)


@dataclass(frozen=True)
class _RidgePath:
    """Ridge solutions for every penalty from one eigendecomposition of the centred Gram matrix.

    Solving (X'X + alpha I) w = X'y is what scikit-learn's Ridge does (its Cholesky solver),
    but decomposing X'X once makes each further alpha a rescaling: the whole grid on 18,000
    windows of 168 inputs takes about 0.1-0.3 s on 2 cores, over ten times less than one
    scikit-learn Ridge per alpha, and needs no scikit-learn import (about 1 s).

    Attributes:
        feature_mean: Shape (n_inputs,), with n_inputs = input_size * n_features.
        target_mean: Shape (horizon,).
        eigenvalues: Of the centred X'X, shape (n_inputs,), clipped at 0.
        eigenvectors: Columns of shape (n_inputs,), as a (n_inputs, n_inputs) matrix.
        projected: eigenvectors' @ centred X' @ centred y, shape (n_inputs, horizon).
    """

    feature_mean: np.ndarray
    target_mean: np.ndarray
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    projected: np.ndarray

    @classmethod
    def fit(cls, windows: WindowSet, split: str, normalize: bool) -> _RidgePath:
        """Decomposes the features of `windows` against their targets, a chunk at a time.

        One pass sums X'X, X'y and the means in float64 (the Gram matrix squares rounding
        errors); centring then subtracts n * mean * mean', which loses a few of float64's
        digits only when the means dwarf the spread, as they do not for scaled windows.
        """
        n_inputs = int(np.prod(windows.window_shape))
        n, feature_sum, target_sum = 0, np.zeros(n_inputs), np.zeros(windows.horizon)
        gram, cross = np.zeros((n_inputs, n_inputs)), np.zeros((n_inputs, windows.horizon))
        for features, targets in regression_chunks(windows, split, normalize, np.float64):
            n += len(features)
            feature_sum += features.sum(axis=0)
            target_sum += targets.sum(axis=0)
            gram += features.T @ features
            cross += features.T @ targets
        feature_mean, target_mean = feature_sum / n, target_sum / n
        gram -= n * np.outer(feature_mean, feature_mean)
        cross -= n * np.outer(feature_mean, target_mean)
        eigenvalues, eigenvectors = np.linalg.eigh(gram)
        projected = eigenvectors.T @ cross
        return cls(feature_mean, target_mean, np.maximum(eigenvalues, 0.0), eigenvectors, projected)

    def solve(self, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        """Returns (coefficients (n_inputs, horizon), intercept (horizon,)) for `alpha`."""
        coefficients = self.eigenvectors @ (self.projected / (self.eigenvalues + alpha)[:, None])
        return coefficients, self.target_mean - self.feature_mean @ coefficients


class LinearForecaster:
    """Ridge regression from the flattened input window to the horizon, alpha chosen on validation.

    Every input step of every feature is one regressor (`inputs.reshape(n, -1)`, row-major, as
    Keras' Flatten), with an intercept per horizon step. With `normalize_window`, each window's
    last target value is subtracted from its target inputs and targets and added back to the
    forecast, as `RNNForecaster` does, which makes this NLinear with a ridge penalty.

    The penalty with the lowest validation MSE wins (exact ties go to the larger, simpler one),
    and the coefficients fitted on the training windows are kept, as the RNNs keep the weights
    that early stopping validated. Fitting is closed-form and deterministic; `seed` is unused.

    Attributes:
        alpha: The chosen penalty (None until fitted).
        validation_mse: Validation MSE of each alpha in `ALPHAS`, in scaled units.
        coefficients: Shape (input_size * n_features, horizon); the Keras Dense kernel.
        intercept: Shape (horizon,); the Keras Dense bias.
    """

    kind = "linear"
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
        self._window_shape: tuple[int, int] = (config.input_size, 0)

    def fit(self, train: WindowSet, validation: WindowSet, callbacks: list | None = None):
        """Fits one ridge per alpha in `ALPHAS` on `train` and keeps the best on `validation`.

        Args:
            train: Training windows; inputs (n, input_size, n_features), targets (n, horizon).
            validation: Windows that choose alpha.
            callbacks: Ignored (Keras callbacks for the RNNs; there are no epochs here).

        Raises:
            ValueError: The windows hold NaN or infinite values, or a split is empty.
        """
        path = _RidgePath.fit(train, "train", self.config.normalize_window)
        solutions = [path.solve(alpha) for alpha in ALPHAS]
        squared, count = np.zeros(len(ALPHAS)), 0
        for features, targets in regression_chunks(
            validation, "validation", self.config.normalize_window
        ):
            count += targets.size
            for index, (coefficients, intercept) in enumerate(solutions):
                squared[index] += np.sum((features @ coefficients + intercept - targets) ** 2)
        self.validation_mse = squared / count
        # argmin returns the first minimum, so scanning from the largest alpha breaks ties there.
        best = len(ALPHAS) - 1 - int(np.argmin(self.validation_mse[::-1]))
        self.alpha = float(ALPHAS[best])
        self.coefficients, self.intercept = path.solve(self.alpha)
        self._window_shape = train.window_shape
        self.epochs_trained = 1
        self.best_epoch = 1
        return self

    def finetune(self, windows: WindowSet, epochs: int) -> LinearForecaster:
        """Refits the chosen alpha on `windows` (all history) when `epochs` > 0.

        The closed-form counterpart of the RNNs' fine-tuning: the validated choice (alpha)
        is kept and the coefficients learn the most recent data; the number of epochs does not
        matter beyond being positive.

        Raises:
            ValueError: The windows hold NaN or infinite values, or are empty.
        """
        if epochs == 0:
            return self
        if self.alpha is None:
            raise RuntimeError("LinearForecaster is not fitted; call fit() before finetune().")
        path = _RidgePath.fit(windows, "fine-tuning", self.config.normalize_window)
        self.coefficients, self.intercept = path.solve(self.alpha)
        return self

    def predict(self, inputs: np.ndarray, series: np.ndarray | None = None) -> np.ndarray:
        """Maps scaled inputs (n, input_size, n_features) to scaled forecasts (n, horizon)."""
        coefficients, intercept = self._weights()
        shifted, level = last_value_shift(inputs, self.config.normalize_window)
        forecast = shifted.reshape(len(shifted), -1) @ coefficients + intercept
        return np.asarray(forecast + level, dtype=np.float64)

    def to_bytes(self) -> bytes:
        """Serializes an equivalent Keras model (Flatten, then Dense) to a `.keras` file's bytes.

        Published runs stay uniform: readers load `model.keras` and apply the same recipe
        (scale, subtract the last value, model, add the level back, descale) as for an RNN.
        """
        import keras

        coefficients, intercept = self._weights()
        input_size, n_features = self._window_shape
        model = keras.Sequential(
            [
                keras.Input((input_size, n_features), name="window"),
                keras.layers.Flatten(),
                keras.layers.Dense(self.config.horizon, name="forecast"),
            ],
            name=self.kind,
        )
        model.get_layer("forecast").set_weights([coefficients, intercept])
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.keras"
            model.save(path)
            return path.read_bytes()

    def _weights(self) -> tuple[np.ndarray, np.ndarray]:
        """Returns (coefficients, intercept); calling it before `fit` is a bug."""
        if self.coefficients is None or self.intercept is None:
            raise RuntimeError("LinearForecaster is not fitted; call fit() before using it.")
        return self.coefficients, self.intercept


def _build_linear(
    kind: str, config: ModelConfig, n_features: int, season_length: int, seed: int
) -> LinearForecaster:
    return LinearForecaster(config, seed)


# What a ridge model's coefficients depend on; local_linear shares it.
RIDGE_RECIPE = (
    "model.horizon",
    "model.input_size",
    "model.normalize_window",
    "model.target_scaling",
    "model.finetune_epochs",  # 0 keeps the backtest's coefficients, > 0 refits them
    "data.covariates",
    "model.calendar",
)


SPECS = (
    ModelSpec(
        name=LinearForecaster.kind,
        rank=30,
        trains=True,
        recurrent=False,
        build=_build_linear,
        recipe_fields=RIDGE_RECIPE,
        model_file=KERAS_FILE,
    ),
)
