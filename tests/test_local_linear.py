"""The per-series ridge: equals one scikit-learn Ridge per series and chooses its penalty on
validation windows only (tests/test_published_recipe.py recomputes its published forecast)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting.config import EvaluationConfig, ModelConfig
from forecasting.models import local_linear
from forecasting.models.linear import last_value_shift
from forecasting.models.local_linear import ALPHAS, LocalLinearForecaster
from forecasting.windowing import WindowSet, make_folds
from tests.conftest import synthetic_panel

HORIZON, INPUT_SIZE, N_FEATURES, N_SERIES = 3, 6, 2, 4


def config(normalize: bool) -> ModelConfig:
    return ModelConfig(horizon=HORIZON, input_size=INPUT_SIZE, normalize_window=normalize)


def local_windows(n: int, seed: int, noise: float = 0.5) -> WindowSet:
    """Windows of four series, interleaved and of unequal counts, each with its own affine map."""
    rng = np.random.default_rng(seed)
    weights = np.random.default_rng(99).normal(size=(N_SERIES, INPUT_SIZE * N_FEATURES, HORIZON))
    series = rng.choice(N_SERIES, size=n, p=[0.4, 0.3, 0.2, 0.1])
    inputs = rng.normal(size=(n, INPUT_SIZE, N_FEATURES))
    signal = np.einsum("ni,nih->nh", inputs.reshape(n, -1), weights[series]) + series[:, None]
    targets = signal + rng.normal(0, noise, (n, HORIZON))
    return WindowSet.of(inputs, targets, series, np.arange(n))


def reference(train: WindowSet, alpha: float, normalize: bool, series: int):
    """scikit-learn's Ridge on one series' windows, with the same last-value shift."""
    from sklearn.linear_model import Ridge

    chosen = train.series == series
    shifted, level = last_value_shift(train.inputs[chosen], normalize)
    return Ridge(alpha=alpha).fit(shifted.reshape(len(shifted), -1), train.targets[chosen] - level)


@pytest.mark.parametrize(
    ("normalize", "batch", "windows"),
    [(False, 64, 32_768), (True, 64, 32_768), (True, 3, 32_768), (True, 64, 100)],
)
def test_equals_one_scikit_learn_ridge_per_series(
    normalize: bool, batch: int, windows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Also when the series are solved in batches of 3 (4 series: a full batch and one), or
    of at most 100 windows or one series (the largest has about 120)."""
    monkeypatch.setattr(local_linear, "_SERIES_PER_BATCH", batch)
    monkeypatch.setattr(local_linear, "_WINDOWS_PER_BATCH", windows)
    train, validation, new = local_windows(300, 1), local_windows(80, 2), local_windows(40, 3)
    forecaster = LocalLinearForecaster(config(normalize), seed=0).fit(train, validation)
    assert forecaster.alpha is not None and set(forecaster.alpha) <= set(ALPHAS)
    forecast = forecaster.predict(new.inputs, new.series)
    for series in range(N_SERIES):
        ridge = reference(train, forecaster.alpha[series], normalize, series)
        chosen = new.series == series
        shifted, level = last_value_shift(new.inputs[chosen], normalize)
        expected = ridge.predict(shifted.reshape(len(shifted), -1)) + level
        np.testing.assert_allclose(forecast[chosen], expected, rtol=0, atol=1e-8)


def test_each_series_penalty_is_its_lowest_validation_error_of_the_grid() -> None:
    """Noise-free validation windows favour the smallest penalty; for the series whose
    validation targets are unrelated to its inputs, the largest wins; each error equals the
    per-series reference's mean absolute error."""
    train, validation = local_windows(300, 1), local_windows(80, 2, noise=0.0)
    unrelated = validation.series == 2
    targets = validation.targets.copy()
    targets[unrelated] = np.random.default_rng(5).normal(0, 0.1, (int(unrelated.sum()), HORIZON))
    validation = WindowSet.of(validation.inputs, targets, validation.series, np.arange(80))
    forecaster = LocalLinearForecaster(config(False), seed=0).fit(train, validation)
    assert forecaster.alpha.tolist() == [ALPHAS[0], ALPHAS[0], ALPHAS[-1], ALPHAS[0]]
    expected = np.zeros((len(ALPHAS), N_SERIES))
    for index, alpha in enumerate(ALPHAS):
        for series in range(N_SERIES):
            chosen = validation.series == series
            flat = validation.inputs[chosen].reshape(int(chosen.sum()), -1)
            predicted = reference(train, alpha, False, series).predict(flat)
            expected[index, series] = np.mean(np.abs(predicted - validation.targets[chosen]))
    np.testing.assert_allclose(forecaster.validation_mae, expected, rtol=1e-9)


def test_a_fold_fit_reads_neither_its_test_block_nor_later_data() -> None:
    """Changing a fold's test block changes nothing it fitted; changing its validation slice
    changes the validation errors that choose the penalty."""
    model = ModelConfig(horizon=6, input_size=24)
    evaluation = EvaluationConfig(n_folds=2)
    panel = synthetic_panel(n_series=3, length=300)

    def fitted(frame: pd.DataFrame) -> LocalLinearForecaster:
        fold = make_folds(frame, ["y"], model, evaluation)[0]
        return LocalLinearForecaster(model, seed=0).fit(fold.train, fold.validation)

    fold = make_folds(panel, ["y"], model, evaluation)[0]
    position = panel.groupby("unique_id").cumcount().to_numpy()
    base = fitted(panel)
    later = panel.assign(y=np.where(position >= fold.test_start[0], panel.y * 5 + 3, panel.y))
    changed = fitted(later)
    np.testing.assert_array_equal(changed.alpha, base.alpha)
    np.testing.assert_array_equal(changed.coefficients, base.coefficients)
    np.testing.assert_array_equal(changed.validation_mae, base.validation_mae)
    in_validation = (position >= fold.train_end[0]) & (position < fold.test_start[0])
    moved = fitted(panel.assign(y=np.where(in_validation, panel.y + 4.0, panel.y)))
    assert not np.allclose(moved.validation_mae, base.validation_mae)


def test_many_series_need_the_series_index_and_unknown_series_are_refused() -> None:
    train, validation = local_windows(300, 1), local_windows(80, 2)
    forecaster = LocalLinearForecaster(config(True), seed=0).fit(train, validation)
    with pytest.raises(ValueError, match="needs each window's series index"):
        forecaster.predict(train.inputs[:3])
    with pytest.raises(ValueError, match=r"no model for some windows' series.*\[7\]"):
        forecaster.predict(train.inputs[:2], np.array([0, 7]))


def test_finetune_refits_every_series_on_all_history_with_the_chosen_penalty() -> None:
    train, validation, history = local_windows(300, 1), local_windows(80, 2), local_windows(400, 4)
    forecaster = LocalLinearForecaster(config(True), seed=0).fit(train, validation)
    before = forecaster.coefficients.copy()
    assert forecaster.finetune(history, epochs=0).coefficients is not None
    np.testing.assert_array_equal(forecaster.coefficients, before)
    forecaster.finetune(history, epochs=1)
    new = local_windows(20, 5)
    for series in range(N_SERIES):
        chosen = new.series == series
        shifted, level = last_value_shift(new.inputs[chosen], True)
        ridge = reference(history, forecaster.alpha[series], True, series)
        np.testing.assert_allclose(
            forecaster.predict(new.inputs[chosen], new.series[chosen]),
            ridge.predict(shifted.reshape(len(shifted), -1)) + level,
            rtol=0,
            atol=1e-8,
        )
