"""Builds a run's outputs in memory: future forecasts, preprocessing spec and manifest."""

from __future__ import annotations

import hashlib
import json
import platform
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from forecasting import execution
from forecasting.backtest import Backtest, backtest_parts
from forecasting.config import ModelConfig, PipelineConfig
from forecasting.errors import TrainingError
from forecasting.evaluation import insample_scale, predict_descaled
from forecasting.intervals import LEVELS, conformal_quantiles, interval_columns
from forecasting.models import Forecaster, spec
from forecasting.selection import Choice, Evidence, leaderboard
from forecasting.store.formats import frame_files, json_bytes
from forecasting.store.layout import SCHEMA_VERSION, iso
from forecasting.store.manifest import check_manifest
from forecasting.training import CandidateResult, finetune_champion
from forecasting.validation import ValidatedData
from forecasting.windowing import (
    CALENDAR_PHASES,
    Windows,
    calendar_names,
    last_inputs,
    min_series_length,
)

# Packages whose version can change a run's numbers: the fingerprint (and so the run id) holds
# them. scipy's p-values decide promotions. The library's own code is `_code_digest`'s part.
_RESULT_PACKAGES = ("numpy", "pandas", "scipy", "keras", "tensorflow", "tensorflow-cpu")
# The manifest records these too, for the record only: they move data and runs around (Prefect,
# pyarrow reads bytes that the data hash already covers) without changing a number.
_RECORDED_PACKAGES = ("recurrent-forecast", *_RESULT_PACKAGES, "pyarrow", "prefect")


def forecast_future(
    forecaster: Forecaster,
    windows: Windows,
    data: ValidatedData,
    config: ModelConfig,
    quantiles: dict[int, np.ndarray],
) -> pd.DataFrame:
    """Forecasts the `horizon` steps after each series' last observation, with intervals.

    Args:
        windows: The last backtest fold, which ends at the last observation.
        quantiles: Conformal half-widths per level and step in units of each series' MASE
            scale (`intervals.conformal_quantiles` of the candidate's backtest errors).

    Returns:
        Columns `unique_id`, `ds`, `horizon_step` (1-based), `y_hat` and the interval bounds
        (`y_hat_lo_80`, ...); one row per series and step.
    """
    series = np.arange(len(windows.series_ids))
    y_hat = predict_descaled(forecaster, windows, last_inputs(windows, config.input_size), series)
    bounds = interval_columns(y_hat, insample_scale(windows, data.season_length), quantiles)
    return future_frame(windows.series_ids, y_hat, bounds, data)


def future_frame(
    series_ids: list[str], y_hat: np.ndarray, bounds: dict[str, np.ndarray], data: ValidatedData
) -> pd.DataFrame:
    """Forecasts of shape (n_series, horizon) and their interval bounds as the long frame of
    `forecast_future`, dated from each series' last observation on."""
    n_series, horizon = y_hat.shape
    last = data.frame.groupby("unique_id", sort=False)["ds"].max()
    offset = pd.tseries.frequencies.to_offset(data.freq)
    dates = [
        pd.Series(pd.date_range(last[series_id] + offset, periods=horizon, freq=offset))
        for series_id in series_ids
    ]
    frame = pd.DataFrame(
        {
            "unique_id": np.repeat(np.asarray(series_ids, dtype=object), horizon),
            "ds": pd.concat(dates, ignore_index=True) if dates else [],
            "horizon_step": np.tile(np.arange(1, horizon + 1), n_series),
            "y_hat": y_hat.ravel(),
            **{column: values.ravel() for column, values in bounds.items()},
        }
    )
    frame["unique_id"] = frame["unique_id"].astype("str")
    return frame


def forecast_candidates(
    results: list[CandidateResult],
    champion: str,
    windows: Windows,
    data: ValidatedData,
    config: PipelineConfig,
    backtest: Backtest,
) -> dict[str, pd.DataFrame]:
    """Fine-tunes the champion (see `finetune_champion`), then forecasts with every finished
    candidate, each with intervals from its own backtest errors; returns one `forecast_future`
    frame per kind.

    A candidate other than the champion whose forecast is not finite is left out of the
    candidate forecasts; the run goes on.

    Raises:
        TrainingError: The champion failed while fine-tuning or forecasting; nothing is published.
    """

    def future(kind: str) -> pd.DataFrame:
        quantiles = conformal_quantiles(backtest.abs_scaled_errors(kind))
        return forecast_future(_forecaster(results, kind), windows, data, config.model, quantiles)

    try:
        finetune_champion(next(r for r in results if r.kind == champion), windows, config.model)
        forecasts = {champion: future(champion)}
    except (RuntimeError, FloatingPointError, ValueError) as error:
        raise TrainingError(
            f"The champion {champion} failed while fine-tuning on all data or forecasting "
            f"({type(error).__name__}: {error}); nothing is published and the previous run "
            "stays. Lower the learning rate or set model.finetune_epochs = 0."
        ) from None
    for result in results:
        if result.ok and result.kind != champion:
            try:
                forecasts[result.kind] = future(result.kind)
            except FloatingPointError:
                continue
    return forecasts


def _forecaster(results: list[CandidateResult], kind: str) -> Forecaster:
    return next(r.fitted() for r in results if r.kind == kind)


def label_forecast(
    frame: pd.DataFrame, model: str, run_id: str, as_of: pd.Timestamp
) -> pd.DataFrame:
    """Adds the reader contract's `model`, `run_id` and `as_of` columns."""
    return frame.assign(model=model, run_id=run_id, as_of=as_of)


def preprocessing_spec(
    windows: Windows, config: PipelineConfig, data: ValidatedData, champion: str
) -> dict:
    """Everything needed to turn new history into the champion's input, and its output back.

    `scaling` holds, per series and feature, the `mean` subtracted and the `std` divided by
    (for the target under `target_scaling` "mase", the series' in-sample seasonal naive MAE);
    `base` names the forecaster whose forecast the model's output corrects (residual mode), or
    None when the model forecasts directly; `calendar` the calendar channels appended to each
    input row (see `calendar_spec`), or None.
    """
    normalized = spec(champion).depends_on("model.normalize_window") and (
        config.model.normalize_window
    )
    base = config.model.base if spec(champion).depends_on("model.base") else "none"
    window_scaled = spec(champion).depends_on("model.scale_window") and config.model.scale_window
    model_call = "y = model(x[None])[0]"
    if spec(champion).per_series:
        model_call = "y = model({'window': x[None], 'series': [[series_ids.index(unique_id)]]})[0]"
    return {
        "schema_version": SCHEMA_VERSION,
        "model": champion,
        "input_size": config.model.input_size,
        "horizon": config.model.horizon,
        "freq": data.freq,
        "season_length": data.season_length,
        "target": config.data.target_column,
        "features": windows.features,
        "series_ids": windows.series_ids,
        "target_scaling": windows.scaling.target,
        "scaling": windows.scaling.to_dict(windows.series_ids, windows.features),
        "window_normalization": "last_value" if normalized else None,
        "window_scale": "std" if window_scaled else None,
        "base": None if base == "none" else base,
        "calendar": calendar_spec(windows.calendar),
        "recipe": [
            "x = last input_size rows of [target, *covariates] per series, oldest first",
            "if calendar: append to each row calendar.channels of its ds (see calendar.formula)",
            "x = (x - mean) / std with that series' statistics per feature (calendar: 0 and 1)",
            "if base == 'seasonal_naive': b[k] = x[input_size - season_length + k % "
            "season_length, 0] for k in 0..horizon-1 (before the next line)",
            "if window_normalization == 'last_value': level = x[-1, 0]; x[:, 0] -= level",
            "if window_scale == 'std': s = std(x[:, 0]) (1 when 0); x[:, 0] /= s; else s = 1",
            model_call + " * s (+ b when base is set, else + level when normalized)",
            "y_hat = y * std_target + mean_target",
        ],
    }


def calendar_spec(cycles: tuple[str, ...]) -> dict | None:
    """The calendar channels of the inputs and how each is computed from a row's `ds`, or None
    when the inputs hold none."""
    if not cycles:
        return None
    return {
        "channels": calendar_names(cycles),
        "phase": {cycle: CALENDAR_PHASES[cycle] for cycle in cycles},
        "formula": "calendar_<cycle>_sin = sin(2 * pi * phase), calendar_<cycle>_cos = "
        "cos(2 * pi * phase), phase on the clock of ds as forecast.csv writes it, "
        "day_phase = the day cycle's phase",
    }


def build_manifest(
    *,
    run_id: str,
    as_of: pd.Timestamp,
    config: PipelineConfig,
    data: ValidatedData,
    results: list[CandidateResult],
    choice: Choice,
    tracking: dict,
    short_series: list[dict] | None = None,
) -> dict:
    """The run's manifest without `files` (publishing adds the hashes last).

    Args:
        config: The settings as given; the backtest's folds are those fitted to the data
            (`data.folds`).
        tracking: How earlier published forecasts scored against later actuals
            (`accuracy.track`).
        short_series: The series too short for the backtest and the baseline that forecast
            each (`_short_series_entries`).
    """
    frame = data.frame
    folds = data.folds.evaluation if data.folds is not None else config.evaluation
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "as_of": iso(as_of),
        "data": {
            "source": data.source,
            "sha256": data.sha256,
            "first_ds": iso(frame["ds"].min()),
            "last_ds": iso(frame["ds"].max()),
            "rows": len(frame),
            "series": len(data.series_ids),
            "freq": data.freq,
            "filled_values": sum(data.filled.values()),
            "filled_by_series": data.filled,
            "duplicates_dropped": data.duplicates_dropped,
            "rows_after_as_of": data.rows_after_as_of,
            "rows_out_of_order": data.rows_out_of_order,
        },
        "config": config.model_dump(mode="json"),
        "season_length": data.season_length,
        "seeds": {"seed": config.seed, "per_candidate": {r.kind: config.seed for r in results}},
        "versions": {"python": platform.python_version(), **_versions(_RECORDED_PACKAGES)},
        "champion": {
            "model": choice.model,
            "reason": choice.reason,
            "margins_percent": choice.margins,
            "decision": choice.decision,
        },
        "backtest": {
            "n_folds": folds.fold_count(),
            "fold_size": folds.block_size(config.model.horizon),
            "warm_start": config.evaluation.warm_start,
            "interval_levels": list(LEVELS),
            "adapted": (data.folds.note or None) if data.folds is not None else None,
            "typical_length": data.folds.typical_length if data.folds is not None else None,
        },
        "short_series": short_series or [],
        "execution": execution.manifest_entry(config, {r.kind: r.placement for r in results}),
        "published_accuracy": tracking,
        "candidates": [
            {
                "model": r.kind,
                "status": r.status,
                "metrics": r.metrics,
                "fold_metrics": r.fold_metrics,
                "reason": r.reason,
                "seconds": round(r.seconds, 3),
                "epochs": r.epochs,
                "best_epoch": r.best_epoch,
                "fine_tuned_epochs": config.model.finetune_epochs
                if r.kind == choice.model and r.fitted().trains
                else 0,
            }
            for r in results
        ],
    }
    check_manifest(manifest)  # every field of the schema set, each of the right type
    return manifest


def _short_series_entries(
    data: ValidatedData, forecast: pd.DataFrame, model: ModelConfig
) -> list[dict]:
    """The manifest's `short_series`: each series too short for the backtest, its length, the
    length the backtest needs, and the baseline that forecast it (from `forecast`)."""
    if data.folds is None:
        return []
    chosen = forecast.groupby("unique_id", sort=False)["model"].first()
    return [
        {
            "unique_id": series_id,
            "length": length,
            "needed": min_series_length(length, model, data.folds.evaluation),
            "model": str(chosen[series_id]),
        }
        for series_id, length in data.short_series.items()
    ]


def fingerprint(config: PipelineConfig, data: ValidatedData) -> str:
    """Hex sha256 of what determines a run's result: the data's bytes, every setting that
    shapes the models (not where outputs go, where the file lies or how large it may be), the
    seed and the versions of the packages that compute the numbers. The as-of is a setting,
    so a replay gets its own run id. Where the candidates train (`execution`) is not: every
    task runner computes the same numbers, so it gives the same run id."""
    settings = config.model_dump(
        mode="json", exclude={"name", "output_dir", "keep_runs", "execution"}
    )
    for key in ("path", "max_file_bytes"):
        settings["data"].pop(key)
    document = {
        "data": data.sha256,
        "config": settings,
        "versions": _versions(_RESULT_PACKAGES),
        "code": _code_digest(),
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def _code_digest(package: Path = Path(__file__).parent) -> str:
    """sha256 of this library's source, subpackages included, so a code change is a new run
    even at one version. Each module counts with its path relative to the package."""
    digest = hashlib.sha256()
    modules = sorted(
        (module.relative_to(package).as_posix(), module) for module in package.rglob("*.py")
    )
    for relative, module in modules:
        digest.update(relative.encode() + b"\0" + module.read_bytes())
    return digest.hexdigest()


def _versions(names: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of those of `names` that are installed."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def assemble_run(
    *,
    run_id: str,
    config: PipelineConfig,
    data: ValidatedData,
    windows: Windows,
    results: list[CandidateResult],
    evidence: Evidence,
    choice: Choice,
    forecasts: dict[str, pd.DataFrame],
    tracking: dict,
    short_forecast: pd.DataFrame | None = None,
) -> tuple[dict[str, bytes], dict]:
    """Builds every file of a run (as bytes) and its manifest, ready for `publish_run`.

    The run's `as_of` is `data.as_of`: the configured as-of, or else the last observed
    timestamp; the forecast knows nothing later. The series too short for the backtest
    (`short_forecast`, with its own `model` column) join the forecast and the candidate
    forecasts once each, labelled with the baseline that forecast them.
    """
    as_of = data.as_of
    short = [] if short_forecast is None or short_forecast.empty else [short_forecast]
    short = [frame.assign(run_id=run_id, as_of=as_of) for frame in short]
    forecast = pd.concat(
        [label_forecast(forecasts[choice.model], choice.model, run_id, as_of), *short],
        ignore_index=True,
    )
    candidates = pd.concat(
        [
            *(label_forecast(frame, kind, run_id, as_of) for kind, frame in forecasts.items()),
            *short,
        ],
        ignore_index=True,
    )
    board = leaderboard(results, evidence, config.evaluation.metric)
    backtest = backtest_parts(evidence.backtest, windows.series_ids, evidence.dates)
    files = frame_files(forecast, candidates, board, backtest)
    champion = next(r for r in results if r.kind == choice.model)
    model_file = spec(champion.kind).model_file
    if model_file is not None and (model_bytes := champion.fitted().to_bytes()) is not None:
        files[model_file] = model_bytes
    files["preprocessing.json"] = json_bytes(
        preprocessing_spec(windows, config, data, choice.model)
    )
    manifest = build_manifest(
        run_id=run_id,
        as_of=as_of,
        config=config,
        data=data,
        results=results,
        choice=choice,
        tracking=tracking,
        short_series=_short_series_entries(data, short[0], config.model) if short else [],
    )
    return files, manifest
