"""The as-of cut (`validate(..., as_of=)`, `PipelineConfig.as_of`) and the input size limit
(`DataConfig.max_file_bytes`), at library level: fast, no flow.

Files are the first 600 hours of the bundled ETTh1 file (2016-07-01 00:00 to 2016-07-25 23:00);
CSV lines are 1-based with the header as line 1, so data row `i` is line `i + 2`.
"""

from __future__ import annotations

import warnings
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from forecasting.config import (
    DataConfig,
    EvaluationConfig,
    ModelConfig,
    PipelineConfig,
    build_config,
    load_config_file,
)
from forecasting.data import load_series
from forecasting.errors import ConfigError, DataValidationError
from forecasting.validation import ValidatedData, validate
from tests.conftest import ETTH1

SMALL_MODEL = ModelConfig(input_size=24, horizon=6)
AS_OF = pd.Timestamp("2016-07-20 12:30:00")  # 469 rows at or before it, 131 after


@pytest.fixture
def rows() -> pd.DataFrame:
    return pd.read_csv(ETTH1, nrows=600, dtype=str)


def check(frame: pd.DataFrame, folder: Path, as_of=None, **options) -> ValidatedData:
    path = folder / "series.csv"
    frame.to_csv(path, index=False)
    config = DataConfig(path=path, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # filled gaps warn; counts are checked instead
        return validate(load_series(config), config, SMALL_MODEL, EvaluationConfig(), as_of)


def message_of(frame: pd.DataFrame, folder: Path, as_of=None, **options) -> str:
    with pytest.raises(DataValidationError) as caught:
        check(frame, folder, as_of, **options)
    return str(caught.value)


# --- what the cut keeps, drops and reports ---------------------------------------------------


def test_without_as_of_the_run_is_as_of_the_last_timestamp(rows, tmp_path):
    validated = check(rows, tmp_path)
    assert validated.as_of == pd.Timestamp("2016-07-25 23:00:00")
    assert validated.rows_after_as_of == 0


def test_rows_after_the_as_of_are_dropped_and_counted(rows, tmp_path):
    validated = check(rows, tmp_path, AS_OF)
    assert validated.rows_after_as_of == 131
    assert len(validated.frame) == 469
    assert validated.frame["ds"].max() == pd.Timestamp("2016-07-20 12:00:00")
    assert validated.as_of == AS_OF  # the given as-of, not the last kept timestamp


def test_a_row_exactly_at_the_as_of_is_kept(rows, tmp_path):
    validated = check(rows, tmp_path, pd.Timestamp("2016-07-20 12:00:00"))
    assert validated.frame["ds"].max() == pd.Timestamp("2016-07-20 12:00:00")
    assert validated.rows_after_as_of == 131


def test_the_cut_gives_the_same_data_as_a_file_that_ends_there(rows, tmp_path):
    cut = check(rows, tmp_path, AS_OF)
    shorter = check(rows.iloc[:469], tmp_path)
    pd.testing.assert_frame_equal(cut.frame, shorter.frame)


@pytest.mark.parametrize(
    "breaks",
    [
        lambda rows: rows.assign(OT=[*rows["OT"][:500], "abc", *rows["OT"][501:]]),
        lambda rows: rows.assign(OT=[*rows["OT"][:500], "inf", *rows["OT"][501:]]),
        lambda rows: pd.concat([rows, rows.iloc[[550]].assign(OT="99")], ignore_index=True),
        lambda rows: rows.drop(index=range(520, 560)),
        lambda rows: rows.assign(
            date=[*rows["date"][:480], *pd.date_range("2016-07-21", periods=120, freq="90min")]
        ),
    ],
    ids=["text", "inf", "conflicting-duplicate", "long-gap", "frequency-change"],
)
def test_junk_after_the_as_of_cannot_fail_a_replay(rows, tmp_path, breaks):
    with pytest.raises(DataValidationError):
        check(breaks(rows), tmp_path)  # refused when read to the end
    validated = check(breaks(rows), tmp_path, AS_OF)
    assert validated.frame["ds"].max() == pd.Timestamp("2016-07-20 12:00:00")
    assert len(validated.frame) == 469


def test_an_unreadable_timestamp_after_the_as_of_is_still_refused(rows, tmp_path):
    rows.loc[550, "date"] = "soon"  # nothing shows it is after the as-of
    message = message_of(rows, tmp_path, AS_OF)
    assert "line 552 holds timestamps that cannot be parsed" in message


def test_a_series_that_starts_after_the_as_of_is_left_out(rows, tmp_path):
    late = rows.iloc[480:].assign(site="late", OT=rows["HUFL"].iloc[480:])
    validated = check(
        pd.concat([rows.assign(site="early"), late], ignore_index=True),
        tmp_path,
        AS_OF,
        id_column="site",
    )
    assert validated.series_ids == ["early"]
    assert validated.rows_after_as_of == 131 + 120


def test_an_as_of_before_the_first_timestamp_is_refused(rows, tmp_path):
    message = message_of(rows, tmp_path, pd.Timestamp("2016-06-30 23:00:00"))
    assert "column 'date'" in message
    assert "--as-of '2016-06-30T23:00:00' is before the first timestamp" in message
    assert "'2016-07-01 00:00:00' (line 2)" in message
    assert "Give a later as-of" in message


def test_an_as_of_that_leaves_too_little_history_suggests_a_later_one(rows, tmp_path):
    message = message_of(rows, tmp_path, pd.Timestamp("2016-07-01 20:00:00"))
    assert "Series 'OT' has 21 steps" in message
    assert "give a later --as-of" in message


def test_rows_out_of_order_are_counted_per_series(rows, tmp_path):
    two = pd.concat([rows.assign(site="a"), rows.assign(site="b", OT=rows["HUFL"])])
    interleaved = two.sort_values(["date", "site"], kind="stable")  # time order: not disorder
    assert check(interleaved, tmp_path, id_column="site").rows_out_of_order == 0
    swapped = rows.iloc[[*range(50), 51, 50, *range(52, 600)]]
    assert check(swapped, tmp_path).rows_out_of_order == 1


# --- time zones -----------------------------------------------------------------------------


def test_aware_as_of_compares_instants_and_takes_the_data_zone(rows, tmp_path):
    rows["date"] = rows["date"] + "+01:00"
    validated = check(rows, tmp_path, pd.Timestamp("2016-07-20 11:30:00+00:00"))
    assert str(validated.as_of) == "2016-07-20 12:30:00+01:00"  # same instant, data's zone
    assert validated.frame["ds"].max() == pd.Timestamp("2016-07-20 12:00:00+01:00")
    assert validated.rows_after_as_of == 131


def test_offsets_that_change_after_the_as_of_do_not_fail_a_replay(rows, tmp_path):
    rows["date"] = rows["date"] + (["+01:00"] * 500 + ["+02:00"] * 100)
    validated = check(rows, tmp_path, pd.Timestamp("2016-07-20 12:30:00+01:00"))
    assert validated.rows_after_as_of == 131


@pytest.mark.parametrize(
    ("offset", "as_of", "says"),
    [
        ("", "2016-07-20 12:00:00+01:00", "have no UTC offset"),
        ("+01:00", "2016-07-20 12:00:00", "carry a UTC offset"),
    ],
    ids=["naive-data-aware-as-of", "aware-data-naive-as-of"],
)
def test_naive_against_aware_names_both(rows, tmp_path, offset, as_of, says):
    rows["date"] = rows["date"] + offset
    message = message_of(rows, tmp_path, pd.Timestamp(as_of))
    assert says in message
    assert f"line 2 reads '2016-07-01 00:00:00{offset}'" in message
    assert f"--as-of {pd.Timestamp(as_of).isoformat()!r}" in message
    assert f"such as '2016-07-20 12:00:00{offset}'" in message


# --- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2016-07-20 12:30", datetime(2016, 7, 20, 12, 30)),
        ("2016-07-20", datetime(2016, 7, 20)),
        (datetime(2016, 7, 20, 12, 30), datetime(2016, 7, 20, 12, 30)),
    ],
)
def test_as_of_accepts_iso_text_and_datetimes(value, expected):
    assert PipelineConfig(as_of=value).as_of == expected


def test_as_of_keeps_its_offset():
    as_of = PipelineConfig(as_of="2016-07-20T12:30:00+01:00").as_of
    assert pd.Timestamp(as_of) == pd.Timestamp("2016-07-20 11:30:00+00:00")


@pytest.mark.parametrize("value", ["soon", "12", "20/07/2016"])
def test_as_of_that_is_not_iso_is_a_config_error(value):
    with pytest.raises(ConfigError) as caught:
        build_config({"as_of": value})
    message = str(caught.value)
    assert "as_of: must be an ISO-8601 timestamp" in message
    assert f"Received: as_of={value!r}" in message


def test_toml_dates_and_datetimes_are_read(tmp_path):
    path = tmp_path / "pipeline.toml"
    path.write_text("as_of = 2016-07-20T12:30:00\n")
    assert build_config(load_config_file(path)).as_of == datetime(2016, 7, 20, 12, 30)
    path.write_text("as_of = 2016-07-20\n")
    assert build_config(load_config_file(path)).as_of == datetime(2016, 7, 20)


# --- input size limit -----------------------------------------------------------------------


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(rows, tmp_path, monkeypatch):
    path = tmp_path / "series.csv"
    rows.to_csv(path, index=False)
    size = path.stat().st_size

    def never(*args, **kwargs):
        raise AssertionError("the file was read")

    monkeypatch.setattr(pd, "read_csv", never)
    with pytest.raises(DataValidationError) as caught:
        load_series(DataConfig(path=path, max_file_bytes=size - 1))
    message = str(caught.value)
    assert str(path) in message
    assert "is 86.9 KiB, more than the limit of 86.9 KiB" in message
    assert "data.max_file_bytes" in message
    assert f"Received: {size} bytes, max_file_bytes={size - 1}" in message


def test_a_file_at_the_size_limit_is_read(rows, tmp_path):
    path = tmp_path / "series.csv"
    rows.to_csv(path, index=False)
    assert len(load_series(DataConfig(path=path, max_file_bytes=path.stat().st_size)).frame) == 600


def test_the_default_size_limit_is_two_gibibytes():
    assert DataConfig().max_file_bytes == 2 * 1024**3
