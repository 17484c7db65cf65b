"""Finding the published champion a new run must beat, and whether it can defend its title."""

from __future__ import annotations

from pathlib import Path

from forecasting.config import TRAINED_KINDS, PipelineConfig
from forecasting.errors import ForecastingError
from forecasting.selection import Incumbent
from forecasting.store.layout import MODEL_FILE
from forecasting.store.model_files import load_published_model
from forecasting.store.reader import latest_run_dir, peek_manifest, read_run

# Settings that change what a recipe costs or which rivals it meets, not what it learns.
_NOT_RECIPE = {"candidates", "time_budget_seconds"}


def find_incumbent(config: PipelineConfig, live_mase: dict[str, float | None]) -> Incumbent | None:
    """The champion `latest` points to, or None before the first publish.

    Its run must verify (every file's sha256), its model file must load safely, and its
    recipe (model settings, target, covariates, metric) must equal this run's; otherwise the
    incumbent is returned with a `problem` and cannot defend its title.

    Args:
        live_mase: Per kind, the mean MASE of its scored published forecasts
            (`accuracy.Tracking.live_mase`).
    """
    run_dir = latest_run_dir(config.output_dir, config.name)
    if run_dir is None:
        return None
    model, problem = _peek_champion(run_dir), ""
    try:
        manifest = read_run(run_dir).manifest
        if model in TRAINED_KINDS:
            load_published_model(run_dir / MODEL_FILE, run_dir.parent)
        problem = _recipe_change(manifest.get("config", {}), config)
    except ForecastingError as error:
        problem = f"its files do not load: {error}"
    return Incumbent(model, run_dir.name, problem, live_mase.get(model))


def _peek_champion(run_dir: Path) -> str:
    """The champion's kind from an unverified manifest, or "unknown" when it cannot be read."""
    try:
        return str((peek_manifest(run_dir) or {})["champion"]["model"])
    except (KeyError, TypeError):
        return "unknown"


def _recipe_change(published: dict, config: PipelineConfig) -> str:
    """Names the settings in which the published run's recipe differs from this run's."""
    now = config.model_dump(mode="json")
    keys = [("model", key) for key in now["model"] if key not in _NOT_RECIPE]
    keys += [("data", "target_column"), ("data", "covariates"), ("evaluation", "metric")]
    changed = [
        f"{section}.{key}: {published.get(section, {}).get(key)!r} -> {now[section][key]!r}"
        for section, key in keys
        if _same(published.get(section, {}).get(key)) != _same(now[section][key])
    ]
    if not changed:
        return ""
    return "its settings differ from this run's (" + "; ".join(changed) + ")"


def _same(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value
