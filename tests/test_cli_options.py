"""Command-line options that set configuration fields (flows/options.py): each maps to a real
field, shows that field's description and default in `--help`, and overrides the config file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from flows import options
from flows.cli import app
from forecasting.config import DEFAULT_DATA, build_config
from forecasting.errors import ConfigError

# Every flag the CLI has offered; none may disappear.
FLAGS = [
    "--data", "--time-column", "--target-column", "--id-column", "--covariates", "--freq",
    "--na-values", "--max-fill", "--horizon", "--input-size", "--name", "--output-dir",
    "--segment-length", "--loss", "--base", "--calendar", "--max-epochs",
    "--windows-per-series", "--candidates", "--n-folds", "--as-of", "--seed", "--task-runner",
    "--workers", "--threads", "--dask-address",
]  # fmt: skip


def help_text(*command: str) -> str:
    """`forecast COMMAND --help` as plain words: box drawing gone, line wraps joined."""
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.output).split())


def expected_default(default: object) -> str:
    """The field's default as a person would write it, independently of `default_text`."""
    if isinstance(default, tuple):
        return ", ".join(default)
    if default == DEFAULT_DATA:
        return "the ETTh1 sample bundled with the package"
    if isinstance(default, Path) and not default.is_absolute():
        return f"./{default} in the working directory"
    return str(default)


def test_every_flag_maps_to_an_existing_config_field() -> None:
    assert list(options.OPTIONS) == FLAGS
    for path in options.OPTIONS.values():
        assert options.field(path).description, path  # the help needs one
    assert len(set(options.OPTIONS.values())) == len(options.OPTIONS)


@pytest.mark.parametrize(
    ("command", "flags"),
    [(["run"], FLAGS), (["backfill"], [flag for flag in FLAGS if flag != "--as-of"])],
    ids=["run", "backfill"],
)
def test_help_shows_each_fields_description_and_default(command, flags) -> None:
    text = help_text(*command)
    for flag in flags:
        info = options.field(options.OPTIONS[flag])
        default = info.get_default(call_default_factory=True)
        shown = "" if default in (None, (), "") else f" Default: {expected_default(default)}."
        assert f"{flag} " in text
        assert f"{info.description.rstrip('.')}.{shown}" in text, flag


def test_without_a_name_each_data_file_publishes_under_its_own(tmp_path: Path) -> None:
    config_file = tmp_path / "pipeline.toml"
    config_file.write_text('[data]\npath = "Site A.csv"\n')
    assert options.build(None, {}).name == "etth1"  # the bundled sample
    assert options.build(config_file, {}).name == "site-a"
    assert options.build(config_file, {"data": "M4-hourly.train.parquet"}).name == "m4-hourly"
    assert options.build(config_file, {"name": "mine"}).name == "mine"


def test_list_fields_read_comma_separated_values() -> None:
    given = {"covariates": "HUFL, HULL", "na_values": "--,n.a.", "candidates": "naive,gru,"}
    assert options.overrides(given) == {
        "data": {"covariates": ["HUFL", "HULL"], "na_values": ["--", "n.a."]},
        "model": {"candidates": ["naive", "gru"]},
    }


def test_options_override_the_config_file_and_leave_the_rest(tmp_path: Path) -> None:
    config_file = tmp_path / "pipeline.toml"
    config_file.write_text(
        'name = "from-file"\nseed = 7\n[data]\npath = "series.csv"\n[model]\nhorizon = 12\n'
    )
    given = {"horizon": 6, "as_of": "2018-06-01 00:00", "seed": None}
    config = options.build(config_file, given)
    assert (config.name, config.seed, config.model.horizon) == ("from-file", 7, 6)
    assert config.data.path == tmp_path / "series.csv"  # relative to the file's folder
    assert config.as_of.isoformat() == "2018-06-01T00:00:00"
    assert config.model.input_size == build_config({}).model.input_size


@pytest.mark.parametrize(("flag", "expected"), [("--calendar", True), ("--no-calendar", False)])
def test_a_yes_no_field_is_set_by_its_flag_or_its_no_flag(flag, expected, tmp_path: Path) -> None:
    """The flag wins over the config file's value either way."""
    config_file = tmp_path / "pipeline.toml"
    config_file.write_text(f"[model]\ncalendar = {str(not expected).lower()}\n")
    seen = {}

    def capture(**given: object) -> None:
        seen.update(given)

    command = options.with_config_options()(capture)
    runner_app = typer.Typer()
    runner_app.command()(command)
    result = CliRunner().invoke(runner_app, [flag])
    assert result.exit_code == 0, result.output
    assert options.build(config_file, seen).model.calendar is expected


def test_show_and_rollback_take_output_dir_from_the_config_field() -> None:
    info = options.field("output_dir")
    shown = f"{info.description} Default: {expected_default(info.default)}."
    for command in ("show", "rollback"):
        assert shown in help_text(command)


def test_a_covariate_named_like_a_calendar_channel_is_refused_only_with_calendar() -> None:
    values = {"data": {"covariates": ["load", "calendar_day_sin"]}}
    assert build_config(values).data.covariates == ("load", "calendar_day_sin")
    with pytest.raises(ConfigError, match=r"\['calendar_day_sin'\] start with 'calendar_'"):
        build_config({**values, "model": {"calendar": True}})
