"""Scoring published forecasts against late actuals, by hand-checked numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecasting.accuracy import accuracy_drop, run_summary, score_forecast
from forecasting.store.history import ACCURACY_COLUMNS, merge_accuracy

SCALE = {"a": 2.0, "b": 4.0}
# per (series, step): y_hat, y, 80% bounds, 95% bounds
POINTS = [
    ("a", 1, 10.0, 11.0, (9.0, 12.0), (8.0, 13.0)),  # inside both
    ("a", 2, 12.0, 15.0, (10.0, 14.0), (9.0, 15.0)),  # outside 80, on the 95 edge
    ("b", 1, 20.0, 18.0, (18.0, 22.0), (16.0, 24.0)),  # on the 80 edge
    ("b", 2, 20.0, 30.0, (18.0, 22.0), (16.0, 24.0)),  # outside both
]


def _forecast(run_id: str, hour: int, intervals: bool = True, tz: str | None = None):
    as_of = pd.Timestamp(f"2024-01-01 {hour:02d}:00", tz=tz)
    rows = []
    for unique_id, step, y_hat, _, (lo_80, hi_80), (lo_95, hi_95) in POINTS:
        row = {
            "unique_id": unique_id,
            "ds": as_of + pd.Timedelta(hours=step),
            "horizon_step": step,
            "y_hat": y_hat,
            "model": "gru",
            "run_id": run_id,
            "as_of": as_of,
        }
        if intervals:
            row |= {"y_hat_lo_80": lo_80, "y_hat_hi_80": hi_80}
            row |= {"y_hat_lo_95": lo_95, "y_hat_hi_95": hi_95}
        rows.append(row)
    return pd.DataFrame(rows)


def _actuals(hour: int, tz: str | None = None, drop_last: bool = False) -> pd.DataFrame:
    """Each point's actual, plus history before the forecast that must not be scored."""
    as_of = pd.Timestamp(f"2024-01-01 {hour:02d}:00", tz=tz)
    points = POINTS[:-1] if drop_last else POINTS
    rows = [(uid, as_of + pd.Timedelta(hours=step), y) for uid, step, _, y, _, _ in points]
    rows += [(uid, as_of, 99.0) for uid in SCALE]
    return pd.DataFrame(rows, columns=["unique_id", "ds", "y"])


def _scored(run_id: str = "r1", hour: int = 9, intervals: bool = True, tz: str | None = None):
    scored_at = pd.Timestamp("2024-01-02", tz=tz)
    return score_forecast(
        _forecast(run_id, hour, intervals, tz), _actuals(hour, tz), SCALE, scored_at
    )


def test_complete_forecast_is_scored_point_by_point() -> None:
    scored = _scored()
    assert scored is not None
    assert list(scored.columns) == ACCURACY_COLUMNS
    assert scored["y"].tolist() == [11.0, 15.0, 18.0, 30.0]
    assert scored["abs_error"].tolist() == [1.0, 3.0, 2.0, 10.0]
    assert scored["scaled_error"].tolist() == [0.5, 1.5, 0.5, 2.5]
    assert scored["in_80"].tolist() == [True, False, True, False]
    assert scored["in_95"].tolist() == [True, True, True, False]
    assert str(scored["in_80"].dtype) == "boolean"
    assert (scored["scored_at_as_of"] == pd.Timestamp("2024-01-02")).all()


def test_series_without_a_scale_gets_nan_scaled_error() -> None:
    scored = score_forecast(_forecast("r1", 9), _actuals(9), {"a": 2.0}, pd.Timestamp("2024-01-02"))
    assert scored is not None
    assert scored["scaled_error"].tolist()[:2] == [0.5, 1.5]
    assert scored["scaled_error"].iloc[2:].isna().all()


def test_forecast_with_an_actual_still_missing_is_not_scored() -> None:
    actuals = _actuals(9, drop_last=True)
    assert score_forecast(_forecast("r1", 9), actuals, SCALE, pd.Timestamp("2024-01-02")) is None


def test_run_without_intervals_has_na_flags_and_nan_coverage() -> None:
    scored = _scored(intervals=False)
    assert scored is not None
    assert str(scored["in_80"].dtype) == "boolean"
    assert scored["in_80"].isna().all() and scored["in_95"].isna().all()
    summary = run_summary(scored)
    assert np.isnan(summary.loc[0, "coverage_80"]) and np.isnan(summary.loc[0, "coverage_95"])
    assert summary.loc[0, "mae"] == pytest.approx(4.0)


def test_run_summary_by_hand_for_two_runs() -> None:
    later, earlier = _scored("r2", hour=9), _scored("r1", hour=5, intervals=False)
    assert later is not None and earlier is not None
    later.loc[later["unique_id"] == "b", "scaled_error"] = np.nan  # only a's steps count
    summary = run_summary(pd.concat([later, earlier], ignore_index=True))
    assert summary["run_id"].tolist() == ["r1", "r2"]  # ordered by as_of, not input order
    assert summary["mae"].tolist() == pytest.approx([4.0, 4.0])  # (1 + 3 + 2 + 10) / 4
    assert summary["mase"].tolist() == pytest.approx([(0.5 + 1.5 + 0.5 + 2.5) / 4, 1.0])
    assert np.isnan(summary.loc[0, "coverage_80"])
    assert summary.loc[1, ["coverage_80", "coverage_95"]].tolist() == [50.0, 75.0]
    assert summary["n_points"].tolist() == [4, 4]


def _summary(mase: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run_id": [f"r{index}" for index in range(len(mase))],
            "model": "gru",
            "as_of": pd.date_range("2024-01-01", periods=len(mase), freq="D"),
            "mase": mase,
        }
    )


@pytest.mark.parametrize(
    ("mase", "window", "warns"),
    [
        ([1.0, 1.0, 1.5], 5, True),  # 50% worse than the mean of 1.0
        ([1.0, 1.0, 1.1], 5, False),  # 10% worse
        ([1.5], 5, False),  # nothing to compare with
        ([1.0, np.nan, 1.5], 5, True),  # a NaN MASE is left out of the baseline
        ([1.0, 1.0, np.nan], 5, False),  # the newest run has no MASE to judge
        ([10.0, 1.0, 1.0, 1.5], 2, True),  # the window drops the old 10.0
        ([10.0, 1.0, 1.0, 1.5], 3, False),  # mean 4.0 with it
    ],
)
def test_accuracy_drop_warns_only_past_the_threshold(
    mase: list[float], window: int, warns: bool
) -> None:
    warning = accuracy_drop(_summary(mase), threshold_percent=20.0, window=window)
    assert (warning is not None) == warns
    if warns:
        assert warning is not None
        assert f"r{len(mase) - 1}" in warning and "1.500" in warning and "1.000" in warning
        assert "+50.0%" in warning and "20%" in warning and "\n" not in warning


@pytest.mark.parametrize("tz", [None, "UTC"])
def test_merge_is_idempotent_and_survives_parquet(tmp_path: Path, tz: str | None) -> None:
    first, second = _scored("r2", hour=9, tz=tz), _scored("r1", hour=5, intervals=False, tz=tz)
    assert first is not None and second is not None
    merged = merge_accuracy(merge_accuracy(None, first), second)
    assert merged["run_id"].tolist() == ["r1"] * 4 + ["r2"] * 4
    pd.testing.assert_frame_equal(merge_accuracy(merged, second), merged)
    pd.testing.assert_frame_equal(merge_accuracy(merged, first), merged)

    rescored = first.assign(y=first["y"] + 1.0)
    replaced = merge_accuracy(merged, rescored)
    assert len(replaced) == 8 and replaced["y"].iloc[4:].tolist() == [12.0, 16.0, 19.0, 31.0]

    merged.to_parquet(tmp_path / "accuracy.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "accuracy.parquet"), merged)


def test_merge_keeps_one_time_unit_whatever_the_inputs_carry() -> None:
    new = _scored("r2", hour=9)
    assert new is not None
    times = ["as_of", "ds", "scored_at_as_of"]
    old = new.assign(run_id="r1", **{column: new[column].dt.as_unit("ns") for column in times})
    merged = merge_accuracy(old, new)
    assert merged.dtypes.to_dict() == new.dtypes.to_dict()
