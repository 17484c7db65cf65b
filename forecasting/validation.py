"""Checks loaded data once, at the boundary, and returns data every later step can trust."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from forecasting.config import DataConfig, EvaluationConfig, ModelConfig
from forecasting.data import LoadedData
from forecasting.errors import DataValidationError, InsufficientHistoryError
from forecasting.windowing import min_series_length, split_sizes

_SHOWN = 5  # offending rows quoted in a message
_OFFSET = r"(Z|[+-]\d{2}:?\d{2})\s*$"  # a UTC offset at the end of a timestamp


@dataclass(frozen=True)
class ValidatedData:
    """Data that satisfies these guarantees, which later code relies on:

    - columns `unique_id` (str), `ds` (datetime64, one time zone or none), `y` and each
      covariate (float64, finite, no missing values);
    - sorted by (`unique_id`, `ds`), with unique (`unique_id`, `ds`) pairs;
    - every series on a regular grid of `freq` from its first to its last timestamp;
    - every series long enough for input_size + horizon + validation + test.

    Attributes:
        frame: The cleaned long frame.
        freq: pandas frequency string of the grid.
        filled: Per series, how many values were filled by interpolation (only series with any).
        duplicates_dropped: Exact duplicate rows (same series, time and values) removed.
        source: The file the data came from.
        sha256: Hex digest of that file.
    """

    frame: pd.DataFrame
    freq: str
    source: str
    sha256: str
    filled: dict[str, int] = field(default_factory=dict)
    duplicates_dropped: int = 0

    @property
    def series_ids(self) -> list[str]:
        return list(self.frame["unique_id"].unique())


def validate(
    loaded: LoadedData, data: DataConfig, model: ModelConfig, evaluation: EvaluationConfig
) -> ValidatedData:
    """Checks and cleans loaded data; see `ValidatedData` for what the result guarantees.

    Unsorted rows are sorted silently, exact duplicate rows dropped, and runs of up to
    `data.max_fill` missing steps (absent timestamps or missing values) filled by linear
    interpolation, with a warning and counts in the result.

    Raises:
        DataValidationError: Unparseable timestamps, text or Inf in numeric columns,
            conflicting duplicates, an irregular frequency, or a gap longer than `max_fill`.
        InsufficientHistoryError: A series is too short.
    """
    where = f"Data file {str(loaded.source)!r}"
    frame = loaded.frame.copy()
    frame["ds"] = _parse_timestamps(frame, data.time_column, where, loaded.row_label)
    for column, name in [("y", data.target_column), *[(c, c) for c in data.covariates]]:
        frame[column] = _parse_numbers(frame, column, name, where, loaded.row_label)
    frame, dropped = _drop_duplicates(frame, data.time_column, where, loaded.row_label)
    frame = frame.sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)
    freq = data.freq or _infer_freq(frame, where)
    value_columns = ["y", *data.covariates]
    frame = _regularize(frame, freq, where, data.time_column, loaded.row_label)
    filled = _fill_gaps(frame, value_columns, data.max_fill, freq, where)
    _check_lengths(frame, model, evaluation, where)
    _check_not_constant(frame, data.target_column, where)
    if filled:
        warnings.warn(
            f"{where}: filled {sum(filled.values())} missing values by interpolation "
            f"in {len(filled)} series (max_fill={data.max_fill}).",
            stacklevel=2,
        )
    return ValidatedData(
        frame=frame[["unique_id", "ds", *value_columns]].reset_index(drop=True),
        freq=freq,
        source=str(loaded.source),
        sha256=loaded.sha256,
        filled=filled,
        duplicates_dropped=dropped,
    )


def _rows(frame: pd.DataFrame, mask: np.ndarray | pd.Series, label: str, verb: str) -> str:
    """Names the offending lines with a verb that agrees: 'line 6 holds', 'lines 6, 9 hold'."""
    rows = frame.loc[np.asarray(mask), "row"].tolist()
    shown = ", ".join(str(row) for row in rows[:_SHOWN])
    more = f" and {len(rows) - _SHOWN} more" if len(rows) > _SHOWN else ""
    if len(rows) > 1:
        return f"{label}s {shown}{more} {verb}"
    singular = verb[:-1] + "ies" if verb.endswith("y") else verb + "s"
    return f"{label} {shown} {singular}"


def _parse_timestamps(frame: pd.DataFrame, column: str, where: str, label: str) -> pd.Series:
    raw = frame["ds"]
    try:
        with warnings.catch_warnings():  # text that is no time at all is reported below
            warnings.filterwarnings("ignore", "Could not infer format", UserWarning)
            parsed = pd.to_datetime(raw, errors="coerce")
    except ValueError:  # pandas refuses offsets that differ between rows
        parsed = None
    bad = np.ones(len(raw), dtype=bool) if parsed is None else parsed.isna().to_numpy()
    if bad.any():
        # pandas also turns times with an offset into NaT after one without (and vice versa)
        _check_one_offset(frame, bad, column, where, label)
    if parsed is None:
        raise DataValidationError(
            f"{where}, column {column!r}: timestamps carry different time-zone offsets. "
            "Convert them to one offset (or to UTC) before loading. "
            f"Received: first values {reprlib_list(raw)}"
        )
    if bad.any():
        examples = reprlib_list(raw[bad].fillna("<empty>"))
        raise DataValidationError(
            f"{where}, column {column!r}: {_rows(frame, bad, label, 'hold')} timestamps that "
            f"cannot be parsed, such as {examples}. Fix or remove those lines; timestamps "
            "should look like '2016-07-01 00:00:00'."
        )
    return parsed


def _check_one_offset(
    frame: pd.DataFrame, suspects: np.ndarray, column: str, where: str, label: str
) -> None:
    """Raises if timestamps that pandas refused parse one by one but differ in UTC offset."""
    raw = frame["ds"]
    alone = pd.to_datetime(raw.where(suspects), errors="coerce", format="mixed", utc=True)
    usable = ~suspects | alone.notna().to_numpy()
    if not usable.any():
        return
    offsets = raw.astype(str).str.extract(_OFFSET, expand=False)
    offsets = offsets.str.replace(":", "").replace("Z", "+0000").fillna("none")
    first = int(np.flatnonzero(usable)[0])
    differs = usable & (offsets != offsets.iloc[first]).to_numpy()
    if differs.any():
        raise DataValidationError(
            f"{where}, column {column!r}: timestamps carry different time-zone offsets; "
            f"{label} {frame['row'].iloc[first]} reads {raw.iloc[first]!r} but "
            f"{_rows(frame, differs, label, 'carry')} another offset (or none), such as "
            f"{reprlib_list(raw[differs])}. Convert them to one offset (or to UTC) before loading."
        )


def _parse_numbers(
    frame: pd.DataFrame, column: str, name: str, where: str, label: str
) -> pd.Series:
    raw = frame[column]
    numbers = pd.to_numeric(raw, errors="coerce").astype("float64")
    text = (numbers.isna() & raw.notna()).to_numpy()
    if text.any():
        examples = reprlib_list(raw[text])
        raise DataValidationError(
            f"{where}, column {name!r} must be numeric; {_rows(frame, text, label, 'hold')} text "
            f"such as {examples}. Clean them, or declare them missing with --na-values "
            f"(for example --na-values {raw[text].iloc[0]!s})."
        )
    infinite = np.isinf(numbers.to_numpy())
    if infinite.any():
        raise DataValidationError(
            f"{where}, column {name!r}: {_rows(frame, infinite, label, 'hold')} infinite values. "
            "Replace them with real measurements, or leave them empty to have short gaps filled."
        )
    return numbers


def _drop_duplicates(
    frame: pd.DataFrame, column: str, where: str, label: str
) -> tuple[pd.DataFrame, int]:
    keys = frame.duplicated(["unique_id", "ds"], keep=False)
    if not keys.any():
        return frame, 0
    values = [name for name in frame.columns if name not in ("row",)]
    exact = frame.duplicated(values, keep="first")
    conflicting = keys & ~frame.duplicated(values, keep=False)
    if conflicting.any():
        sample = frame[conflicting].iloc[0]
        raise DataValidationError(
            f"{where}, column {column!r}: {_rows(frame, conflicting, label, 'repeat')} a timestamp "
            f"with different values (series {sample['unique_id']!r} at {sample['ds']}). "
            "Keep one observation per timestamp and series, or name the series column with "
            "--id-column if the file holds several series."
        )
    return frame[~exact], int(exact.sum())


def _infer_freq(frame: pd.DataFrame, where: str) -> str:
    steps = frame.groupby("unique_id", sort=False)["ds"].diff().dropna()
    if steps.empty:
        raise InsufficientHistoryError(f"{where}: every series has a single timestamp.")
    step = steps.mode().iloc[0]
    return pd.tseries.frequencies.to_offset(step).freqstr


def _regularize(
    frame: pd.DataFrame, freq: str, where: str, column: str, label: str
) -> pd.DataFrame:
    """Puts every series on the full grid of `freq`, adding NaN rows for missing timestamps."""
    parts = []
    for series_id, group in frame.groupby("unique_id", sort=False):
        grid = pd.date_range(group["ds"].iloc[0], group["ds"].iloc[-1], freq=freq)
        off_grid = ~group["ds"].isin(grid).to_numpy()
        if off_grid.any():
            raise DataValidationError(
                f"{where}, column {column!r}, series {series_id!r}: "
                f"{_rows(group, off_grid, label, 'fall')} between steps of the frequency {freq!r} "
                f"(such as {group['ds'][off_grid].iloc[0]}); the frequency changes mid-file. "
                "Resample the file to one frequency, or pass --freq if the inferred one is wrong."
            )
        regular = group.set_index("ds").reindex(grid).rename_axis("ds").reset_index()
        regular["unique_id"] = series_id
        parts.append(regular)
    return pd.concat(parts, ignore_index=True)


def _fill_gaps(
    frame: pd.DataFrame, columns: list[str], max_fill: int, freq: str, where: str
) -> dict[str, int]:
    """Fills runs of up to `max_fill` missing values in place; returns counts per series."""
    filled: dict[str, int] = {}
    for series_id, index in frame.groupby("unique_id", sort=False).groups.items():
        block = frame.loc[index, columns]
        missing = block.isna().any(axis=1).to_numpy()
        if not missing.any():
            continue
        start, length = _longest_run(missing)
        if length > max_fill:
            first = frame.loc[index[start], "ds"]
            raise DataValidationError(
                f"{where}, series {series_id!r}: {length} consecutive steps of {freq!r} are "
                f"missing from {first} on, more than max_fill={max_fill} can bridge. Supply the "
                "missing data, raise --max-fill (config key data.max_fill), or cut the file."
            )
        frame.loc[index, columns] = block.interpolate(limit_direction="both")
        filled[str(series_id)] = int(missing.sum())
    return filled


def _longest_run(mask: np.ndarray) -> tuple[int, int]:
    """Returns (start, length) of the longest run of True values in a boolean array."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    starts, ends = edges[::2], edges[1::2]
    longest = int(np.argmax(ends - starts))
    return int(starts[longest]), int(ends[longest] - starts[longest])


def _check_lengths(
    frame: pd.DataFrame, model: ModelConfig, evaluation: EvaluationConfig, where: str
) -> None:
    lengths = frame.groupby("unique_id", sort=False).size()
    needed = {sid: min_series_length(n, model, evaluation) for sid, n in lengths.items()}
    short = [sid for sid, n in lengths.items() if n < needed[sid]]
    if short:
        sid = short[0]
        n_val, n_test = split_sizes(int(lengths[sid]), model.horizon, evaluation)
        raise InsufficientHistoryError(
            f"{where}: {len(short)} series too short {reprlib_list(pd.Series(short))}. "
            f"Series {sid!r} has "
            f"{lengths[sid]} steps; it needs at least {needed[sid]} (input_size "
            f"{model.input_size} + horizon {model.horizon} for one training window, plus "
            f"validation and test blocks of at least one horizon each). Lower --input-size "
            "or --horizon, or supply more history."
        )


def _check_not_constant(frame: pd.DataFrame, target: str, where: str) -> None:
    spread = frame.groupby("unique_id", sort=False)["y"].agg(lambda y: y.max() - y.min())
    constant = spread.index[spread.to_numpy() == 0].tolist()
    if constant:
        raise DataValidationError(
            f"{where}, column {target!r}: the target never changes value in series "
            f"{reprlib_list(pd.Series(constant))}, so there is nothing to learn and scaled errors "
            "are undefined. "
            "Remove them from the file."
        )


def reprlib_list(values: pd.Series) -> str:
    """Quotes the first few values of a series compactly, as `reprlib.repr` does."""
    items = [repr(value) for value in values.head(_SHOWN).tolist()]
    more = ", ..." if len(values) > _SHOWN else ""
    return f"[{', '.join(items)}{more}]"
