"""The `forecast-pipeline` flow: load, validate, backtest every candidate, select, forecast,
publish, report. Importable for deployments; `forecast run` runs it with no server."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pandas as pd
from prefect import flow
from prefect.logging import get_run_logger
from prefect.runtime import flow_run
from prefect.states import Failed, State

from flows import artifacts, runners, scheduling, tasks
from forecasting import pipeline
from forecasting.clock import scheduled_as_of
from forecasting.config import PipelineConfig
from forecasting.data import LoadedData
from forecasting.errors import ForecastingError


class _OneLineUserErrors(logging.Filter):
    """Drops the traceback from Prefect's failure logs when the cause is a user mistake."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], ForecastingError):
            record.exc_info = None
            record.exc_text = None
        return True


class _NoRetracingNotes(logging.Filter):
    """Drops TensorFlow's retracing note: each fold and kind is a new model with its own
    predict function, so the tracings it counts are expected, not a problem to act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def install_log_filter() -> None:
    """Installs the filters above, once per process (the flow's and each worker's)."""
    for name, kind in [
        ("prefect.task_runs", _OneLineUserErrors),
        ("prefect.flow_runs", _OneLineUserErrors),
        ("tensorflow", _NoRetracingNotes),
    ]:
        logger = logging.getLogger(name)
        if not any(isinstance(f, kind) for f in logger.filters):
            logger.addFilter(kind())


# A hung run must not hold a schedule's concurrency slot forever; deployments may override this
# with `forecast_pipeline.with_options(timeout_seconds=...)`.
FLOW_TIMEOUT_SECONDS = 3 * 3600


@flow(name="forecast-pipeline", validate_parameters=True, timeout_seconds=FLOW_TIMEOUT_SECONDS)
def forecast_pipeline(config: PipelineConfig | None = None) -> dict | State:
    """Backtests every candidate, publishes the champion's model and forecast, and leaves a
    report; a scheduled run forecasts as of its scheduled time and stands down (Completed,
    nothing published) when a newer scheduled run or a newer published as-of supersedes it.
    The steps are `forecasting.pipeline.run`'s, each run as a task."""
    install_log_filter()
    try:
        config = config or PipelineConfig()
        result = pipeline.run(
            config,
            step=tasks.run_step,
            fan_out=runners.fan_out(config),
            observer=_Reporter(),
            log=tasks.RunLog(),
        )
    except ForecastingError as error:
        return Failed(message=str(error))
    if result.superseded:
        return {"superseded": True, "reason": result.reason, "as_of": result.as_of}
    return {key: getattr(result, key) for key in _RESULT_KEYS}


_RESULT_KEYS = ("run_id", "champion", "reason", "path", "reused", "action")


class _Reporter(pipeline.Observer):
    """Sets a scheduled run's as-of and leaves the run's artifacts in the Prefect UI."""

    def __init__(self) -> None:
        self.name = ""
        self.progress: artifacts.Progress | None = None

    def schedule(
        self, config: PipelineConfig, loaded: LoadedData
    ) -> tuple[PipelineConfig, str | None]:
        config, superseded = _as_scheduled(config, loaded)
        self.name = config.name
        if superseded is not None:
            as_of = pipeline.as_of_label(config)
            _report(artifacts.publish_superseded, config.name, flow_run.name, as_of, superseded)
        return config, superseded

    def training(self, kinds: tuple[str, ...]) -> None:
        self.progress = _report(artifacts.Progress, self.name, len(kinds))

    def trained(self, kind: str) -> None:
        if self.progress is not None:
            _report(self.progress.advance, kind)

    def published(self, path: str, history: pd.DataFrame) -> None:
        _report(artifacts.publish_reports, self.name, path, history)


def _as_scheduled(config: PipelineConfig, loaded: LoadedData) -> tuple[PipelineConfig, str | None]:
    """For a run a deployment started with no as-of: sets the as-of from its scheduled time
    (on the replay clock when configured), and, for a run the scheduler made, says why it is
    superseded (None when it is not). Runs from the CLI or with an as-of are left alone."""
    run = scheduling.current()
    if run is None or config.as_of is not None:
        return config, None
    logger = get_run_logger()
    if run.auto_scheduled and (newer := scheduling.newer_due_run(run)):
        return config, f"a newer scheduled run of this deployment is already due ({newer})"
    frame = tasks.run_step(pipeline.validate, loaded, config, tasks.RunLog()).frame
    clock = scheduled_as_of(run.expected_start, frame["ds"].min(), frame["ds"].max(), config.replay)
    if clock.note:
        logger.warning(clock.note)
    config = config.model_copy(
        update={"as_of": clock.as_of.to_pydatetime(), "name": clock.pipeline_name(config.name)}
    )
    logger.info(f"Due at {run.expected_start.isoformat()}: forecasting as of {clock.as_of}")
    published = scheduling.published_as_of(config.output_dir, config.name)
    if run.auto_scheduled and published is not None and _at_or_after(published, clock.as_of):
        return config, f"a run as of {published} is already published, as new as this one"
    return config, None


def _at_or_after(published: Any, as_of: Any) -> bool:
    try:
        return bool(published >= as_of)
    except TypeError:  # one time-zone aware, one not: not comparable, so not superseded
        return False


def _report(make: Callable, *args: Any) -> Any:
    """Artifacts help a person; a failure to create one is logged and never fails the run."""
    try:
        return make(*args)
    except Exception as error:  # noqa: BLE001 - the forecast is published either way
        get_run_logger().warning(f"Could not create a Prefect artifact: {error}")
        return None
