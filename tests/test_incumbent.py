"""The recipe check: a published champion defends its title unless a setting of its own kind's
recipe changed; new settings (absent from its manifest) and other kinds' settings never count."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from forecasting.config import PipelineConfig
from forecasting.incumbent import _recipe_change, find_incumbent
from forecasting.models import spec
from forecasting.store.writer import publish_run

FORECAST = pd.DataFrame({"unique_id": ["a"], "y_hat": [1.0]}).to_parquet(index=False)


def publish(tmp_path: Path, champion: str, published_config: dict, day: int = 1) -> None:
    """Publishes a run whose champion is `champion` (a baseline: no model file)."""
    run_id = f"202401{day:02d}T000000-{'ab'[day % 2] * 10}"
    manifest = {
        "schema_version": 2,
        "run_id": run_id,
        "as_of": f"2024-01-{day:02d}T00:00:00",
        "champion": {"model": champion},
        "config": published_config,
    }
    publish_run(tmp_path, "demo", run_id, {"forecast.parquet": FORECAST}, manifest)


def with_model(config: PipelineConfig, **update: object) -> PipelineConfig:
    return config.model_copy(update={"model": config.model.model_copy(update=update)})


def without(published: dict, *settings: str) -> dict:
    """A copy of a dumped config that lacks `settings`, as if written before they existed."""
    copy = {
        key: dict(value) if isinstance(value, dict) else value for key, value in published.items()
    }
    for setting in settings:
        section, key = setting.split(".")
        del copy[section][key]
    return copy


@pytest.mark.parametrize("champion", ["naive", "seasonal_naive"])
def test_a_setting_missing_from_the_published_manifest_keeps_the_title(
    tmp_path: Path, champion: str
) -> None:
    config = PipelineConfig(output_dir=tmp_path, name="demo")
    # units is outside the baselines' recipes; horizon is inside, at its default
    published = without(config.model_dump(mode="json"), "model.units", "model.horizon")
    publish(tmp_path, champion, published)
    found = find_incumbent(config, {})
    assert found is not None and found.model == champion and found.problem == ""


def test_a_changed_setting_of_the_champions_kind_is_named(tmp_path: Path) -> None:
    config = PipelineConfig(output_dir=tmp_path, name="demo")
    publish(tmp_path, "seasonal_naive", config.model_dump(mode="json"))
    found = find_incumbent(with_model(config, season_length=12, units=8), {})
    assert found is not None
    assert found.problem == "its settings differ from this run's (model.season_length: None -> 12)"


def test_a_changed_setting_of_another_kind_does_not_dethrone(tmp_path: Path) -> None:
    config = PipelineConfig(output_dir=tmp_path, name="demo")
    publish(tmp_path, "naive", config.model_dump(mode="json"))
    changed = with_model(config, season_length=12, units=8, learning_rate=0.01)
    changed = changed.model_copy(
        update={"data": changed.data.model_copy(update={"covariates": ("HUFL",)})}
    )
    found = find_incumbent(changed, {})
    assert found is not None and found.problem == ""


@pytest.mark.parametrize(
    ("kind", "update", "expected"),
    [
        ("gru", {"units": 8}, "model.units: 64 -> 8"),
        ("lstm", {"dropout": 0.1, "layers": 2}, "model.layers: 1 -> 2; model.dropout: 0.0 -> 0.1"),
        ("simple_rnn", {"segment_length": 1}, "model.segment_length: 24 -> 1"),
        ("linear", {"normalize_window": False}, "model.normalize_window: True -> False"),
        ("linear", {"units": 8, "max_epochs": 3}, ""),
        ("gru", {"time_budget_seconds": 5.0}, ""),
        ("naive", {"input_size": 48}, ""),
    ],
)
def test_only_the_kinds_recipe_settings_are_compared(
    kind: str, update: dict, expected: str
) -> None:
    config = PipelineConfig()
    published = config.model_dump(mode="json")
    problem = _recipe_change(published, with_model(config, **update), spec(kind).recipe)
    assert problem == (f"its settings differ from this run's ({expected})" if expected else "")


@pytest.mark.parametrize("kind", ["linear", "gru"])
def test_a_new_recipe_setting_at_its_default_keeps_the_title(kind: str) -> None:
    """A setting the published run lacks is taken at its default: unchanged unless this run
    moves it away from the default."""
    config = PipelineConfig()
    published = without(config.model_dump(mode="json"), "model.normalize_window", "model.units")
    assert _recipe_change(published, config, spec(kind).recipe) == ""
    changed = with_model(config, normalize_window=False)
    assert _recipe_change(published, changed, spec(kind).recipe) == (
        "its settings differ from this run's (model.normalize_window: True -> False)"
    )


def test_a_champion_published_before_a_behaviour_changing_default_is_not_kept_by_it() -> None:
    """A schema-2 gru trained with a z-scored target, MSE and unscaled windows: today's
    defaults (MASE scaling, MAE, scaled windows) are a different recipe; the old values are not."""
    config = PipelineConfig()
    published = without(
        config.model_dump(mode="json"), "model.target_scaling", "model.loss", "model.scale_window"
    )
    assert _recipe_change(published, config, spec("gru").recipe) == (
        "its settings differ from this run's (model.target_scaling: 'zscore' -> 'mase'; "
        "model.loss: 'mse' -> 'mae'; model.scale_window: False -> True)"
    )
    old = with_model(config, target_scaling="zscore", loss="mse", scale_window=False)
    assert _recipe_change(published, old, spec("gru").recipe) == ""


@pytest.mark.parametrize(
    ("section", "update", "expected"),
    [
        ("data", {"target_column": "HUFL"}, "data.target_column: 'OT' -> 'HUFL'"),
        ("evaluation", {"metric": "mae"}, "evaluation.metric: 'mase' -> 'mae'"),
    ],
)
@pytest.mark.parametrize("kind", ["naive", "linear", "lstm"])
def test_target_and_metric_are_in_every_recipe(
    kind: str, section: str, update: dict, expected: str
) -> None:
    config = PipelineConfig()
    changed = config.model_copy(
        update={section: getattr(config, section).model_copy(update=update)}
    )
    problem = _recipe_change(config.model_dump(mode="json"), changed, spec(kind).recipe)
    assert problem == f"its settings differ from this run's ({expected})"


def test_an_unregistered_champion_kind_is_compared_on_target_and_metric_only(
    tmp_path: Path,
) -> None:
    config = PipelineConfig(output_dir=tmp_path, name="demo")
    publish(tmp_path, "arima", config.model_dump(mode="json"))
    found = find_incumbent(with_model(config, units=8, horizon=12), {})
    assert found is not None and found.model == "arima" and found.problem == ""
    metric = config.evaluation.model_copy(update={"metric": "mae"})
    found = find_incumbent(config.model_copy(update={"evaluation": metric}), {})
    assert found is not None
    assert (
        found.problem == "its settings differ from this run's (evaluation.metric: 'mase' -> 'mae')"
    )
