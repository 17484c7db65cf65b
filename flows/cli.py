"""The `forecast` command: checks config and data first (no TensorFlow, no Prefect), then runs
the flow. A user mistake prints one line and exits 2; anything else is a bug with a traceback."""

from __future__ import annotations

import inspect
import os
import sys
import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from flows.temporary_server import STARTUP_TIMEOUT_SECONDS
from forecasting.config import (
    DEFAULT_OUTPUT_DIR,
    DataConfig,
    EvaluationConfig,
    ModelConfig,
    PipelineConfig,
    build_config,
    load_config_file,
)
from forecasting.errors import ForecastingError

if TYPE_CHECKING:
    from flows.temporary_server import TemporaryServer
    from forecasting.store.reader import PublishedRun

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Recurrent: train GRU, LSTM and SimpleRNN forecasters against naive baselines, "
    "publish the champion.",
)

USER_ERROR_EXIT = 2


def _default(model: type, field: str) -> str:
    return f"Default: {model.model_fields[field].default}."


def _csv(text: str | None) -> list[str] | None:
    return None if text is None else [item.strip() for item in text.split(",") if item.strip()]


def _fail(error: ForecastingError) -> NoReturn:
    typer.echo(f"Error: {error}", err=True)
    raise typer.Exit(USER_ERROR_EXIT)


@app.command()
def run(
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="TOML file with the same keys as these options (\\[data], \\[model], \\[evaluation] tables); its relative paths resolve against its folder.",
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            help="CSV or Parquet file with the series. Default: the bundled data/ETTh1.csv."
        ),
    ] = None,
    time_column: Annotated[
        str | None,
        typer.Option(help=f"Column with the timestamps. {_default(DataConfig, 'time_column')}"),
    ] = None,
    target_column: Annotated[
        str | None,
        typer.Option(help=f"Numeric column to forecast. {_default(DataConfig, 'target_column')}"),
    ] = None,
    id_column: Annotated[
        str | None, typer.Option(help="Column naming each series, for a file holding many series.")
    ] = None,
    covariates: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated numeric columns fed to the RNNs as extra inputs, e.g. HUFL,HULL."
        ),
    ] = None,
    freq: Annotated[
        str | None,
        typer.Option(
            help="pandas frequency such as h or 15min. Default: the most common step in the file."
        ),
    ] = None,
    na_values: Annotated[
        str | None,
        typer.Option(help="Comma-separated extra markers of missing values, e.g. --,n.a."),
    ] = None,
    max_fill: Annotated[
        int | None,
        typer.Option(
            help=f"Longest run of missing steps (absent timestamps or empty values) to fill by interpolation; longer gaps are refused. {_default(DataConfig, 'max_fill')}"
        ),
    ] = None,
    horizon: Annotated[
        int | None, typer.Option(help=f"Steps to forecast. {_default(ModelConfig, 'horizon')}")
    ] = None,
    input_size: Annotated[
        int | None,
        typer.Option(
            help=f"Steps of history each model sees. {_default(ModelConfig, 'input_size')}"
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            help=f"Pipeline name; outputs go to OUTPUT_DIR/NAME. {_default(PipelineConfig, 'name')}"
        ),
    ] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option(help="Folder for published runs. Default: outputs/ in the project."),
    ] = None,
    segment_length: Annotated[
        int | None,
        typer.Option(
            help=f"Input steps each recurrent step reads; 1 = classic step-by-step RNN (slower). {_default(ModelConfig, 'segment_length')}"
        ),
    ] = None,
    max_epochs: Annotated[
        int | None,
        typer.Option(
            help=f"Upper bound on RNN training epochs (early stopping usually ends sooner). {_default(ModelConfig, 'max_epochs')}"
        ),
    ] = None,
    candidates: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated model kinds to train, e.g. naive,linear,gru. Default: all of naive, seasonal_naive, linear, simple_rnn, gru, lstm."
        ),
    ] = None,
    n_folds: Annotated[
        int | None,
        typer.Option(
            help=f"Backtest folds: candidates are retrained before each of the last N blocks of 4 x horizon steps and scored on it. {_default(EvaluationConfig, 'n_folds')}"
        ),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            metavar="TIME",
            help="Forecast as of this time, e.g. '2018-06-01 00:00' (with an offset such as +01:00 when the file's times carry one): later rows are dropped and counted, the forecast starts after the last observation up to it, and the run is labelled with it. Default: the last timestamp in the file.",
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            help=f"Seed for every random choice; same data, config and seed give the same forecast. {_default(PipelineConfig, 'seed')}"
        ),
    ] = None,
) -> None:
    """Train every candidate on the data, choose the champion and publish its forecast."""
    config = _checked(_build(config_file, locals()))
    _quiet_environment()
    started = time.perf_counter()
    summary = _run_flow(config, _start_server(config))
    from forecasting.store.reader import read_run

    _print_run(read_run(Path(summary["path"])))
    typer.echo(f"\nChampion: {summary['champion']}. {summary['reason']}")
    if summary["reused"]:
        typer.echo("Nothing new to train: this data, config and seed were already published.")
    typer.echo(f"Published to {summary['path']} ({time.perf_counter() - started:.0f} s)")
    typer.echo(f"Latest:     {config.output_dir / config.name / 'latest'}")


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
    **options: object,
) -> None:
    """Replay history: run the pipeline as of each time from START to END, oldest first, and
    publish each as a run (a run already published for the same inputs is reused)."""
    import pandas as pd

    from forecasting.errors import ConfigError

    try:
        step = pd.Timedelta(every)
        times = pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq=step)
        if step <= pd.Timedelta(0) or len(times) == 0:
            raise ValueError("empty")
    except ValueError:
        _fail(
            ConfigError(
                f"--start {start!r}, --end {end!r} and --every {every!r} give no as-of times: "
                "use timestamps such as '2018-06-01 00:00' with START <= END and a positive "
                "step such as 24h."
            )
        )
    config = _build(options.get("config_file"), {**options, "as_of": times[0].isoformat()})
    _checked(config)  # the oldest point needs the most history: a user mistake shows here
    _quiet_environment()
    server = _start_server(config)
    typer.echo(f"Backfilling {len(times)} runs from {times[0]} to {times[-1]} every {every}")
    for moment in times:
        summary = _run_flow(config.model_copy(update={"as_of": moment.to_pydatetime()}), server)
        action = summary.get("action", "")
        typer.echo(
            f"{moment}  {summary['run_id']}  {summary['champion']:<14} "
            f"{'reused' if summary['reused'] else action}"
        )
    _print_trend(config.output_dir, config.name)
    typer.echo(f"Latest:     {config.output_dir / config.name / 'latest'}")


def _with_run_options(command: Callable) -> Callable:
    """Gives `command` every option of `run` but --as-of after its own, so both commands offer
    the same options from one definition."""
    own = inspect.signature(command, eval_str=True).parameters.values()
    shared = inspect.signature(run, eval_str=True).parameters.values()
    command.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [p for p in own if p.kind != p.VAR_KEYWORD] + [p for p in shared if p.name != "as_of"],
        return_annotation=None,
    )
    return command


app.command()(_with_run_options(backfill))


def _checked(config: PipelineConfig) -> PipelineConfig:
    """Loads and validates the data as the flow will, before TensorFlow or Prefect is imported,
    so a user mistake costs one line and exit 2; repairs are printed as warnings."""
    from forecasting.data import load_series
    from forecasting.validation import validate

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loaded = load_series(config.data)
            validate(loaded, config.data, config.model, config.evaluation, config.as_of)
    except ForecastingError as error:
        _fail(error)
    for warning in caught:
        typer.echo(f"Warning: {warning.message}", err=True)
    return config


def _start_server(config: PipelineConfig) -> TemporaryServer | None:
    """Starts Prefect's temporary server now, unless one is configured, and loads Keras while it
    boots (flows/temporary_server.py); Keras loads here in every case, so a run's training
    seconds never include that import. No server when Prefect is already imported (a program
    that calls the CLI in-process): its settings are fixed by then, so Prefect decides."""
    server = None
    if "PREFECT_API_URL" not in os.environ and "prefect" not in sys.modules:
        from flows.temporary_server import TemporaryServer

        server = TemporaryServer()
    if config.model.trains_rnns:
        import keras  # noqa: F401 - the run needs it anyway

    if server is None or not server.adopt():
        return None  # configured, or Prefect's settings name a server or forbid a temporary one
    typer.echo(
        f"Started Prefect's temporary server on {server.url} for this run; set "
        "PREFECT_API_URL to record runs on a running server instead (deploy/README.md)."
    )
    return server


def _run_flow(config: PipelineConfig, server: TemporaryServer | None) -> dict:
    """Runs the flow; exits 1 with its message when it does not complete."""
    from flows.pipeline import forecast_pipeline

    if server is not None:
        server.wait()
    with server.run_settings() if server is not None else nullcontext():
        state = forecast_pipeline(config, return_state=True)
    if not state.is_completed():
        typer.echo(f"Error: {state.message}", err=True)
        raise typer.Exit(1)
    return state.result()


@app.command()
def show(
    name: Annotated[str, typer.Argument(help="Pipeline name, e.g. etth1.")],
    output_dir: Annotated[
        Path, typer.Option(help="Folder holding published runs.")
    ] = DEFAULT_OUTPUT_DIR,
    rows: Annotated[int, typer.Option(help="Forecast rows to print.")] = 10,
) -> None:
    """Print the latest champion, its leaderboard and the head of its forecast."""
    from forecasting.store.reader import read_latest

    try:
        build_config({"name": name})  # a name must not lead out of the output folder
        latest = read_latest(output_dir, name)
    except ForecastingError as error:
        _fail(error)
    manifest = latest.manifest
    typer.echo(f"Run {manifest['run_id']} (as of {manifest['as_of']}), {latest.path}")
    typer.echo(f"Champion: {manifest['champion']['model']}. {manifest['champion']['reason']}\n")
    _print_run(latest)
    typer.echo("\n" + latest.forecast.head(rows).to_string(index=False))
    _print_trend(output_dir, name)


@app.command()
def rollback(
    name: Annotated[str, typer.Argument(help="Pipeline name, e.g. etth1.")],
    to: Annotated[str, typer.Option("--to", metavar="RUN_ID", help="Run to point latest at.")],
    output_dir: Annotated[
        Path, typer.Option(help="Folder holding published runs.")
    ] = DEFAULT_OUTPUT_DIR,
) -> None:
    """Point `latest` at an earlier complete run (every file's hash is checked first); the next
    run that publishes moves it on, and takes that run's champion as the one to beat."""
    from forecasting.store.writer import rollback as point_latest

    try:
        build_config({"name": name})
        run_dir = point_latest(output_dir, name, to)
    except ForecastingError as error:
        _fail(error)
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
    from flows.serving import DEPLOY_FILE, read_deployments

    file = file or DEPLOY_FILE
    try:
        entries = read_deployments(file)
    except ForecastingError as error:
        _fail(error)
    _quiet_environment(lean_server=False)  # serving needs a full server
    from flows.serving import serve as serve_deployments

    try:
        serve_deployments(file, _csv(only))
    except ForecastingError as error:
        _fail(error)
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
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from flows.automations import install

    for name in install(within, webhook, block):
        typer.echo(f"Created automation {name}")


def _print_trend(output_dir: Path, name: str, runs: int = 10) -> None:
    """Prints how the last `runs` scored published forecasts did against later actuals."""
    import pandas as pd

    from forecasting.accuracy import run_summary
    from forecasting.store.layout import ACCURACY_FILE

    path = Path(output_dir) / name / ACCURACY_FILE
    if not path.is_file():
        typer.echo("\nNo published forecast has been scored against later actuals yet.")
        return
    summary = run_summary(pd.read_parquet(path)).tail(runs)
    columns = ["as_of", "run_id", "model", "mae", "mase", "coverage_80", "coverage_95"]
    typer.echo("\nPublished forecasts scored against later actuals (newest last):")
    typer.echo(summary[columns].to_string(index=False, float_format=lambda value: f"{value:.3f}"))


def _build(config_file: Path | None, options: dict) -> PipelineConfig:
    try:
        return _merge(config_file, options)
    except ForecastingError as error:
        _fail(error)


def _merge(config_file: Path | None, options: dict) -> PipelineConfig:
    values = load_config_file(config_file) if config_file else {}
    base_dir = config_file.resolve().parent if config_file else None
    source = f"config file {str(config_file)!r}" if config_file else "configuration"
    config = build_config(values, base_dir, source)
    overrides = {
        "name": options["name"],
        "seed": options["seed"],
        "as_of": options["as_of"],
        "output_dir": options["output_dir"],
        "data": {
            "path": options["data"],
            "time_column": options["time_column"],
            "target_column": options["target_column"],
            "id_column": options["id_column"],
            "covariates": _csv(options["covariates"]),
            "freq": options["freq"],
            "na_values": _csv(options["na_values"]),
            "max_fill": options["max_fill"],
        },
        "model": {
            "horizon": options["horizon"],
            "input_size": options["input_size"],
            "max_epochs": options["max_epochs"],
            "segment_length": options["segment_length"],
            "candidates": _csv(options["candidates"]),
        },
        "evaluation": {"n_folds": options["n_folds"]},
    }
    merged = config.model_dump()
    for key, value in overrides.items():
        if isinstance(value, dict):
            merged[key].update({k: v for k, v in value.items() if v is not None})
        elif value is not None:
            merged[key] = value
    return build_config(merged, source="command-line options")


def _print_run(run: PublishedRun) -> None:
    """Prints a run's leaderboard, read from its hash-verified bytes."""
    columns = ["model", "status", "mase", "mae", "coverage_80", "width_80", "seconds", "epochs"]
    columns += [c for c in run.leaderboard.columns if c.startswith("p_vs_")]
    shown = run.leaderboard.reindex(columns=columns)
    typer.echo(shown.to_string(index=False, float_format=lambda value: f"{value:.4f}"))


# For the temporary server only: it records flow runs, task runs (through the task run
# recorder, which stays on), logs and artifacts, but not the event feed. Reactive triggers,
# event persistence and event streaming cost it about 1 s of CPU per run and nothing reads them
# (the shipped automations watch served runs, which use a real server). A first start on a new
# Prefect home also migrates the database, which can outlast Prefect's default 20 s timeout on
# a busy 2-core machine.
_TEMPORARY_SERVER_SETTINGS = {
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED": "false",
    "PREFECT_SERVER_EVENTS_STREAM_OUT_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": str(STARTUP_TIMEOUT_SECONDS),
}


def _quiet_environment(lean_server: bool = True) -> None:
    """Settings that must be in place before Prefect and TensorFlow are imported.

    With no PREFECT_API_URL, Prefect starts a temporary server for this process on the SQLite
    file $PREFECT_HOME/prefect.db (~/.prefect), shared by every such server, and SQLite refuses
    some concurrent writes outright ("database is locked") whatever its timeouts. So each
    `forecast run` takes a slot with a file lock, held until it exits (the kernel frees it if
    the process dies): slot 0 keeps Prefect's default database (a lone run changes nothing, its
    history included); a run started while another runs gets its own file, recurrent-<slot>.db
    next to it, kept for the next time, so concurrent runs never share one. Nothing changes
    when PREFECT_API_URL or a database URL is set in the environment; with an API URL in a
    Prefect profile no temporary server starts, so the database setting goes unused.

    With `lean_server` (run and backfill; not serve), the temporary server also leaves out the
    event feed (`_TEMPORARY_SERVER_SETTINGS`); a setting already in the environment wins.
    """
    import atexit

    from filelock import FileLock, Timeout

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    configured = {
        "PREFECT_API_URL",
        "PREFECT_SERVER_DATABASE_CONNECTION_URL",
        "PREFECT_API_DATABASE_CONNECTION_URL",
    }
    if configured & os.environ.keys():
        return
    if lean_server:
        for name, value in _TEMPORARY_SERVER_SETTINGS.items():
            os.environ.setdefault(name, value)
    home = Path(os.environ.get("PREFECT_HOME") or "~/.prefect").expanduser()
    for slot in range(16):  # past 16 runs at once, the rest share the default database
        lock = FileLock(home / f".recurrent-server-{slot}.lock")
        try:
            home.mkdir(parents=True, exist_ok=True)
            lock.acquire(timeout=0)
        except Timeout:
            continue
        except OSError:
            return  # an unwritable Prefect home: Prefect reports it better
        atexit.register(lock.release)  # also keeps the lock alive until exit
        if slot:
            database = f"sqlite+aiosqlite:///{home / f'recurrent-{slot}.db'}"
            os.environ["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database
        return
