"""The ridge candidate: recovers linear maps, picks alpha on validation, saves as Keras."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from forecasting import windowing
from forecasting.config import ModelConfig
from forecasting.models.linear import ALPHAS, LinearForecaster, last_value_shift
from forecasting.windowing import WindowSet

HORIZON = 3
INPUT_SIZE = 6
N_FEATURES = 2


def config(normalize: bool) -> ModelConfig:
    return ModelConfig(horizon=HORIZON, input_size=INPUT_SIZE, normalize_window=normalize)


def window_set(inputs: np.ndarray, targets: np.ndarray) -> WindowSet:
    return WindowSet.of(inputs, targets, np.zeros(len(inputs), dtype=int), np.arange(len(inputs)))


def linear_windows(
    n: int, seed: int, noise: float = 1e-6, signal: float = 1.0, map_seed: int = 99
) -> WindowSet:
    """Random windows whose targets are one fixed affine map of the flattened inputs + noise."""
    rng = np.random.default_rng(seed)
    weights = np.random.default_rng(map_seed).normal(size=(INPUT_SIZE * N_FEATURES, HORIZON))
    inputs = rng.normal(size=(n, INPUT_SIZE, N_FEATURES))
    targets = signal * (inputs.reshape(n, -1) @ weights + 0.5) + rng.normal(0, noise, (n, HORIZON))
    return window_set(inputs, targets)


def fitted(normalize: bool = False, **kwargs) -> LinearForecaster:
    train = linear_windows(200, seed=1, **kwargs)
    validation = linear_windows(60, seed=2, **kwargs)
    return LinearForecaster(config(normalize), seed=0).fit(train, validation)


def test_recovers_a_known_linear_map() -> None:
    forecaster = fitted()
    new = linear_windows(50, seed=3, noise=0.0)

    np.testing.assert_allclose(forecaster.predict(new.inputs), new.targets, atol=1e-4)
    assert forecaster.predict(new.inputs).dtype == np.float64
    assert (forecaster.epochs_trained, forecaster.best_epoch) == (1, 1)


@pytest.mark.parametrize("normalize", [False, True])
def test_matches_scikit_learn_ridge_with_the_chosen_alpha(normalize: bool) -> None:
    from sklearn.linear_model import Ridge

    forecaster = fitted(normalize, noise=0.5)
    train = linear_windows(200, seed=1, noise=0.5)
    shifted, level = last_value_shift(train.inputs, normalize)
    ridge = Ridge(alpha=forecaster.alpha).fit(shifted.reshape(200, -1), train.targets - level)
    new = linear_windows(20, seed=3)
    new_shifted, new_level = last_value_shift(new.inputs, normalize)

    np.testing.assert_allclose(
        forecaster.predict(new.inputs),
        ridge.predict(new_shifted.reshape(20, -1)) + new_level,
        rtol=1e-9,
        atol=1e-9,
    )


def test_pure_noise_chooses_a_large_alpha_and_a_clean_signal_a_small_one() -> None:
    noise = fitted(noise=1.0, signal=0.0)
    clean = fitted(noise=1e-3)

    assert noise.alpha is not None and noise.alpha >= 1e3
    assert clean.alpha is not None and clean.alpha <= 1e-1
    # The choice is the validation minimum, not merely one end of the grid.
    assert noise.validation_mse is not None and clean.validation_mse is not None
    assert noise.alpha == ALPHAS[np.argmin(noise.validation_mse)]
    assert clean.alpha == ALPHAS[np.argmin(clean.validation_mse)]


def test_ties_in_validation_mse_go_to_the_larger_alpha() -> None:
    # Constant targets: every alpha predicts them exactly, so all validation errors are equal.
    train = linear_windows(40, seed=1)
    validation = linear_windows(20, seed=2)
    constant = LinearForecaster(config(False), seed=0).fit(
        window_set(train.inputs, np.ones_like(train.targets)),
        window_set(validation.inputs, np.ones_like(validation.targets)),
    )

    assert constant.alpha == ALPHAS[-1]


def test_a_level_shift_moves_normalized_forecasts_by_exactly_that_level() -> None:
    normalized, raw = fitted(normalize=True, noise=0.1), fitted(normalize=False, noise=0.1)
    inputs = linear_windows(30, seed=3).inputs
    lifted = inputs.copy()
    lifted[:, :, 0] += 7.0

    np.testing.assert_allclose(
        normalized.predict(lifted), normalized.predict(inputs) + 7.0, rtol=0, atol=1e-12
    )
    assert not np.allclose(raw.predict(lifted), raw.predict(inputs) + 7.0, atol=1e-3)


def test_a_level_shift_of_the_training_data_leaves_the_normalized_fit_unchanged() -> None:
    train, validation = linear_windows(200, seed=1, noise=0.1), linear_windows(60, seed=2)

    def lift(windows: WindowSet) -> WindowSet:
        inputs = windows.inputs.copy()
        inputs[:, :, 0] += 7.0
        return window_set(inputs, windows.targets + 7.0)

    plain = LinearForecaster(config(True), seed=0).fit(train, validation)
    lifted = LinearForecaster(config(True), seed=0).fit(lift(train), lift(validation))

    assert plain.alpha == lifted.alpha
    np.testing.assert_allclose(plain.coefficients, lifted.coefficients, atol=1e-12)
    np.testing.assert_allclose(plain.intercept, lifted.intercept, atol=1e-12)


def test_two_fits_give_identical_forecasts() -> None:
    inputs = linear_windows(30, seed=3).inputs

    assert np.array_equal(fitted(noise=0.3).predict(inputs), fitted(noise=0.3).predict(inputs))


def test_finetune_refits_the_chosen_alpha_on_all_history() -> None:
    from sklearn.linear_model import Ridge

    forecaster = fitted(noise=0.5)
    alpha = forecaster.alpha
    history = linear_windows(300, seed=4, map_seed=5)  # a different map
    inputs = linear_windows(10, seed=3).inputs
    before = forecaster.predict(inputs)

    assert np.array_equal(forecaster.finetune(history, epochs=0).predict(inputs), before)
    forecaster.finetune(history, epochs=2)

    ridge = Ridge(alpha=alpha).fit(history.inputs.reshape(300, -1), history.targets)
    assert forecaster.alpha == alpha
    assert not np.allclose(forecaster.predict(inputs), before, atol=0.1)
    np.testing.assert_allclose(
        forecaster.predict(inputs), ridge.predict(inputs.reshape(10, -1)), rtol=1e-9, atol=1e-9
    )


@pytest.mark.parametrize("split", ["train", "validation"])
def test_nan_windows_are_refused_with_a_clear_error(split: str) -> None:
    windows = {"train": linear_windows(40, seed=1), "validation": linear_windows(20, seed=2)}
    inputs = windows[split].inputs.copy()
    inputs[3, 2, 1] = np.nan
    windows[split] = window_set(inputs, windows[split].targets)

    pattern = rf"{split} inputs hold 1 NaN.*target positions \[3\] of series \[0\]"
    with pytest.raises(ValueError, match=pattern):
        LinearForecaster(config(True), seed=0).fit(windows["train"], windows["validation"])


def test_fitting_and_forecasting_import_neither_keras_nor_scikit_learn() -> None:
    code = (
        "import sys, numpy as np\n"
        "from forecasting.config import ModelConfig\n"
        "from forecasting.models.linear import LinearForecaster\n"
        "from forecasting.windowing import WindowSet\n"
        "x = np.random.default_rng(0).normal(size=(50, 6, 2)); y = x[:, -3:, 0]\n"
        "w = WindowSet.of(x, y, np.zeros(50, int), np.arange(50))\n"
        "f = LinearForecaster(ModelConfig(horizon=3, input_size=6), 0).fit(w, w)\n"
        "f.predict(x); f.finetune(w, 1)\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'sklearn') if m in sys.modules))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert output == "[]"


@pytest.mark.slow
@pytest.mark.parametrize("normalize", [False, True])
def test_to_bytes_holds_a_keras_model_that_forecasts_the_same(
    normalize: bool, tmp_path: Path
) -> None:
    import keras

    forecaster = fitted(normalize, noise=0.1)
    path = tmp_path / "model.keras"
    path.write_bytes(forecaster.to_bytes())
    model = keras.saving.load_model(path, safe_mode=True, compile=False)
    inputs = linear_windows(30, seed=3).inputs.astype(np.float32)
    shifted, level = last_value_shift(inputs, normalize)

    assert model.input_shape == (None, INPUT_SIZE, N_FEATURES)
    np.testing.assert_allclose(
        np.asarray(model(shifted)) + level, forecaster.predict(inputs), rtol=1e-5, atol=1e-5
    )


def test_fits_the_same_a_chunk_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Normal equations summed over chunks of 7 windows give the one-chunk fit."""
    whole = fitted(True, noise=0.5)
    train = linear_windows(200, seed=1)
    monkeypatch.setattr(windowing, "CHUNK_BYTES", 7 * train.nbytes // len(train))
    assert len(list(train.chunks())) == 29
    chunked = fitted(True, noise=0.5)
    assert chunked.alpha == whole.alpha
    np.testing.assert_allclose(chunked.validation_mse, whole.validation_mse, rtol=1e-10)
    np.testing.assert_allclose(chunked.coefficients, whole.coefficients, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(chunked.intercept, whole.intercept, rtol=1e-9, atol=1e-12)
