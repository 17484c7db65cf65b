"""The backtest's out-of-fold forecasts in one place: the long table readers get, and the
per-window errors that intervals, the Diebold-Mariano test and the leaderboard share."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecasting.evaluation import held_out_truth, insample_scale
from forecasting.training import CandidateResult
from forecasting.windowing import Windows

BACKTEST_KEYS = ["unique_id", "ds", "cutoff", "horizon_step", "y"]


@dataclass(frozen=True)
class Backtest:
    """Every finished candidate's forecasts for the same test windows, all folds stacked.

    Attributes:
        y: Actual values in original units, (n_windows, horizon).
        scale: Each window's MASE denominator (its series' in-sample seasonal naive MAE in that
            fold), (n_windows,).
        fold: Each window's fold, 0 = oldest, (n_windows,).
        series: Each window's series index, (n_windows,).
        target_start: Position within its series of each window's first target, (n_windows,).
        predictions: Per finished candidate, its forecasts, (n_windows, horizon).
    """

    y: np.ndarray
    scale: np.ndarray
    fold: np.ndarray
    series: np.ndarray
    target_start: np.ndarray
    predictions: dict[str, np.ndarray]

    def abs_scaled_errors(self, kind: str) -> np.ndarray:
        """|y - y_hat| / scale for `kind`, (n_windows, horizon)."""
        return np.abs(self.y - self.predictions[kind]) / self.scale[:, None]

    def origin_losses(self, kind: str, cutoffs: np.ndarray) -> np.ndarray:
        """Per forecast origin (cutoff time, from `cutoffs`), in time order, the mean scaled
        absolute error of `kind` over horizon steps and series: the loss series the
        Diebold-Mariano test reads."""
        window_loss = self.abs_scaled_errors(kind).mean(axis=1)
        return pd.Series(window_loss).groupby(cutoffs).mean().sort_index().to_numpy()

    def part(self, rows: slice) -> Backtest:
        """The windows `rows` (views, not copies)."""
        return Backtest(
            y=self.y[rows],
            scale=self.scale[rows],
            fold=self.fold[rows],
            series=self.series[rows],
            target_start=self.target_start[rows],
            predictions={kind: y_hat[rows] for kind, y_hat in self.predictions.items()},
        )

    def cutoffs(self, dates: list[np.ndarray]) -> np.ndarray:
        """Each window's cutoff: the timestamp of its last input step."""
        return np.array(
            [dates[s][t - 1] for s, t in zip(self.series, self.target_start, strict=True)]
        )


def collect(folds: list[Windows], results: list[CandidateResult], season_length: int) -> Backtest:
    """Stacks the folds' test windows, truths and each finished candidate's forecasts.

    The forecasts move: each result's per-fold list is emptied once stacked, so a backtest
    of many series is not held twice.
    """
    finished = [r for r in results if r.ok]
    predictions = {}
    for result in finished:
        predictions[result.kind] = np.concatenate(result.predictions)
        result.predictions.clear()
    return Backtest(
        y=np.concatenate([held_out_truth(w) for w in folds]),
        scale=np.concatenate([insample_scale(w, season_length)[w.test.series] for w in folds]),
        fold=np.concatenate([np.full(len(w.test), i) for i, w in enumerate(folds)]),
        series=np.concatenate([w.test.series for w in folds]),
        target_start=np.concatenate([w.test.target_start for w in folds]),
        predictions=predictions,
    )


def backtest_parts(
    backtest: Backtest, series_ids: list[str], dates: list[np.ndarray], rows: int = 1024 * 1024
) -> Iterator[pd.DataFrame]:
    """`backtest_frame` a few windows at a time, about `rows` rows each (at least one frame,
    empty when there are no windows): a backtest of many series is millions of rows."""
    n_windows, horizon = backtest.y.shape
    step = max(1, rows // max(horizon, 1))
    for first in range(0, max(n_windows, 1), step):
        yield backtest_frame(backtest.part(slice(first, first + step)), series_ids, dates)


def series_dates(frame: pd.DataFrame) -> list[np.ndarray]:
    """Each series' timestamps in the order `windowing.series_arrays` lists the series."""
    return [group["ds"].to_numpy() for _, group in frame.groupby("unique_id", sort=False)]


def backtest_frame(
    backtest: Backtest, series_ids: list[str], dates: list[np.ndarray]
) -> pd.DataFrame:
    """The long table of `backtest.parquet`, shaped like Nixtla's `cross_validation` output:
    `unique_id`, `ds`, `cutoff`, `horizon_step`, `y`, then one column per finished candidate;
    one row per window and horizon step."""
    n_windows, horizon = backtest.y.shape
    steps = np.arange(horizon)
    positions = backtest.target_start[:, None] + steps
    target_dates = (
        np.stack([dates[s][p] for s, p in zip(backtest.series, positions, strict=True)])
        if n_windows
        else np.empty((0, horizon), dtype="datetime64[ns]")
    )
    columns = {
        "unique_id": np.repeat(np.asarray(series_ids, dtype=object)[backtest.series], horizon),
        "ds": target_dates.ravel(),
        "cutoff": np.repeat(backtest.cutoffs(dates), horizon),
        "horizon_step": np.tile(steps + 1, n_windows),
        "y": backtest.y.ravel(),
        **{kind: y_hat.ravel() for kind, y_hat in backtest.predictions.items()},
    }
    frame = pd.DataFrame(columns)
    frame["unique_id"] = frame["unique_id"].astype("str")
    return frame
