"""Finding the published champion a new run must beat, and whether it can defend its title."""

from __future__ import annotations

from pydantic import BaseModel

from forecasting.config import PipelineConfig
from forecasting.errors import ForecastingError
from forecasting.models import COMMON_RECIPE, find
from forecasting.selection import Incumbent
from forecasting.store.layout import Location, basename
from forecasting.store.model_files import load_run_model
from forecasting.store.reader import peek_manifest, read_run, resolve_latest

_SECTION_ORDER = ("model", "data", "evaluation")  # as the recipe was listed before the registry


def find_incumbent(config: PipelineConfig, live_mase: dict[str, float | None]) -> Incumbent | None:
    """The champion `latest` points to, or None before the first publish.

    Its run must verify (every file's sha256), its model file must load safely, and its
    recipe (the settings that change its kind's model, `ModelSpec.recipe`: target and metric,
    plus e.g. horizon for naive or units for an RNN) must equal this run's; otherwise the
    incumbent is returned with a `problem` and cannot defend its title.

    Args:
        live_mase: Per kind, the mean MASE of its scored published forecasts
            (`accuracy.Tracking.live_mase`).
    """
    run_dir, digest = resolve_latest(config.output_dir, config.name)
    if run_dir is None:
        return None
    model, problem = _peek_champion(run_dir), ""
    model_spec = find(model)
    try:
        manifest = read_run(run_dir, digest).manifest
        if model_spec is not None and model_spec.model_file is not None:
            load_run_model(run_dir, model_spec.model_file, manifest_sha256=digest)
        recipe = model_spec.recipe if model_spec is not None else COMMON_RECIPE
        problem = _recipe_change(manifest.get("config", {}), config, recipe)
    except ForecastingError as error:
        problem = f"its files do not load: {error}"
    return Incumbent(model, basename(run_dir), problem, live_mase.get(model))


def _peek_champion(run_dir: Location) -> str:
    """The champion's kind from an unverified manifest, or "unknown" when it cannot be read."""
    try:
        return str((peek_manifest(run_dir) or {})["champion"]["model"])
    except (KeyError, TypeError):
        return "unknown"


# Settings whose default changed the behaviour when they were added: how a run published
# before them trained (schema 2: z-scored target, MSE loss, no per-window scaling).
BEFORE_IT_EXISTED: dict[str, object] = {
    "model.target_scaling": "zscore",
    "model.loss": "mse",
    "model.scale_window": False,
}


def _recipe_change(published: dict, config: PipelineConfig, recipe: tuple[str, ...]) -> str:
    """Names the `recipe` settings ("model.units") in which the published run differs from
    this run.

    Settings outside the recipe (a new one included) are not compared. A recipe setting that
    the published config lacks was added after it ran: it is taken at the value that behaves
    as the code did before it (`BEFORE_IT_EXISTED`), else at its default.
    """
    now = config.model_dump(mode="json")
    changed = []
    for setting in sorted(recipe, key=lambda setting: _position(now, setting)):
        section, key = setting.split(".", 1)
        unset = BEFORE_IT_EXISTED.get(setting, _default(config, section, key))
        before = published.get(section, {}).get(key, unset)
        if _same(before) != _same(now[section][key]):
            changed.append(f"{setting}: {before!r} -> {now[section][key]!r}")
    if not changed:
        return ""
    return "its settings differ from this run's (" + "; ".join(changed) + ")"


def _position(now: dict, setting: str) -> tuple[int, int]:
    """Where `setting` is declared in the config, so changes are listed in that order."""
    section, key = setting.split(".", 1)
    return _SECTION_ORDER.index(section), list(now[section]).index(key)


def _default(config: PipelineConfig, section: str, key: str) -> object:
    """The default of `section.key` (None when it has none)."""
    part = getattr(config, section)
    field = type(part).model_fields.get(key) if isinstance(part, BaseModel) else None
    if field is None or field.is_required():
        return None
    return field.get_default(call_default_factory=True)


def _same(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value
