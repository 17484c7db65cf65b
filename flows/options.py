"""Command-line options that set configuration fields, each defined once: a row of `OPTIONS`
names the flag and the field, and the option's type, help and default come from that pydantic
field, so `forecast run --help`, the TOML file and Prefect's run form explain a setting alike.

An option left out is None and leaves the config file's value, or the field's default, alone.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from forecasting.config import DEFAULT_DATA, PipelineConfig, build_config, load_config_file

LIST_METAVAR = "A,B,..."

# flag -> config field, in the order `--help` lists them; a flag's parameter is its name with
# underscores (--time-column: time_column). A yes/no field also gets its --no- flag
# (--calendar/--no-calendar).
OPTIONS: dict[str, str] = {
    "--data": "data.path",
    "--time-column": "data.time_column",
    "--target-column": "data.target_column",
    "--id-column": "data.id_column",
    "--covariates": "data.covariates",
    "--freq": "data.freq",
    "--na-values": "data.na_values",
    "--max-fill": "data.max_fill",
    "--horizon": "model.horizon",
    "--input-size": "model.input_size",
    "--name": "name",
    "--output-dir": "output_dir",
    "--segment-length": "model.segment_length",
    "--loss": "model.loss",
    "--base": "model.base",
    "--calendar": "model.calendar",
    "--max-epochs": "model.max_epochs",
    "--windows-per-series": "model.windows_per_series",
    "--candidates": "model.candidates",
    "--n-folds": "evaluation.n_folds",
    "--as-of": "as_of",
    "--seed": "seed",
    "--task-runner": "execution.task_runner",
    "--workers": "execution.workers",
    "--threads": "execution.threads",
    "--dask-address": "execution.dask_address",
}
_METAVARS = {"--as-of": "TIME", "--task-runner": "RUNNER", "--dask-address": "tcp://HOST:PORT"}

Command = TypeVar("Command", bound=Callable[..., Any])


def field(path: str) -> FieldInfo:
    """The pydantic field at `path`, such as `model.horizon` or `seed`.

    Raises:
        KeyError: No such field.
    """
    *sections, key = path.split(".")
    model: type[BaseModel] = PipelineConfig
    for section in sections:
        model = _only(model.model_fields[section].annotation)
    return model.model_fields[key]


def default_text(info: FieldInfo) -> str:
    """The field's default as help shows it: lists comma-separated, relative paths against
    the working directory; empty for None or an empty list, whose meaning the description states."""
    default = info.get_default(call_default_factory=True)
    if default is None or default in ((), ""):
        return ""
    if isinstance(default, tuple):
        return ", ".join(str(item) for item in default)  # spaces let the help wrap a long list
    if default == DEFAULT_DATA:
        return "the ETTh1 sample bundled with the package"
    if isinstance(default, Path) and not default.is_absolute():
        return f"./{default} in the working directory"
    return str(default)


def option(path: str, *declarations: str, metavar: str | None = None) -> Any:
    """A `typer.Option` whose help is the field's description and default."""
    info = field(path)
    description = (info.description or "").rstrip(".")
    default = default_text(info)
    text = f"{description}. Default: {default}." if default else f"{description}."
    return typer.Option(
        *declarations,
        help=text.replace("[", "\\["),  # help is Rich markup; descriptions are plain text
        metavar=metavar or (LIST_METAVAR if _is_list(info.annotation) else None),
        show_default=False,  # in the help, in the field's own words
    )


def default(path: str) -> Any:
    """The field's default, for an option with a value of its own (`forecast show`)."""
    return field(path).get_default(call_default_factory=True)


def with_config_options(leave_out: tuple[str, ...] = ()) -> Callable[[Command], Command]:
    """Gives a command every option of `OPTIONS` but `leave_out`, after its own parameters;
    the command takes them as keyword arguments (`**given`), each None unless given, for
    `build`. Typer reads the parameters from the signature this sets."""

    def add_options(command: Command) -> Command:
        own = inspect.signature(command, eval_str=True).parameters.values()
        shared = [_parameter(flag) for flag in OPTIONS if flag not in leave_out]
        command.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [p for p in own if p.kind != p.VAR_KEYWORD] + shared, return_annotation=None
        )
        return command

    return add_options


def build(config_file: Path | None, options: Mapping[str, object]) -> PipelineConfig:
    """The configuration: the TOML file's values (its relative paths resolved against its
    folder) over the defaults, then the options given over both.

    Raises:
        ConfigError: The file cannot be read, or a value is invalid.
    """
    values = load_config_file(config_file) if config_file else {}
    base_dir = config_file.resolve().parent if config_file else None
    source = f"config file {str(config_file)!r}" if config_file else "configuration"
    merged = build_config(values, base_dir, source).model_dump()
    if not values.get("name"):
        merged.pop("name")  # derived again from the data file the options may change
    for key, value in overrides(options).items():
        if isinstance(value, dict):
            merged[key].update(value)
        else:
            merged[key] = value
    return build_config(merged, source="command-line options")


def overrides(options: Mapping[str, object]) -> dict[str, Any]:
    """Nested config values of the options given (not None), lists split at commas."""
    values: dict[str, Any] = {}
    for flag, path in OPTIONS.items():
        value = options.get(parameter_name(flag))
        if value is None:
            continue
        *sections, key = path.split(".")
        target = values
        for section in sections:
            target = target.setdefault(section, {})
        if _is_list(field(path).annotation):
            value = [item.strip() for item in str(value).split(",") if item.strip()]
        target[key] = value
    return values


def parameter_name(flag: str) -> str:
    """The command's parameter for a flag: `--time-column` gives `time_column`."""
    return flag.removeprefix("--").replace("-", "_")


def _parameter(flag: str) -> inspect.Parameter:
    path = OPTIONS[flag]
    value_type = _value_type(field(path).annotation)
    declaration = f"{flag}/--no-{flag.removeprefix('--')}" if value_type is bool else flag
    return inspect.Parameter(
        parameter_name(flag),
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            value_type | None, option(path, declaration, metavar=_METAVARS.get(flag))
        ],
    )


def _value_type(annotation: Any) -> type:
    """What the option reads from the command line; the configuration validates it further
    (a list's items, a time's format, a model kind)."""
    kind = _only(annotation)
    if _is_list(kind) or kind is datetime or typing.get_origin(kind) is Literal:
        return str
    if kind in (str, int, float, bool, Path):
        return kind
    raise TypeError(f"No command-line type for a field of type {annotation!r}.")


def _only(annotation: Any) -> Any:
    """`X` for `X | None`, `str` for `Path | str` (a folder or a URL, which the configuration
    tells apart), else the annotation itself."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        kinds = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if set(kinds) == {Path, str}:
            return str
        (kind,) = kinds
        return kind
    return annotation


def _is_list(annotation: Any) -> bool:
    return typing.get_origin(_only(annotation)) is tuple
