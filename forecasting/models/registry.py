"""The model registry: every kind's name, tie-break rank, flags, builder and recipe settings.

Each module of `forecasting.models` declares its kinds in a module-level `SPECS` tuple of
`ModelSpec`; this module finds them by listing the package, so adding a kind is adding one
module (and its test), and no other list names kinds.

It imports neither `forecasting.config` nor Keras at run time: the config validates
`candidates` against `kinds()`, so the model modules may refer to `ModelConfig` only for type
checking, and a user's mistake must fail before TensorFlow loads. The model modules import
Keras inside the functions that need it.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Protocol

from forecasting.store.layout import MODEL_FILE

if TYPE_CHECKING:
    import numpy as np

    from forecasting.config import ModelConfig
    from forecasting.windowing import WindowSet

KERAS_FILE = MODEL_FILE  # what a trained champion is published as
# Settings every kind's recipe includes: what it forecasts and the metric its title was won on.
COMMON_RECIPE = ("data.target_column", "evaluation.metric")
_SECTIONS = ("model", "data", "evaluation")


class Forecaster(Protocol):
    """What every candidate answers, baselines included.

    Every candidate answers `fit(train, validation)` and `predict(inputs, series)` on scaled
    windows (see `windowing.WindowSet`; `series` is each window's series index, which only
    per-series kinds read), so the pipeline treats them all alike.
    """

    kind: str
    trains: bool  # whether fitting changes it (False for the naive baselines)
    epochs_trained: int
    best_epoch: int
    stopped_by_budget: bool

    def fit(
        self, train: WindowSet, validation: WindowSet, callbacks: list | None = None
    ) -> Forecaster: ...

    def finetune(self, windows: WindowSet, epochs: int) -> Forecaster: ...

    def predict(self, inputs: np.ndarray, series: np.ndarray | None = None) -> np.ndarray: ...

    def to_bytes(self) -> bytes | None: ...


# (kind, model settings, number of input features, season length, seed) -> untrained candidate
Builder = Callable[[str, "ModelConfig", int, int, int], Forecaster]


@dataclass(frozen=True)
class ModelSpec:
    """One model kind, as the pipeline sees it.

    Attributes:
        name: The kind's string, as in `model.candidates` ("gru").
        rank: Tie-break order, simplest first: equal scores go to the lower rank.
        trains: Whether it learns from data (False for the naive baselines, which read the
            latest history directly and are never fine-tuned).
        recurrent: Whether it is a Keras RNN (the run then loads Keras up front and logs
            epochs).
        build: Makes an untrained candidate; kinds of one family share one builder.
        recipe_fields: Settings, as "section.key" of `PipelineConfig` ("model.units"), that
            change this kind's model. A published champion defends its title only while
            these (and `COMMON_RECIPE`) are unchanged, so a new setting elsewhere never
            dethrones it.
        model_file: File name its fitted model is published as (from `Forecaster.to_bytes`
            and loaded by `model_files.load_published_model`); None publishes no model file.
        per_series: Whether its weights differ per series: `predict` then needs each
            window's series index, and its published model takes a second input, `series`
            (the index into preprocessing.json's `series_ids`).
    """

    name: str
    rank: int
    trains: bool
    recurrent: bool
    build: Builder
    recipe_fields: tuple[str, ...]
    model_file: str | None = None
    per_series: bool = False

    def __post_init__(self) -> None:
        for setting in self.recipe_fields:
            section, _, key = setting.partition(".")
            if section not in _SECTIONS or not key:
                raise ValueError(
                    f"Recipe settings are 'section.key' with a section in {_SECTIONS}. "
                    f"Received: {self.name} recipe_fields entry {setting!r}"
                )

    @property
    def recipe(self) -> tuple[str, ...]:
        """Every setting the recipe check compares for this kind: `COMMON_RECIPE` first."""
        return (*COMMON_RECIPE, *(s for s in self.recipe_fields if s not in COMMON_RECIPE))

    def depends_on(self, setting: str) -> bool:
        """Whether `setting` ("model.normalize_window") changes this kind's model."""
        return setting in self.recipe


@cache
def _registry() -> dict[str, ModelSpec]:
    """Every `SPECS` entry of the package's public modules, keyed by name, in rank order."""
    package = importlib.import_module(__package__ or "forecasting.models")
    found: dict[str, ModelSpec] = {}
    for module_info in pkgutil.iter_modules(package.__path__):
        if module_info.name.startswith("_") or module_info.name == "registry":
            continue
        module = importlib.import_module(f"{package.__name__}.{module_info.name}")
        for entry in getattr(module, "SPECS", ()):
            if entry.name in found:
                raise RuntimeError(f"Model kind {entry.name!r} is registered twice.")
            found[entry.name] = entry
    ranks = [entry.rank for entry in found.values()]
    if len(set(ranks)) != len(ranks):
        raise RuntimeError(f"Model kinds share a rank, so ties would be ambiguous: {found}")
    return dict(sorted(found.items(), key=lambda item: item[1].rank))


def specs() -> tuple[ModelSpec, ...]:
    """Every registered kind's spec, simplest (lowest rank) first."""
    return tuple(_registry().values())


def kinds() -> tuple[str, ...]:
    """Every registered kind's name, simplest first: the tie-break order and the default
    `model.candidates`."""
    return tuple(_registry())


def find(kind: str) -> ModelSpec | None:
    """The spec of `kind`, or None when no module registers it (an old manifest's kind)."""
    return _registry().get(kind)


def spec(kind: str) -> ModelSpec:
    """The spec of `kind`.

    Raises:
        ValueError: `kind` is not registered; the message names the closest kind.
    """
    found = find(kind)
    if found is None:
        raise ValueError(f"{unknown_kind(kind)} Received: kind={kind!r}")
    return found


def unknown_kind(kind: str) -> str:
    """Says that `kind` is not a model kind, suggests the closest one and lists them all."""
    close = difflib.get_close_matches(kind, kinds(), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{kind!r} is not a model kind{hint}; choose from {', '.join(kinds())}."


def make_forecaster(
    kind: str, config: ModelConfig, n_features: int, season_length: int, seed: int
) -> Forecaster:
    """Builds an untrained candidate of `kind` with one shared set of settings.

    Raises:
        ValueError: `kind` is not registered.
    """
    return spec(kind).build(kind, config, n_features, season_length, seed)
