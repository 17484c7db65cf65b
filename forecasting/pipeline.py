"""The whole pipeline, without Prefect: load, validate, score what was published, cut the
backtest folds, train every candidate, select, forecast, package and publish.

The order of steps is written here once. `run` calls each step through `step`, so an
orchestrator can run the same steps its own way (the Prefect flow turns each into a task),
trains the candidates through `fan_out`, so it can train them side by side in worker processes,
and tells an `Observer` at each milestone (the flow leaves artifacts there)::

    from forecasting.config import PipelineConfig
    from forecasting.pipeline import run

    result = run(PipelineConfig(output_dir="outputs"))
    print(result.champion, result.path)
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import pandas as pd

from forecasting import (
    accuracy,
    backtest,
    data,
    evaluation,
    execution,
    incumbent,
    outputs,
    selection,
    short_series,
    training,
    validation,
    windowing,
)
from forecasting.config import PipelineConfig
from forecasting.store import layout, reader, writer

T = TypeVar("T")


class Log(Protocol):
    """Where the pipeline says what it does: a `logging.Logger`, a `LoggerAdapter` or alike."""

    def info(self, msg: str, /) -> Any: ...

    def warning(self, msg: str, /) -> Any: ...


class Step(Protocol):
    """Runs one step of the pipeline: `step(function, *args, **kwargs)` returns what
    `function(*args, **kwargs)` returns. The Prefect flow runs each as a task."""

    def __call__(self, function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T: ...


class FanOut(Protocol):
    """Runs `function(item, *args)` for every item, one after another or side by side, and
    yields the outcomes in the order of `items`: each result, or the exception that kept a
    worker from returning one (its process died). `function` and its arguments pickle, and so
    do its results; it writes no files."""

    def __call__(
        self, function: Callable[..., T], items: Sequence[Any], /, *args: Any
    ) -> Iterator[T | BaseException]: ...


def call(function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """The plain step: calls the function."""
    return function(*args, **kwargs)


def one_by_one(step: Step) -> FanOut:
    """The plain fan-out: each item through `step`, one after another, in this process."""

    def fan_out(
        function: Callable[..., T], items: Sequence[Any], /, *args: Any
    ) -> Iterator[T | BaseException]:
        return (step(function, item, *args) for item in items)

    return fan_out


class Observer:
    """Told at the pipeline's milestones; does nothing by default. An orchestrator subclasses it
    to report progress or, for a scheduled run, to set the as-of before validation."""

    def schedule(
        self, config: PipelineConfig, loaded: data.LoadedData
    ) -> tuple[PipelineConfig, str | None]:
        """Returns the config to run with and, when the run must stand down, why."""
        return config, None

    def training(self, kinds: tuple[str, ...]) -> None:
        """Candidates are about to train, in this order."""

    def trained(self, kind: str) -> None:
        """One candidate has trained (or failed)."""

    def published(self, path: str, history: pd.DataFrame) -> None:
        """The run is published at `path`; `history` is the validated data."""


@dataclass(frozen=True)
class RunResult:
    """What a run did. `superseded` runs published nothing: `reason` says why."""

    run_id: str | None
    champion: str | None
    reason: str
    path: str | None
    reused: bool
    action: str
    as_of: str
    superseded: bool = False


def run(
    config: PipelineConfig,
    *,
    step: Step = call,
    fan_out: FanOut | None = None,
    observer: Observer | None = None,
    log: Log | None = None,
) -> RunResult:
    """Runs the pipeline once and publishes its champion, or reuses an identical published run.

    Args:
        config: The pipeline's settings.
        step: Runs each step (default: a plain call).
        fan_out: Trains the candidates (default: each through `step`, one after another).
        observer: Told at each milestone (default: nobody).
        log: Receives progress lines (default: the `forecasting.pipeline` logger).

    Returns:
        The run's id, champion, the reason it won, where it was published, and whether an
        earlier identical run was reused.

    Raises:
        ForecastingError: For bad data or settings, or when no candidate could be trained.
    """
    observer = observer or Observer()
    log = log or logging.getLogger(__name__)
    if config.execution.threads is not None:
        execution.limit_threads(config.execution.threads)  # before TensorFlow starts
    loaded = step(load, config)
    config, superseded = observer.schedule(config, loaded)
    as_of = as_of_label(config)
    if superseded is not None:
        log.info(f"Superseded: {superseded}. Nothing is published.")
        return RunResult(None, None, superseded, None, False, "", as_of, superseded=True)
    writer.check_output(config.output_dir, config.name)  # before anything trains
    validated = step(validate, loaded, config, log)
    del loaded  # the file as read: a many-series file takes hundreds of MB
    data.release_arrow_memory()
    run_id = layout.make_run_id(validated.as_of, outputs.fingerprint(config, validated))
    if (published := step(find_published, config, run_id)) is not None:
        log.info(
            f"Run {run_id} is already published for the same data, settings, seed, code "
            "and versions; reusing it instead of training again."
        )
        path = step(publish, config, run_id, {}, published, log)
        observer.published(path, validated.frame)
        champion = published["champion"]
        action = champion.get("decision", {}).get("action", "")
        return RunResult(run_id, champion["model"], champion["reason"], path, True, action, as_of)
    settings = backtest_settings(config, validated)
    folds = step(make_folds, validated, settings)
    windows = folds[-1]  # ends at the last observation: its models forecast the future
    short = f" ({len(validated.short_series)} too short, forecast by a baseline)"
    log.info(
        f"{len(validated.series_ids)} series{short if validated.short_series else ''}, freq "
        f"{validated.freq}, {len(folds)} backtest folds of "
        f"{settings.evaluation.block_size(config.model.horizon)} steps, "
        f"{sum(len(f.test) for f in folds)} test windows"
    )
    _warn_of_long_epochs(folds[0], config, log)
    tracking = step(track, config, validated, windows, log)
    found = step(find_incumbent, config, tracking, log)
    observer.training(config.model.candidates)
    # Not threads: two saved 11% of gru + lstm wall time on 2 cores (benchmarks/concurrency.py),
    # too little to risk seeds racing in shared global state. A fan-out over processes may.
    kinds = config.model.candidates
    train_each = (fan_out or one_by_one(step))(
        train, kinds, folds, settings, validated.season_length, log
    )
    results = []
    for kind, outcome in zip(kinds, train_each, strict=True):
        if isinstance(outcome, BaseException):
            outcome = training.lost(kind, outcome)
            log.warning(f"{kind} failed: {outcome.reason}")
        results.append(outcome)
        observer.trained(kind)
    evidence = _evidence(folds, results, validated, config)
    choice = step(select, results, evidence, settings, found)
    log.info(f"Champion: {choice.model}. {choice.reason}")
    forecasts = step(forecast, results, choice, windows, validated, settings, evidence)
    short_forecast = step(forecast_short, validated, settings, evidence, choice)
    files, manifest = step(
        package,
        run_id,
        config,
        data=validated,
        windows=windows,
        results=results,
        evidence=evidence,
        choice=choice,
        forecasts=forecasts,
        short_forecast=short_forecast,
        tracking=tracking.manifest_entry(),
    )
    path = step(publish, config, run_id, files, manifest, log, tracking.new_rows)
    observer.published(path, validated.frame)
    return RunResult(
        run_id, choice.model, choice.reason, path, False, choice.decision["action"], as_of
    )


# More training windows than this in an RNN epoch, with no cap set, is worth a line in the log.
LONG_EPOCH_WINDOWS = 1_000_000


def _warn_of_long_epochs(fold: windowing.Windows, config: PipelineConfig, log: Log) -> None:
    """Says when every RNN epoch would visit more than `LONG_EPOCH_WINDOWS` windows."""
    if not config.model.trains_rnns or config.model.windows_per_series is not None:
        return
    if (windows := len(fold.train)) > LONG_EPOCH_WINDOWS:
        per_series = windows // max(len(fold.series_ids), 1)
        log.warning(
            f"Every RNN epoch visits all {windows:,} training windows (about {per_series:,} "
            "per series), which takes long. Set --windows-per-series N "
            "(model.windows_per_series) to draw at most N windows of each series per epoch, "
            "as N-BEATS does; see docs/methodology.md."
        )


def backtest_settings(
    config: PipelineConfig, validated: validation.ValidatedData
) -> PipelineConfig:
    """`config` with the backtest folds validation fitted to the data (`FoldPlan`); the run's
    id and its manifest's `config` keep the settings as given."""
    if validated.folds is None:
        return config
    return config.model_copy(update={"evaluation": validated.folds.evaluation})


def as_of_label(config: PipelineConfig) -> str:
    """The run's as-of as a person reads it."""
    return config.as_of.isoformat() if config.as_of else "the last observation"


# The steps. Each is one call into the library, plus the lines it logs.


def load(config: PipelineConfig) -> data.LoadedData:
    return data.load_series(config.data)


def validate(loaded: data.LoadedData, config: PipelineConfig, log: Log) -> validation.ValidatedData:
    """Validates; the repairs the library reports as Python warnings go to `log` instead."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        validated = validation.validate(
            loaded, config.data, config.model, config.evaluation, config.as_of
        )
    for warning in caught:
        log.warning(str(warning.message))
    return validated


def find_published(config: PipelineConfig, run_id: str) -> dict | None:
    return reader.published_manifest(config.output_dir, config.name, run_id)


def make_folds(
    validated: validation.ValidatedData, config: PipelineConfig
) -> list[windowing.Windows]:
    return windowing.make_folds(
        validated.backtested_frame,
        config.data.features,
        config.model,
        config.evaluation,
        validated.season_length,
    )


def track(
    config: PipelineConfig,
    validated: validation.ValidatedData,
    windows: windowing.Windows,
    log: Log,
) -> accuracy.Tracking:
    """Scores earlier published forecasts whose actuals have arrived."""
    scale = evaluation.insample_scale(windows, validated.season_length)
    tracking = accuracy.track(
        layout.pipeline_dir(config.output_dir, config.name),
        validated.frame,
        dict(zip(windows.series_ids, scale, strict=True)) | short_series.scales(validated),
        validated.as_of,
        config.evaluation.accuracy_drop_percent,
    )
    newly_scored = tracking.summary["run_id"].isin(tracking.new_rows["run_id"])
    for row in tracking.summary[newly_scored].itertuples():
        log.info(
            f"Published run {row.run_id} ({row.model}) scored against actuals: "
            f"MAE {row.mae:.4g}, MASE {row.mase:.4g}, 80% coverage {row.coverage_80:.0f}%"
        )
    if tracking.warning:
        log.warning(tracking.warning)
    return tracking


def find_incumbent(
    config: PipelineConfig, tracking: accuracy.Tracking, log: Log
) -> selection.Incumbent | None:
    models = tracking.summary["model"].unique() if len(tracking.summary) else []
    found = incumbent.find_incumbent(config, {m: tracking.live_mase(m) for m in models})
    if found is not None and found.problem:
        log.warning(
            f"The published champion {found.model} (run {found.run_id}) cannot defend its "
            f"title: {found.problem}"
        )
    return found


def train(
    kind: str,
    folds: list[windowing.Windows],
    config: PipelineConfig,
    season_length: int,
    log: Log,
) -> training.CandidateResult:
    return training.train_candidate(
        kind,
        folds,
        config.model,
        season_length,
        config.seed,
        log.info,
        warm_start=config.evaluation.warm_start,
    )


def select(
    results: list[training.CandidateResult],
    evidence: selection.Evidence,
    config: PipelineConfig,
    incumbent: selection.Incumbent | None,
) -> selection.Choice:
    return selection.select_champion(results, evidence, config.evaluation, incumbent)


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


def forecast_short(
    validated: validation.ValidatedData,
    config: PipelineConfig,
    evidence: selection.Evidence,
    choice: selection.Choice,
) -> pd.DataFrame:
    """Forecasts the series too short for the backtest with the best baseline that fits each."""
    return short_series.forecast_short(
        validated, config.model, evidence.backtest, choice.decision["scores"], config.seed
    )


def package(run_id: str, config: PipelineConfig, **parts: Any) -> tuple[dict[str, bytes], dict]:
    return outputs.assemble_run(run_id=run_id, config=config, **parts)


def publish(
    config: PipelineConfig,
    run_id: str,
    files: dict[str, bytes],
    manifest: dict,
    log: Log,
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
    log.info(f"Published run {run_id} to {path}")
    return str(path)


def _evidence(
    folds: list[windowing.Windows],
    results: list[training.CandidateResult],
    validated: validation.ValidatedData,
    config: PipelineConfig,
) -> selection.Evidence:
    """The shared backtest (cheap: a plain call, not a step)."""
    return selection.Evidence(
        backtest.collect(folds, results, validated.season_length),
        backtest.series_dates(validated.backtested_frame),
        config.model.horizon,
    )
