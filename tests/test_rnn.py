"""Seed ensembles of the RNN builder: one Keras model averaging its members, trained jointly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from forecasting.config import ModelConfig
from forecasting.models.rnn import RNNForecaster
from forecasting.windowing import WindowSet

pytestmark = pytest.mark.slow


@pytest.fixture
def windows() -> WindowSet:
    rng = np.random.default_rng(0)
    return WindowSet.of(
        rng.normal(size=(128, 24, 2)).astype("float32"),
        rng.normal(size=(128, 6)).astype("float32"),
        np.zeros(128, int),
        np.arange(128),
    )


def fixed_epochs(tiny_model: ModelConfig, ensemble_size: int) -> ModelConfig:
    """Two epochs whatever the validation loss does, so single and joint training match."""
    update = {"ensemble_size": ensemble_size, "max_epochs": 2, "patience": 10}
    return tiny_model.model_copy(update=update)


def member_outputs(forecaster: RNNForecaster, inputs: np.ndarray) -> list[np.ndarray]:
    """Each member's own forecast, read from its Dense head inside the ensemble model."""
    import keras

    model = forecaster.model
    return [
        keras.Model(model.inputs, model.get_layer(f"member_{number}_forecast").output).predict(
            inputs, verbose=0
        )
        for number in range(forecaster.config.ensemble_size)
    ]


def test_an_ensembles_output_is_the_mean_of_its_different_members(windows, tiny_model) -> None:
    forecaster = RNNForecaster("simple_rnn", fixed_epochs(tiny_model, 3), n_features=2, seed=5)
    forecaster.fit(windows, windows)
    members = member_outputs(forecaster, windows.inputs)
    assert not np.allclose(members[0], members[1])  # different seeds, different networks
    np.testing.assert_allclose(
        forecaster.model.predict(windows.inputs, verbose=0), np.mean(members, axis=0), atol=1e-6
    )


def test_joint_training_trains_each_member_as_if_alone(windows, tiny_model) -> None:
    single = RNNForecaster("gru", fixed_epochs(tiny_model, 1), n_features=2, seed=5)
    ensemble = RNNForecaster("gru", fixed_epochs(tiny_model, 2), n_features=2, seed=5)
    single.fit(windows, windows)
    ensemble.fit(windows, windows)
    np.testing.assert_allclose(
        member_outputs(ensemble, windows.inputs)[0],
        single.model.predict(windows.inputs, verbose=0),
        atol=1e-5,
    )


def test_ensemble_size_one_is_the_single_network(windows, tiny_model) -> None:
    forecaster = RNNForecaster("gru", tiny_model, n_features=2, seed=5)
    assert forecaster.trainer is forecaster.model
    weighted = [layer.name for layer in forecaster.model.layers if layer.weights]
    assert weighted == ["gru_0", "forecast"]
    assert forecaster.model.output.shape == (None, tiny_model.horizon)


def test_a_saved_ensemble_loads_safely_and_forecasts_the_same(
    windows, tiny_model, tmp_path: Path
) -> None:
    import keras

    forecaster = RNNForecaster("lstm", fixed_epochs(tiny_model, 2), n_features=2, seed=5)
    forecaster.fit(windows, windows)
    path = tmp_path / "model.keras"
    path.write_bytes(forecaster.to_bytes())
    reloaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    inputs, _, _ = forecaster._shift(windows.inputs)
    np.testing.assert_array_equal(
        reloaded.predict(inputs, verbose=0), forecaster.model.predict(inputs, verbose=0)
    )
    assert reloaded.get_layer("forecast").__class__.__name__ == "Average"
