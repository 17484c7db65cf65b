"""Publishing: atomic run folders, `latest` moves only on success, hashes verify, models
reload and predict identically."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecasting.errors import PublishError
from forecasting.store.layout import make_run_id
from forecasting.store.reader import read_latest, read_run
from forecasting.store.writer import publish_run

FORECAST = pd.DataFrame(
    {
        "unique_id": ["a", "a"],
        "ds": pd.to_datetime(["2024-01-01 00:00", "2024-01-01 01:00"]),
        "horizon_step": [1, 2],
        "y_hat": [1.5, 2.5],
        "model": "naive",
        "run_id": "r",
        "as_of": pd.Timestamp("2023-12-31 23:00"),
    }
)


def files(value: float = 1.5) -> dict[str, bytes]:
    forecast = FORECAST.assign(y_hat=[value, value + 1])
    parquet = io.BytesIO()
    forecast.to_parquet(parquet, index=False)
    return {
        "forecast.csv": forecast.to_csv(index=False).encode(),
        "leaderboard.csv": b"model,status\nnaive,ok\n",
        "forecast.parquet": parquet.getvalue(),
    }


def test_publish_writes_a_sealed_run_and_points_latest_at_it(tmp_path: Path) -> None:
    run_id = "20240101T000000-abc"
    run_dir = publish_run(tmp_path, "demo", run_id, files(), {"schema_version": 1})
    link = tmp_path / "demo" / "latest"
    assert link.is_symlink() and os.readlink(link) == os.path.join("runs", run_id)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert set(manifest["files"]) == {"forecast.csv", "leaderboard.csv", "forecast.parquet"}
    latest = read_latest(tmp_path, "demo")
    assert latest.path == run_dir.resolve()
    assert latest.forecast["y_hat"].tolist() == [1.5, 2.5]
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]


def test_latest_moves_to_the_newer_run(tmp_path: Path) -> None:
    publish_run(tmp_path, "demo", "run-1", files(1.0), {})
    publish_run(tmp_path, "demo", "run-2", files(5.0), {})
    assert read_latest(tmp_path, "demo").forecast["y_hat"].tolist() == [5.0, 6.0]
    assert read_run(tmp_path / "demo" / "runs" / "run-1").forecast["y_hat"].iloc[0] == 1.0


def test_a_failed_publish_leaves_latest_untouched(tmp_path: Path) -> None:
    publish_run(tmp_path, "demo", "good", files(1.0), {})
    broken = {**files(9.0), "bad/name.csv": b"x"}  # a file that cannot be created
    with pytest.raises(PublishError, match="previous run stays published"):
        publish_run(tmp_path, "demo", "bad", broken, {})
    assert os.readlink(tmp_path / "demo" / "latest") == os.path.join("runs", "good")


def test_reading_detects_a_changed_file(tmp_path: Path) -> None:
    run_dir = publish_run(tmp_path, "demo", "run-1", files(), {})
    (run_dir / "forecast.csv").write_bytes(b"unique_id,ds\ntampered,1\n")
    with pytest.raises(PublishError, match="does not match the sha256"):
        read_latest(tmp_path, "demo")


def test_reading_before_any_run_explains_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(PublishError, match="Run `forecast run` first"):
        read_latest(tmp_path, "nothing")


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [
        ("2018-06-26 19:00", "20180626T190000-0123456789"),
        ("2018-06-26 19:00+02:00", "20180626T170000Z-0123456789"),
    ],
)
def test_run_id_is_the_as_of_time_and_the_fingerprint(as_of: str, expected: str) -> None:
    assert make_run_id(pd.Timestamp(as_of), "0123456789abcdef") == expected


def test_republishing_a_sealed_run_keeps_its_files_and_points_latest_at_it(tmp_path) -> None:
    first = publish_run(tmp_path, "demo", "same", files(1.0), {"created_at": "first"})
    publish_run(tmp_path, "demo", "other", files(2.0), {})
    again = publish_run(tmp_path, "demo", "same", files(9.0), {"created_at": "second"})
    assert again == first
    latest = read_latest(tmp_path, "demo")
    assert latest.manifest["created_at"] == "first" and latest.forecast["y_hat"].iloc[0] == 1.0


def test_an_unsealed_leftover_of_the_same_id_is_replaced(tmp_path) -> None:
    leftover = tmp_path / "demo" / "runs" / "same"
    leftover.mkdir(parents=True)
    (leftover / "forecast.csv").write_bytes(b"partial")
    publish_run(tmp_path, "demo", "same", files(1.0), {})
    assert read_latest(tmp_path, "demo").forecast["y_hat"].iloc[0] == 1.0


@pytest.mark.slow
def test_published_model_reloads_and_predicts_identically(tmp_path: Path, tiny_model) -> None:
    from forecasting.models.rnn import RNNForecaster
    from forecasting.store.model_files import load_published_model
    from forecasting.windowing import WindowSet

    rng = np.random.default_rng(0)
    windows = WindowSet.of(
        rng.normal(size=(128, 24, 2)).astype("float32"),
        rng.normal(size=(128, 6)).astype("float32"),
        np.zeros(128, int),
        np.arange(128),
    )
    forecaster = RNNForecaster("gru", tiny_model, n_features=2, seed=3).fit(windows, windows)
    run_dir = publish_run(tmp_path, "demo", "run-1", {"model.keras": forecaster.to_bytes()}, {})
    reloaded = load_published_model(run_dir / "model.keras", tmp_path / "demo" / "runs")
    inputs, _, _ = forecaster._shift(windows.inputs)
    np.testing.assert_array_equal(
        forecaster.model.predict(inputs, verbose=0), reloaded.predict(inputs, verbose=0)
    )
