"""Training one candidate, scoring it on the test windows, and fine-tuning the champion."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from forecasting.config import ModelConfig
from forecasting.errors import TrainingError
from forecasting.evaluation import held_out_truth, insample_scale, predict_windows, score
from forecasting.models import Forecaster, make_forecaster
from forecasting.windowing import Windows, full_history_windows

Progress = Callable[[str], None]


@dataclass(frozen=True)
class CandidateResult:
    """What one candidate achieved.

    Attributes:
        kind: The model kind.
        status: "ok" or "failed".
        reason: Why it failed, or a note on how training ended (time budget); empty otherwise.
        metrics: Test-window scores in original units (empty when failed).
        seconds: Wall time of fitting and scoring.
        epochs: Epochs trained (0 for naive models).
        best_epoch: Epoch whose weights were kept (0 for naive models).
        forecaster: The fitted candidate (None when failed).
        test_predictions: Forecasts for the test windows in original units, (n_windows, horizon).
    """

    kind: str
    status: str
    reason: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    epochs: int = 0
    best_epoch: int = 0
    forecaster: Forecaster | None = None
    test_predictions: np.ndarray | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def fitted(self) -> Forecaster:
        """The fitted candidate.

        Raises:
            TrainingError: The candidate failed, so there is none.
        """
        if self.forecaster is None:
            raise TrainingError(f"{self.kind} failed ({self.reason}); it has no fitted model.")
        return self.forecaster


def train_candidate(
    kind: str,
    windows: Windows,
    config: ModelConfig,
    season_length: int,
    seed: int,
    progress: Progress | None = None,
) -> CandidateResult:
    """Builds, fits and scores one candidate; a failure is recorded, not raised.

    NaN losses, non-finite forecasts and any exception inside Keras mark the candidate failed
    with the reason, so the other candidates go on.
    """
    say = progress or (lambda message: None)
    started = time.perf_counter()
    try:
        forecaster = make_forecaster(kind, config, len(windows.features), season_length, seed)
        callbacks = [_epoch_logger(kind, say)] if forecaster.trains else []
        forecaster.fit(windows.train, windows.validation, callbacks=callbacks)
        y_hat = predict_windows(forecaster, windows, windows.test)
    except Exception as error:  # noqa: BLE001 - any failure of one candidate must not stop the run
        reason = f"{type(error).__name__}: {error}".strip()
        say(f"{kind} failed: {reason}")
        return CandidateResult(kind, "failed", reason=reason, seconds=time.perf_counter() - started)
    scale = insample_scale(windows, season_length)[windows.test.series]
    metrics = score(held_out_truth(windows), y_hat, scale)
    budget_note = ""
    if forecaster.stopped_by_budget:
        budget_note = (
            f"stopped by the time budget of {config.time_budget_seconds:g} s after "
            f"{forecaster.epochs_trained} epochs; kept the best weights so far"
        )
        say(f"{kind}: {budget_note}")
    result = CandidateResult(
        kind,
        "ok",
        reason=budget_note,
        metrics=metrics,
        seconds=time.perf_counter() - started,
        epochs=forecaster.epochs_trained,
        best_epoch=forecaster.best_epoch,
        forecaster=forecaster,
        test_predictions=y_hat,
    )
    say(
        f"{kind}: "
        + ", ".join(f"{name} {value:.4g}" for name, value in metrics.items())
        + f" ({result.seconds:.1f} s, {result.epochs} epochs)"
    )
    return result


def finetune_champion(
    champion: CandidateResult, windows: Windows, config: ModelConfig
) -> Forecaster:
    """Brings the champion up to the last observation before it forecasts.

    An RNN is fine-tuned for `config.finetune_epochs` epochs at a tenth of its learning rate on
    every window of the full history (test block included). Fine-tuning rather than refitting
    from scratch keeps the weights that early stopping validated (a refit would have no
    held-out data left to stop on) and costs a few epochs instead of a whole training run,
    while still teaching the model the most recent level. Naive models need no refit: they
    read the latest history directly.
    """
    forecaster = champion.fitted()
    if forecaster.trains and config.finetune_epochs:
        history = full_history_windows(windows, config.input_size, config.horizon)
        forecaster.finetune(history, config.finetune_epochs)
    return forecaster


def _epoch_logger(kind: str, say: Progress):
    """A Keras callback that reports each epoch's losses through `say`."""
    import keras

    def on_epoch_end(epoch: int, logs: dict | None) -> None:
        logs = logs or {}
        say(
            f"{kind} epoch {epoch + 1}: loss {logs.get('loss', float('nan')):.4f}, "
            f"val_loss {logs.get('val_loss', float('nan')):.4f}"
        )

    return keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end)
