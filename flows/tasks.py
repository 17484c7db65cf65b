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
    data,
    outputs,
    publishing,
    reading,
    selection,
    training,
    validation,
    windowing,
)
from forecasting.config import PipelineConfig
from forecasting.errors import ForecastingError


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
    return reading.published_manifest(config.output_dir, config.name, run_id)


@_task
def make_windows(validated: validation.ValidatedData, config: PipelineConfig) -> windowing.Windows:
    return windowing.make_windows(
        validated.frame, config.data.features, config.model, config.evaluation
    )


@_task(task_run_name="train-{kind}")
def train(
    kind: str, windows: windowing.Windows, config: PipelineConfig, season_length: int
) -> training.CandidateResult:
    return training.train_candidate(
        kind, windows, config.model, season_length, config.seed, get_run_logger().info
    )


@_task
def select(results: list[training.CandidateResult], config: PipelineConfig) -> selection.Choice:
    return selection.select_champion(results, config.evaluation.metric)


@_task
def forecast(
    results: list[training.CandidateResult],
    choice: selection.Choice,
    windows: windowing.Windows,
    validated: validation.ValidatedData,
    config: PipelineConfig,
) -> dict[str, pd.DataFrame]:
    return outputs.forecast_candidates(results, choice.model, windows, validated, config)


@_task
def publish(config: PipelineConfig, run_id: str, files: dict[str, bytes], manifest: dict) -> str:
    path = publishing.publish_run(
        config.output_dir, config.name, run_id, files, manifest, keep_runs=config.keep_runs
    )
    get_run_logger().info(f"Published run {run_id} to {path}")
    return str(path)


@_task
def package(run_id: str, config: PipelineConfig, **parts: Any) -> tuple[dict[str, bytes], dict]:
    return outputs.assemble_run(run_id=run_id, config=config, **parts)
