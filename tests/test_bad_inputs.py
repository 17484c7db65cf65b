"""Broken inputs end to end through `forecast run`: each is refused or repaired by a stated
policy (the table in docs/bad-input.md lists the same cases).

Refused: exit code 2, one `Error:` line naming the problem, the lines at fault and the remedy,
no traceback, nothing published, and `latest` still on the good run published before.
Repaired: the real flow runs (naive candidates only, so TensorFlow is never imported) inside
the session's Prefect harness, publishes, moves `latest`, and the manifest counts the repair.

Files are the first 600 hours of the bundled ETTh1 file with one thing broken, or a few days of
local clock times around a daylight-saving change. CSV lines are 1-based, header = line 1.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from forecasting.store.layout import make_run_id
from forecasting.store.writer import publish_run
from tests.conftest import ETTH1
from tests.helpers import at_line, drop_lines, one_error_line, repeat_line, shift_to_90_minutes

NAME = "bad"
EARLIER_AS_OF = "2000-01-01T00:00:00"  # before every file here, so a repaired run moves latest
CONFIG = """\
name = "{name}"

[data]
{data}

[model]
candidates = ["naive", "seasonal_naive"]
input_size = 24
horizon = 6
"""


@dataclass(frozen=True)
class Case:
    """One broken input and what `forecast run` must do with it.

    Attributes:
        id: Short name, also the test id.
        policy: "refused" or "repaired".
        make: Turns the 600 clean ETTh1 rows (text cells) into the file: a frame written as
            CSV, or the file's text as is.
        options: Extra command-line options.
        data_keys: Extra `[data]` lines of the TOML config file.
        says: For a refusal, fragments naming (the problem, the lines or place, the remedy).
        counts: For a repair, the manifest's `data` entries that count it.
        then: For a repair, further checks on the published run folder.
    """

    id: str
    policy: str
    make: Callable[[pd.DataFrame], pd.DataFrame | str]
    options: tuple[str, ...] = ()
    data_keys: str = ""
    says: tuple[str, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)
    then: Callable[[Path], None] | None = None


def local_clock(start: str, end: str) -> pd.DataFrame:
    """Hourly Berlin wall-clock times without an offset (a daylight-saving change repeats or
    skips an hour), with a daily season in `OT`."""
    times = pd.date_range(start, end, freq="h", tz="Europe/Berlin").tz_localize(None)
    steps = np.arange(len(times))
    values = 10 + 3 * np.sin(2 * np.pi * steps / 24) + 0.01 * steps
    return pd.DataFrame(
        {"date": times.strftime("%Y-%m-%d %H:%M:%S"), "OT": [f"{v:.3f}" for v in values]}
    )


def two_series_one_empty(rows: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([rows.assign(site="a"), rows.assign(site="b", OT="")], ignore_index=True)


def junk_after_as_of(rows: pd.DataFrame) -> pd.DataFrame:
    # Lines 471 onwards (2016-07-20 13:00 on) are after the as-of: text, Inf, a repeated
    # timestamp with another value and a 30-hour gap, none of which may fail the replay.
    broken = at_line(at_line(rows, 500, "OT", "abc"), 520, "OT", "inf")
    return repeat_line(drop_lines(broken, 560, 30), 540, "99.0")


def labelled_with_the_as_of(run_dir: Path) -> None:
    """The run carries the given as-of; its forecast starts one step after the last kept row."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["as_of"] == "2016-07-20T12:30:00"
    assert manifest["config"]["as_of"] == "2016-07-20T12:30:00"
    assert manifest["data"]["last_ds"] == "2016-07-20T12:00:00"
    assert manifest["run_id"].startswith("20160720T123000-")
    forecast = pd.read_csv(run_dir / "forecast.csv")
    assert forecast["ds"].iloc[0] == "2016-07-20T13:00:00"
    assert set(forecast["as_of"]) == {"2016-07-20T12:30:00"}


CASES: list[Case] = [
    # --- refused: the file's shape and columns ---------------------------------------------
    Case("empty-file", "refused", lambda rows: "", says=("is empty", "header line", "followed")),
    Case(
        "header-only",
        "refused",
        lambda rows: rows.iloc[:0],
        says=("has a header but no data lines", "header", "Add observations below the header"),
    ),
    Case(
        "wrong-delimiter",
        "refused",
        lambda rows: rows.to_csv(index=False, sep=";"),
        says=("has no column 'date'", "seems to use ';' as its delimiter", "save it with commas"),
    ),
    Case(
        "missing-column",
        "refused",
        lambda rows: rows,
        options=("--target-column", "Temperature"),
        says=("has no column 'Temperature'", "Its columns are ['date'", "--target-column"),
    ),
    Case(
        "misspelled-column",
        "refused",
        lambda rows: rows,
        options=("--target-column", "Ot"),
        says=("has no column 'Ot'", "(did you mean 'OT'?)", "--target-column"),
    ),
    Case(
        "file-too-large",
        "refused",
        lambda rows: rows,
        data_keys="max_file_bytes = 10000",
        says=("more than the limit of 9.8 KiB", "is 86.9 KiB", "data.max_file_bytes"),
    ),
    # --- refused: timestamps ---------------------------------------------------------------
    Case(
        "unparseable-dates",
        "refused",
        lambda rows: at_line(at_line(rows, 6, "date", "2016-07-01 xx"), 9, "date", "soon"),
        says=("timestamps that cannot be parsed", "lines 6, 9 hold", "Fix or remove those lines"),
    ),
    Case(
        "mixed-time-zone-offsets",
        "refused",
        lambda rows: rows.assign(date=rows["date"] + (["+01:00"] * 300 + ["+02:00"] * 300)),
        says=("different time-zone offsets", "lines 302, 303", "Convert them to one offset"),
    ),
    Case(
        "dst-repeated-hour",
        "refused",
        lambda rows: local_clock("2016-10-29", "2016-11-02"),  # 02:00 twice on Oct 30
        says=(
            "a timestamp with different values",
            "lines 28, 29 repeat",
            "export the times in UTC or with their UTC offset",
        ),
    ),
    Case(
        "conflicting-duplicate",
        "refused",
        lambda rows: repeat_line(rows, 11, "1.5"),
        says=("2016-07-01 09:00:00", "lines 11, 12 repeat", "Keep one observation per timestamp"),
    ),
    Case(
        "frequency-change",
        "refused",
        shift_to_90_minutes,
        says=("the frequency changes mid-file", "lines 402, 404, 406", "--freq"),
    ),
    Case(
        "as-of-before-data",
        "refused",
        lambda rows: rows,
        options=("--as-of", "2016-06-01"),
        says=("is before the first timestamp", "(line 2)", "Give a later as-of"),
    ),
    Case(
        "as-of-time-zone-mismatch",
        "refused",
        lambda rows: rows,
        options=("--as-of", "2016-07-20T12:00:00+01:00"),
        says=(
            "have no UTC offset",
            "line 2 reads '2016-07-01 00:00:00'",
            "such as '2016-07-20 12:00:00'",
        ),
    ),
    Case(
        "as-of-not-a-time",
        "refused",
        lambda rows: rows,
        options=("--as-of", "yesterday"),
        says=("as_of: must be an ISO-8601 timestamp", "as_of='yesterday'", "'2016-07-10 12:00:00'"),
    ),
    # --- refused: values -------------------------------------------------------------------
    Case(
        "text-dashes",
        "refused",
        lambda rows: at_line(at_line(rows, 11, "OT", "--"), 12, "OT", "--"),
        says=("column 'OT' must be numeric", "lines 11, 12 hold text", "--na-values --"),
    ),
    Case(
        "text-abc",
        "refused",
        lambda rows: at_line(rows, 30, "OT", "abc"),
        says=("column 'OT' must be numeric", "line 30 holds text", "--na-values abc"),
    ),
    Case(
        "all-nan-series",
        "refused",
        two_series_one_empty,
        options=("--id-column", "site"),
        says=("series 'b' has no values in column 'OT'", "lines 602, 603", "Supply its values"),
    ),
    Case(
        "infinity",
        "refused",
        lambda rows: at_line(rows, 11, "OT", "-inf"),
        says=("infinite values", "line 11 holds", "Replace them with real measurements"),
    ),
    Case(
        "constant-series",
        "refused",
        lambda rows: rows.assign(OT="5.0"),
        says=("never changes value in series ['OT']", "5.0 on lines 2 to 601", "Remove them"),
    ),
    Case(
        "too-short",
        "refused",
        lambda rows: rows.iloc[:40],
        says=("Series 'OT' has 40 steps; it needs at least 42", "1 series", "Lower --input-size"),
    ),
    Case(
        "gap-longer-than-max-fill",
        "refused",
        lambda rows: drop_lines(rows, 101, 20),
        says=("20 consecutive steps of 'h'", "after line 100, before line 101", "--max-fill"),
    ),
    # --- refused: options ------------------------------------------------------------------
    Case(
        "name-with-path-characters",
        "refused",
        lambda rows: rows,
        options=("--name", "../evil"),
        says=("name: must be 1-64 letters", "'../evil'", "cannot escape the output folder"),
    ),
    # --- repaired, and counted in the manifest ---------------------------------------------
    Case(
        "unsorted-rows",
        "repaired",
        lambda rows: rows.iloc[::-1],
        counts={"rows_out_of_order": 599, "duplicates_dropped": 0, "filled_values": 0},
    ),
    Case(
        "exact-duplicates",
        "repaired",
        lambda rows: repeat_line(repeat_line(rows, 51), 51),
        counts={"duplicates_dropped": 2, "rows": 600},
    ),
    Case(
        "short-gap",
        "repaired",
        lambda rows: drop_lines(rows, 101, 3),
        counts={"filled_values": 3, "rows": 600},
    ),
    Case(
        "dst-skipped-hour",
        "repaired",
        lambda rows: local_clock("2016-03-25", "2016-03-30"),  # no 02:00 on Mar 27
        counts={"filled_values": 1, "rows": 121},
    ),
    Case(
        "na-values-markers",
        "repaired",
        lambda rows: at_line(at_line(rows, 11, "OT", "--"), 12, "OT", "--"),
        options=("--na-values", "--"),
        counts={"filled_values": 2, "rows": 600},
    ),
    Case(
        "rows-after-as-of",
        "repaired",
        junk_after_as_of,
        options=("--as-of", "2016-07-20 12:30:00"),
        counts={"rows_after_as_of": 102, "rows": 469, "filled_values": 0},
        then=labelled_with_the_as_of,
    ),
]
REFUSED = [case for case in CASES if case.policy == "refused"]
REPAIRED = [case for case in CASES if case.policy == "repaired"]


def test_the_battery_covers_twenty_cases_each_with_one_policy():
    assert len(CASES) >= 20
    assert len({case.id for case in CASES}) == len(CASES)
    assert all(case.policy in ("refused", "repaired") for case in CASES)
    assert all(len(case.says) == 3 for case in REFUSED)
    assert all(case.counts for case in REPAIRED)


# --- helpers --------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def own_environment():
    """Undoes what `forecast run` sets in its process's environment
    (`flows.environment.prepare`), so in-process runs leave nothing behind for later tests."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def flow_ready(prefect_harness) -> None:
    """The session's Prefect server, and the flow imported outside CliRunner: importing it sets
    up Prefect's logging, whose console handler would otherwise keep the first CliRunner's
    stderr, closed once that call returns. A refusal that wrongly passed would run the naive
    flow here, quickly, rather than start a server of its own."""
    import flows.pipeline  # noqa: F401


@pytest.fixture(scope="module")
def etth1_rows() -> pd.DataFrame:
    """The first 600 hourly rows of ETTh1, every cell kept as the text in the file."""
    return pd.read_csv(ETTH1, nrows=600, dtype=str)


def write_input(case: Case, rows: pd.DataFrame, folder: Path) -> tuple[Path, Path]:
    """Writes the case's data file and its config file; returns both paths."""
    made = case.make(rows.copy())
    data = folder / "input.csv"
    if isinstance(made, str):
        data.write_text(made)
    else:
        made.to_csv(data, index=False)
    config = folder / "pipeline.toml"
    config.write_text(CONFIG.format(name=NAME, data=case.data_keys))
    return data, config


def publish_earlier_run(output_dir: Path) -> Path:
    """Publishes a small good run, the one `latest` must still point to after a refusal."""
    run_id = make_run_id(pd.Timestamp(EARLIER_AS_OF), "0" * 64)
    forecast = "unique_id,ds,horizon_step,y_hat,model,run_id,as_of\n"
    forecast += f"OT,2000-01-01T01:00:00,1,1.0,naive,{run_id},{EARLIER_AS_OF}\n"
    manifest = {"schema_version": 1, "run_id": run_id, "as_of": EARLIER_AS_OF}
    return publish_run(output_dir, NAME, run_id, {"forecast.csv": forecast.encode()}, manifest)


def snapshot(output_dir: Path) -> tuple[list[str], str]:
    """Every path under the output folder, and where `latest` points."""
    paths = sorted(str(path.relative_to(output_dir)) for path in output_dir.rglob("*"))
    return paths, os.readlink(output_dir / NAME / "latest")


def forecast_run(data: Path, config: Path, output_dir: Path, options: tuple[str, ...]):
    arguments = ["run", "--config", str(config), "--data", str(data)]
    return CliRunner().invoke(app, [*arguments, "--output-dir", str(output_dir), *options])


# --- the tests ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", REFUSED, ids=[case.id for case in REFUSED])
def test_refused_input_is_one_line_and_publishes_nothing(flow_ready, etth1_rows, tmp_path, case):
    output_dir = tmp_path / "out"
    earlier = publish_earlier_run(output_dir)
    before = snapshot(output_dir)
    data, config = write_input(case, etth1_rows, tmp_path)

    result = forecast_run(data, config, output_dir, case.options)

    line = one_error_line(result)
    problem, place, remedy = case.says
    assert problem in line
    assert place in line
    assert remedy in line
    assert str(data) in line or str(config) in line or "command-line" in line
    assert snapshot(output_dir) == before
    assert (output_dir / NAME / "latest").resolve() == earlier.resolve()
    assert sorted(tmp_path.iterdir()) == sorted([output_dir, data, config])


@pytest.mark.filterwarnings("ignore:Data file .* filled:UserWarning")  # expected; the CLI shows it
@pytest.mark.parametrize("case", REPAIRED, ids=[case.id for case in REPAIRED])
def test_repaired_input_is_published_with_its_repair_counted(
    flow_ready, etth1_rows, tmp_path, case
):
    output_dir = tmp_path / "out"
    earlier = publish_earlier_run(output_dir)
    data, config = write_input(case, etth1_rows, tmp_path)
    tensorflow_was_loaded = "tensorflow" in sys.modules

    result = forecast_run(data, config, output_dir, case.options)

    assert result.exit_code == 0, result.output
    latest = (output_dir / NAME / "latest").resolve()
    assert latest != earlier.resolve()
    assert earlier.is_dir()
    manifest = json.loads((latest / "manifest.json").read_text())
    assert latest.name == manifest["run_id"]
    for key, expected in case.counts.items():
        assert manifest["data"][key] == expected, key
    if manifest["data"]["filled_values"]:
        assert "Warning: " in result.stderr
    assert "Error" not in result.stderr
    assert tensorflow_was_loaded or "tensorflow" not in sys.modules
    if case.then:
        case.then(latest)
