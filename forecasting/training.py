"""Training one candidate on every backtest fold, scoring it, and fine-tuning the champion."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from forecasting.config import ModelConfig
from forecasting.errors import TrainingError
from forecasting.evaluation import held_out_truth, insample_scale, predict_windows, score
from forecasting.execution import placement
from forecasting.models import Forecaster, make_forecaster, spec
from forecasting.windowing import Windows, full_history_windows

Progress = Callable[[str], None]


@dataclass(frozen=True)
class CandidateResult:
    """What one candidate achieved over the backtest folds.

    Attributes:
        kind: The model kind.
        status: "ok" or "failed".
        reason: Why it failed, or a note on how training ended (time budget); empty otherwise.
        metrics: Means over folds of each fold's test-block scores, original units (empty when
            failed).
        fold_metrics: Each fold's scores, oldest fold first.
        fold_seconds: Each fold's wall time of fitting and scoring.
        fold_epochs: Each fold's epochs trained.
        seconds: Wall time of fitting and scoring, all folds.
        epochs: Epochs trained, summed over folds (0 for models without epochs).
        best_epoch: Epoch whose weights the last fold kept.
        forecaster: The last fold's fitted candidate (None when failed); it forecasts the future.
        predictions: Per fold, forecasts for its test windows in original units,
            (n_windows, horizon).
        placement: Where it trained (`execution.placement`: host, pid, thread limit); empty
            when its worker died before it finished.

    Everything it holds pickles (a recurrent forecaster as its weights), so a worker process
    can train it and hand it back.
    """

    kind: str
    status: str
    reason: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    fold_metrics: list[dict[str, float]] = field(default_factory=list)
    fold_seconds: list[float] = field(default_factory=list)
    fold_epochs: list[int] = field(default_factory=list)
    seconds: float = 0.0
    epochs: int = 0
    best_epoch: int = 0
    forecaster: Forecaster | None = None
    predictions: list[np.ndarray] = field(default_factory=list)
    placement: dict[str, Any] = field(default_factory=dict)

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
    folds: list[Windows],
    config: ModelConfig,
    season_length: int,
    seed: int,
    progress: Progress | None = None,
    warm_start: bool = False,
) -> CandidateResult:
    """Fits and scores one candidate on every backtest fold; a failure is recorded, not raised.

    Each fold's model sees only that fold's training and validation windows. With
    `warm_start`, a fold's model starts from the previous fold's weights; otherwise each fold
    builds a fresh model from the same seed. NaN losses, non-finite forecasts and any exception
    inside Keras mark the candidate failed with the reason, so the other candidates go on.
    """
    say = progress or (lambda message: None)
    started = time.perf_counter()
    forecaster: Forecaster | None = None
    predictions, fold_metrics, fold_seconds, fold_epochs, budget_folds = [], [], [], [], []
    for number, windows in enumerate(folds, start=1):
        fold_started = time.perf_counter()
        try:
            if forecaster is None or not warm_start:
                forecaster = make_forecaster(
                    kind, config, len(windows.features), season_length, seed
                )
            logs_epochs = spec(kind).recurrent  # Keras epochs to report
            callbacks = [_epoch_logger(f"{kind} fold {number}", say)] if logs_epochs else []
            forecaster.fit(windows.train, windows.validation, callbacks=callbacks)
            y_hat = predict_windows(forecaster, windows, windows.test)
        except Exception as error:  # noqa: BLE001 - one candidate's failure must not stop the run
            reason = f"fold {number}: {type(error).__name__}: {error}".strip()
            say(f"{kind} failed in {reason}")
            return CandidateResult(
                kind,
                "failed",
                reason=reason,
                seconds=time.perf_counter() - started,
                placement=placement(),
            )
        scale = insample_scale(windows, season_length)[windows.test.series]
        fold_metrics.append(score(held_out_truth(windows), y_hat, scale))
        predictions.append(y_hat)
        fold_seconds.append(time.perf_counter() - fold_started)
        fold_epochs.append(forecaster.epochs_trained)
        if forecaster.stopped_by_budget:
            budget_folds.append(str(number))
    assert forecaster is not None  # at least one fold
    metrics = {name: float(np.mean([m[name] for m in fold_metrics])) for name in fold_metrics[0]}
    budget_note = ""
    if budget_folds:
        budget_note = (
            f"stopped by the time budget of {config.time_budget_seconds:g} s in fold "
            f"{', '.join(budget_folds)}; kept the best weights so far"
        )
        say(f"{kind}: {budget_note}")
    result = CandidateResult(
        kind,
        "ok",
        reason=budget_note,
        metrics=metrics,
        fold_metrics=fold_metrics,
        fold_seconds=fold_seconds,
        fold_epochs=fold_epochs,
        seconds=time.perf_counter() - started,
        epochs=sum(fold_epochs),
        best_epoch=forecaster.best_epoch,
        forecaster=forecaster,
        predictions=predictions,
        placement=placement(),
    )
    say(
        f"{kind}: "
        + ", ".join(f"{name} {value:.4g}" for name, value in metrics.items())
        + f" over {len(folds)} folds ({result.seconds:.1f} s, {result.epochs} epochs)"
    )
    return result


def lost(kind: str, error: BaseException) -> CandidateResult:
    """The failed result of a candidate whose worker returned no result: its process died, or
    the result could not be sent back (the orchestrator saw `error` instead)."""
    reason = f"no result came back from its worker: {type(error).__name__}: {error}"
    return CandidateResult(kind, "failed", reason=reason.strip())


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
