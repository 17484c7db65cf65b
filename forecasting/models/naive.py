"""The naive baselines: repeat the last value, or the last season, of the target."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from forecasting.models.registry import ModelSpec

if TYPE_CHECKING:
    from forecasting.config import ModelConfig
    from forecasting.windowing import WindowSet


class _Baseline:
    """What the naive baselines share: nothing to fit, fine-tune or save."""

    kind = ""
    trains = False
    epochs_trained = 0
    best_epoch = 0
    stopped_by_budget = False

    def fit(self, train: WindowSet, validation: WindowSet, callbacks: list | None = None):
        return self

    def finetune(self, windows: WindowSet, epochs: int):
        return self

    def to_bytes(self) -> None:
        return None


class NaiveForecaster(_Baseline):
    """Repeats the last observed value of the target for every horizon step."""

    kind = "naive"

    def __init__(self, horizon: int) -> None:
        self.horizon = horizon

    def predict(self, inputs: np.ndarray, series: np.ndarray | None = None) -> np.ndarray:
        """Maps inputs of shape (n, input_size, n_features) to forecasts of shape (n, horizon)."""
        return np.repeat(inputs[:, -1:, 0], self.horizon, axis=1)


class SeasonalNaiveForecaster(_Baseline):
    """Repeats the last observed season of the target."""

    kind = "seasonal_naive"

    def __init__(self, horizon: int, season_length: int) -> None:
        self.horizon = horizon
        self.season_length = season_length

    def predict(self, inputs: np.ndarray, series: np.ndarray | None = None) -> np.ndarray:
        """Maps inputs of shape (n, input_size, n_features) to forecasts of shape (n, horizon)."""
        season = inputs[:, -self.season_length :, 0]
        steps = np.arange(self.horizon) % self.season_length
        return season[:, steps]


def _build_naive(
    kind: str, config: ModelConfig, n_features: int, season_length: int, seed: int
) -> NaiveForecaster:
    return NaiveForecaster(config.horizon)


def _build_seasonal_naive(
    kind: str, config: ModelConfig, n_features: int, season_length: int, seed: int
) -> SeasonalNaiveForecaster:
    return SeasonalNaiveForecaster(config.horizon, season_length)


SPECS = (
    ModelSpec(
        name=NaiveForecaster.kind,
        rank=10,
        trains=False,
        recurrent=False,
        build=_build_naive,
        recipe_fields=("model.horizon",),
    ),
    ModelSpec(
        name=SeasonalNaiveForecaster.kind,
        rank=20,
        trains=False,
        recurrent=False,
        build=_build_seasonal_naive,
        recipe_fields=("model.horizon", "model.season_length"),
    ),
)
