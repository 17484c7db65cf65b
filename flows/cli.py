"""The `forecast` command: checks config and data first (no TensorFlow, no Prefect), then runs
the flow. A user mistake prints one line and exits 2; anything else is a bug with a traceback.

Options that set configuration fields come from flows/options.py; the Prefect environment the
flow runs in from flows/environment.py; what the commands print from flows/printing.py.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer

from flows import environment, options, printing
from forecasting.config import PipelineConfig, build_config
from forecasting.errors import ConfigError, ForecastingError

if TYPE_CHECKING:
    from flows.temporary_server import TemporaryServer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Recurrent: train GRU, LSTM and SimpleRNN forecasters against naive baselines, "
    "publish the champion.",
)

USER_ERROR_EXIT = 2
FLOW_FAILED_EXIT = 1

ConfigFile = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="TOML file with the same keys as these options (\\[data], \\[model], \\[evaluation] tables); its relative paths resolve against its folder. Options given here override it.",
    ),
]
Name = Annotated[str, typer.Argument(help="Pipeline name, e.g. etth1.")]
OutputDir = Annotated[str, options.option("output_dir")]
OUTPUT_DIR = str(options.default("output_dir"))


@app.command()
@options.with_config_options()
def run(config_file: ConfigFile = None, **given: object) -> None:
    """Train every candidate on the data, choose the champion and publish its forecast."""
    with _user_mistakes():
        config = options.build(config_file, given)
        _check_data(config)
    started = time.perf_counter()
    server = _prepare(config)
    summary = _run_flow(config, server)
    printing.published(summary, config, time.perf_counter() - started)


@app.command()
@options.with_config_options(leave_out=("--as-of",))
def backfill(
    start: Annotated[
        str, typer.Option(metavar="TIME", help="First as-of time, e.g. '2018-06-01 00:00'.")
    ],
    end: Annotated[str, typer.Option(metavar="TIME", help="Last as-of time (inclusive).")],
    every: Annotated[
        str,
        typer.Option(
            metavar="STEP",
            help="Step between as-of times: a pandas Timedelta such as 24h, 6h or 1D.",
        ),
    ] = "24h",
    config_file: ConfigFile = None,
    **given: object,
) -> None:
    """Replay history: run the pipeline as of each time from START to END, oldest first, and
    publish each as a run (a run already published for the same inputs is reused)."""
    from forecasting.clock import backfill_times

    with _user_mistakes():
        times = backfill_times(start, end, every)
        config = options.build(config_file, {**given, "as_of": times[0].isoformat()})
        _check_data(config)  # the oldest as-of has the least history: a mistake shows here
    server = _prepare(config)
    typer.echo(f"Backfilling {len(times)} runs from {times[0]} to {times[-1]} every {every}")
    for moment in times:
        as_of = {"as_of": moment.to_pydatetime()}
        printing.backfilled(moment, _run_flow(config.model_copy(update=as_of), server))
    printing.trend(config.output_dir, config.name)
    printing.latest(config)


@app.command()
@options.with_config_options()
def fleet(
    group_column: Annotated[
        str | None,
        typer.Option(help="Column whose values name the groups (one pipeline per value)."),
    ] = None,
    groups: Annotated[
        int | None,
        typer.Option(metavar="N", help="Number of groups, each series placed by a hash of its id."),
    ] = None,
    deployment: Annotated[
        str, typer.Option(help="forecast-pipeline deployment that runs each group.")
    ] = "forecast-pipeline/fleet-group",
    wait_timeout: Annotated[
        float | None,
        typer.Option(
            metavar="SECONDS",
            min=0.001,
            help="Fail when the groups have not all finished after this long (they go on).",
        ),
    ] = None,
    config_file: ConfigFile = None,
    **given: object,
) -> None:
    """Split a many-series file into groups and run each group's pipeline on the work pool's
    workers (deployment DEPLOYMENT); each group publishes to <output-dir>/<name>/groups/<group>/.
    Needs a Prefect server with workers (PREFECT_API_URL); see deploy/README.md."""
    from forecasting.fleet import check_grouping

    with _user_mistakes():
        config = options.build(config_file, given)
        _check_data(config)
        check_grouping(config, group_column, groups)
        if "PREFECT_API_URL" not in os.environ:
            raise ConfigError(
                "forecast fleet needs a Prefect server with workers: set PREFECT_API_URL "
                "(deploy/README.md shows how to start both)."
            )
    environment.prepare()
    from flows.fleet import forecast_fleet

    state = forecast_fleet(
        config, group_column, groups, deployment, wait_timeout, return_state=True
    )
    if not state.is_completed():
        typer.echo(f"Error: {state.message}", err=True)
        raise typer.Exit(FLOW_FAILED_EXIT)
    for row in cast(dict, state.result())["groups"]:
        typer.echo(f"{row['group']}: {row['state']} {row['champion']} {row['path']}")


@app.command()
def show(
    name: Name,
    output_dir: OutputDir = OUTPUT_DIR,
    rows: Annotated[int, typer.Option(help="Forecast rows to print.")] = 10,
) -> None:
    """Print the latest champion, its leaderboard and the head of its forecast."""
    from forecasting.store.reader import read_latest

    with _user_mistakes():
        # a name must not lead out of the output folder; a URL needs a backend
        where = build_config({"name": name, "output_dir": output_dir}).output_dir
        latest = read_latest(where, name)
    printing.latest_run(latest, rows)
    printing.trend(where, name)


@app.command()
def rollback(
    name: Name,
    to: Annotated[str, typer.Option("--to", metavar="RUN_ID", help="Run to point latest at.")],
    output_dir: OutputDir = OUTPUT_DIR,
) -> None:
    """Point `latest` at an earlier complete run (every file's hash is checked first); the next
    run that publishes moves it on, and takes that run's champion as the one to beat."""
    from forecasting.store.writer import rollback as point_latest

    with _user_mistakes():
        where = build_config({"name": name, "output_dir": output_dir}).output_dir
        run_dir = point_latest(where, name, to)
    typer.echo(f"latest of {name} now points at {run_dir}")


@app.command()
def serve(
    file: Annotated[Path, typer.Option(help="prefect.yaml whose deployments to serve.")] = Path(
        "deploy/prefect.yaml"
    ),
    only: Annotated[
        str | None, typer.Option(help="Comma-separated deployment names to serve (default all).")
    ] = None,
) -> None:
    """Serve the deployments of deploy/prefect.yaml from this process (no work pool or worker):
    their schedules, parameters, tags and concurrency limits, until interrupted. Needs a Prefect
    server (PREFECT_API_URL); see deploy/README.md."""
    from flows.serving import read_deployments

    with _user_mistakes():
        entries = read_deployments(file)
    environment.prepare(lean_server=False)  # serving needs a full server
    from flows.serving import serve as serve_deployments

    names = [item.strip() for item in only.split(",") if item.strip()] if only else None
    with _user_mistakes():
        serve_deployments(file, names)
    typer.echo(f"Stopped serving {len(entries)} deployments.")


@app.command()
def automations(
    within: Annotated[
        float,
        typer.Option(
            help="Seconds without a heartbeat after which a running flow run is marked Crashed; must exceed PREFECT_FLOWS_HEARTBEAT_FREQUENCY (forecast serve sets 30)."
        ),
    ] = 90.0,
    webhook: Annotated[
        str | None,
        typer.Option(help="URL that receives a JSON message when a scheduled run fails."),
    ] = None,
    block: Annotated[
        str | None,
        typer.Option(
            help="Name of an existing Prefect notification block to use instead of --webhook."
        ),
    ] = None,
) -> None:
    """Create (or replace) the Prefect automations for scheduled runs: crashed-heartbeat
    detection, and failure notification when --webhook or --block is given."""
    environment.quiet()
    from flows.automations import install

    for name in install(within, webhook, block):
        typer.echo(f"Created automation {name}")


@contextmanager
def _user_mistakes() -> Iterator[None]:
    """Turns a `ForecastingError` into one `Error:` line and exit 2; anything else is a bug
    and keeps its traceback."""
    try:
        yield
    except ForecastingError as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(USER_ERROR_EXIT) from None


def _check_data(config: PipelineConfig) -> None:
    """Loads and validates the data as the flow will, before TensorFlow or Prefect is imported,
    so that a user mistake fails fast; repairs are printed as warnings.

    Raises:
        ForecastingError: The data cannot be used as configured.
    """
    from forecasting.data import load_series
    from forecasting.validation import validate

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_series(config.data)
        validate(loaded, config.data, config.model, config.evaluation, config.as_of)
    for warning in caught:
        typer.echo(f"Warning: {warning.message}", err=True)


def _prepare(config: PipelineConfig) -> TemporaryServer | None:
    """Sets up Prefect's environment and starts its temporary server, saying so when it does."""
    environment.prepare()
    server = environment.start_server(config)
    if server is not None:
        typer.echo(
            f"Started Prefect's temporary server on {server.url} for this run; set "
            "PREFECT_API_URL to record runs on a running server instead (deploy/README.md)."
        )
    return server


def _run_flow(config: PipelineConfig, server: TemporaryServer | None) -> dict:
    """Runs the flow; exits 1 with its message when it does not complete."""
    try:
        return environment.run_flow(config, server)
    except environment.FlowRunFailed as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(FLOW_FAILED_EXIT) from None
