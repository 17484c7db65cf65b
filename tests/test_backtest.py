"""The backtest table: one row per fold window and step, cutoffs and timestamps exact."""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecasting.backtest import (
    BACKTEST_KEYS,
    backtest_frame,
    backtest_parts,
    collect,
    series_dates,
)
from forecasting.config import EvaluationConfig, ModelConfig
from forecasting.evaluation import held_out_truth
from forecasting.training import CandidateResult
from forecasting.windowing import make_folds

MODEL = ModelConfig(input_size=10, horizon=4)
EVALUATION = EvaluationConfig(n_folds=3, fold_size=8)


def arange_panel() -> pd.DataFrame:
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "unique_id": f"s{i}",
                    "ds": pd.date_range(f"2024-01-0{i + 1}", periods=n, freq="h"),
                    "y": np.arange(n, dtype=float) + 1000 * i,
                }
            )
            for i, n in enumerate((100, 80))
        ],
        ignore_index=True,
    )


def test_oracle_backtest_has_exact_cutoffs_windows_and_truth() -> None:
    frame = arange_panel()
    folds = make_folds(frame, ["y"], MODEL, EVALUATION)
    oracle = CandidateResult("oracle", "ok", predictions=[held_out_truth(w) + 0.5 for w in folds])
    failed = CandidateResult("gru", "failed", reason="x")
    backtest = collect(folds, [oracle, failed], season_length=1)
    table = backtest_frame(backtest, folds[-1].series_ids, series_dates(frame))

    assert list(table.columns) == [*BACKTEST_KEYS, "oracle"]  # failed candidates have no column
    windows_per_series = 3 * (8 - 4 + 1)
    assert len(table) == 2 * windows_per_series * 4
    np.testing.assert_allclose(table["oracle"] - table["y"], 0.5)
    # y is the series' own value at ds: position + 1000 * series index
    start = table["unique_id"].map(
        {"s0": pd.Timestamp("2024-01-01"), "s1": pd.Timestamp("2024-01-02")}
    )
    position = (table["ds"] - start) / pd.Timedelta(hours=1)
    offset = table["unique_id"].map({"s0": 0, "s1": 1000})
    np.testing.assert_allclose(table["y"], position + offset)
    # ds is cutoff + horizon_step steps; cutoffs of one fold never reach into another's block
    assert ((table["ds"] - table["cutoff"]) == table["horizon_step"] * pd.Timedelta(hours=1)).all()
    s0 = table[table["unique_id"] == "s0"]
    cutoff_positions = sorted(
        ((s0["cutoff"] - pd.Timestamp("2024-01-01")) / pd.Timedelta(hours=1)).unique()
    )
    expected = [p - 1 for block in (76, 84, 92) for p in range(block, block + 8 - 4 + 1)]
    assert cutoff_positions == expected
    # the scaled errors and per-origin losses agree with the table
    errors = backtest.abs_scaled_errors("oracle")
    np.testing.assert_allclose(errors, np.broadcast_to(0.5 / backtest.scale[:, None], errors.shape))
    assert len(backtest.origin_losses("oracle", backtest.cutoffs(series_dates(frame)))) == len(
        table["cutoff"].unique()
    )


def test_the_backtest_in_parts_is_the_whole_table_and_one_parquet_file() -> None:
    import io

    from forecasting.store.formats import parquet_bytes

    frame = arange_panel()
    folds = make_folds(frame, ["y"], MODEL, EVALUATION)
    oracle = CandidateResult("oracle", "ok", predictions=[held_out_truth(w) + 0.5 for w in folds])
    backtest = collect(folds, [oracle], season_length=1)
    args = (folds[-1].series_ids, series_dates(frame))
    whole = backtest_frame(backtest, *args)
    parts = list(backtest_parts(backtest, *args, rows=4 * 7))  # 7 windows of 4 steps a part
    assert [len(part) for part in parts] == [28] * 4 + [8]
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), whole)
    written = pd.read_parquet(io.BytesIO(parquet_bytes(backtest_parts(backtest, *args, rows=28))))
    pd.testing.assert_frame_equal(written, whole)
    empty = backtest.part(slice(0, 0))
    (nothing,) = backtest_parts(empty, *args)
    assert list(nothing.columns) == list(whole.columns) and nothing.empty
