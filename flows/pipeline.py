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


def _install_log_filter() -> None:
    for name in ("prefect.task_runs", "prefect.flow_runs"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _OneLineUserErrors) for f in logger.filters):
            logger.addFilter(_OneLineUserErrors())


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
            }
        windows = tasks.make_windows(validated, config)
        logger.info(
            f"{len(validated.series_ids)} series, freq {validated.freq}, "
            f"{len(windows.train)}/{len(windows.validation)}/{len(windows.test)} "
            "train/validation/test windows"
        )
        # Sequential on purpose: two threads saved 11% of gru + lstm wall time on 2 cores
        # (benchmarks/concurrency.py), too little to risk seeds racing in shared global state.
        results = [
            tasks.train(kind, windows, config, validated.season_length)
            for kind in config.model.candidates
        ]
        choice = tasks.select(results, config)
        logger.info(f"Champion: {choice.model}. {choice.reason}")
        forecasts = tasks.forecast(results, choice, windows, validated, config)
        files, manifest = tasks.package(
            run_id,
            config,
            data=validated,
            windows=windows,
            results=results,
            choice=choice,
            forecasts=forecasts,
        )
        path = tasks.publish(config, run_id, files, manifest)
    except ForecastingError as error:
        return Failed(message=str(error))
    return {
        "run_id": run_id,
        "champion": choice.model,
        "reason": choice.reason,
        "path": path,
        "reused": False,
    }
