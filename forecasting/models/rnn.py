"""The recurrent candidates: one builder for SimpleRNN, GRU and LSTM forecasters.

The three kinds share the builder and every argument (units, layers, dropout,
recurrent_dropout, segment_length, seed, ensemble_size), so the SimpleRNN baseline is a fair
comparison. A seed ensemble is one Keras model whose output averages its members.
"""

from __future__ import annotations

import contextlib
import functools
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from forecasting.models.linear import last_value_shift
from forecasting.models.registry import KERAS_FILE, ModelSpec, make_forecaster

if TYPE_CHECKING:
    from forecasting.config import ModelConfig
    from forecasting.models.registry import Forecaster
    from forecasting.windowing import WindowSet

# Each recurrent kind: the Keras layer it stacks and its tie-break rank (simplest first).
# Every other argument is shared.
_KINDS = {"simple_rnn": ("SimpleRNN", 40), "gru": ("GRU", 50), "lstm": ("LSTM", 60)}
_PREDICT_BATCH = 512
# Training batches per compiled Keras call. It only saves per-batch Python overhead: the
# updates, their order and the result are the same. benchmarks/speed.py measured GRU(64) on
# ETTh1: 0.40 -> 0.36 s per epoch, 17.4 -> 15.0 s to early stopping, bit-identical test MSE.
STEPS_PER_EXECUTION = 16
# A split whose cut windows take at most this many bytes goes to Keras whole (see _fit_data).
WHOLE_BYTES = 256 * 2**20
# Recurrent loops of at most this many steps are unrolled (see _member); benchmarks/speed.py.
UNROLL_MAX_STEPS = 32
# Whether training runs through XLA (Keras' jit_compile); benchmarks/speed.py.
JIT_COMPILE = False


def build_rnn(
    kind: str,
    *,
    input_size: int,
    n_features: int,
    horizon: int,
    units: int = 64,
    layers: int = 1,
    dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    segment_length: int = 1,
    seed: int = 0,
    ensemble_size: int = 1,
):
    """Builds an uncompiled Keras model: stacked `kind` layers, then Dense(horizon).

    Every initializer and dropout layer gets an explicit seed derived from `seed`, so the
    model does not depend on what else drew random numbers in the process. With
    `ensemble_size` > 1 the model holds that many such networks side by side on the same
    input, member i seeded from `member_seed(seed, i)`, and its output is their mean (a Keras
    `Average` layer named "forecast", so the file still loads with `safe_mode=True`). Member 0
    is the single model: `ensemble_size=1` builds exactly the model of one member.

    Args:
        kind: "simple_rnn", "gru" or "lstm".

    Returns:
        A `keras.Model` mapping (batch, input_size, n_features) to (batch, horizon).
    """
    import keras

    if kind not in _KINDS:
        raise ValueError(f"Unknown RNN kind {kind!r}; expected one of {tuple(_KINDS)}.")
    inputs = keras.Input((input_size, n_features), name="window")
    hidden = inputs
    segment_length = min(segment_length, input_size)
    if segment_length > 1:
        # Each recurrent step reads one segment of `segment_length` steps (as SegRNN does):
        # the oldest input_size % segment_length steps are dropped to make whole segments.
        n_segments = input_size // segment_length
        hidden = keras.layers.Cropping1D((input_size - n_segments * segment_length, 0))(hidden)
        hidden = keras.layers.Reshape((n_segments, segment_length * n_features), name="segments")(
            hidden
        )
    members = [
        _member(
            hidden,
            kind=kind,
            horizon=horizon,
            units=units,
            layers=layers,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=member_seed(seed, number),
            prefix=f"member_{number}_" if ensemble_size > 1 else "",
        )
        for number in range(ensemble_size)
    ]
    if ensemble_size == 1:
        return keras.Model(inputs, members[0], name=kind)
    return keras.Model(inputs, keras.layers.Average(name="forecast")(members), name=kind)


def member_seed(seed: int, number: int) -> int:
    """The seed of ensemble member `number`: the run's seed for member 0, then steps of 1000
    (a member's layers use seed + 0 ... seed + 10 * layers, so members never share a seed)."""
    return seed + 1000 * number


def _member(
    hidden,
    *,
    kind: str,
    horizon: int,
    units: int,
    layers: int,
    dropout: float,
    recurrent_dropout: float,
    seed: int,
    prefix: str = "",
):
    """One network of `layers` stacked `kind` layers and its Dense(horizon) head, on `hidden`
    (batch, steps, features); returns its output tensor (batch, horizon)."""
    import keras

    layer_class = getattr(keras.layers, _KINDS[kind][0])
    # A short loop (7 segments by default) runs faster unrolled: no while-loop overhead per step.
    unroll = hidden.shape[1] <= UNROLL_MAX_STEPS
    for depth in range(layers):
        hidden = layer_class(
            units,
            return_sequences=depth < layers - 1,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            unroll=unroll,
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 10 * depth),
            recurrent_initializer=keras.initializers.Orthogonal(seed=seed + 10 * depth + 1),
            seed=seed + 10 * depth + 2,
            name=f"{prefix}{kind}_{depth}",
        )(hidden)
    return keras.layers.Dense(
        horizon,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 10 * layers),
        name=f"{prefix}forecast",
    )(hidden)


class RNNForecaster:
    """A Keras RNN with early stopping, gradient clipping and optional last-value normalization.

    With `normalize_window`, each window's last observed target value is subtracted from its
    target inputs and its targets before the network sees them, and added back to the network's
    output (as NLinear does), so the network learns changes rather than levels.

    With a `base` forecaster (`model.base`, the residual or hybrid mode), the network learns
    the correction to the base's forecast instead: the base's forecast, not the last value, is
    what is subtracted from the targets and added back to the output (the inputs are still
    shifted by the last value when `normalize_window`). The base fits before the network and
    the published forecast is base + correction.
    """

    trains = True

    def __init__(
        self,
        kind: str,
        config: ModelConfig,
        n_features: int,
        seed: int,
        base: Forecaster | None = None,
    ) -> None:
        import keras

        keras.utils.set_random_seed(seed)
        self.kind = kind
        self.base = base
        self.config = config
        self.seed = seed
        self.n_features = n_features
        self.model = build_rnn(
            kind,
            input_size=config.input_size,
            n_features=n_features,
            horizon=config.horizon,
            units=config.units,
            layers=config.layers,
            dropout=config.dropout,
            recurrent_dropout=config.recurrent_dropout,
            segment_length=config.segment_length,
            seed=seed,
            ensemble_size=config.ensemble_size,
        )
        self.trainer = _training_model(self.model, config.ensemble_size)
        self.epochs_trained = 0
        self.best_epoch = 0
        self.stopped_by_budget = False

    def _compile(self, learning_rate: float) -> None:
        import keras

        outputs = len(self.trainer.outputs)
        # An ensemble's members each learn from their own loss, as if trained alone (clipnorm
        # clips each weight's gradient on its own); the mean, last, has weight 0: it is
        # trained through its members and only watched, by early stopping.
        self.trainer.compile(
            optimizer=keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=1.0),
            loss=[self.config.loss] * outputs if outputs > 1 else self.config.loss,
            loss_weights=[1.0] * (outputs - 1) + [0.0] if outputs > 1 else None,
            steps_per_execution=STEPS_PER_EXECUTION,
            jit_compile=JIT_COMPILE,
        )

    def _shift(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Returns (network inputs, what to add to its output, what to multiply it by).

        The offset is the level, (n, 1), or with a base its forecast, (n, horizon); the scale,
        (n, 1), is each window's own (see `window_scale`), or 1 when `model.scale_window` is
        off.
        """
        shifted, level = last_value_shift(inputs, self.config.normalize_window)
        offset = level if self.base is None else self.base.predict(inputs).astype(inputs.dtype)
        if not self.config.scale_window:
            return shifted, offset, np.ones_like(level)
        scale = window_scale(shifted)
        scaled = shifted.copy()  # without normalize_window, `shifted` is the caller's inputs
        scaled[:, :, 0] /= scale
        return scaled, offset, scale

    def _cut(self, windows: WindowSet, rows: np.ndarray) -> tuple[np.ndarray, Any, Any]:
        """Returns (network inputs, network targets, sample weights) of windows `rows`.

        With window scaling the network's targets are divided by the window's scale and each
        window is weighted by it (squared for MSE), so the loss stays the configured error in
        the units of the scaled series (under MASE scaling, the units of the metric).
        """
        inputs, targets = windows.take(rows)
        shifted, offset, scale = self._shift(inputs)
        weight = scale[:, 0] ** 2 if self.config.loss == "mse" else scale[:, 0]
        return shifted, self._per_output((targets - offset) / scale), self._per_output(weight)

    def _per_output(self, array: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
        """`array` for every output of the training model (an ensemble's members and mean; a
        tuple, which tf.data takes as a structure where a list would be one tensor)."""
        outputs = len(self.trainer.outputs)
        return (array,) * outputs if outputs > 1 else array

    @contextlib.contextmanager
    def _feed(self, windows: WindowSet, training: bool):
        """`_fit_data` for the length of one `fit` call. TensorFlow keeps a dataset's Python
        generator alive after `fit` returns (about 70 MB a call at 1,000 series), so the
        batches let go of their windows when the call ends."""
        data = self._fit_data(windows, training)
        try:
            yield data
        finally:
            if hasattr(data["x"], "release"):
                data["x"].release()

    def _fit_data(self, windows: WindowSet, training: bool) -> dict:
        """`fit`'s data arguments for `windows` (with `training` False, what its
        `validation_data` takes, under the key "x").

        A split whose windows fit in `WHOLE_BYTES` is cut once and handed to Keras whole,
        shuffled every epoch for training. A larger split, or one with
        `model.windows_per_series` set and exceeded, goes through `_window_batches`, which cuts
        each batch when Keras asks for it (at a cost of about a millisecond a batch): with the
        cap, an epoch visits at most that many windows of each series, drawn afresh every
        epoch for training and once for validation.
        """
        cap = self.config.windows_per_series
        capped = cap is not None and np.bincount(windows.series).max() > cap
        if capped or windows.nbytes > WHOLE_BYTES:
            batches = _window_batches()(
                self._cut,
                windows,
                cap if capped else None,
                self.config.batch_size,
                self.seed,
                training,
            )
            return {"x": batches}
        x, y, weight = self._cut(windows, np.arange(len(windows)))
        if not training:
            return {"x": (x, y, weight)}
        return {
            "x": x,
            "y": y,
            "sample_weight": weight,
            "batch_size": self.config.batch_size,
            "shuffle": True,
        }

    def fit(self, train: WindowSet, validation: WindowSet, callbacks: list | None = None):
        """Trains with early stopping on `validation`, restoring the best epoch's weights.

        Raises:
            RuntimeError: The loss became NaN or infinite.
        """
        import keras

        keras.utils.set_random_seed(self.seed)  # each fold's shuffling independent of the last
        if self.base is not None:
            self.base.fit(train, validation)
        self._compile(self.config.learning_rate)
        stopper = keras.callbacks.EarlyStopping(
            monitor="val_loss" if self.trainer is self.model else "val_forecast_loss",
            mode="min",
            patience=self.config.patience,
            restore_best_weights=True,
        )
        budget = _time_budget(self.config.time_budget_seconds)
        with (
            self._feed(train, training=True) as train_data,
            self._feed(validation, training=False) as validation_data,
        ):
            history = self.trainer.fit(
                **train_data,
                validation_data=validation_data["x"],
                epochs=self.config.max_epochs,
                verbose=0,
                callbacks=[
                    keras.callbacks.TerminateOnNaN(raise_error=True),
                    stopper,
                    budget,
                    *(callbacks or []),
                ],
            )
        self.epochs_trained = len(history.history["loss"])
        self.best_epoch = stopper.best_epoch + 1
        self.stopped_by_budget = budget.exceeded
        return self

    def finetune(self, windows: WindowSet, epochs: int) -> RNNForecaster:
        """Continues training on `windows` (all history) at a tenth of the learning rate."""
        import keras

        if epochs == 0:
            return self
        keras.utils.set_random_seed(self.seed)  # independent of what trained in between
        if self.base is not None:
            self.base.finetune(windows, epochs)
        self._compile(self.config.learning_rate / 10)
        with self._feed(windows, training=True) as data:
            self.trainer.fit(
                **data,
                epochs=epochs,
                verbose=0,
                callbacks=[keras.callbacks.TerminateOnNaN(raise_error=True)],
            )
        return self

    def predict(self, inputs: np.ndarray, series: np.ndarray | None = None) -> np.ndarray:
        """Maps scaled inputs (n, input_size, n_features) to scaled forecasts (n, horizon)."""
        shifted, offset, scale = self._shift(inputs)
        # Pad to whole batches so every call has one input shape and TensorFlow traces once.
        # One batch a call: `Model.predict` builds a tf.data pipeline per call, and TensorFlow
        # kept 50-100 MB of each (300 series) after the call returned.
        padding = -len(shifted) % _PREDICT_BATCH
        padded = np.concatenate([shifted, np.zeros((padding, *shifted.shape[1:]), shifted.dtype)])
        output = np.concatenate(
            [
                np.asarray(self.model.predict_on_batch(padded[start : start + _PREDICT_BATCH]))
                for start in range(0, len(padded), _PREDICT_BATCH)
            ]
            or [np.empty((0, self.config.horizon), np.float32)]
        )[: len(shifted)]
        return np.asarray(output, dtype=np.float64) * scale + offset

    def __getstate__(self) -> dict[str, Any]:
        """Pickles as its settings and the values of its model's variables (weights, and the
        seed generators' states), so a worker process can hand a trained forecaster back."""
        state = {key: value for key, value in vars(self).items() if key not in _KERAS_ATTRIBUTES}
        state["variables"] = [variable.numpy() for variable in self.model.variables]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Rebuilds the same network from the settings and seed, then sets its variables."""
        state = dict(state)
        values = state.pop("variables")
        self.__init__(  # type: ignore[misc]
            state["kind"], state["config"], state["n_features"], state["seed"], state["base"]
        )
        vars(self).update(state)
        for variable, value in zip(self.model.variables, values, strict=True):
            variable.assign(value)

    def to_bytes(self) -> bytes:
        """Serializes the Keras model to the bytes of a `.keras` file."""
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.keras"
            self.model.save(path)
            return path.read_bytes()


_KERAS_ATTRIBUTES = ("model", "trainer")  # rebuilt on unpickling, see __setstate__


def window_scale(shifted: np.ndarray) -> np.ndarray:
    """Each window's standard deviation of its target inputs, (n, 1); 1 where it is 0.

    Under MASE scaling a smooth series' window can span a hundred units; dividing its target
    inputs by its own spread keeps the recurrent layers out of saturation (as neuralforecast
    scales every window), while the output is multiplied back.
    """
    spread = shifted[:, :, 0].std(axis=1, keepdims=True)
    return np.where(spread > 1e-6, spread, 1.0).astype(shifted.dtype)


def _training_model(model, ensemble_size: int):
    """The model that `fit` trains: `model` itself, or for an ensemble the same layers with
    every member's output and then the mean ("forecast") as outputs (weights shared)."""
    if ensemble_size == 1:
        return model
    import keras

    mean = model.get_layer("forecast")
    return keras.Model(model.inputs, [*mean.input, mean.output], name=f"{model.name}_members")


def draw_per_series(series: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of at most `cap` windows of each series, drawn uniformly without replacement,
    in random order."""
    order = np.argsort(series, kind="stable")  # windows come sorted by series: one linear pass
    counts = np.bincount(series)
    starts = np.cumsum(counts) - counts
    drawn = [
        order[start + (np.arange(count) if count <= cap else rng.choice(count, cap, replace=False))]
        for start, count in zip(starts, counts, strict=True)
    ]
    return rng.permutation(np.concatenate(drawn))


@functools.cache
def _window_batches():
    """The Keras dataset class that feeds the RNNs (Keras imported on first use)."""
    import keras

    class WindowBatches(keras.utils.PyDataset):
        """Batches of windows cut from a `WindowSet` only when Keras asks for them, so a split
        of millions of windows never exists whole. `cut(windows, rows)` gives a batch.

        With `shuffle` (training), every epoch visits the windows in a fresh order drawn from a
        generator seeded once, so the same seed draws the same batches; with `cap` set and
        (None: no cap; the caller leaves it out when no series exceeds it), an epoch visits at
        most `cap` windows of each series (`draw_per_series`), drawn afresh every epoch, or once
        and kept when not shuffling (validation).
        """

        def __init__(self, cut, windows, cap, batch_size, seed, shuffle) -> None:
            super().__init__()
            self.cut, self.windows, self.cap = cut, windows, cap
            self.batch_size, self.shuffle = batch_size, shuffle
            self.series = windows.series if cap is not None else None  # what the cap draws by
            self.rng = np.random.default_rng(seed)
            self.rows = self._draw()

        def _draw(self) -> np.ndarray:
            if self.series is not None:
                rows = draw_per_series(self.series, self.cap, self.rng)
                return rows if self.shuffle else np.sort(rows)
            if self.shuffle:
                return self.rng.permutation(len(self.windows))
            return np.arange(len(self.windows))

        def __len__(self) -> int:
            return -(-len(self.rows) // self.batch_size)

        def __getitem__(self, index: int):
            return self.cut(
                self.windows, self.rows[index * self.batch_size : (index + 1) * self.batch_size]
            )

        def on_epoch_end(self) -> None:
            if self.shuffle:
                self.rows = self._draw()

        def release(self) -> None:
            """Drops the windows and the drawn rows; the batches are empty afterwards."""
            self.windows = self.series = None
            self.rows = np.zeros(0, dtype=int)

    return WindowBatches


def _time_budget(seconds: float):
    """A Keras callback that stops training after the batch during which `seconds` ran out.

    Keras still ends the epoch (validation, early stopping's bookkeeping), so the best weights
    seen so far are kept; `exceeded` records that the budget, not convergence, ended training.
    """
    import keras

    class TimeBudget(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.exceeded = False
            self.started = time.monotonic()

        def on_train_begin(self, logs: dict | None = None) -> None:
            self.started = time.monotonic()

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            if time.monotonic() - self.started > seconds:
                self.exceeded = True
                self.model.stop_training = True

    return TimeBudget()


def _build_rnn_forecaster(
    kind: str, config: ModelConfig, n_features: int, season_length: int, seed: int
) -> RNNForecaster:
    base = None
    if config.base != "none":  # any registered kind answers fit / predict on scaled windows
        base = make_forecaster(config.base, config, n_features, season_length, seed)
    return RNNForecaster(kind, config, n_features, seed, base=base)


# Settings that change what an RNN learns; time_budget_seconds only bounds the cost.
_RNN_RECIPE = (
    "model.horizon",
    "model.input_size",
    "model.units",
    "model.layers",
    "model.dropout",
    "model.recurrent_dropout",
    "model.normalize_window",
    "model.target_scaling",
    "model.loss",
    "model.base",
    "model.scale_window",
    "model.calendar",
    "model.segment_length",
    "model.max_epochs",
    "model.patience",
    "model.batch_size",
    "model.windows_per_series",
    "model.learning_rate",
    "model.finetune_epochs",
    "model.ensemble_size",
    "data.covariates",
)

SPECS = tuple(
    ModelSpec(
        name=kind,
        rank=rank,
        trains=True,
        recurrent=True,
        build=_build_rnn_forecaster,
        recipe_fields=_RNN_RECIPE,
        model_file=KERAS_FILE,
    )
    for kind, (_, rank) in _KINDS.items()
)
