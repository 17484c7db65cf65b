"""The `forecast` command: checks config and data first (no TensorFlow, no Prefect), then runs
the flow. A user mistake prints one line and exits 2; anything else is a bug with a traceback."""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from forecasting.config import (
    DEFAULT_OUTPUT_DIR,
    DataConfig,
    ModelConfig,
    PipelineConfig,
    build_config,
    load_config_file,
)
from forecasting.errors import ForecastingError

if TYPE_CHECKING:
    from forecasting.reading import PublishedRun

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


def _fail(error: ForecastingError) -> None:
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
    try:
        config = _build(config_file, locals())
        from forecasting.data import load_series
        from forecasting.validation import validate

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loaded = load_series(config.data)
            validate(loaded, config.data, config.model, config.evaluation, config.as_of)
    except ForecastingError as error:
        _fail(error)
    for warning in caught:
        typer.echo(f"Warning: {warning.message}", err=True)
    _quiet_environment()
    from flows.pipeline import forecast_pipeline

    started = time.perf_counter()
    state = forecast_pipeline(config, return_state=True)
    if not state.is_completed():
        typer.echo(f"Error: {state.message}", err=True)
        raise typer.Exit(1)
    summary = state.result()
    from forecasting.reading import read_run

    _print_run(read_run(Path(summary["path"])))
    typer.echo(f"\nChampion: {summary['champion']}. {summary['reason']}")
    if summary["reused"]:
        typer.echo("Nothing new to train: this data, config and seed were already published.")
    typer.echo(f"Published to {summary['path']} ({time.perf_counter() - started:.0f} s)")
    typer.echo(f"Latest:     {config.output_dir / config.name / 'latest'}")


@app.command()
def show(
    name: Annotated[str, typer.Argument(help="Pipeline name, e.g. etth1.")],
    output_dir: Annotated[
        Path, typer.Option(help="Folder holding published runs.")
    ] = DEFAULT_OUTPUT_DIR,
    rows: Annotated[int, typer.Option(help="Forecast rows to print.")] = 10,
) -> None:
    """Print the latest champion, its leaderboard and the head of its forecast."""
    from forecasting.reading import read_latest

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


def _build(config_file: Path | None, options: dict):
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
        },
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
    columns = ["model", "status", "mae", "rmse", "mase", "smape", "seconds", "epochs"]
    shown = run.leaderboard[columns]
    typer.echo(shown.to_string(index=False, float_format=lambda value: f"{value:.4f}"))


def _quiet_environment() -> None:
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
