"""The RNNs' training recipe: the configured loss is the one trained on, and in residual
(hybrid) mode the forecast, published ones included, is the base's forecast plus the network's
correction."""

from __future__ import annotations

import json

import numpy as np
import pytest

from forecasting.models import make_forecaster
from forecasting.models.linear import last_value_shift
from forecasting.models.naive import SeasonalNaiveForecaster
from forecasting.store.model_files import load_published_model
from forecasting.windowing import make_folds


@pytest.fixture
def windows(panel, tiny_model, evaluation):
    return make_folds(panel, ["y"], tiny_model, evaluation, season_length=24)[-1]


def _network_output(forecaster, inputs: np.ndarray) -> np.ndarray:
    """The correction: the network on the shifted window, its target divided by the window's
    standard deviation, the output multiplied back."""
    shifted, _ = last_value_shift(inputs, forecaster.config.normalize_window)
    spread = shifted[:, :, 0].std(axis=1, keepdims=True)
    shifted[:, :, 0] /= spread
    output = forecaster.model.predict(shifted, verbose=0)
    return np.asarray(output, dtype=np.float64) * spread


@pytest.mark.parametrize(
    ("loss", "error"),
    [("mae", np.abs), ("mse", np.square)],
)
def test_the_configured_loss_is_what_training_minimizes(windows, tiny_model, loss, error) -> None:
    import keras

    config = tiny_model.model_copy(update={"loss": loss, "max_epochs": 1})
    forecaster = make_forecaster("gru", config, 1, 24, seed=3)
    logs: list[dict] = []
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, log: logs.append(log))
    forecaster.fit(windows.train, windows.validation, callbacks=[record])
    residual = forecaster.predict(windows.validation.inputs) - windows.validation.targets
    # Keras' validation loss after the one epoch is the configured error of these weights in
    # the scaled series' units (each window's scale is undone by its sample weight).
    assert logs[-1]["val_loss"] == pytest.approx(float(np.mean(error(residual))), rel=1e-4)


def test_a_hybrid_forecast_is_the_base_forecast_plus_the_correction(windows, tiny_model) -> None:
    config = tiny_model.model_copy(update={"base": "seasonal_naive", "max_epochs": 1})
    forecaster = make_forecaster("gru", config, 1, 24, seed=3)
    forecaster.fit(windows.train, windows.validation)
    inputs = windows.test.inputs
    base = SeasonalNaiveForecaster(config.horizon, 24).predict(inputs)
    np.testing.assert_allclose(
        forecaster.predict(inputs), base + _network_output(forecaster, inputs), atol=1e-5
    )
    direct = make_forecaster("gru", tiny_model.model_copy(update={"max_epochs": 1}), 1, 24, 3)
    direct.fit(windows.train, windows.validation)
    # Same seed and data: only the target differs, so the direct model learns something else.
    assert not np.allclose(direct.predict(inputs), forecaster.predict(inputs), atol=1e-3)


@pytest.mark.slow
def test_a_published_hybrid_forecast_is_base_plus_correction_from_the_files(tiny_config) -> None:
    import pandas as pd

    from forecasting.pipeline import run

    model = tiny_config.model.model_copy(
        update={"base": "seasonal_naive", "candidates": ("gru",), "max_epochs": 1}
    )
    result = run(tiny_config.model_copy(update={"model": model}))
    folder = tiny_config.output_dir / "slice"
    spec = json.loads((folder / "runs" / result.run_id / "preprocessing.json").read_text())
    assert spec["base"] == "seasonal_naive" and spec["target_scaling"] == "mase"
    assert spec["window_scale"] == "std"
    input_size, horizon, season = spec["input_size"], spec["horizon"], spec["season_length"]
    scaling = spec["scaling"]["OT"]["y"]
    history = pd.read_csv(tiny_config.data.path)["OT"].to_numpy()[-input_size:]
    x = (history - scaling["mean"]) / scaling["std"]
    base = x[input_size - season + np.arange(horizon) % season]
    shifted = x - x[-1]
    spread = shifted.std()
    network = load_published_model(folder / "runs" / result.run_id / "model.keras", folder / "runs")
    window = (shifted / spread)[None, :, None].astype("float32")
    correction = network.predict(window, verbose=0)[0] * spread
    forecast = pd.read_csv(folder / "runs" / result.run_id / "forecast.csv")
    np.testing.assert_allclose(
        (base + correction) * scaling["std"] + scaling["mean"], forecast["y_hat"], rtol=1e-5
    )
