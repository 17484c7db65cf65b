"""Pipeline configuration: frozen pydantic models, shared by the library, the CLI and Prefect.

The same models are the Prefect flow's parameters, so their field descriptions and bounds are
what a person sees in the UI's run form.
"""

from __future__ import annotations

import difflib
import importlib.util
import re
import tomllib
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from forecasting.errors import ConfigError
from forecasting.models import registry
from forecasting.store.backend import is_supported
from forecasting.store.layout import as_url, url_scheme

if TYPE_CHECKING:  # pydantic's own component, pinned by pydantic: for the type only
    from pydantic_core import ErrorDetails


def _bundled_sample() -> Path:
    """The ETTh1 sample shipped inside the package (`forecasting/sample/ETTh1.csv`).

    In a checkout that file is a symlink to the byte-exact `data/ETTh1.csv` (the dataset's
    licence fixes that layout); hatchling follows the link, so the wheel holds the real bytes.
    The package is installed as plain files, never zipped, so the resource is a real path.
    """
    return Path(str(resources.files("forecasting") / "sample" / "ETTh1.csv"))


# Nothing is written next to the code (a checkout or site-packages): the data default is the
# package's own read-only sample, and outputs go to ./outputs in the run's working directory.
DEFAULT_DATA = _bundled_sample()
DEFAULT_OUTPUT_DIR = Path("outputs")
DEFAULT_N_FOLDS = 3  # backtest folds when evaluation.n_folds is empty

Metric = Literal["mae", "rmse", "mase", "smape"]
TargetScaling = Literal["mase", "zscore"]
Loss = Literal["mse", "mae", "huber"]
Base = Literal["none", "seasonal_naive"]
TaskRunner = Literal["sequential", "processes", "dask"]
_RESERVED_COLUMNS = {"unique_id", "ds", "y", "row"}
# A pipeline name, and so a fleet group's: it cannot escape the output folder.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DataConfig(_Frozen):
    """Where the series come from and how to read them."""

    path: Path = Field(DEFAULT_DATA, description="CSV or Parquet file with the time series.")
    time_column: str = Field("date", description="Column holding the timestamps.")
    target_column: str = Field("OT", description="Numeric column to forecast.")
    id_column: str | None = Field(
        None, description="Column naming each series, for a file with many series (long format)."
    )
    covariates: tuple[str, ...] = Field(
        (), description="Extra numeric columns fed to the RNNs as past inputs."
    )
    freq: str | None = Field(
        None,
        description="pandas frequency such as 'h' or '15min'; empty: the most common step in "
        "the file.",
    )
    na_values: tuple[str, ...] = Field(
        (), description="Extra text markers to read as missing values, such as '--'."
    )
    max_fill: int = Field(
        12,
        ge=0,
        le=10_000,
        description="Longest run of missing steps (absent timestamps or empty values) filled by "
        "interpolation; longer gaps are refused.",
    )
    max_file_bytes: int = Field(
        2 * 1024**3,
        ge=1,
        description="Largest data file read, in bytes (default 2 GiB); a larger file is refused "
        "before it is read, since reading takes several times its size in memory.",
    )

    @property
    def features(self) -> list[str]:
        """Model input columns in the long frame: the target `y` first, then the covariates."""
        return ["y", *self.covariates]

    @field_validator("freq")
    @classmethod
    def _known_freq(cls, freq: str | None) -> str | None:
        if freq is None:
            return None
        import pandas as pd

        try:
            offset = pd.tseries.frequencies.to_offset(freq)
        except (ValueError, TypeError):
            offset = None
        if offset is None or offset.n <= 0:
            raise ValueError(
                "must be a positive pandas frequency such as 'h', '15min', 'D' or 'MS'. "
                f"Received: freq={freq!r}"
            )
        return freq

    @field_validator("covariates")
    @classmethod
    def _covariates_are_distinct(cls, covariates: tuple[str, ...]) -> tuple[str, ...]:
        reserved = sorted(set(covariates) & _RESERVED_COLUMNS)
        if reserved:
            raise ValueError(
                f"{reserved} are names used inside the pipeline; rename those columns in the "
                f"file. Received: covariates={list(covariates)}"
            )
        if len(set(covariates)) != len(covariates):
            raise ValueError(f"lists a column twice. Received: covariates={list(covariates)}")
        return covariates


class ModelConfig(_Frozen):
    """What the candidates look like and how they are trained."""

    horizon: int = Field(24, ge=1, le=10_000, description="Steps to forecast.")
    input_size: int = Field(168, ge=1, le=100_000, description="Steps of history per input window.")
    candidates: tuple[str, ...] = Field(
        registry.kinds(),  # every registered kind, simplest first
        min_length=1,
        description="Model kinds to train and compare.",
        # The registry's kinds as an enum, so the Prefect UI offers them as choices.
        json_schema_extra={"items": {"enum": list(registry.kinds()), "type": "string"}},
    )
    units: int = Field(64, ge=1, le=4096, description="Units per recurrent layer.")
    layers: int = Field(1, ge=1, le=8, description="Stacked recurrent layers.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Input dropout of each RNN layer.")
    recurrent_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Recurrent-state dropout.")
    normalize_window: bool = Field(
        True,
        description="Subtract each input window's last target value and add it back to the "
        "output (as NLinear does), in the RNNs and linear; makes them robust to level shifts.",
    )
    target_scaling: TargetScaling = Field(
        "mase",
        description="How each series' target is scaled before the models see it: 'mase' "
        "divides by its in-sample seasonal naive MAE (the scale MASE divides errors by), "
        "'zscore' by its standard deviation; both subtract its mean. Covariates are always "
        "z-scored. Fitted on each fold's training block only.",
    )
    loss: Loss = Field(
        "mae",
        description="Training loss of the RNNs on scaled targets: 'mse', 'mae' or 'huber' "
        "(delta 1 in the units the network sees: one window standard deviation with "
        "scale_window, else one in-sample seasonal naive MAE under mase scaling). The champion is "
        "still chosen on evaluation.metric.",
    )
    base: Base = Field(
        "none",
        description="Residual (hybrid) mode of the RNNs: 'seasonal_naive' makes each RNN learn "
        "the correction to the seasonal naive forecast and publish base + correction; 'none' "
        "forecasts directly.",
    )
    scale_window: bool = Field(
        True,
        description="In the RNNs, divide each window's target inputs by their own standard "
        "deviation and multiply the output back (with the loss weighted to match), so "
        "series of very different spread train alike.",
    )
    calendar: bool = Field(
        False,
        description="Give every trained model (RNNs, linear, local_linear) calendar inputs: "
        "sine and cosine of each input row's phase in the day and week (hourly data; daily: "
        "week and year; weekly to quarterly: year), computed from its timestamp.",
    )
    segment_length: int = Field(
        24,
        ge=1,
        le=100_000,
        description="Input steps each recurrent step reads (capped at input_size); 1 reads the "
        "window step by step, 24 reads one day of hourly data per step (as SegRNN does).",
    )
    ensemble_size: int = Field(
        1,
        ge=1,
        le=64,
        description="RNNs of each kind trained side by side from different seeds and "
        "averaged inside one model; 1 trains a single network.",
    )
    max_epochs: int = Field(
        100,
        ge=1,
        le=10_000,
        description="Upper bound on training epochs (early stopping usually ends sooner).",
    )
    patience: int = Field(
        5, ge=1, le=1000, description="Epochs without validation improvement before stopping."
    )
    time_budget_seconds: float = Field(
        900.0,
        gt=0,
        description="Wall-clock budget for training one RNN on one backtest fold; when it runs "
        "out, training stops and keeps the best weights so far (recorded in the leaderboard).",
    )
    batch_size: int = Field(256, ge=1, le=65_536, description="Windows per training batch.")
    windows_per_series: int | None = Field(
        None,
        ge=1,
        le=10_000_000,
        description="At most this many training windows of each series in one RNN epoch, "
        "drawn afresh each epoch (seeded), and at most this many validation windows of each "
        "series for early stopping (drawn once), so an epoch costs no more per series however "
        "long the history; empty: every window, every epoch.",
    )
    learning_rate: float = Field(1e-3, gt=0.0, le=1.0, description="Adam learning rate.")
    finetune_epochs: int = Field(
        2, ge=0, le=1000, description="Epochs the champion RNN is fine-tuned on all data."
    )
    season_length: int | None = Field(
        None, ge=1, description="Season for seasonal_naive and MASE; inferred from freq if empty."
    )

    @field_validator("candidates")
    @classmethod
    def _candidates_known_once(cls, candidates: tuple[str, ...]) -> tuple[str, ...]:
        for kind in candidates:
            if registry.find(kind) is None:
                raise ValueError(
                    f"{registry.unknown_kind(kind)} Received: candidates={list(candidates)}"
                )
        if len(set(candidates)) != len(candidates):
            raise ValueError(f"names a model kind twice. Received: candidates={list(candidates)}")
        return candidates

    @property
    def trains_rnns(self) -> bool:
        """Whether any candidate is recurrent (an RNN), and so the run needs Keras."""
        return any(registry.spec(kind).recurrent for kind in self.candidates)


class EvaluationConfig(_Frozen):
    """How candidates are backtested, compared and promoted."""

    metric: Metric = Field("mase", description="Metric that chooses the champion (lower wins).")
    n_folds: int | None = Field(
        None,
        ge=1,
        le=100,
        description="Rolling-origin backtest folds: consecutive test blocks over the most recent "
        "data; every candidate is retrained before each block and scored on it. Empty: 3, "
        "fewer when the series are too short for 3 (the run warns and the manifest says why).",
    )
    fold_size: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="Steps per backtest block (at least the horizon). Empty: 4 x horizon, "
        "smaller (down to the horizon) when the series are too short for it.",
    )
    validation_fraction: float = Field(
        0.1,
        gt=0.0,
        lt=0.5,
        description="Share of the data before each block used for early stopping (at least "
        "one horizon).",
    )
    warm_start: bool = Field(
        True,
        description="Start each fold's RNN from the previous fold's weights instead of from "
        "scratch (benchmarks/backtest.py measures both).",
    )
    promotion_margin_percent: float = Field(
        2.0,
        ge=0.0,
        lt=100.0,
        description="A challenger replaces the published champion's kind only if it beats it "
        "by this much on the metric, and significantly.",
    )
    significance_level: float = Field(
        0.05, gt=0.0, lt=1.0, description="Diebold-Mariano test level for a significant win."
    )
    accuracy_drop_percent: float = Field(
        20.0,
        gt=0.0,
        description="Warn when the newest scored published forecast's MASE is this much worse "
        "than the mean of the runs scored before it.",
    )

    def block_size(self, horizon: int) -> int:
        """Steps per backtest block: `fold_size`, or 4 x horizon when empty."""
        return self.fold_size or 4 * horizon

    def fold_count(self) -> int:
        """Backtest folds: `n_folds`, or 3 when empty."""
        return self.n_folds or DEFAULT_N_FOLDS


class ExecutionConfig(_Frozen):
    """Where the candidates train: one after another in the run's process, or side by side in
    worker processes. The choice changes no number: the run id, champion and decision are the
    same under every runner (so these settings are left out of the run id)."""

    task_runner: TaskRunner = Field(
        "sequential",
        description="How the candidates train: 'sequential' (one after another in the run's "
        "process), 'processes' (a pool of worker processes on this machine) or 'dask' (a Dask "
        "cluster: a local one started for the run, or the scheduler at dask_address; needs "
        "the dask extra).",
    )
    workers: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="Worker processes for 'processes' and a local 'dask' cluster; each limits "
        "TensorFlow to its share of the cores. Empty: the machine's cores, at most one per "
        "candidate.",
    )
    threads: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="CPU threads the run may use on its machine: TensorFlow's and BLAS' "
        "threads in the run's process, shared out among the workers for 'processes' and a "
        "local 'dask' cluster. Set it below the cores when several runs share a machine, such "
        "as fleet groups on process workers side by side. Empty: the machine's cores.",
    )
    dask_address: str | None = Field(
        None,
        description="Address of a running Dask scheduler, such as tcp://10.0.0.5:8786, for "
        "task_runner 'dask'; empty: start a local cluster for the run and stop it after.",
    )

    @field_validator("task_runner")
    @classmethod
    def _runner_installed(cls, runner: str) -> str:
        # Like an s3:// output_dir: refused up front, before anything trains, when missing.
        if runner == "dask" and importlib.util.find_spec("prefect_dask") is None:
            raise ValueError(
                "'dask' needs prefect-dask and distributed: install the dask extra (pip install "
                "'recurrent-forecast[dask]'), or choose 'processes'."
            )
        return runner

    @field_validator("dask_address")
    @classmethod
    def _scheduler_address(cls, address: str | None) -> str | None:
        if address is not None and not re.match(r"^(tcp|tls|inproc|ucx)://\S+$", address):
            raise ValueError(
                "must be a Dask scheduler address such as 'tcp://127.0.0.1:8786'. "
                f"Received: dask_address={address!r}"
            )
        return address


class ReplayConfig(_Frozen):
    """A replay clock, for a data file that has ended (the bundled ETTh1 ends in 2018): a
    scheduled run started at time T forecasts as of `start + (T - anchor)`, so each hour of
    schedule reveals one more hour of data; past the last timestamp the replay wraps to `start`
    and publishes to `<name>-cycle-<n>`."""

    anchor: datetime = Field(
        description="Schedule time, with its offset, at which the replay shows `start`."
    )
    start: datetime = Field(
        description="Data time shown at the anchor (with an offset only when the data carry one)."
    )

    @field_validator("anchor")
    @classmethod
    def _anchor_has_offset(cls, anchor: datetime) -> datetime:
        if anchor.tzinfo is None:
            raise ValueError(
                "must carry an offset, such as '2026-11-01T00:00:00+00:00': schedules run in "
                f"real time. Received: anchor={anchor.isoformat()!r}"
            )
        return anchor


class PipelineConfig(_Frozen):
    """Everything one pipeline run needs."""

    name: str = Field(
        "",
        description="Pipeline name; outputs go to <output_dir>/<name>/. Empty: the data file's "
        "name, lowercased, without its extension (etth1 for the bundled sample).",
    )
    output_dir: Path | str = Field(
        DEFAULT_OUTPUT_DIR,
        description="Folder that receives published runs, or an object-store URL such as "
        "s3://bucket/prefix (endpoint from AWS_ENDPOINT_URL, credentials from the AWS "
        "variables or profile; needs the s3 extra).",
    )
    keep_runs: int = Field(
        30,
        ge=1,
        le=100_000,
        description="Published runs kept per pipeline, newest as-of first; older ones are "
        "deleted after each publish (never the one `latest` points to).",
    )
    seed: int = Field(
        42,
        ge=0,
        le=2**31 - 1,
        description="Seed for every random choice; the same data, config and seed give the "
        "same forecast.",
    )
    as_of: datetime | None = Field(
        None,
        description="Forecast as of this time (ISO-8601, with an offset when the data carry "
        "one): rows after it are dropped and counted, the forecast starts one step after the "
        "last observation at or before it, and the run is labelled with it. Empty: the last "
        "timestamp in the file.",
    )
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    replay: ReplayConfig | None = Field(
        None,
        description="Replay clock for scheduled runs on data that has ended; empty: a scheduled "
        "run forecasts as of its scheduled time.",
    )

    @model_validator(mode="before")
    @classmethod
    def _name_from_data(cls, values: object) -> object:
        # Runs on different files must not share a history by accident: without a name,
        # each file publishes under its own.
        if not isinstance(values, dict) or values.get("name"):
            return values
        data = values.get("data")
        path = data.get("path") if isinstance(data, dict) else getattr(data, "path", None)
        stem = Path(str(path or DEFAULT_DATA)).name.split(".")[0].lower()
        name = re.sub(r"[^a-z0-9_.-]+", "-", stem).strip("-._")[:64] or "series"
        return {**values, "name": name}

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        if not NAME_PATTERN.match(name):
            raise ValueError(
                "must be 1-64 letters, digits, '_', '.' or '-' and start with a letter or digit, "
                f"so it cannot escape the output folder. Received: name={name!r}"
            )
        return name

    @field_validator("output_dir", mode="before")
    @classmethod
    def _output_location(cls, value: object) -> object:
        # A URL stays text (Path() would fold s3:// into s3:/); its scheme needs a backend.
        if not isinstance(value, str | Path):
            return value
        if url_scheme(value) in (None, "file"):
            return Path(str(value).removeprefix("file://"))
        is_supported(value)
        return as_url(value)

    @field_validator("as_of", mode="before")
    @classmethod
    def _iso_as_of(cls, value: object) -> object:
        # Strict ISO-8601 rather than pydantic's lax parsing, which reads '12' as a Unix time.
        if isinstance(value, date) and not isinstance(value, datetime):
            return datetime.combine(value, datetime.min.time())  # a TOML date: midnight
        if not isinstance(value, str):
            return value
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(
                "must be an ISO-8601 timestamp such as '2016-07-10 12:00:00', or "
                f"'2016-07-10T12:00:00+01:00' for data with offsets. Received: as_of={value!r}"
            ) from None

    @model_validator(mode="after")
    def _sizes_fit(self) -> PipelineConfig:
        season = self.model.season_length
        if season is not None and season > self.model.input_size:
            raise ValueError(
                f"season_length ({season}) must not exceed input_size "
                f"({self.model.input_size}); seasonal_naive reads one season from the window."
            )
        clash = [name for name in self.data.covariates if name.startswith("calendar_")]
        if self.model.calendar and clash:
            raise ValueError(
                f"covariates {clash} start with 'calendar_', the prefix of the calendar channels "
                f"that model.calendar adds; rename those columns in the file. Received: "
                f"covariates={list(self.data.covariates)}"
            )
        execution = self.execution
        if execution.dask_address is not None and execution.task_runner != "dask":
            raise ValueError(
                "execution.dask_address is set but execution.task_runner is "
                f"{execution.task_runner!r}; set task_runner to 'dask' or leave the address out."
            )
        fold = self.evaluation.fold_size
        if fold is not None and fold < self.model.horizon:
            raise ValueError(
                f"evaluation.fold_size ({fold}) must be at least the horizon "
                f"({self.model.horizon}), so each block holds at least one whole forecast."
            )
        return self


def build_config(
    values: dict, base_dir: Path | None = None, source: str = "configuration"
) -> PipelineConfig:
    """Builds a `PipelineConfig` from nested dict values, turning pydantic errors into one line.

    Args:
        values: Nested values as in the TOML file (`name`, `[data]`, `[model]`, ...).
        base_dir: Folder that relative `data.path` and `output_dir` given in `values`
            resolve against (the config file's folder); None leaves them relative to the
            working directory of the run. Paths left out take the defaults, which never
            depend on `base_dir`: the bundled sample and `outputs` in the working directory.
        source: What the values came from, for the error message.

    Raises:
        ConfigError: A value is missing, unknown or out of bounds.
    """
    values = {
        key: dict(value) if isinstance(value, dict) else value for key, value in values.items()
    }
    for section, key in ((values, "output_dir"), (values.get("data"), "path")):
        if isinstance(section, dict) and isinstance(section.get(key), str):
            if url_scheme(section[key]) not in (None, "file"):
                continue  # a URL is not relative to anything
            path = Path(section[key]).expanduser()  # `~` too, as a shell would for an option
            section[key] = path if base_dir is None else base_dir / path
    try:
        return PipelineConfig.model_validate(values)
    except ValidationError as error:
        problems = "; ".join(_describe(issue) for issue in error.errors())
        raise ConfigError(
            f"Invalid {source}: {problems}. Correct those keys; `forecast run --help` explains "
            "each option."
        ) from None


def _describe(issue: ErrorDetails) -> str:
    """One pydantic error as `section.key: what is wrong`, with a suggestion for unknown keys."""
    where = ".".join(str(part) for part in issue["loc"]) or "config"
    if issue["type"] != "extra_forbidden":
        return f"{where}: {issue['msg'].removeprefix('Value error, ')}"
    sections: dict[str, type[BaseModel]] = {
        "data": DataConfig,
        "model": ModelConfig,
        "evaluation": EvaluationConfig,
        "execution": ExecutionConfig,
    }
    section = sections.get(str(issue["loc"][0])) if len(issue["loc"]) > 1 else PipelineConfig
    known = list(section.model_fields) if section else []
    close = difflib.get_close_matches(str(issue["loc"][-1]), known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known keys: {', '.join(known)})"
    return f"{where}: unknown key{hint}"


def load_config_file(path: Path) -> dict:
    """Reads a TOML config file into nested values; see `build_config`.

    Raises:
        ConfigError: The file is missing or is not valid TOML.
    """
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(
            f"Config file {str(path)!r} does not exist. Check the --config path."
        ) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"Config file {str(path)!r} is not valid TOML: {error}.") from None
    except OSError as error:
        raise ConfigError(
            f"Config file {str(path)!r} cannot be read ({error.strerror}). Pass a TOML file "
            "with --config."
        ) from None


def season_for(freq: str, configured: int | None) -> int:
    """Returns the seasonal period for a pandas frequency string (24 for hourly data).

    A configured value wins; otherwise hourly data gives 24, sub-hourly one day of steps, daily 7,
    weekly 52, monthly 12, quarterly 4, anything else 1.
    """
    if configured is not None:
        return configured
    import pandas as pd

    offset = pd.tseries.frequencies.to_offset(freq)
    try:
        step = pd.Timedelta(offset)
    except ValueError:
        step = None
    if step is not None:
        if step <= pd.Timedelta(hours=1):
            return max(1, int(pd.Timedelta(days=1) / step))
        if step == pd.Timedelta(days=1):
            return 7
        if step == pd.Timedelta(weeks=1):
            return 52
        return 1
    prefix = offset.rule_code.split("-")[0].upper()
    return {"ME": 12, "MS": 12, "M": 12, "QE": 4, "QS": 4, "Q": 4, "W": 52}.get(prefix, 1)
