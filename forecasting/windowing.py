"""Time-ordered splits, per-series scaling and input/target windows built with NumPy views."""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from forecasting.config import EvaluationConfig, ModelConfig, TargetScaling, season_for


def fold_bounds(
    length: int, horizon: int, evaluation: EvaluationConfig
) -> list[tuple[int, int, int]]:
    """Per backtest fold of a series of `length` steps: (train_end, block_start, block_end).

    The `n_folds` blocks are consecutive and end at the last step. Before each block, the last
    `validation_fraction` of the data (at least one horizon) is the fold's validation slice for
    early stopping; training windows have their targets before `train_end`.
    """
    size = evaluation.block_size(horizon)
    n_folds = evaluation.fold_count()
    bounds = []
    for fold in range(n_folds):
        block_start = length - (n_folds - fold) * size
        n_val = max(horizon, int(block_start * evaluation.validation_fraction))
        bounds.append((block_start - n_val, block_start, block_start + size))
    return bounds


def min_series_length(length: int, model: ModelConfig, evaluation: EvaluationConfig) -> int:
    """Steps a series of `length` steps needs: one training window before the first fold's
    validation slice, that slice and every backtest block."""
    train_end, _, _ = fold_bounds(length, model.horizon, evaluation)[0]
    return model.input_size + model.horizon + length - train_end


@dataclass(frozen=True)
class FoldPlan:
    """The backtest folds the data allow, and the series too short for them.

    Attributes:
        evaluation: The evaluation settings with `n_folds` and `fold_size` both set to what
            the backtest uses.
        typical_length: The length the folds are fitted to (see `plan_folds`).
        note: Why the folds are fewer or smaller than the defaults (they did not fit the
            typical series); empty when they fit.
        short: Series too short for these folds, id -> length, in file order.
        fits: Whether the data can be backtested; when not, `evaluation` holds the smallest
            folds allowed and `short` the series too short for them.
    """

    evaluation: EvaluationConfig
    typical_length: int
    note: str = ""
    short: dict[str, int] = field(default_factory=dict)
    fits: bool = True


# The folds fit the series at this quantile of length, so a few short series in a fleet
# neither sink the run nor shrink everyone's backtest: they are forecast by a baseline.
TYPICAL_QUANTILE = 0.1


def plan_folds(
    lengths: dict[str, int], model: ModelConfig, evaluation: EvaluationConfig
) -> FoldPlan:
    """Fits the backtest to the data: whichever of `fold_size` and `n_folds` the user left
    empty shrinks until the typical series is long enough.

    The fold size shrinks first, to the largest that fits but not below the horizon; when even
    folds of one horizon do not fit, the fold count drops (3, 2, 1) and the size is again the
    largest that fits. A value the user set is never changed.

    The typical series is the one at `TYPICAL_QUANTILE` of length (lower; the shortest when
    there are fewer than 11) among those long enough for the smallest folds allowed: a series
    too short even for those cannot be backtested, so it does not shrink the others' folds.
    When the user set both values, every series counts, and the data do not fit (`fits` is
    False) when the typical series is too short, as when more than a tenth of the series are.
    Either way the data do not fit when no series is long enough.

    Args:
        lengths: Steps per series, in file order.
    """
    horizon = model.horizon
    counts = [evaluation.n_folds] if evaluation.n_folds else range(evaluation.fold_count(), 0, -1)
    top = evaluation.block_size(horizon)
    sizes = range(top, top + 1) if evaluation.fold_size else range(horizon, top + 1)

    def settings(n_folds: int, size: int) -> EvaluationConfig:
        return evaluation.model_copy(update={"n_folds": n_folds, "fold_size": size})

    smallest = settings(counts[-1], sizes[0])
    able = [n for n in lengths.values() if min_series_length(n, model, smallest) <= n]
    adaptive = evaluation.n_folds is None or evaluation.fold_size is None
    pool = able if adaptive and able else list(lengths.values())
    typical = int(np.quantile(pool, TYPICAL_QUANTILE, method="lower"))
    chosen = None
    for n_folds in counts:
        fitting = bisect.bisect_left(
            sizes,
            True,
            key=lambda size: min_series_length(typical, model, settings(n_folds, size)) > typical,
        )
        if fitting:
            chosen = settings(n_folds, sizes[fitting - 1])
            break
    if chosen is None:
        return FoldPlan(smallest, typical, short=_too_short(lengths, model, smallest), fits=False)
    wanted = settings(evaluation.fold_count(), top)
    note = ""
    if chosen != wanted:
        note = (
            f"The series are too short for a backtest of {wanted.n_folds} folds of "
            f"{wanted.fold_size} steps ({_typical_text(lengths, typical)}; "
            f"{min_series_length(typical, model, wanted)} are needed), so the backtest uses "
            f"{chosen.fold_count()} fold{'s' if chosen.fold_count() > 1 else ''} of "
            f"{chosen.fold_size} "
            "steps. Set --n-folds or evaluation.fold_size to choose, or supply more history."
        )
    return FoldPlan(chosen, typical, note, _too_short(lengths, model, chosen))


def _typical_text(lengths: dict[str, int], typical: int) -> str:
    if len(lengths) == 1:
        return f"the series has {typical} steps"
    share = 100.0 * np.mean(np.array(list(lengths.values())) >= typical)
    if share == 100.0:
        return f"every series has {typical} steps or more"
    return f"{share:.0f}% of the series have {typical} steps or more"


def _too_short(
    lengths: dict[str, int], model: ModelConfig, evaluation: EvaluationConfig
) -> dict[str, int]:
    return {
        series_id: length
        for series_id, length in lengths.items()
        if min_series_length(length, model, evaluation) > length
    }


# The calendar cycles, shortest first, with each one's length; `calendar_cycles` picks those
# that apply to a step and `calendar_channels` gives each a sine and a cosine channel.
_CYCLES = {
    "day": pd.Timedelta(days=1),
    "week": pd.Timedelta(days=7),
    "year": pd.Timedelta(days=365),
}
CALENDAR_PHASES = {
    "day": "(hour + minute / 60 + second / 3600) / 24",
    "week": "(day_of_week + day_phase) / 7, Monday = 0",
    "year": "(month - 1 + (day - 1 + day_phase) / days_in_month) / 12",
}


def calendar_cycles(step: pd.Timedelta) -> tuple[str, ...]:
    """The calendar cycles of data sampled every `step`: the two shortest cycles longer than
    the step (hourly: day and week; daily: week and year; weekly to quarterly: year; yearly:
    none)."""
    return tuple(name for name, length in _CYCLES.items() if length > step)[:2]


def calendar_names(cycles: tuple[str, ...]) -> list[str]:
    """The feature names of the channels of `cycles`: `calendar_<cycle>_sin`, `..._cos`."""
    return [f"calendar_{cycle}_{part}" for cycle in cycles for part in ("sin", "cos")]


def calendar_channels(ds: pd.Series, cycles: tuple[str, ...]) -> np.ndarray:
    """Sine and cosine of each timestamp's phase in each cycle (`CALENDAR_PHASES`, on the
    clock of the timestamps as given, in their own offset when aware), shape
    (len(ds), 2 * len(cycles)), in the order of `calendar_names`: sin(2 pi phase),
    cos(2 pi phase)."""
    time = ds.dt
    day = (time.hour + time.minute / 60 + time.second / 3600).to_numpy(np.float64) / 24
    phases = {
        "day": day,
        "week": (time.day_of_week.to_numpy(np.float64) + day) / 7,
        "year": (
            time.month.to_numpy(np.float64)
            - 1
            + (time.day.to_numpy(np.float64) - 1 + day) / time.days_in_month.to_numpy(np.float64)
        )
        / 12,
    }
    angles = [2 * np.pi * phases[cycle] for cycle in cycles]
    return np.stack([f(a) for a in angles for f in (np.sin, np.cos)], axis=1)


@dataclass(frozen=True)
class Scaling:
    """Per-series statistics fitted on each series' training block: x -> (x - mean) / std.

    Attributes:
        mean: Shape (n_series, n_features); feature 0 is the target.
        std: Shape (n_series, n_features): what each feature is divided by. Covariates get
            their standard deviation (1 when constant); the target gets the one `target` names.
        target: How the target's divisor was fitted: "mase" (the series' in-sample seasonal
            naive MAE, the scale MASE divides errors by; see `mase_scale`) or "zscore" (its
            standard deviation).
        unscaled: How many trailing features (the calendar channels, already in [-1, 1]) are
            left as they are: mean 0, std 1, method "none".
    """

    mean: np.ndarray
    std: np.ndarray
    target: TargetScaling = "mase"
    unscaled: int = 0

    def to_dict(self, series_ids: list[str], features: list[str]) -> dict:
        """Per series and feature: `mean`, `std` (the divisor) and `method`."""
        scaled = len(features) - 1 - self.unscaled
        methods = [self.target, *["zscore"] * scaled, *["none"] * self.unscaled]
        return {
            sid: {
                name: {
                    "mean": float(self.mean[i, j]),
                    "std": float(self.std[i, j]),
                    "method": methods[j],
                }
                for j, name in enumerate(features)
            }
            for i, sid in enumerate(series_ids)
        }

    def scale(self, values: list[np.ndarray]) -> list[np.ndarray]:
        """Z-scores each series' unscaled values (length, n_features) with its own statistics."""
        return [(v - self.mean[i]) / self.std[i] for i, v in enumerate(values)]

    def descale_target(self, values: np.ndarray, series: np.ndarray) -> np.ndarray:
        """Turns scaled targets of shape (n_windows, horizon) back into original units."""
        return values * self.std[series, :1] + self.mean[series, :1]


# How much one chunk of windows may take when they are cut for a pass over a large split. A
# pass holds a few copies of a chunk (float64, shifted): at 64 MB the linear fit's pass
# reached 400 MB at 1,000 one-year series; the arithmetic runs as fast on 16 MB.
CHUNK_BYTES = 16 * 2**20


@dataclass(frozen=True)
class WindowSet:
    """Windows of one split, all series stacked, cut on demand from the scaled series.

    A split of many long series holds millions of overlapping windows; storing each once would
    take input_size times the data's memory, and even an index per window takes more than the
    data. So the windows are stored as runs: run k holds `count[k]` windows of series
    `run_series[k]`, whose first targets are at positions `first[k]`, `first[k] + 1`, ... of
    the series, which starts at row `offset[k]` of `values`. `take` cuts the windows it is
    asked for and `chunks` walks a split in pieces of bounded size.

    Attributes:
        values: The scaled values the windows are cut from (float32 from `window_set`),
            shape (length, n_features), feature 0 the target; usually every series end to end.
        offset, first, count, run_series: Per run, shape (n_runs,), as above.
        input_size: Input steps per window.
        horizon: Target steps per window (feature 0 only).
        rows: The windows of the runs this set holds, in this order (None: all of them);
            window i is the i-th of the runs' windows, run after run.
    """

    values: np.ndarray
    offset: np.ndarray
    first: np.ndarray
    count: np.ndarray
    run_series: np.ndarray
    input_size: int
    horizon: int
    rows: np.ndarray | None = None

    @classmethod
    def of(
        cls,
        inputs: np.ndarray,
        targets: np.ndarray,
        series: np.ndarray | None = None,
        target_start: np.ndarray | None = None,
    ) -> WindowSet:
        """Windows given whole: inputs (n, input_size, n_features) and targets (n, horizon)
        (the other features of the target steps are 0), kept in their own float precision (at
        least float32); one series and consecutive target starts when left out."""
        n, input_size, n_features = inputs.shape
        horizon = targets.shape[1]
        dtype = np.result_type(inputs.dtype, targets.dtype, np.float32)
        blocks = np.zeros((n, input_size + horizon, n_features), dtype)
        blocks[:, :input_size], blocks[:, input_size:, 0] = inputs, targets
        first = np.arange(n) if target_start is None else np.asarray(target_start)
        return cls(
            values=blocks.reshape(-1, n_features),
            offset=np.arange(n) * (input_size + horizon) - first + input_size,
            first=first,
            count=np.ones(n, dtype=np.int64),
            run_series=np.zeros(n, int) if series is None else np.asarray(series),
            input_size=input_size,
            horizon=horizon,
        )

    def __len__(self) -> int:
        return int(self.count.sum()) if self.rows is None else len(self.rows)

    @property
    def window_shape(self) -> tuple[int, int]:
        """(input_size, n_features) of every input window."""
        return self.input_size, self.values.shape[1]

    @property
    def nbytes(self) -> int:
        """What the windows take when cut whole."""
        return len(self) * (self.input_size + self.horizon) * self.values[:1].nbytes

    def _locate(self, rows: np.ndarray | slice) -> tuple[np.ndarray, np.ndarray]:
        """(run, target start) of windows `rows` of this set."""
        ends = np.cumsum(self.count)
        if self.rows is None and isinstance(rows, slice) and rows == slice(None):
            run = np.repeat(np.arange(len(self.count)), self.count)
            ids = np.arange(len(run))
        else:
            if self.rows is not None:
                ids = self.rows[rows]
            elif isinstance(rows, slice):
                ids = np.arange(*rows.indices(int(ends[-1]) if len(ends) else 0))
            else:
                ids = np.asarray(rows)
            run = np.searchsorted(ends, ids, side="right")
        return run, self.first[run] + ids - (ends[run] - self.count[run])

    @property
    def series(self) -> np.ndarray:
        """Index into `Windows.series_ids` of each window, shape (n_windows,)."""
        return self.run_series[self._locate(slice(None))[0]]

    @property
    def target_start(self) -> np.ndarray:
        """Position within its series of each window's first target step, (n_windows,)."""
        return self._locate(slice(None))[1]

    def take(self, rows: np.ndarray | slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """Cuts the windows `rows`: (inputs (n, input_size, n_features), targets (n, horizon)),
        new arrays of `values`' dtype that the caller may change."""
        run, target_start = self._locate(rows)
        views = sliding_window_view(self.values, self.input_size + self.horizon, axis=0)
        cut = views[self.offset[run] + target_start - self.input_size]  # (n, features, span)
        inputs = np.ascontiguousarray(cut[:, :, : self.input_size].transpose(0, 2, 1))
        return inputs, cut[:, 0, self.input_size :]

    @property
    def inputs(self) -> np.ndarray:
        """Every input window, (n_windows, input_size, n_features): for small splits only."""
        return self.take()[0]

    @property
    def targets(self) -> np.ndarray:
        """Every window's targets, (n_windows, horizon)."""
        run, target_start = self._locate(slice(None))
        steps = (self.offset[run] + target_start)[:, None] + np.arange(self.horizon)
        return self.values[steps, 0]

    def subset(self, rows: np.ndarray | slice) -> WindowSet:
        """The windows `rows` of this set, still uncut."""
        if self.rows is not None:
            return replace(self, rows=self.rows[rows])
        if isinstance(rows, slice):
            return replace(self, rows=np.arange(*rows.indices(len(self))))
        return replace(self, rows=np.asarray(rows))

    def chunks(self, max_bytes: int | None = None) -> Iterator[WindowSet]:
        """Consecutive pieces of the split whose cut windows take at most `max_bytes`
        (default `CHUNK_BYTES`; at least one window each)."""
        size = max(1, (max_bytes or CHUNK_BYTES) * len(self) // max(self.nbytes, 1))
        for first in range(0, len(self), size):
            yield self.subset(slice(first, first + size))


@dataclass(frozen=True)
class Windows:
    """Train, validation and test windows with what is needed to undo the scaling.

    Attributes:
        train_end: Per series, the position where its validation block starts; the scaler and
            MASE's in-sample scale only see positions before it.
        test_start: Per series, the position where its test block starts; the block runs to
            the end of `values`.
        values: Per series, the unscaled values this fold may see, shape (length, n_features).
        calendar: The calendar cycles whose channels are the last features (see
            `calendar_channels`); empty when `model.calendar` is off.
    """

    train: WindowSet
    validation: WindowSet
    test: WindowSet
    scaling: Scaling
    series_ids: list[str]
    features: list[str]
    train_end: np.ndarray
    test_start: np.ndarray
    values: list[np.ndarray]
    calendar: tuple[str, ...] = ()


def series_arrays(
    frame: pd.DataFrame, features: list[str], calendar: tuple[str, ...] = ()
) -> tuple[list[str], list[np.ndarray]]:
    """Splits a validated long frame into per-series arrays of shape (length, n_features):
    the `features` columns, then the channels of the `calendar` cycles computed from `ds`."""
    ids, arrays = [], []
    for series_id, group in frame.groupby("unique_id", sort=False):
        ids.append(str(series_id))
        values = group[features].to_numpy(dtype=np.float64)
        if calendar:
            values = np.hstack([values, calendar_channels(group["ds"], calendar)])
        arrays.append(values)
    return ids, arrays


def mase_scale(target: np.ndarray, season_length: int) -> float:
    """The MASE scale of a target history (length,), with fallbacks so it never divides by 0.

    The seasonal naive MAE (lag `season_length`, or lag 1 when the history is not longer than
    a season); when that is 0 (a series that repeats its season exactly) the one-step naive
    MAE; when that is 0 too (a constant series) the standard deviation, and 1 for an empty or
    constant history.
    """
    for lag in (season_length if len(target) > season_length else 1, 1):
        if len(target) > lag:
            error = float(np.mean(np.abs(target[lag:] - target[:-lag])))
            if error > 0:
                return error
    spread = float(np.std(target)) if len(target) else 0.0
    return spread if spread > 0 else 1.0


def fit_scaling(
    values: list[np.ndarray],
    train_end: np.ndarray,
    season_length: int,
    target: TargetScaling = "mase",
    unscaled: int = 0,
) -> Scaling:
    """Fits per-series statistics on positions before `train_end` only (see `Scaling`); the
    last `unscaled` features keep mean 0 and std 1."""
    seen = [v[:end] for v, end in zip(values, train_end, strict=True)]
    mean = np.stack([v.mean(axis=0) for v in seen])
    std = np.stack([v.std(axis=0) for v in seen])
    std = np.where(std > 0, std, 1.0)
    if target == "mase":
        std[:, 0] = [mase_scale(v[:, 0], season_length) for v in seen]
    if unscaled:
        mean[:, -unscaled:], std[:, -unscaled:] = 0.0, 1.0
    return Scaling(mean=mean, std=std, target=target, unscaled=unscaled)


def make_folds(
    frame: pd.DataFrame,
    features: list[str],
    model: ModelConfig,
    evaluation: EvaluationConfig,
    season_length: int | None = None,
) -> list[Windows]:
    """The rolling-origin backtest: one `Windows` per fold, oldest first (see `fold_bounds`).

    Each fold sees only the data before its block's end (`values` is cut there), its scaler is
    fitted before its validation slice, and its test windows are every stride-1 window whose
    targets lie in its block. A window belongs to the split that holds all of its target
    steps; inputs may reach back into the previous split, as at forecast time. The last fold
    ends at the last observation: its models are the ones that forecast the future. With
    `model.calendar` each row also carries the channels of the cycles that apply to the data's
    step (`calendar_cycles`), after `features` and unscaled.

    Args:
        season_length: The MASE season the target is scaled with (`model.target_scaling`
            "mase"); None: `model.season_length`, else inferred from the first series' steps.
    """
    calendar = calendar_cycles(_step_of(frame)) if model.calendar else ()
    series_ids, values = series_arrays(frame, features, calendar)
    names = [*features, *calendar_names(calendar)]
    season = season_length or _season_of(frame, model)
    per_series = [fold_bounds(len(v), model.horizon, evaluation) for v in values]
    folds = []
    for fold in range(evaluation.fold_count()):
        train_end, block_start, block_end = (
            np.array([bounds[fold][part] for bounds in per_series]) for part in range(3)
        )
        seen = [v[:end] for v, end in zip(values, block_end, strict=True)]
        scaling = fit_scaling(seen, train_end, season, model.target_scaling, 2 * len(calendar))
        stacked, offsets = stack_series(scaling.scale(seen))
        first = np.full(len(seen), model.input_size)
        train, validation, test = (
            window_set(stacked, starts, ends, model.input_size, model.horizon, offsets)
            for starts, ends in [
                (first, train_end),
                (train_end, block_start),
                (block_start, block_end),
            ]
        )
        folds.append(
            Windows(
                train,
                validation,
                test,
                scaling,
                series_ids,
                names,
                train_end,
                block_start,
                seen,
                calendar,
            )  # fmt: skip
        )
    return folds


def _season_of(frame: pd.DataFrame, model: ModelConfig) -> int:
    """`model.season_length`, or the season of the first series' first step (24 for hourly)."""
    if model.season_length is not None:
        return model.season_length
    step = _step_of(frame)
    if step is pd.NaT:
        return 1
    return season_for(pd.tseries.frequencies.to_offset(step).freqstr, None)


def _step_of(frame: pd.DataFrame) -> pd.Timedelta:
    """The first series' first step; NaT when it has a single row."""
    first = frame["ds"].iloc[:2]
    if len(first) < 2 or frame["unique_id"].iloc[0] != frame["unique_id"].iloc[1]:
        return pd.NaT
    return first.iloc[1] - first.iloc[0]


def window_set(
    scaled: list[np.ndarray] | np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    input_size: int,
    horizon: int,
    offsets: np.ndarray | None = None,
) -> WindowSet:
    """The windows whose targets lie in [start, end) of each series, series after series.

    Args:
        scaled: Per series, scaled values (length, n_features); or all of them end to end as
            one float32 array (see `stack_series`), with `offsets` where each series starts.
    """
    if isinstance(scaled, list):
        scaled, offsets = stack_series(scaled)
    assert offsets is not None, "stacked values need their offsets"
    first = np.maximum(starts, input_size)
    return WindowSet(
        values=scaled,
        offset=np.asarray(offsets),
        first=first,
        count=np.maximum(np.asarray(ends) - horizon + 1 - first, 0),
        run_series=np.arange(len(first)),
        input_size=input_size,
        horizon=horizon,
    )


def stack_series(values: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(every series end to end as float32, where each one starts)."""
    lengths = np.array([len(v) for v in values], dtype=np.int64)
    return np.concatenate(values).astype(np.float32), np.cumsum(lengths) - lengths


def full_history_windows(windows: Windows, input_size: int, horizon: int) -> WindowSet:
    """All windows of every series up to its last observation, scaled as in training."""
    scaled = windows.scaling.scale(windows.values)
    starts = np.full(len(scaled), input_size)
    ends = np.array([len(v) for v in scaled])
    return window_set(scaled, starts, ends, input_size, horizon)


def last_inputs(windows: Windows, input_size: int) -> np.ndarray:
    """The scaled last `input_size` steps of each series; (n_series, input_size, n_features)."""
    tails = [values[-input_size:] for values in windows.values]
    return np.stack(windows.scaling.scale(tails)).astype(np.float32)
