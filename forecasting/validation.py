"""Checks loaded data once, at the boundary, and returns data every later step can trust."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from forecasting.config import DataConfig, EvaluationConfig, ModelConfig, season_for
from forecasting.data import LoadedData
from forecasting.errors import ConfigError, DataValidationError, InsufficientHistoryError
from forecasting.models import spec
from forecasting.windowing import FoldPlan, min_series_length, plan_folds

_SHOWN = 5  # offending rows quoted in a message
_COARSER_RUN = 4  # this many equal steps longer than the frequency mean it changed
_OFFSET = r"(Z|[+-]\d{2}:?\d{2})\s*$"  # a UTC offset at the end of a timestamp


@dataclass(frozen=True)
class ValidatedData:
    """Data that satisfies these guarantees, which later code relies on:

    - columns `unique_id` (str), `ds` (datetime64, one time zone or none), `y` and each
      covariate (float64, finite, no missing values);
    - sorted by (`unique_id`, `ds`), with unique (`unique_id`, `ds`) pairs;
    - every series on a regular grid of `freq` from its first to its last timestamp;
    - at least 90% of the series (`windowing.TYPICAL_QUANTILE`), and every series of a file
      with one, long enough for input_size + horizon + validation + the backtest folds
      (`folds.evaluation`); the others are named in `folds.short`;
    - no timestamp after `as_of`.

    Attributes:
        frame: The cleaned long frame.
        freq: pandas frequency string of the grid.
        as_of: What the run knows up to: the configured as-of (in the data's time zone), or
            the last timestamp when none was given. The one source of the run's `as_of`.
        season_length: Seasonal period for seasonal_naive and MASE (configured, or from freq);
            at most input_size whenever seasonal_naive is a candidate.
        filled: Per series, how many values were filled by interpolation (only series with any).
        duplicates_dropped: Exact duplicate rows (same series, time and values) removed.
        rows_after_as_of: Rows of the file dropped because their timestamp is after `as_of`.
        rows_out_of_order: Rows whose timestamp is earlier than the previous row of the same
            series in the file (sorted).
        source: The file the data came from.
        sha256: Hex digest of that file.
        folds: The backtest folds fitted to the data (`windowing.plan_folds`) and the series
            too short for them; None only for data not made by `validate`.
    """

    frame: pd.DataFrame
    freq: str
    source: str
    sha256: str
    as_of: pd.Timestamp
    season_length: int = 1
    filled: dict[str, int] = field(default_factory=dict)
    duplicates_dropped: int = 0
    rows_after_as_of: int = 0
    rows_out_of_order: int = 0
    folds: FoldPlan | None = None

    @property
    def series_ids(self) -> list[str]:
        return list(self.frame["unique_id"].unique())

    @property
    def short_series(self) -> dict[str, int]:
        """Series too short for the backtest, id -> length: a baseline forecasts them."""
        return self.folds.short if self.folds is not None else {}

    @property
    def backtested_frame(self) -> pd.DataFrame:
        """`frame` without the short series: the series the candidates are trained on."""
        if not self.short_series:
            return self.frame
        return self.frame[~self.frame["unique_id"].isin(list(self.short_series))]


def validate(
    loaded: LoadedData,
    data: DataConfig,
    model: ModelConfig,
    evaluation: EvaluationConfig,
    as_of: datetime | pd.Timestamp | None = None,
) -> ValidatedData:
    """Checks and cleans loaded data; see `ValidatedData` for what the result guarantees.

    Rows after `as_of` are dropped (and counted) before any other check reads them, so data
    that arrived later cannot fail or change a replay. Unsorted rows are sorted, exact duplicate
    rows dropped, and runs of up to `data.max_fill` missing steps (absent timestamps or missing
    values) filled by linear interpolation, with a warning; all of it is counted in the result.

    Args:
        loaded: From `load_series`.
        data: Column names and repair limits.
        model: For the length each series needs.
        evaluation: For the validation and test blocks each series needs.
        as_of: Use only rows at or before this time (time-zone aware exactly when the data
            are); None uses every row.

    Raises:
        DataValidationError: Unparseable timestamps, an as-of that does not fit the data,
            text or Inf in numeric columns, a series without values, conflicting duplicates,
            an irregular frequency, a gap longer than `max_fill`, or a constant series.
        InsufficientHistoryError: A series is too short.
    """
    where = f"Data file {str(loaded.source)!r}"
    label = loaded.row_label
    frame, after = _cut_at_as_of(loaded.frame.copy(), as_of, data.time_column, where, label)
    _check_ids(frame, data.id_column, where, label)
    frame["ds"] = _parse_timestamps(frame, data.time_column, where, label)
    value_columns = data.features
    for column, name in zip(value_columns, [data.target_column, *data.covariates], strict=True):
        frame[column] = _parse_numbers(frame, column, name, where, label)
        _check_has_values(frame, column, name, where, label)
    frame, dropped = _drop_duplicates(frame, data.time_column, where, label)
    out_of_order = int(
        (frame.groupby("unique_id", sort=False)["ds"].diff() < pd.Timedelta(0)).sum()
    )
    frame = frame.sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)
    later = " or give a later --as-of" if as_of is not None else ""
    freq = data.freq or _infer_freq(frame, where, later)
    season_length = _season_that_fits(freq, model)
    frame = _regularize(frame, freq, where, data.time_column, label)
    filled = _fill_gaps(frame, value_columns, data.max_fill, freq, where, label)
    folds = _plan_folds(frame, model, evaluation, where, later)
    _check_not_constant(frame, data.target_column, where, label)
    if filled:
        warnings.warn(
            f"{where}: filled {sum(filled.values())} missing values by interpolation "
            f"in {len(filled)} series (max_fill={data.max_fill}).",
            stacklevel=2,
        )
    for note in filter(None, [folds.note, _short_note(folds, model, where)]):
        warnings.warn(note, stacklevel=2)
    return ValidatedData(
        frame=frame[["unique_id", "ds", *value_columns]].reset_index(drop=True),
        freq=freq,
        source=str(loaded.source),
        sha256=loaded.sha256,
        as_of=_run_as_of(frame["ds"], as_of),
        season_length=season_length,
        filled=filled,
        duplicates_dropped=dropped,
        rows_after_as_of=after,
        rows_out_of_order=out_of_order,
        folds=folds,
    )


def _check_ids(frame: pd.DataFrame, column: str | None, where: str, label: str) -> None:
    missing = frame["unique_id"].isna().to_numpy()
    if column and missing.any():
        raise DataValidationError(
            f"{where}, column {column!r}: {_rows(frame, missing, label, 'lack')} a series name. "
            "Fill in the series those rows belong to, or remove them."
        )


def _season_that_fits(freq: str, model: ModelConfig) -> int:
    season = season_for(freq, model.season_length)
    # A kind whose model depends on season_length (seasonal_naive), or that learns the
    # correction to it (an RNN with base = seasonal_naive), reads one season per window.
    seasonal = [
        k
        for k in model.candidates
        if spec(k).depends_on("model.season_length")
        or (model.base == "seasonal_naive" and spec(k).depends_on("model.base"))
    ]
    if seasonal and season > model.input_size:
        kind = seasonal[0]
        uses = "repeats" if spec(kind).depends_on("model.season_length") else "learns on top of"
        raise ConfigError(
            f"{kind} {uses} the last season of {season} steps (frequency {freq!r}), but "
            f"each input window holds only input_size={model.input_size} steps. Raise "
            f"--input-size to at least {season}, set model.season_length, or drop "
            f"{kind} from model.candidates."
        )
    return season


def _run_as_of(ds: pd.Series, as_of: datetime | pd.Timestamp | None) -> pd.Timestamp:
    """The configured as-of in the data's time zone (same instant), or the last timestamp."""
    if as_of is None:
        return ds.max()
    moment = pd.Timestamp(as_of)
    return moment.tz_convert(ds.dt.tz) if moment.tzinfo is not None else moment


def _cut_at_as_of(
    frame: pd.DataFrame, as_of: datetime | pd.Timestamp | None, column: str, where: str, label: str
) -> tuple[pd.DataFrame, int]:
    """Drops the rows after `as_of`; returns what is left and how many rows were dropped.

    Runs before every other check so that rows which arrived later, junk included, cannot
    fail a replay. A row whose timestamp cannot be read stays: nothing shows it is after the
    as-of, and the timestamp checks then refuse it.
    """
    if as_of is None:
        return frame, 0
    moment = pd.Timestamp(as_of)
    instants, aware = _instants(frame["ds"])
    readable = instants.notna().to_numpy()
    if not readable.any():
        return frame, 0
    first = int(np.flatnonzero(readable)[0])
    if bool(aware[first]) != (moment.tzinfo is not None):
        example = frame["ds"].iloc[first]
        kinds = ("carry a UTC offset", "none") if aware[first] else ("have no UTC offset", "one")
        raise DataValidationError(
            f"{where}, column {column!r}: the timestamps {kinds[0]} ({label} "
            f"{frame['row'].iloc[first]} reads {str(example)!r}) but --as-of "
            f"{moment.isoformat()!r} has {kinds[1]}, so the two cannot be compared. Write the "
            f"as-of the way the file writes its times, such as {_like(moment, example)!r}."
        )
    comparable = readable & (aware == aware[first])
    if moment.tzinfo is not None:
        after = comparable & (instants > moment.tz_convert("UTC")).to_numpy()
    else:
        after = comparable & (instants.dt.tz_localize(None) > moment).to_numpy()
    if not (comparable & ~after).any():
        earliest = instants[comparable].idxmin()
        raise DataValidationError(
            f"{where}, column {column!r}: --as-of {moment.isoformat()!r} is before the first "
            f"timestamp {frame['ds'].loc[earliest]!r} ({label} {frame['row'].loc[earliest]}), "
            "so no data are left to forecast from. Give a later as-of, or leave it out to "
            "forecast from the last timestamp."
        )
    return frame[~after], int(after.sum())


def _instants(raw: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Each timestamp as a UTC instant (naive ones read as if UTC; NaT when unreadable) and
    whether it carries a UTC offset. Only rows the fast parse cannot read are parsed one by one.
    """
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Could not infer format", UserWarning)
            parsed = pd.to_datetime(raw, errors="coerce")
        aware = np.full(len(raw), parsed.dt.tz is not None)
        utc = parsed.dt.tz_convert("UTC") if aware.any() else parsed.dt.tz_localize("UTC")
    except ValueError:  # offsets that differ between rows
        utc = pd.to_datetime(raw, errors="coerce", utc=True)
        aware = np.array(raw.astype(str).str.contains(_OFFSET), dtype=bool)
    suspects = (utc.isna() & raw.notna()).to_numpy()
    if suspects.any():  # another format, or an offset where the first row had none
        utc = utc.copy()
        alone = pd.to_datetime(raw[suspects], errors="coerce", format="mixed", utc=True)
        utc.iloc[np.flatnonzero(suspects)] = alone.to_numpy()
        aware[suspects] = np.array(raw[suspects].astype(str).str.contains(_OFFSET), dtype=bool)
    return utc, aware


def _like(moment: pd.Timestamp, example: object) -> str:
    """The as-of written the way `example` (a timestamp of the file) is: with its offset or none."""
    stamp = pd.Timestamp(example)
    if stamp.tzinfo is None:
        return moment.tz_localize(None).isoformat(sep=" ")
    return moment.tz_localize(stamp.tz).isoformat(sep=" ")


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
            f"Received: first values {_quote_few(raw)}"
        )
    if bad.any():
        examples = _quote_few(raw[bad].fillna("<empty>"))
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
            f"{_quote_few(raw[differs])}. Convert them to one offset (or to UTC) before loading."
        )


def _parse_numbers(
    frame: pd.DataFrame, column: str, name: str, where: str, label: str
) -> pd.Series:
    raw = frame[column]
    numbers = pd.to_numeric(raw, errors="coerce").astype("float64")
    text = (numbers.isna() & raw.notna()).to_numpy()
    if text.any():
        examples = _quote_few(raw[text].drop_duplicates())
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


def _check_has_values(frame: pd.DataFrame, column: str, name: str, where: str, label: str) -> None:
    """Refuses a series whose column holds no value at all: there is nothing to fill from."""
    counts = frame.groupby("unique_id", sort=False)[column].count()
    empty = counts.index[counts.to_numpy() == 0].tolist()
    if not empty:
        return
    series_id = empty[0]
    lines = _rows(frame, frame["unique_id"] == series_id, label, "hold")
    others = f" ({len(empty)} series have none: {_quote_few(pd.Series(empty))})"
    raise DataValidationError(
        f"{where}: series {series_id!r} has no values in column {name!r}: its {lines} none"
        f"{others if len(empty) > 1 else ''}. Supply its values, remove its lines from the file, "
        "or name the right column with --target-column or --covariates."
    )


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
        local = (
            " Local clock times repeat an hour when daylight saving time ends; if that is the "
            "cause, export the times in UTC or with their UTC offset."
            if frame["ds"].dt.tz is None
            else ""
        )
        raise DataValidationError(
            f"{where}, column {column!r}: {_rows(frame, conflicting, label, 'repeat')} a timestamp "
            f"with different values (series {sample['unique_id']!r} at {sample['ds']}). "
            "Keep one observation per timestamp and series, or name the series column with "
            f"--id-column if the file holds several series.{local}"
        )
    return frame[~exact], int(exact.sum())


def _infer_freq(frame: pd.DataFrame, where: str, later: str) -> str:
    steps = frame.groupby("unique_id", sort=False)["ds"].diff().dropna()
    if steps.empty:
        raise InsufficientHistoryError(
            f"{where}: every series has a single timestamp, so there is no step to infer a "
            f"frequency from and no history to learn. Supply more history{later}."
        )
    for _, group in frame.groupby("unique_id", sort=False):
        with pd.option_context("future.infer_freq_returns_offset", True):
            calendar = pd.infer_freq(group["ds"]) if len(group) >= 3 else None
        if calendar is not None:
            return calendar.freqstr  # regular calendar steps such as "MS" or "W-SUN"
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
        _check_step_is_steady(group, grid, freq, f"{where}, series {series_id!r}", label)
        regular = group.set_index("ds").reindex(grid).rename_axis("ds").reset_index()
        regular["unique_id"] = series_id
        parts.append(regular)
    return pd.concat(parts, ignore_index=True)


def _check_step_is_steady(
    group: pd.DataFrame, grid: pd.DatetimeIndex, freq: str, where: str, label: str
) -> None:
    """Refuses a coarser sampling rate inside a series: `_COARSER_RUN` or more consecutive
    steps of the same multiple of `freq` are a frequency change, not gaps to interpolate."""
    steps = np.diff(grid.get_indexer(group["ds"]))
    if len(steps) == 0:
        return
    edges = np.flatnonzero(np.diff(steps)) + 1
    starts = np.concatenate([[0], edges])
    lengths = np.diff(np.concatenate([starts, [len(steps)]]))
    coarse = (steps[starts] > 1) & (lengths >= _COARSER_RUN)
    if coarse.any():
        first = int(starts[np.argmax(coarse)])
        size, count = int(steps[first]), int(lengths[np.argmax(coarse)])
        raise DataValidationError(
            f"{where}: from {label} {group['row'].iloc[first]} on, {count} consecutive "
            f"timestamps are {size} steps of {freq!r} apart; the frequency changes mid-file "
            "rather than a few values being missing. Resample the file to one frequency, or "
            "pass --freq with the coarser step."
        )


def _fill_gaps(
    frame: pd.DataFrame, columns: list[str], max_fill: int, freq: str, where: str, label: str
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
                f"missing from {first} on{_around(frame, index, start, length, label)}, more "
                f"than max_fill={max_fill} can bridge. Supply the missing data, raise --max-fill "
                "(config key data.max_fill), or cut the file."
            )
        frame.loc[index, columns] = block.interpolate(limit_direction="both")
        filled[str(series_id)] = int(missing.sum())
    return filled


def _around(frame: pd.DataFrame, index: pd.Index, start: int, length: int, label: str) -> str:
    """Where a gap lies in the file, such as ' (after line 100, before line 121)'; the steps
    next to a gap are observed, so they are lines of the file."""
    rows = frame.loc[index, "row"].to_numpy()
    places = [f"after {label} {int(rows[start - 1])}"] if start > 0 else []
    if start + length < len(rows):
        places.append(f"before {label} {int(rows[start + length])}")
    return f" ({', '.join(places)})" if places else ""


def _longest_run(mask: np.ndarray) -> tuple[int, int]:
    """Returns (start, length) of the longest run of True values in a boolean array."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    starts, ends = edges[::2], edges[1::2]
    longest = int(np.argmax(ends - starts))
    return int(starts[longest]), int(ends[longest] - starts[longest])


def _plan_folds(
    frame: pd.DataFrame, model: ModelConfig, evaluation: EvaluationConfig, where: str, later: str
) -> FoldPlan:
    """Fits the backtest folds to the series' lengths (`windowing.plan_folds`).

    Raises:
        InsufficientHistoryError: The typical series is too short even for the smallest folds
            allowed (one horizon, one fold, unless the user set them), or the file holds one
            series and it is too short.
    """
    lengths = frame.groupby("unique_id", sort=False).size()
    plan = plan_folds({str(k): int(n) for k, n in lengths.items()}, model, evaluation)
    if plan.fits:
        return plan
    short = list(plan.short)
    sid, chosen = short[0], plan.evaluation
    n_folds, size = chosen.fold_count(), chosen.block_size(model.horizon)
    folds = f"{n_folds} backtest fold{'s' if n_folds > 1 else ''} of {size} steps"
    if evaluation.n_folds is None or evaluation.fold_size is None:
        folds += ", the least the defaults shrink to"
    many = (
        " At most a tenth of the series may be shorter; those are forecast by a baseline."
        if len(lengths) > 1
        else ""
    )
    raise InsufficientHistoryError(
        f"{where}: {len(short)} series {'is' if len(short) == 1 else 'are'} too short: "
        f"{_quote_few(pd.Series(short))}. Series {sid!r} has {plan.short[sid]} steps; it needs "
        f"at least {min_series_length(plan.short[sid], model, chosen)} (input_size "
        f"{model.input_size} + horizon {model.horizon} for one training window, plus a "
        f"validation slice of at least one horizon and {folds}).{many} Lower --input-size, "
        f"--horizon or --n-folds, or supply more history{later}."
    )


def _short_note(plan: FoldPlan, model: ModelConfig, where: str) -> str:
    """The warning that names the series too short for the backtest, or ""."""
    if not plan.short:
        return ""
    sid, length = next(iter(plan.short.items()))
    return (
        f"{where}: {len(plan.short)} series {'is' if len(plan.short) == 1 else 'are'} too short "
        f"for the backtest: {_quote_few(pd.Series(list(plan.short)))} (series {sid!r} has "
        f"{length} steps; it needs {min_series_length(length, model, plan.evaluation)}). "
        f"{'It is' if len(plan.short) == 1 else 'Each is'} forecast by the better baseline "
        "that fits it (seasonal_naive or naive, ranked by this run's backtest) and left out of "
        "the model tournament; the manifest lists them under short_series."
    )


def _check_not_constant(frame: pd.DataFrame, target: str, where: str, label: str) -> None:
    spread = frame.groupby("unique_id", sort=False)["y"].agg(lambda y: y.max() - y.min())
    constant = spread.index[spread.to_numpy() == 0].tolist()
    if constant:
        series = frame[frame["unique_id"] == constant[0]]
        value, lines = float(series["y"].iloc[0]), series["row"].dropna()
        raise DataValidationError(
            f"{where}, column {target!r}: the target never changes value in series "
            f"{_quote_few(pd.Series(constant))} (series {constant[0]!r} holds {value!r} on "
            f"{label}s {int(lines.min())} to {int(lines.max())}), so there is nothing to learn "
            "and scaled errors are undefined. Remove them from the file."
        )


def _quote_few(values: pd.Series) -> str:
    """Quotes the first few values of a series compactly (in the spirit of `reprlib.repr`)."""
    items = [repr(value) for value in values.head(_SHOWN).tolist()]
    more = ", ..." if len(values) > _SHOWN else ""
    return f"[{', '.join(items)}{more}]"
