"""Training faults and limits: failures are recorded, budgets stop training, seeds decide."""

from __future__ import annotations

import numpy as np
import pytest

from forecasting.config import PipelineConfig
from forecasting.errors import TrainingError
from forecasting.models import RNNForecaster
from forecasting.outputs import forecast_candidates
from forecasting.training import train_candidate
from forecasting.validation import ValidatedData
from forecasting.windowing import WindowSet, make_windows

pytestmark = pytest.mark.slow


@pytest.fixture
def windows(panel, tiny_model, evaluation):
    return make_windows(panel, ["y"], tiny_model, evaluation)


def test_a_nan_loss_marks_the_candidate_failed_with_its_reason(windows, tiny_model) -> None:
    targets = windows.train.targets.copy()
    targets[0, 0] = np.nan
    poisoned = WindowSet(
        windows.train.inputs, targets, windows.train.series, windows.train.target_start
    )
    broken = type(windows)(**{**windows.__dict__, "train": poisoned})
    result = train_candidate("gru", broken, tiny_model, 24, seed=1)
    assert result.status == "failed"
    assert "nan" in result.reason.lower()
    assert result.forecaster is None and not result.metrics


def test_non_finite_forecasts_mark_the_candidate_failed(windows, tiny_model, monkeypatch) -> None:
    from forecasting.models import RNNForecaster

    monkeypatch.setattr(
        RNNForecaster, "predict", lambda self, inputs: np.full((len(inputs), 6), np.inf)
    )
    result = train_candidate("lstm", windows, tiny_model, 24, seed=1)
    assert result.status == "failed"
    assert "NaN or infinite forecasts" in result.reason


def test_the_time_budget_stops_training_and_keeps_a_model(windows, tiny_model) -> None:
    config = tiny_model.model_copy(update={"max_epochs": 50, "time_budget_seconds": 0.001})
    result = train_candidate("gru", windows, config, 24, seed=1)
    assert result.status == "ok"
    assert result.epochs == 1
    assert "time budget of 0.001 s" in result.reason
    assert np.isfinite(result.test_predictions).all()


def test_same_seed_same_model_whatever_ran_before(windows, tiny_model) -> None:
    import random

    first = train_candidate("gru", windows, tiny_model, 24, seed=7)
    random.random()
    np.random.default_rng().normal(size=100)
    train_candidate("lstm", windows, tiny_model, 24, seed=3)  # draws from every global RNG
    second = train_candidate("gru", windows, tiny_model, 24, seed=7)
    np.testing.assert_array_equal(first.test_predictions, second.test_predictions)
    different = train_candidate("gru", windows, tiny_model, 24, seed=8)
    assert not np.array_equal(first.test_predictions, different.test_predictions)


@pytest.mark.parametrize("kind", ["simple_rnn", "gru", "lstm"])
def test_every_rnn_kind_trains_with_clipped_gradients(windows, tiny_model, kind) -> None:
    result = train_candidate(kind, windows, tiny_model, 24, seed=1)
    assert result.status == "ok", result.reason
    assert result.test_predictions.shape == (len(windows.test), tiny_model.horizon)
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
    panel, windows, tiny_model
) -> None:
    config = PipelineConfig(model=tiny_model)
    data = validated_panel(panel)
    alone = [train_candidate("gru", windows, tiny_model, 24, seed=5)]
    with_others = [
        train_candidate("gru", windows, tiny_model, 24, seed=5),
        train_candidate("lstm", windows, tiny_model, 24, seed=6),
    ]
    first = forecast_candidates(alone, "gru", windows, data, config)["gru"]
    second = forecast_candidates(with_others, "gru", windows, data, config)["gru"]
    np.testing.assert_array_equal(first["y_hat"], second["y_hat"])


def test_a_non_finite_forecast_drops_that_candidate_not_the_run(
    panel, windows, tiny_model, monkeypatch
) -> None:
    config = PipelineConfig(model=tiny_model)
    results = [train_candidate(kind, windows, tiny_model, 24, seed=1) for kind in ("naive", "gru")]
    monkeypatch.setattr(
        RNNForecaster, "predict", lambda self, inputs: np.full((len(inputs), 6), np.nan)
    )
    forecasts = forecast_candidates(results, "naive", windows, validated_panel(panel), config)
    assert list(forecasts) == ["naive"]
    with pytest.raises(TrainingError, match="champion gru failed .* nothing is published"):
        forecast_candidates(results, "gru", windows, validated_panel(panel), config)
