"""Training faults and limits: failures are recorded, budgets stop training, seeds decide."""

from __future__ import annotations

import numpy as np
import pytest

from forecasting.backtest import collect
from forecasting.config import PipelineConfig
from forecasting.errors import TrainingError
from forecasting.models.rnn import RNNForecaster
from forecasting.outputs import forecast_candidates
from forecasting.training import train_candidate
from forecasting.validation import ValidatedData
from forecasting.windowing import WindowSet, make_folds

pytestmark = pytest.mark.slow


@pytest.fixture
def folds(panel, tiny_model, evaluation):
    return make_folds(panel, ["y"], tiny_model, evaluation)


@pytest.fixture
def windows(folds):
    return folds[-1]


def test_a_nan_loss_marks_the_candidate_failed_with_its_reason(windows, tiny_model) -> None:
    targets = windows.train.targets.copy()
    targets[0, 0] = np.nan
    poisoned = WindowSet.of(
        windows.train.inputs, targets, windows.train.series, windows.train.target_start
    )
    broken = type(windows)(**{**windows.__dict__, "train": poisoned})
    result = train_candidate("gru", [broken], tiny_model, 24, seed=1)
    assert result.status == "failed"
    assert "nan" in result.reason.lower() and result.reason.startswith("fold 1:")
    assert result.forecaster is None and not result.metrics


def test_non_finite_forecasts_mark_the_candidate_failed(folds, tiny_model, monkeypatch) -> None:
    from forecasting.models.rnn import RNNForecaster

    monkeypatch.setattr(
        RNNForecaster,
        "predict",
        lambda self, inputs, series=None: np.full((len(inputs), 6), np.inf),
    )
    result = train_candidate("lstm", folds, tiny_model, 24, seed=1)
    assert result.status == "failed"
    assert "NaN or infinite forecasts" in result.reason


def test_the_time_budget_stops_training_and_keeps_a_model(folds, tiny_model) -> None:
    config = tiny_model.model_copy(update={"max_epochs": 50, "time_budget_seconds": 0.001})
    result = train_candidate("gru", folds, config, 24, seed=1)
    assert result.status == "ok"
    assert result.fold_epochs == [1] * len(folds)
    assert "time budget of 0.001 s in fold 1, 2, 3" in result.reason
    assert all(np.isfinite(p).all() for p in result.predictions)


def test_same_seed_same_model_whatever_ran_before(folds, tiny_model) -> None:
    import random

    first = train_candidate("gru", folds, tiny_model, 24, seed=7, warm_start=True)
    random.random()
    np.random.default_rng().normal(size=100)
    train_candidate("lstm", folds, tiny_model, 24, seed=3)  # draws from every global RNG
    second = train_candidate("gru", folds, tiny_model, 24, seed=7, warm_start=True)
    for a, b in zip(first.predictions, second.predictions, strict=True):
        np.testing.assert_array_equal(a, b)
    different = train_candidate("gru", folds, tiny_model, 24, seed=8, warm_start=True)
    assert not np.array_equal(first.predictions[-1], different.predictions[-1])


@pytest.mark.parametrize("kind", ["simple_rnn", "gru", "lstm"])
def test_every_rnn_kind_trains_with_clipped_gradients(folds, tiny_model, kind) -> None:
    result = train_candidate(kind, folds, tiny_model, 24, seed=1)
    assert result.status == "ok", result.reason
    shapes = [p.shape for p in result.predictions]
    assert shapes == [(len(f.test), tiny_model.horizon) for f in folds]
    assert len(result.fold_metrics) == len(folds)
    assert set(result.metrics) == {"mae", "rmse", "mase", "smape"}
    assert result.forecaster.model.optimizer.clipnorm == 1.0


def validated_panel(panel) -> ValidatedData:
    return ValidatedData(
        frame=panel,
        freq="h",
        source="panel",
        sha256="0" * 64,
        as_of=panel["ds"].max(),
        season_length=24,
    )


def test_champion_forecast_does_not_depend_on_candidates_trained_after_it(
    panel, folds, windows, tiny_model
) -> None:
    config = PipelineConfig(model=tiny_model)
    data = validated_panel(panel)
    alone = [train_candidate("gru", folds, tiny_model, 24, seed=5)]
    with_others = [
        train_candidate("gru", folds, tiny_model, 24, seed=5),
        train_candidate("lstm", folds, tiny_model, 24, seed=6),
    ]
    first = forecast_candidates(alone, "gru", windows, data, config, collect(folds, alone, 24))
    second = forecast_candidates(
        with_others, "gru", windows, data, config, collect(folds, with_others, 24)
    )
    np.testing.assert_array_equal(first["gru"]["y_hat"], second["gru"]["y_hat"])
    np.testing.assert_array_equal(first["gru"]["y_hat_hi_95"], second["gru"]["y_hat_hi_95"])


def test_a_non_finite_forecast_drops_that_candidate_not_the_run(
    panel, folds, windows, tiny_model, monkeypatch
) -> None:
    config = PipelineConfig(model=tiny_model)
    results = [train_candidate(kind, folds, tiny_model, 24, seed=1) for kind in ("naive", "gru")]
    backtest = collect(folds, results, 24)
    monkeypatch.setattr(
        RNNForecaster,
        "predict",
        lambda self, inputs, series=None: np.full((len(inputs), 6), np.nan),
    )
    data = validated_panel(panel)
    forecasts = forecast_candidates(results, "naive", windows, data, config, backtest)
    assert list(forecasts) == ["naive"]
    with pytest.raises(TrainingError, match="champion gru failed .* nothing is published"):
        forecast_candidates(results, "gru", windows, data, config, backtest)
