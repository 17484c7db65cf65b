"""The candidate models and their registry: one module per family, each declaring its kinds.

`naive` (naive, seasonal_naive), `linear` (ridge, NLinear-style) and `rnn` (simple_rnn, gru,
lstm from one builder). Importing this package is cheap: Keras loads only when an RNN is built
or a model is saved. See `registry` for how a module declares a kind.
"""

from forecasting.models.registry import (
    COMMON_RECIPE,
    KERAS_FILE,
    Forecaster,
    ModelSpec,
    find,
    kinds,
    make_forecaster,
    spec,
    specs,
    unknown_kind,
)

__all__ = [
    "COMMON_RECIPE",
    "KERAS_FILE",
    "Forecaster",
    "ModelSpec",
    "find",
    "kinds",
    "make_forecaster",
    "spec",
    "specs",
    "unknown_kind",
]
