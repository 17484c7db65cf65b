"""The model registry: rank order is the tie-break order, every spec is consistent with the
config, and every registered kind builds, fits, predicts and round-trips through publishing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from forecasting.config import ModelConfig, PipelineConfig, build_config
from forecasting.errors import ConfigError
from forecasting.models import COMMON_RECIPE, find, kinds, make_forecaster, spec, specs
from forecasting.models.linear import last_value_shift
from forecasting.models.rnn import window_scale
from forecasting.selection import select_champion
from forecasting.windowing import WindowSet
from tests.test_selection import evidence, results

EXPECTED_ORDER = (
    "naive",
    "seasonal_naive",
    "linear",
    "local_linear",
    "simple_rnn",
    "gru",
    "lstm",
)


def test_kinds_are_in_rank_order_simplest_first() -> None:
    assert kinds() == EXPECTED_ORDER
    ranks = [entry.rank for entry in specs()]
    assert ranks == sorted(ranks) and len(set(ranks)) == len(ranks)
    assert [entry.name for entry in specs()] == list(kinds())


def test_rank_order_is_the_tie_break_order() -> None:
    same = 1.0 + np.random.default_rng(1).uniform(0, 0.5, 300)
    for count in range(len(kinds()), 0, -1):
        tied = {kind: same for kind in reversed(kinds()[-count:])}  # given most complex first
        choice = select_champion(results(tied), evidence(tied), PipelineConfig().evaluation)
        assert choice.model == kinds()[-count]


def test_the_default_candidates_are_every_kind_in_rank_order() -> None:
    assert ModelConfig().candidates == kinds()
    schema = PipelineConfig.model_json_schema()["$defs"]["ModelConfig"]["properties"]
    assert schema["candidates"]["items"] == {"enum": list(kinds()), "type": "string"}


@pytest.mark.parametrize(
    ("candidates", "recurrent"),
    [(("naive", "linear"), False), (("seasonal_naive", "gru"), True), (("lstm",), True)],
)
def test_trains_rnns_follows_the_recurrent_flag(candidates: tuple, recurrent: bool) -> None:
    assert ModelConfig(candidates=candidates).trains_rnns is recurrent


def test_an_unknown_kind_fails_naming_the_closest_and_every_kind() -> None:
    with pytest.raises(ConfigError) as raised:
        build_config({"model": {"candidates": ["naive", "grus"]}})
    message = str(raised.value)
    assert "'grus' is not a model kind (did you mean 'gru'?)" in message
    assert ", ".join(kinds()) in message and "Received: candidates=['naive', 'grus']" in message
    with pytest.raises(ValueError, match="'arima' is not a model kind; choose from naive"):
        spec("arima")
    assert find("arima") is None


def test_every_recipe_setting_is_a_config_setting() -> None:
    dumped = PipelineConfig().model_dump(mode="json")
    for entry in specs():
        assert entry.recipe[: len(COMMON_RECIPE)] == COMMON_RECIPE
        for setting in entry.recipe:
            section, key = setting.split(".")
            assert key in dumped[section], f"{entry.name}: {setting}"
        assert "model.candidates" not in entry.recipe
        assert "model.time_budget_seconds" not in entry.recipe


def test_trained_kinds_publish_model_keras_and_baselines_nothing() -> None:
    from forecasting.store.layout import MODEL_FILE

    for entry in specs():
        assert entry.model_file == (MODEL_FILE if entry.trains else None), entry.name
        assert not entry.recurrent or entry.trains


def test_the_recurrent_kinds_share_one_builder_and_one_recipe() -> None:
    recurrent = [entry for entry in specs() if entry.recurrent]
    assert [entry.name for entry in recurrent] == ["simple_rnn", "gru", "lstm"]
    assert len({entry.build for entry in recurrent}) == 1
    assert len({entry.recipe for entry in recurrent}) == 1


def tiny_windows(n_features: int, config: ModelConfig, seed: int) -> WindowSet:
    rng = np.random.default_rng(seed)
    n = 64
    inputs = rng.normal(size=(n, config.input_size, n_features)).astype("float32")
    targets = rng.normal(size=(n, config.horizon)).astype("float32")
    return WindowSet.of(inputs, targets, np.zeros(n, dtype=int), np.arange(n))


@pytest.mark.slow
@pytest.mark.parametrize("kind", kinds())
def test_every_kind_builds_fits_and_round_trips(
    kind: str, tiny_model: ModelConfig, tmp_path: Path
) -> None:
    """A published model reloaded from disk, fed the published recipe (shift by the last value
    when normalized), predicts what the fitted candidate predicts; a baseline publishes no
    model file and is rebuilt from the settings alone."""
    from forecasting.store.model_files import load_published_model
    from forecasting.store.writer import publish_run

    entry = spec(kind)
    n_features, season_length = 2, 4
    forecaster = make_forecaster(kind, tiny_model, n_features, season_length, seed=3)
    assert forecaster.kind == kind and forecaster.trains is entry.trains
    train = tiny_windows(n_features, tiny_model, seed=0)
    forecaster.fit(train, tiny_windows(n_features, tiny_model, seed=1))
    inputs = tiny_windows(n_features, tiny_model, seed=2).inputs
    expected = forecaster.predict(inputs)
    assert expected.shape == (len(inputs), tiny_model.horizon)
    saved = forecaster.to_bytes()
    if entry.model_file is None:
        assert saved is None
        rebuilt = make_forecaster(kind, tiny_model, n_features, season_length, seed=3)
        np.testing.assert_array_equal(rebuilt.predict(inputs), expected)
        return
    assert saved is not None
    run_dir = publish_run(tmp_path, "demo", "run-1", {entry.model_file: saved}, {})
    reloaded = load_published_model(run_dir / entry.model_file, tmp_path / "demo" / "runs")
    normalized = entry.depends_on("model.normalize_window") and tiny_model.normalize_window
    shifted, level = last_value_shift(inputs, normalized)
    spread = np.ones_like(level)
    if entry.depends_on("model.scale_window") and tiny_model.scale_window:
        spread = window_scale(shifted)
        shifted = np.concatenate([shifted[:, :, :1] / spread[:, :, None], shifted[:, :, 1:]], 2)
    model_inputs = {"window": shifted, "series": np.zeros((len(inputs), 1), "int32")}
    np.testing.assert_allclose(
        reloaded.predict(model_inputs if entry.per_series else shifted, verbose=0) * spread + level,
        expected,
        rtol=1e-4,
        atol=1e-5,
    )
