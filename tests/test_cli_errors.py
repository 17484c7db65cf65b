"""The `forecast run` command on user mistakes: one `Error:` line on stderr, exit code 2, no
traceback, nothing written, and all of it before TensorFlow or Prefect is imported.

Files are the first 600 hours of the bundled ETTh1 file with one thing broken; CSV line numbers
are 1-based with the header as line 1. No case here gets past validation, so nothing trains.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from tests.helpers import at_line, one_error_line, repeat_line, shift_to_90_minutes

PROJECT = Path(__file__).resolve().parent.parent
ETTH1 = PROJECT / "data" / "ETTh1.csv"
SMALL = ["--input-size", "24", "--horizon", "6"]


@pytest.fixture
def rows() -> pd.DataFrame:
    """The first 600 hourly rows of ETTh1, every cell kept as the text in the file."""
    return pd.read_csv(ETTH1, nrows=600, dtype=str)


def write_csv(frame: pd.DataFrame, path: Path, sep: str = ",") -> None:
    frame.to_csv(path, index=False, sep=sep)


def invoke(data: Path, output_dir: Path, *options: str):
    arguments = ["run", "--data", str(data), "--output-dir", str(output_dir), *options]
    return CliRunner().invoke(app, arguments)


def assert_user_error(result, output_dir: Path) -> str:
    """Checks the shape every user mistake shares, that nothing was written, and returns the
    message line."""
    line = one_error_line(result)
    assert not output_dir.exists()
    return line


class _ReachedPipeline(Exception):
    """Raised by the stand-in flow: validation passed and the CLI went on to run the flow."""


@pytest.fixture(autouse=True)
def stand_in_pipeline(monkeypatch):
    """Replaces `flows.pipeline` (Prefect, TensorFlow) with a flow that stops the run at once.

    Every in-process test uses it, so a file that wrongly passes validation fails its test fast
    instead of training models.
    """

    def forecast_pipeline(config, return_state=False):
        raise _ReachedPipeline(config)

    module = types.ModuleType("flows.pipeline")
    module.forecast_pipeline = forecast_pipeline
    monkeypatch.setitem(sys.modules, "flows.pipeline", module)
    defaults = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    for name, value in {**defaults, "TF_CPP_MIN_LOG_LEVEL": "2"}.items():
        monkeypatch.setenv(name, os.environ.get(name, value))  # so the CLI's setdefault is undone


def _offset_change(rows: pd.DataFrame) -> pd.DataFrame:
    offsets = ["+01:00"] * 300 + ["+02:00"] * 300  # as a file exported across a DST change
    return rows.assign(date=rows["date"] + pd.Series(offsets))


# (case id, how to break the file, extra options, fragments the message must hold)
DATA_CASES: list[tuple[str, Callable[[pd.DataFrame], pd.DataFrame], list[str], list[str]]] = [
    (
        "missing-column",
        lambda rows: rows,
        ["--target-column", "Temperature"],
        ["no column 'Temperature'", "'OT'", "--target-column"],
    ),
    (
        "misspelled-column",
        lambda rows: rows,
        ["--target-column", "Ot"],
        ["no column 'Ot' (did you mean 'OT'?)", "--target-column"],
    ),
    (
        "misspelled-time-column",
        lambda rows: rows,
        ["--time-column", "Date"],
        ["no column 'Date' (did you mean 'date'?)", "--time-column"],
    ),
    (
        "unparseable-timestamp",
        lambda rows: at_line(rows, 6, "date", "2016-07-01 xx"),
        [],
        ["column 'date'", "line 6 ", "'2016-07-01 xx'", "Fix or remove those lines"],
    ),
    (
        "text-dashes",
        lambda rows: at_line(at_line(rows, 11, "OT", "--"), 12, "OT", "--"),
        SMALL,
        ["column 'OT' must be numeric", "lines 11, 12 ", "'--'", "--na-values --"],
    ),
    (
        "text-abc",
        lambda rows: at_line(rows, 30, "OT", "abc"),
        SMALL,
        ["column 'OT' must be numeric", "line 30 ", "'abc'", "--na-values abc"],
    ),
    (
        "text-in-covariate",
        lambda rows: at_line(rows, 30, "HULL", "abc"),
        [*SMALL, "--covariates", "HUFL,HULL"],
        ["column 'HULL' must be numeric", "line 30 ", "--na-values"],
    ),
    (
        "infinity",
        lambda rows: at_line(rows, 11, "OT", "inf"),
        SMALL,
        ["column 'OT'", "line 11 ", "infinite", "leave them empty"],
    ),
    (
        "conflicting-duplicate",
        lambda rows: repeat_line(rows, 11, "1.5"),
        SMALL,
        ["column 'date'", "lines 11, 12 ", "2016-07-01 09:00:00", "--id-column"],
    ),
    (
        "gap-longer-than-max-fill",
        lambda rows: rows.drop(index=range(99, 119)),  # lines 101-120
        SMALL,
        ["series 'OT'", "20 consecutive steps", "2016-07-05 03:00:00", "--max-fill"],
    ),
    (
        "empty-values-longer-than-max-fill",
        lambda rows: rows.assign(
            OT=[None if 99 <= i < 104 else v for i, v in enumerate(rows["OT"])]
        ),
        [*SMALL, "--max-fill", "4"],
        ["series 'OT'", "5 consecutive steps", "max_fill=4", "--max-fill"],
    ),
    (
        "too-short",
        lambda rows: rows,
        ["--input-size", "500"],
        ["'OT' has 600 steps", "at least 605", "--input-size", "--horizon"],
    ),
    (
        "header-only",
        lambda rows: rows.iloc[:0],
        [],
        ["has a header but no data lines"],
    ),
    (
        "mixed-offsets",
        _offset_change,
        SMALL,
        ["column 'date'", "different time-zone offsets", "lines 302, 303", "UTC"],
    ),
    (
        "frequency-change",
        shift_to_90_minutes,
        SMALL,
        ["column 'date'", "frequency changes mid-file", "lines 402, 404", "--freq"],
    ),
    (
        "constant",
        lambda rows: rows.assign(OT="5.0"),
        SMALL,
        ["column 'OT'", "never changes value", "Remove them"],
    ),
]


@pytest.mark.parametrize(
    ("breaks", "options", "fragments"),
    [case[1:] for case in DATA_CASES],
    ids=[case[0] for case in DATA_CASES],
)
def test_bad_data_is_one_line_naming_file_place_and_remedy(
    rows, tmp_path, breaks, options, fragments
):
    data = tmp_path / "bad.csv"
    write_csv(breaks(rows), data)
    output_dir = tmp_path / "out"
    message = assert_user_error(invoke(data, output_dir, *options), output_dir)
    assert str(data) in message
    for fragment in fragments:
        assert fragment in message


def test_empty_file(tmp_path):
    data = tmp_path / "empty.csv"
    data.write_text("")
    output_dir = tmp_path / "out"
    message = assert_user_error(invoke(data, output_dir), output_dir)
    assert str(data) in message
    assert "is empty" in message
    assert "header line" in message


def test_wrong_delimiter(rows, tmp_path):
    data = tmp_path / "semicolons.csv"
    write_csv(rows, data, sep=";")
    output_dir = tmp_path / "out"
    message = assert_user_error(invoke(data, output_dir), output_dir)
    assert str(data) in message
    assert "';'" in message
    assert "save it with commas" in message


def test_missing_data_file(tmp_path):
    data = tmp_path / "absent.csv"
    output_dir = tmp_path / "out"
    message = assert_user_error(invoke(data, output_dir), output_dir)
    assert str(data) in message
    assert "does not exist" in message
    assert "--data" in message


@pytest.mark.parametrize("name", ["../evil", "a/b", ".hidden"])
def test_unsafe_pipeline_name_is_a_config_error(rows, tmp_path, name):
    data = tmp_path / "good.csv"
    write_csv(rows, data)
    output_dir = tmp_path / "out"
    message = assert_user_error(invoke(data, output_dir, "--name", name), output_dir)
    assert message.startswith("Error: Invalid command-line options: name: must be 1-64")
    assert repr(name) in message
    assert "cannot escape the output folder" in message


def test_config_file_with_bad_syntax(rows, tmp_path):
    data = tmp_path / "good.csv"
    write_csv(rows, data)
    config = tmp_path / "pipeline.toml"
    config.write_text("[data\npath = 'x.csv'\n")
    output_dir = tmp_path / "out"
    message = assert_user_error(invoke(data, output_dir, "--config", str(config)), output_dir)
    assert str(config) in message
    assert "is not valid TOML" in message
    assert "line 1" in message


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("[model]\nhorizon = 'soon'\n", ["model.horizon", "valid integer"]),
        ("[model]\nhorizon = 0\n", ["model.horizon", "greater than or equal to 1"]),
        ("[data]\npaht = 'x.csv'\n", ["data.paht", "unknown key", "did you mean 'path'?"]),
    ],
    ids=["wrong-type", "out-of-bounds", "unknown-key"],
)
def test_config_file_with_bad_values(rows, tmp_path, text, fragments):
    data = tmp_path / "good.csv"
    write_csv(rows, data)
    config = tmp_path / "pipeline.toml"
    config.write_text(text)
    output_dir = tmp_path / "out"
    message = assert_user_error(invoke(data, output_dir, "--config", str(config)), output_dir)
    assert message.startswith(f"Error: Invalid config file {str(config)!r}: ")
    for fragment in fragments:
        assert fragment in message


def test_missing_config_file(rows, tmp_path):
    data = tmp_path / "good.csv"
    write_csv(rows, data)
    config = tmp_path / "absent.toml"
    output_dir = tmp_path / "out"
    message = assert_user_error(invoke(data, output_dir, "--config", str(config)), output_dir)
    assert str(config) in message
    assert "--config" in message


def test_declared_na_values_let_the_same_file_pass(rows, tmp_path):
    data = tmp_path / "dashes.csv"
    write_csv(at_line(at_line(rows, 11, "OT", "--"), 12, "OT", "--"), data)
    output_dir = tmp_path / "out"
    result = invoke(data, output_dir, *SMALL, "--na-values", "--")
    assert isinstance(result.exception, _ReachedPipeline), result.output
    warning = [line for line in result.output.splitlines() if line.startswith("Warning: ")]
    assert len(warning) == 1 and "filled 2 missing values" in warning[0]
    config = result.exception.args[0]
    assert config.data.na_values == ("--",)
    assert "Error:" not in result.output
    assert not output_dir.exists()


@pytest.mark.parametrize(
    "target", ["forecasting.data.load_series", "forecasting.validation.validate"]
)
def test_unexpected_exception_keeps_its_traceback(rows, tmp_path, monkeypatch, target):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug, not a user mistake")

    monkeypatch.setattr(target, broken)
    data = tmp_path / "good.csv"
    write_csv(rows, data)
    result = invoke(data, tmp_path / "out")
    assert isinstance(result.exception, RuntimeError)
    assert result.exit_code not in (0, 2)
    assert result.exc_info is not None and result.exc_info[2] is not None
    assert "Error:" not in result.stderr


# --- a real process: the console entry point, and the imports it avoids -------------------


def test_console_entry_point_fails_fast(rows, tmp_path):
    data = tmp_path / "bad.csv"
    write_csv(at_line(rows, 11, "OT", "--"), data)
    output_dir = tmp_path / "out"
    command = [sys.executable, "-c", "from flows.cli import app; app()"]
    arguments = ["run", "--data", str(data), "--output-dir", str(output_dir)]
    started = time.perf_counter()
    finished = subprocess.run(
        [*command, *arguments], capture_output=True, text=True, cwd=PROJECT, timeout=60
    )
    seconds = time.perf_counter() - started
    assert finished.returncode == 2
    assert finished.stdout == ""
    assert finished.stderr.splitlines() == [finished.stderr.strip()]
    assert finished.stderr.startswith(f"Error: Data file {str(data)!r}, column 'OT'")
    assert "Traceback" not in finished.stderr
    assert not output_dir.exists()
    assert seconds < 10


_IMPORT_PROBE = """
import json, sys
from typer.testing import CliRunner
from flows.cli import app
result = CliRunner().invoke(app, ["run", "--data", sys.argv[1], "--output-dir", sys.argv[2]])
print(json.dumps({
    "exit_code": result.exit_code,
    "loaded": sorted(name for name in ("tensorflow", "keras", "prefect") if name in sys.modules),
}))
"""


def test_user_error_never_imports_tensorflow_or_prefect(rows, tmp_path):
    data = tmp_path / "bad.csv"
    write_csv(at_line(rows, 11, "OT", "--"), data)
    finished = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE, str(data), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=PROJECT,
        timeout=60,
    )
    assert finished.returncode == 0, finished.stderr
    report = json.loads(finished.stdout.splitlines()[-1])
    assert report["exit_code"] == 2
    assert report["loaded"] == []


@pytest.mark.parametrize(
    ("options", "fragments"),
    [
        (["--freq", "xyz"], ["data.freq", "positive pandas frequency", "'xyz'"]),
        (["--freq", "0h"], ["data.freq", "positive pandas frequency"]),
        (["--covariates", "row"], ["data.covariates", "names used inside the pipeline"]),
        (["--covariates", "HUFL,HUFL"], ["data.covariates", "lists a column twice"]),
    ],
    ids=["unknown-freq", "zero-freq", "reserved-covariate", "repeated-covariate"],
)
def test_bad_option_values_are_one_line(rows, tmp_path, options, fragments):
    data = tmp_path / "good.csv"
    write_csv(rows, data)
    output_dir = tmp_path / "out"
    message = assert_user_error(invoke(data, output_dir, *SMALL, *options), output_dir)
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("output_dir = 5\n", "output_dir"),
        ("[model]\ncandidates = ['gru', 'gru']\n", "names a model kind twice"),
    ],
    ids=["number-as-path", "repeated-candidate"],
)
def test_config_values_of_the_wrong_shape_are_one_line(rows, tmp_path, text, fragment):
    data = tmp_path / "good.csv"
    write_csv(rows, data)
    config = tmp_path / "pipeline.toml"
    config.write_text(text)
    output_dir = tmp_path / "out"
    message = assert_user_error(invoke(data, output_dir, "--config", str(config)), output_dir)
    assert fragment in message


def test_a_folder_as_config_file_is_one_line(rows, tmp_path):
    data = tmp_path / "good.csv"
    write_csv(rows, data)
    output_dir = tmp_path / "out"
    message = assert_user_error(invoke(data, output_dir, "--config", str(tmp_path)), output_dir)
    assert "cannot be read" in message and "--config" in message


def test_a_window_shorter_than_a_season_is_one_line(rows, tmp_path):
    data = tmp_path / "good.csv"
    write_csv(rows, data)
    output_dir = tmp_path / "out"
    result = invoke(data, output_dir, "--input-size", "12", "--horizon", "6")
    message = assert_user_error(result, output_dir)
    assert "--input-size to at least 24" in message
