"""The `forecast-pipeline` flow: load, validate, window, train each candidate, select,
forecast, publish. Importable for deployments; `forecast run` runs it with no server."""

from __future__ import annotations

import logging

from prefect import flow
from prefect.logging import get_run_logger
from prefect.states import Failed, State

from flows import tasks
from forecasting.config import PipelineConfig
from forecasting.errors import ForecastingError
from forecasting.outputs import fingerprint
from forecasting.publishing import make_run_id


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
    """Trains every candidate, publishes the champion's model and forecast, returns a summary."""
    config = config or PipelineConfig()
    _install_log_filter()
    logger = get_run_logger()
    try:
        validated = tasks.validate(tasks.load(config), config)
        run_id = make_run_id(validated.as_of, fingerprint(config, validated))
        if (published := tasks.find_published(config, run_id)) is not None:
            logger.info(
                f"Run {run_id} is already published for the same data, settings, seed, code "
                "and versions; reusing it instead of training again."
            )
            path = tasks.publish(config, run_id, {}, published)
            champion = published["champion"]
            return {
                "run_id": run_id,
                "champion": champion["model"],
                "reason": champion["reason"],
                "path": path,
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
        # Sequential on purpose: two threads saved 11% of gru + lstm wall time on 2 cores
        # (benchmarks/concurrency.py), too little to risk seeds racing in shared global state.
        results = [
            tasks.train(kind, folds, config, validated.season_length)
            for kind in config.model.candidates
        ]
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
    except ForecastingError as error:
        return Failed(message=str(error))
    return {
        "run_id": run_id,
        "champion": choice.model,
        "reason": choice.reason,
        "path": path,
        "reused": False,
        "action": choice.decision["action"],
    }
