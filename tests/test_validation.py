"""Library-level checks of `load_series` + `validate`: what they refuse, and how they say it.

Each case starts from the first 600 hours of the bundled ETTh1 file and breaks one thing. CSV
line numbers are 1-based with the header as line 1, so data row `i` (0-based) is line `i + 2`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecasting.config import DataConfig, EvaluationConfig, ModelConfig
from forecasting.data import load_series
from forecasting.errors import ConfigError, DataValidationError, InsufficientHistoryError
from forecasting.validation import ValidatedData, validate
from tests.helpers import at_line, drop_lines, shift_to_90_minutes

ETTH1 = Path(__file__).resolve().parent.parent / "data" / "ETTh1.csv"
SMALL_MODEL = ModelConfig(input_size=24, horizon=6)


@pytest.fixture
def rows() -> pd.DataFrame:
    """The first 600 hourly rows of ETTh1, every cell kept as the text in the file."""
    return pd.read_csv(ETTH1, nrows=600, dtype=str)


def write(frame: pd.DataFrame, directory: Path, name: str = "series.csv") -> Path:
    path = directory / name
    frame.to_csv(path, index=False)
    return path


def check(
    path: Path,
    model: ModelConfig = SMALL_MODEL,
    evaluation: EvaluationConfig | None = None,
    **options,
) -> ValidatedData:
    config = DataConfig(path=path, **options)
    return validate(load_series(config), config, model, evaluation or EvaluationConfig())


def message_of(path: Path, error: type[Exception] = DataValidationError, **options) -> str:
    with pytest.raises(error) as caught:
        check(path, **options)
    return str(caught.value)


# --- a clean file -------------------------------------------------------------------------


def test_clean_file_meets_the_guarantees(rows, tmp_path):
    validated = check(write(rows, tmp_path))
    frame = validated.frame
    assert list(frame.columns) == ["unique_id", "ds", "y"]
    assert validated.freq == "h"
    assert len(frame) == 600
    assert frame["y"].dtype == np.float64
    assert np.isfinite(frame["y"]).all()
    assert (frame["ds"].diff().dropna() == pd.Timedelta(hours=1)).all()
    assert validated.filled == {}
    assert validated.duplicates_dropped == 0


# --- columns and file shape ---------------------------------------------------------------


def test_missing_column_lists_the_columns_and_the_option(rows, tmp_path):
    path = write(rows, tmp_path)
    message = message_of(path, target_column="Temperature")
    assert str(path) in message
    assert "'Temperature'" in message
    assert "did you mean" not in message
    assert "'HUFL'" in message  # the columns the file does have
    assert "--target-column" in message


@pytest.mark.parametrize(
    ("option", "misspelled", "suggested"),
    [
        ("target_column", "Ot", "OT"),
        ("target_column", "OTT", "OT"),
        ("time_column", "Date", "date"),
        ("time_column", "dates", "date"),
    ],
)
def test_misspelled_column_suggests_the_closest_name(rows, tmp_path, option, misspelled, suggested):
    path = write(rows, tmp_path)
    message = message_of(path, **{option: misspelled})
    assert f"{misspelled!r} (did you mean {suggested!r}?)" in message
    assert str(path) in message


def test_missing_file_is_named(tmp_path):
    path = tmp_path / "absent.csv"
    message = message_of(path)
    assert str(path) in message
    assert "does not exist" in message
    assert "--data" in message


def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    message = message_of(path)
    assert str(path) in message
    assert "is empty" in message
    assert "header" in message


def test_header_only_file_is_refused(rows, tmp_path):
    path = write(rows.iloc[:0], tmp_path)
    assert path.read_text().strip() == ",".join(rows.columns)
    message = message_of(path)
    assert str(path) in message
    assert "no data lines" in message


def test_wrong_delimiter_is_named(rows, tmp_path):
    path = tmp_path / "semicolons.csv"
    rows.to_csv(path, index=False, sep=";")
    message = message_of(path)
    assert str(path) in message
    assert "';'" in message
    assert "commas" in message


# --- timestamps ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("not a date", "'not a date'"),
        ("2016-13-45 00:00:00", "'2016-13-45 00:00:00'"),
        (None, "'<empty>'"),
    ],
    ids=["text", "impossible-date", "empty"],
)
def test_unparseable_timestamp_names_the_line(rows, tmp_path, value, shown):
    path = write(at_line(rows, 6, "date", value), tmp_path)
    message = message_of(path)
    assert str(path) in message
    assert "column 'date'" in message
    assert "line 6 " in message
    assert shown in message
    assert "Fix or remove those lines" in message


def test_many_bad_lines_are_counted_not_listed(rows, tmp_path):
    broken = rows.copy()
    broken.loc[10:17, "date"] = "soon"  # lines 12 to 19
    message = message_of(write(broken, tmp_path))
    assert "lines 12, 13, 14, 15, 16 and 3 more " in message


@pytest.mark.parametrize(
    ("offsets", "named"),
    [
        (lambda i: "+01:00" if i % 2 else "+02:00", "lines 3, 5, 7, 9, 11 and 295 more"),
        (lambda i: "+01:00" if i < 300 else "+02:00", "lines 302, 303, 304, 305, 306 and 295 more"),
        (lambda i: "+01:00" if i < 300 else "", "lines 302, 303, 304, 305, 306 and 295 more"),
        (lambda i: "" if i < 300 else "+01:00", "lines 302, 303, 304, 305, 306 and 295 more"),
    ],
    ids=["alternating", "offset-changes", "offset-then-none", "none-then-offset"],
)
def test_mixed_time_zone_offsets_name_the_lines(rows, tmp_path, offsets, named):
    rows["date"] = [stamp + offsets(i) for i, stamp in enumerate(rows["date"])]
    path = write(rows, tmp_path)
    message = message_of(path)
    assert str(path) in message
    assert "column 'date'" in message
    assert "different time-zone offsets" in message
    assert named in message
    assert "UTC" in message


def test_one_time_zone_offset_is_kept(rows, tmp_path):
    rows["date"] = rows["date"] + "+01:00"
    frame = check(write(rows, tmp_path)).frame
    assert str(frame["ds"].dt.tz) == "UTC+01:00"
    assert frame["ds"].iloc[0] == pd.Timestamp("2016-07-01 00:00:00+01:00")


def test_frequency_change_mid_file_names_the_lines(rows, tmp_path):
    path = write(shift_to_90_minutes(rows), tmp_path)
    message = message_of(path)
    assert str(path) in message
    assert "frequency changes mid-file" in message
    assert "lines 402, 404, 406" in message
    assert "'h'" in message
    assert "--freq" in message


# --- numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["--", "abc", "?"])
def test_text_in_target_names_the_lines_and_na_values(rows, tmp_path, text):
    path = write(at_line(at_line(rows, 11, "OT", text), 40, "OT", text), tmp_path)
    message = message_of(path)
    assert str(path) in message
    assert "column 'OT' must be numeric" in message
    assert "lines 11, 40 " in message
    assert repr(text) in message
    assert f"--na-values {text}" in message


def test_text_in_covariate_names_that_column(rows, tmp_path):
    path = write(at_line(rows, 20, "HUFL", "abc"), tmp_path)
    message = message_of(path, covariates=("HUFL",))
    assert "column 'HUFL' must be numeric" in message
    assert "line 20 " in message


def test_declared_na_values_are_filled(rows, tmp_path):
    path = write(at_line(rows, 11, "OT", "--"), tmp_path)
    with pytest.warns(UserWarning, match="filled 1 missing values"):
        validated = check(path, na_values=("--",))
    assert validated.filled == {"OT": 1}
    assert len(validated.frame) == 600


@pytest.mark.parametrize("text", ["inf", "-inf", "Infinity"])
def test_infinite_values_are_refused(rows, tmp_path, text):
    path = write(at_line(rows, 11, "OT", text), tmp_path)
    message = message_of(path)
    assert str(path) in message
    assert "column 'OT'" in message
    assert "line 11 " in message
    assert "infinite" in message


# --- duplicates and order -----------------------------------------------------------------


def test_conflicting_duplicate_timestamps_are_refused(rows, tmp_path):
    repeat = at_line(rows, 11, "OT", "1.5").iloc[[9]]  # line 11's timestamp, another value
    broken = pd.concat([rows.iloc[:10], repeat, rows.iloc[10:]], ignore_index=True)
    path = write(broken, tmp_path)
    message = message_of(path)
    assert str(path) in message
    assert "column 'date'" in message
    assert "lines 11, 12 " in message
    assert "2016-07-01 09:00:00" in message
    assert "--id-column" in message


def test_duplicates_in_different_series_are_not_conflicts(rows, tmp_path):
    first = rows.assign(site="a")
    second = rows.assign(site="b", OT=rows["HUFL"])
    path = write(pd.concat([first, second], ignore_index=True), tmp_path)
    validated = check(path, id_column="site")
    assert validated.series_ids == ["a", "b"]
    assert len(validated.frame) == 1200


def test_conflicting_duplicates_name_their_series(rows, tmp_path):
    first = rows.assign(site="a")
    second = rows.assign(site="b")
    broken = pd.concat([first, second, second.iloc[[5]].assign(OT="2.5")], ignore_index=True)
    message = message_of(write(broken, tmp_path), id_column="site")
    assert "series 'b'" in message
    assert "lines 607, 1202 " in message  # second series' sixth row, and its repeat


def test_exact_duplicates_are_dropped_silently(rows, tmp_path):
    clean = check(write(rows, tmp_path, "clean.csv"))
    doubled = pd.concat([rows.iloc[:51], rows.iloc[[50, 50]], rows.iloc[51:]], ignore_index=True)
    path = write(doubled, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        validated = check(path)
    assert validated.duplicates_dropped == 2
    pd.testing.assert_frame_equal(validated.frame, clean.frame)


def test_unsorted_rows_are_sorted(rows, tmp_path):
    clean = check(write(rows, tmp_path, "sorted.csv"))
    shuffled = rows.sample(frac=1.0, random_state=0).reset_index(drop=True)
    assert not shuffled["date"].is_monotonic_increasing
    validated = check(write(shuffled, tmp_path))
    assert validated.frame["ds"].is_monotonic_increasing
    pd.testing.assert_frame_equal(validated.frame, clean.frame)


# --- missing observations -----------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 5, 12])
@pytest.mark.parametrize("kind", ["absent-timestamps", "empty-values"])
def test_short_gaps_are_filled_and_counted(rows, tmp_path, count, kind):
    if kind == "absent-timestamps":
        broken = drop_lines(rows, 101, count)
    else:
        broken = rows.copy()
        broken.loc[99 : 99 + count - 1, "OT"] = None  # lines 101 onwards
    with pytest.warns(UserWarning, match=f"filled {count} missing values"):
        validated = check(write(broken, tmp_path))
    assert validated.filled == {"OT": count}
    assert len(validated.frame) == 600
    assert validated.frame["y"].notna().all()


def test_filled_values_interpolate_linearly(rows, tmp_path):
    with pytest.warns(UserWarning):
        validated = check(write(drop_lines(rows, 101, 3), tmp_path))
    before, after = float(rows["OT"].iloc[98]), float(rows["OT"].iloc[102])  # lines 100, 104
    expected = np.linspace(before, after, 5)[1:-1]
    np.testing.assert_allclose(validated.frame["y"].iloc[99:102].to_numpy(), expected)


@pytest.mark.parametrize(
    ("count", "max_fill"),
    [(13, 12), (20, 12), (5, 4), (1, 0)],
)
def test_gaps_longer_than_max_fill_are_refused(rows, tmp_path, count, max_fill):
    path = write(drop_lines(rows, 101, count), tmp_path)
    message = message_of(path, max_fill=max_fill)
    assert str(path) in message
    assert "series 'OT'" in message
    assert f"{count} consecutive steps" in message
    assert "2016-07-05 03:00:00" in message  # the first missing hour (line 101)
    assert f"max_fill={max_fill}" in message
    assert "--max-fill" in message


def test_raising_max_fill_bridges_a_long_gap(rows, tmp_path):
    path = write(drop_lines(rows, 101, 20), tmp_path)
    with pytest.warns(UserWarning):
        validated = check(path, max_fill=20)
    assert validated.filled == {"OT": 20}


# --- length and content -------------------------------------------------------------------


@pytest.mark.parametrize(("length", "enough"), [(107, False), (108, True)])
def test_history_needs_a_window_a_validation_slice_and_the_folds(rows, tmp_path, length, enough):
    # input_size 24 + horizon 6 + validation 6 + 3 folds of 4 x 6 = 108 steps
    path = write(rows.iloc[:length], tmp_path)
    folds = EvaluationConfig(n_folds=3, fold_size=24)  # set by the user: never shrunk
    if enough:
        assert len(check(path, evaluation=folds).frame) == length
    else:
        with pytest.raises(InsufficientHistoryError):
            check(path, evaluation=folds)


@pytest.mark.parametrize(
    ("length", "n_folds", "fold_size"),
    [(108, 3, 24), (107, 3, 23), (60, 3, 8), (50, 2, 7), (42, 1, 6)],
)
def test_default_folds_shrink_to_fit_a_short_series(rows, tmp_path, length, n_folds, fold_size):
    # 24 + 6 + 6 + n_folds * fold_size steps: the size shrinks first, down to the horizon 6,
    # then the count, each time to the largest that fits
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        validated = check(write(rows.iloc[:length], tmp_path))
    plan = validated.folds
    assert (plan.evaluation.n_folds, plan.evaluation.fold_size) == (n_folds, fold_size)
    assert plan.short == {}
    notes = [str(w.message) for w in caught]
    if length == 108:
        assert plan.note == "" and notes == []
    else:
        assert notes == [plan.note]
        assert "too short for a backtest of 3 folds of 24 steps" in plan.note
        assert f"uses {n_folds} fold{'s' if n_folds > 1 else ''} of {fold_size} steps" in plan.note


def test_a_single_series_too_short_even_for_one_small_fold_is_refused(rows, tmp_path):
    path = write(rows.iloc[:41], tmp_path)
    message = message_of(path, InsufficientHistoryError)
    assert "Series 'OT' has 41 steps; it needs at least 42" in message
    assert "1 backtest fold of 6 steps, the least the defaults shrink to" in message
    assert "--input-size" in message
    assert "baseline" not in message  # one series: nothing else to forecast


def two_series(rows: pd.DataFrame, short_length: int) -> pd.DataFrame:
    """OT (600 steps) and HUFL cut to its last `short_length` steps, as one long file."""
    hufl = rows[["date", "HUFL"]].tail(short_length).rename(columns={"HUFL": "OT"})
    return pd.concat([rows[["date", "OT"]].assign(site="a"), hufl.assign(site="b")])


def test_a_series_too_short_among_several_is_named_for_a_baseline(rows, tmp_path):
    path = write(two_series(rows, 40), tmp_path)
    with pytest.warns(UserWarning, match=r"1 series is too short for the backtest: \['b'\]"):
        validated = check(path, id_column="site")
    assert validated.short_series == {"b": 40}
    assert validated.folds.evaluation.fold_size == 24  # b does not shrink a's folds
    assert list(validated.backtested_frame["unique_id"].unique()) == ["a"]
    assert list(validated.frame["unique_id"].unique()) == ["a", "b"]


def test_folds_set_by_the_user_that_most_series_miss_are_refused(rows, tmp_path):
    path = write(two_series(rows, 100), tmp_path)
    folds = EvaluationConfig(n_folds=3, fold_size=24)
    with pytest.raises(InsufficientHistoryError) as caught:
        check(path, evaluation=folds, id_column="site")
    message = str(caught.value)
    assert "1 series is too short: ['b']" in message
    assert "Series 'b' has 100 steps; it needs at least 108" in message
    assert "At most a tenth of the series may be shorter" in message


def test_short_series_message_names_the_numbers_and_options(rows, tmp_path):
    path = write(rows, tmp_path)
    message = message_of(
        path,
        InsufficientHistoryError,
        model=ModelConfig(input_size=500, horizon=24),
        evaluation=EvaluationConfig(n_folds=3),
    )
    assert str(path) in message
    assert "Series 'OT' has 600 steps" in message
    # 500 + 24 + validation 52 (10% of the 528 steps before the folds) + 3 folds of 24
    assert "at least 648" in message
    assert "--input-size" in message
    assert "--horizon" in message
    assert "3 backtest folds of 24 steps, the least the defaults shrink to" in message
    assert "--n-folds" in message


def test_constant_series_is_refused(rows, tmp_path):
    rows["OT"] = "5.0"
    path = write(rows, tmp_path)
    message = message_of(path)
    assert str(path) in message
    assert "column 'OT'" in message
    assert "never changes value in series ['OT']" in message
    assert "Remove them" in message


# --- Parquet files count rows, not lines --------------------------------------------------


def test_parquet_errors_name_rows(rows, tmp_path):
    path = tmp_path / "series.parquet"
    at_line(rows, 6, "date", "not a date").to_parquet(path, index=False)
    message = message_of(path)
    assert str(path) in message
    assert "row 5 " in message


# --- review fixes: ids, blank lines, calendar frequencies, season ---------------------------


def test_rows_without_a_series_name_are_refused(rows, tmp_path):
    frame = rows.assign(site="a")
    frame.loc[[3, 4], "site"] = None
    message = message_of(write(frame, tmp_path), id_column="site")
    assert "column 'site'" in message and "lines 5, 6 lack a series name" in message


def test_blank_lines_keep_line_numbers_true(rows, tmp_path):
    path = write(at_line(rows, 11, "OT", "abc"), tmp_path)
    text = path.read_text().splitlines(keepends=True)
    path.write_text("".join(text[:5] + ["\n"] + text[5:]))  # a blank line 6
    assert "line 12 holds text" in message_of(path)


def test_monthly_data_gets_a_calendar_frequency(tmp_path):
    months = pd.date_range("2000-01-01", periods=120, freq="MS")
    frame = pd.DataFrame({"date": months, "OT": np.sin(np.arange(120)) + np.arange(120) / 10})
    validated = check(write(frame, tmp_path), model=ModelConfig(input_size=12, horizon=3))
    assert validated.freq == "MS"
    assert validated.season_length == 12
    assert validated.filled == {}


def test_a_season_longer_than_the_window_is_refused_when_seasonal_naive_runs(rows, tmp_path):
    path = write(rows, tmp_path)
    with pytest.raises(ConfigError, match="season of 24 steps .* input_size=12"):
        check(path, model=ModelConfig(input_size=12, horizon=6))
    only_rnns = ModelConfig(input_size=12, horizon=6, candidates=("naive", "gru"))
    assert check(path, model=only_rnns).season_length == 24
    hybrid = only_rnns.model_copy(update={"base": "seasonal_naive"})
    with pytest.raises(ConfigError, match="gru learns on top of the last season of 24 steps"):
        check(path, model=hybrid)


def test_a_switch_to_a_coarser_step_is_refused_not_interpolated(rows, tmp_path):
    two_hourly = rows.drop(index=range(301, 600, 2)).reset_index(drop=True)  # from line 302
    message = message_of(write(two_hourly, tmp_path))
    assert "from line 302 on" in message and "2 steps of 'h' apart" in message
    assert "frequency changes mid-file" in message and "Resample" in message


def test_scattered_single_gaps_are_still_filled(rows, tmp_path):
    scattered = rows.drop(index=[100, 103, 106]).reset_index(drop=True)  # 3 isolated gaps
    with pytest.warns(UserWarning, match="filled 3 missing values"):
        validated = check(write(scattered, tmp_path))
    assert validated.filled == {"OT": 3}
