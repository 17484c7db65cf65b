"""The `forecast-pipeline` flow: load, validate, backtest every candidate, select, forecast,
publish, report. Importable for deployments; `forecast run` runs it with no server."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from prefect import flow
from prefect.logging import get_run_logger
from prefect.runtime import flow_run
from prefect.states import Failed, State

from flows import artifacts, scheduling, tasks
from forecasting.clock import scheduled_as_of
from forecasting.config import PipelineConfig
from forecasting.data import LoadedData
from forecasting.errors import ForecastingError
from forecasting.outputs import fingerprint
from forecasting.store.layout import make_run_id


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


def _install_log_filter() -> None:
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
    nothing published) when a newer scheduled run or a newer published as-of supersedes it."""
    config = config or PipelineConfig()
    _install_log_filter()
    logger = get_run_logger()
    try:
        loaded = tasks.load(config)
        config, superseded = _as_scheduled(config, loaded)
        if superseded is not None:
            logger.info(f"Superseded: {superseded}. Nothing is published.")
            _report(
                artifacts.publish_superseded, config.name, flow_run.name, _as_of(config), superseded
            )
            return {"superseded": True, "reason": superseded, "as_of": _as_of(config)}
        validated = tasks.validate(loaded, config)
        run_id = make_run_id(validated.as_of, fingerprint(config, validated))
        if (published := tasks.find_published(config, run_id)) is not None:
            logger.info(
                f"Run {run_id} is already published for the same data, settings, seed, code "
                "and versions; reusing it instead of training again."
            )
            path = tasks.publish(config, run_id, {}, published)
            _report(artifacts.publish_reports, config.name, path, validated.frame)
            champion = published["champion"]
            return {
                "run_id": run_id,
                "champion": champion["model"],
                "reason": champion["reason"],
                "path": str(path),
                "reused": True,
                "action": champion.get("decision", {}).get("action", ""),
            }
        folds = tasks.make_folds(validated, config)
        windows = folds[-1]  # ends at the last observation: its models forecast the future
        logger.info(
            f"{len(validated.series_ids)} series, freq {validated.freq}, {len(folds)} backtest "
            f"folds of {config.evaluation.block_size(config.model.horizon)} steps, "
            f"{sum(len(f.test) for f in folds)} test windows"
        )
        tracking = tasks.track(config, validated, windows)
        incumbent = tasks.find_incumbent(config, tracking)
        progress = _report(artifacts.Progress, config.name, len(config.model.candidates))
        # Sequential on purpose: two threads saved 11% of gru + lstm wall time on 2 cores
        # (benchmarks/concurrency.py), too little to risk seeds racing in shared global state.
        results = []
        for kind in config.model.candidates:
            results.append(tasks.train(kind, folds, config, validated.season_length))
            if progress is not None:
                _report(progress.advance, kind)
        evidence = tasks.evidence(folds, results, validated, config)
        choice = tasks.select(results, evidence, config, incumbent)
        logger.info(f"Champion: {choice.model}. {choice.reason}")
        forecasts = tasks.forecast(results, choice, windows, validated, config, evidence)
        files, manifest = tasks.package(
            run_id,
            config,
            data=validated,
            windows=windows,
            results=results,
            evidence=evidence,
            choice=choice,
            forecasts=forecasts,
            tracking=tracking.manifest_entry(),
        )
        path = tasks.publish(config, run_id, files, manifest, tracking.new_rows)
        _report(artifacts.publish_reports, config.name, path, validated.frame)
    except ForecastingError as error:
        return Failed(message=str(error))
    return {
        "run_id": run_id,
        "champion": choice.model,
        "reason": choice.reason,
        "path": str(path),
        "reused": False,
        "action": choice.decision["action"],
    }


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
    frame = tasks.validate(loaded, config).frame
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


def _as_of(config: PipelineConfig) -> str:
    return config.as_of.isoformat() if config.as_of else "the last observation"


def _report(make: Callable, *args: Any) -> Any:
    """Artifacts help a person; a failure to create one is logged and never fails the run."""
    try:
        return make(*args)
    except Exception as error:  # noqa: BLE001 - the forecast is published either way
        get_run_logger().warning(f"Could not create a Prefect artifact: {error}")
        return None
