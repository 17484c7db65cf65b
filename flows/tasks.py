"""Prefect tasks: each is one call into `forecasting`. Retries only where I/O can flake."""

from __future__ import annotations

import functools
import warnings
from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from forecasting import (
    accuracy,
    backtest,
    data,
    evaluation,
    incumbent,
    outputs,
    selection,
    training,
    validation,
    windowing,
)
from forecasting.config import PipelineConfig
from forecasting.errors import ForecastingError
from forecasting.store import reader, writer


def _retry_unless_user_error(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except ForecastingError:
        return False
    except Exception:
        return True
    return True


# Inputs are models and large arrays: never hash them for caching.
_task = functools.partial(task, cache_policy=NO_CACHE)


@_task(retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=_retry_unless_user_error)
def load(config: PipelineConfig) -> data.LoadedData:
    return data.load_series(config.data)


@_task
def validate(loaded: data.LoadedData, config: PipelineConfig) -> validation.ValidatedData:
    """Validates; repairs the library reports as Python warnings go to the run's log."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        validated = validation.validate(
            loaded, config.data, config.model, config.evaluation, config.as_of
        )
    for warning in caught:
        get_run_logger().warning(str(warning.message))
    return validated


@_task
def find_published(config: PipelineConfig, run_id: str) -> dict | None:
    return reader.published_manifest(config.output_dir, config.name, run_id)


@_task
def make_folds(
    validated: validation.ValidatedData, config: PipelineConfig
) -> list[windowing.Windows]:
    return windowing.make_folds(
        validated.frame, config.data.features, config.model, config.evaluation
    )


@_task
def track(
    config: PipelineConfig, validated: validation.ValidatedData, windows: windowing.Windows
) -> accuracy.Tracking:
    """Scores earlier published forecasts whose actuals have arrived."""
    scale = evaluation.insample_scale(windows, validated.season_length)
    tracking = accuracy.track(
        config.output_dir / config.name,
        validated.frame,
        dict(zip(windows.series_ids, scale, strict=True)),
        validated.as_of,
        config.evaluation.accuracy_drop_percent,
    )
    logger = get_run_logger()
    newly_scored = tracking.summary["run_id"].isin(tracking.new_rows["run_id"])
    for row in tracking.summary[newly_scored].itertuples():
        logger.info(
            f"Published run {row.run_id} ({row.model}) scored against actuals: "
            f"MAE {row.mae:.4g}, MASE {row.mase:.4g}, 80% coverage {row.coverage_80:.0f}%"
        )
    if tracking.warning:
        logger.warning(tracking.warning)
    return tracking


@_task
def find_incumbent(
    config: PipelineConfig, tracking: accuracy.Tracking
) -> selection.Incumbent | None:
    models = tracking.summary["model"].unique() if len(tracking.summary) else []
    found = incumbent.find_incumbent(config, {m: tracking.live_mase(m) for m in models})
    if found is not None and found.problem:
        get_run_logger().warning(
            f"The published champion {found.model} (run {found.run_id}) cannot defend its "
            f"title: {found.problem}"
        )
    return found


@_task(task_run_name="train-{kind}")
def train(
    kind: str, folds: list[windowing.Windows], config: PipelineConfig, season_length: int
) -> training.CandidateResult:
    return training.train_candidate(
        kind,
        folds,
        config.model,
        season_length,
        config.seed,
        get_run_logger().info,
        warm_start=config.evaluation.warm_start,
    )


@_task
def select(
    results: list[training.CandidateResult],
    evidence: selection.Evidence,
    config: PipelineConfig,
    incumbent: selection.Incumbent | None,
) -> selection.Choice:
    return selection.select_champion(results, evidence, config.evaluation, incumbent)


@_task
def forecast(
    results: list[training.CandidateResult],
    choice: selection.Choice,
    windows: windowing.Windows,
    validated: validation.ValidatedData,
    config: PipelineConfig,
    evidence: selection.Evidence,
) -> dict[str, pd.DataFrame]:
    return outputs.forecast_candidates(
        results, choice.model, windows, validated, config, evidence.backtest
    )


@_task
def publish(
    config: PipelineConfig,
    run_id: str,
    files: dict[str, bytes],
    manifest: dict,
    accuracy_rows: pd.DataFrame | None = None,
) -> str:
    path = writer.publish_run(
        config.output_dir,
        config.name,
        run_id,
        files,
        manifest,
        keep_runs=config.keep_runs,
        accuracy=accuracy_rows,
    )
    get_run_logger().info(f"Published run {run_id} to {path}")
    return str(path)


@_task
def package(run_id: str, config: PipelineConfig, **parts: Any) -> tuple[dict[str, bytes], dict]:
    return outputs.assemble_run(run_id=run_id, config=config, **parts)


def evidence(
    folds: list[windowing.Windows],
    results: list[training.CandidateResult],
    validated: validation.ValidatedData,
    config: PipelineConfig,
) -> selection.Evidence:
    """The shared backtest (plain function: cheap, no task run needed)."""
    return selection.Evidence(
        backtest.collect(folds, results, validated.season_length),
        backtest.series_dates(validated.frame),
        config.model.horizon,
    )
