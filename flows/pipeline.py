"""The `forecast-pipeline` flow: load, validate, window, train each candidate, select,
forecast, publish. Importable for deployments; `forecast run` runs it with no server."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.logging import get_run_logger
from prefect.states import State

from flows import tasks
from forecasting.config import PipelineConfig, season_for
from forecasting.publishing import new_run_id


class _Stopped(Exception):
    """A task ended Failed on a user mistake; the flow ends with that task's state."""

    def __init__(self, state: State) -> None:
        super().__init__(state.message)
        self.state = state


def _result(task: Any, *args: Any, **kwargs: Any) -> Any:
    state = task(*args, return_state=True, **kwargs)
    if state.is_failed():
        raise _Stopped(state)
    return state.result()


@flow(name="forecast-pipeline", validate_parameters=True)
def forecast_pipeline(config: PipelineConfig | None = None) -> dict | State:
    """Trains every candidate, publishes the champion's model and forecast, returns a summary."""
    config = config or PipelineConfig()
    logger = get_run_logger()
    try:
        validated = _result(tasks.validate, _result(tasks.load, config), config)
        season = season_for(validated.freq, config.model.season_length)
        windows = _result(tasks.make_windows, validated, config)
        logger.info(
            f"{len(validated.series_ids)} series, freq {validated.freq}, "
            f"{len(windows.train)}/{len(windows.validation)}/{len(windows.test)} "
            "train/validation/test windows"
        )
        # Sequential on purpose: candidates share TensorFlow's thread pools, so running them
        # concurrently on 2 cores only interleaves them (see benchmarks/).
        results = [_result(tasks.train, kind, windows, config, season)
                   for kind in config.model.candidates]
        choice = _result(tasks.select, results, config)
        logger.info(f"Champion: {choice.model}. {choice.reason}")
        forecasts = _result(tasks.forecast, results, choice, windows, validated, config)
        run_id = new_run_id()
        files, manifest = _result(
            tasks.package, run_id, config, data=validated, windows=windows, results=results,
            choice=choice, forecasts=forecasts, season_length=season,
        )
        path = _result(tasks.publish, config, run_id, files, manifest)
    except _Stopped as stopped:
        return stopped.state
    return {"run_id": run_id, "champion": choice.model, "reason": choice.reason, "path": path}
