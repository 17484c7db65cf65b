"""Replaying history: `forecast backfill` publishes one run per as-of, later runs score the
earlier forecasts against the actuals that arrived, and `forecast rollback` moves `latest`."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.test_cli_run import forecast

pytestmark = pytest.mark.slow

FAST = ["--input-size", "48", "--horizon", "12", "--candidates", "naive,seasonal_naive,linear"]


def backfill(data: Path, output_dir: Path, home: Path, start: str, end: str):
    return forecast(
        "backfill",
        "--start", start, "--end", end, "--every", "12h",
        "--data", str(data), "--output-dir", str(output_dir), "--name", "demo", *FAST,
        home=home,
    )  # fmt: skip


def manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


def test_backfill_scores_earlier_forecasts_and_keeps_latest_at_the_newest(
    etth1_slice: Path, tmp_path: Path
) -> None:
    output_dir, home = tmp_path / "out", tmp_path / "prefect"
    first = backfill(etth1_slice, output_dir, home, "2016-08-18 00:00", "2016-08-19 00:00")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Traceback" not in first.stdout + first.stderr
    pipeline = output_dir / "demo"
    runs = sorted(p.name for p in (pipeline / "runs").iterdir())
    assert [r[:15] for r in runs] == ["20160818T000000", "20160818T120000", "20160819T000000"]
    assert (pipeline / "latest").resolve().name == runs[-1]

    # the 12-hour forecasts of the first two runs have all their actuals by the last run
    accuracy = pd.read_parquet(pipeline / "accuracy.parquet")
    assert sorted(accuracy["run_id"].unique()) == runs[:2]
    assert len(accuracy) == 2 * 12 and accuracy["abs_error"].notna().all()
    first_run = pd.read_csv(pipeline / "runs" / runs[0] / "forecast.csv")
    actual = pd.read_csv(etth1_slice, parse_dates=["date"]).set_index("date")["OT"]
    scored = accuracy[accuracy["run_id"] == runs[0]].sort_values("horizon_step")
    expected = (actual.loc[pd.to_datetime(first_run["ds"])].to_numpy() - first_run["y_hat"]).abs()
    assert scored["abs_error"].to_numpy() == pytest.approx(expected.to_numpy())
    assert "Published forecasts scored against later actuals" in first.stdout

    # each later run met the one before it as the incumbent, and says what it decided
    decisions = [manifest(pipeline / "runs" / r)["champion"]["decision"] for r in runs]
    assert decisions[0]["action"] == "first_run" and decisions[0]["incumbent"] is None
    for earlier, later in zip(runs, decisions[1:], strict=False):
        assert later["incumbent"]["run_id"] == earlier
        assert later["action"] in {"kept", "promoted"}
    assert manifest(pipeline / "runs" / runs[-1])["published_accuracy"]["newly_scored"] == [runs[1]]

    # a backfill of older dates into this folder leaves `latest` at the newest as-of
    older = backfill(etth1_slice, output_dir, home, "2016-08-17 00:00", "2016-08-17 00:00")
    assert older.returncode == 0, older.stderr[-3000:]
    assert (pipeline / "latest").resolve().name == runs[-1]

    back = forecast("rollback", "demo", "--to", runs[0], "--output-dir", str(output_dir), home=home)
    assert back.returncode == 0, back.stderr
    assert (pipeline / "latest").resolve().name == runs[0]
    missing = forecast(
        "rollback", "demo", "--to", "nope", "--output-dir", str(output_dir), home=home
    )
    assert missing.returncode == 2 and "has no complete run 'nope'" in missing.stderr
    assert (pipeline / "latest").resolve().name == runs[0]


def test_backfill_refuses_an_empty_range(tmp_path: Path, etth1_slice: Path) -> None:
    result = backfill(etth1_slice, tmp_path, tmp_path / "prefect", "2016-08-19", "2016-08-18")
    assert result.returncode == 2
    assert "give no as-of times" in result.stderr and "Traceback" not in result.stderr
