"""The Prefect flow end to end on a real ETTh1 slice with tiny real models."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecasting.config import DataConfig, ModelConfig, PipelineConfig
from forecasting.store.model_files import load_published_model
from forecasting.store.reader import read_latest
from tests.conftest import ETTH1

pytestmark = pytest.mark.slow

RUN_FILES = {
    "forecast.csv",
    "forecast.parquet",
    "candidate_forecasts.parquet",
    "leaderboard.csv",
    "backtest.parquet",
    "preprocessing.json",
    "model.keras",
}


def run_flow(folder: Path, candidates: tuple[str, ...]) -> tuple[PipelineConfig, dict]:
    from flows.pipeline import forecast_pipeline

    data = folder / "slice.csv"
    data.write_text("".join(ETTH1.read_text().splitlines(keepends=True)[:1201]))
    config = PipelineConfig(
        name="slice",
        output_dir=folder / "outputs",
        data=DataConfig(path=data),
        model=ModelConfig(
            horizon=6,
            input_size=24,
            segment_length=6,
            units=8,
            max_epochs=3,
            patience=2,
            finetune_epochs=1,
            candidates=candidates,
        ),
    )
    return config, forecast_pipeline(config)


@pytest.fixture(scope="module")
def published(prefect_harness, tmp_path_factory) -> tuple[PipelineConfig, dict]:
    all_kinds = ("naive", "seasonal_naive", "linear", "simple_rnn", "gru", "lstm")
    return run_flow(tmp_path_factory.mktemp("flow"), all_kinds)


@pytest.fixture(scope="module")
def published_gru(prefect_harness, tmp_path_factory) -> tuple[PipelineConfig, dict]:
    return run_flow(tmp_path_factory.mktemp("gru"), ("gru",))


def test_run_folder_holds_every_file_listed_with_its_hash(published) -> None:
    config, summary = published
    run_dir = Path(summary["path"])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    rnn_won = summary["champion"] in ("linear", "simple_rnn", "gru", "lstm")
    expected = RUN_FILES if rnn_won else RUN_FILES - {"model.keras"}
    assert set(manifest["files"]) == expected
    for name, entry in manifest["files"].items():
        data = (run_dir / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    assert (config.output_dir / "slice" / "latest").resolve() == run_dir.resolve()


def test_manifest_records_data_config_versions_and_choice(published) -> None:
    config, summary = published
    manifest = read_latest(config.output_dir, "slice").manifest
    assert manifest["schema_version"] == 4
    assert manifest["run_id"] == summary["run_id"]
    assert manifest["data"]["rows"] == 1200
    assert manifest["data"]["first_ds"] == "2016-07-01T00:00:00"
    assert manifest["as_of"] == manifest["data"]["last_ds"] == "2016-08-19T23:00:00"
    assert manifest["data"]["sha256"] == hashlib.sha256(config.data.path.read_bytes()).hexdigest()
    assert manifest["config"]["model"]["horizon"] == 6
    assert {"keras", "pandas", "numpy"} <= set(manifest["versions"])
    assert manifest["seeds"]["seed"] == 42
    assert manifest["champion"]["model"] == summary["champion"]
    assert [c["model"] for c in manifest["candidates"]] == list(config.model.candidates)
    assert all(len(c["fold_metrics"]) == 3 for c in manifest["candidates"])
    assert manifest["champion"]["decision"]["action"] == "first_run"
    assert manifest["backtest"] == {
        "n_folds": 3,
        "fold_size": 24,
        "warm_start": True,
        "interval_levels": [80, 95],
        "adapted": None,
        "typical_length": 1200,
    }
    assert manifest["short_series"] == []


def test_forecast_follows_the_readers_contract(published) -> None:
    config, summary = published
    latest = read_latest(config.output_dir, "slice")
    text = pd.read_csv(latest.path / "forecast.csv")
    assert list(text.columns) == [
        "unique_id",
        "ds",
        "horizon_step",
        "y_hat",
        "y_hat_lo_80",
        "y_hat_hi_80",
        "y_hat_lo_95",
        "y_hat_hi_95",
        "model",
        "run_id",
        "as_of",
    ]
    ordered = ["y_hat_lo_95", "y_hat_lo_80", "y_hat", "y_hat_hi_80", "y_hat_hi_95"]
    assert (text[ordered].diff(axis=1).iloc[:, 1:] > 0).all().all()
    assert text["ds"].tolist()[:2] == ["2016-08-20T00:00:00", "2016-08-20T01:00:00"]
    assert text["horizon_step"].tolist() == list(range(1, 7))
    assert (text["model"] == summary["champion"]).all()
    assert (text["run_id"] == summary["run_id"]).all()
    assert np.isfinite(text["y_hat"]).all()
    np.testing.assert_allclose(latest.forecast["y_hat"], text["y_hat"])


def test_leaderboard_scores_every_candidate(published) -> None:
    config, _ = published
    board = pd.read_csv(read_latest(config.output_dir, "slice").path / "leaderboard.csv")
    assert board["model"].tolist() == list(config.model.candidates)
    assert (board["status"] == "ok").all()
    assert board[["mae", "rmse", "mase", "smape"]].gt(0).all().all()


def test_published_model_reproduces_the_published_forecast(published_gru) -> None:
    config, summary = published_gru
    assert summary["champion"] == "gru"
    latest = read_latest(config.output_dir, "slice")
    spec = json.loads((latest.path / "preprocessing.json").read_text())
    assert (latest.path / "model.keras").exists()
    history = pd.read_csv(config.data.path)["OT"].to_numpy()[-spec["input_size"] :]
    scaling = spec["scaling"]["OT"]["y"]
    x = (history - scaling["mean"]) / scaling["std"]
    level = x[-1] if spec["window_normalization"] == "last_value" else 0.0
    spread = (x - level).std() if spec["window_scale"] == "std" else 1.0
    model = load_published_model(latest.path / "model.keras", config.output_dir / "slice" / "runs")
    window = ((x - level) / spread)[None, :, None].astype("float32")
    y = model.predict(window, verbose=0)[0] * spread + level
    np.testing.assert_allclose(
        y * scaling["std"] + scaling["mean"], latest.forecast["y_hat"], rtol=1e-5
    )


def test_bad_data_fails_the_flow_with_one_line_and_no_traceback(
    prefect_harness, tiny_config, tmp_path, caplog
) -> None:
    from flows.pipeline import forecast_pipeline

    bad = tmp_path / "bad.csv"
    lines = tiny_config.data.path.read_text().splitlines()
    lines[5] = lines[5].rsplit(",", 1)[0] + ",--"
    bad.write_text("\n".join(lines) + "\n")
    config = tiny_config.model_copy(
        update={"data": tiny_config.data.model_copy(update={"path": bad})}
    )
    with caplog.at_level(logging.INFO):
        state = forecast_pipeline(config, return_state=True)
    assert state.is_failed()
    assert "line 6" in state.message and "--na-values" in state.message
    assert "Traceback" not in caplog.text and "NoneType: None" not in caplog.text
    assert not (tmp_path / "outputs").exists()


def test_when_every_candidate_fails_nothing_is_published(published, monkeypatch) -> None:
    from flows.pipeline import forecast_pipeline
    from forecasting.models.rnn import RNNForecaster

    config, summary = published
    before = (config.output_dir / "slice" / "latest").resolve()
    runs_before = sorted((config.output_dir / "slice" / "runs").iterdir())

    def explode(self, *args, **kwargs):
        raise RuntimeError("loss became NaN")

    monkeypatch.setattr(RNNForecaster, "fit", explode)
    only_rnns = config.model.model_copy(update={"candidates": ("gru", "lstm")})
    state = forecast_pipeline(config.model_copy(update={"model": only_rnns}), return_state=True)
    assert state.is_failed()
    assert "Every candidate failed" in state.message and "loss became NaN" in state.message
    assert (config.output_dir / "slice" / "latest").resolve() == before
    assert sorted((config.output_dir / "slice" / "runs").iterdir()) == runs_before


def test_many_series_with_covariates_and_time_zone(prefect_harness, panel, tmp_path) -> None:
    from flows.pipeline import forecast_pipeline

    frame = panel.assign(
        ds=panel["ds"].dt.tz_localize("+05:30"), temperature=lambda f: f["y"].rolling(3).mean()
    ).bfill()
    path = tmp_path / "sites.parquet"
    frame.rename(columns={"unique_id": "site", "ds": "time", "y": "load"}).to_parquet(path)
    config = PipelineConfig(
        name="sites",
        output_dir=tmp_path / "outputs",
        data=DataConfig(
            path=path,
            time_column="time",
            target_column="load",
            id_column="site",
            covariates=("temperature",),
        ),
        model=ModelConfig(
            horizon=6, input_size=24, segment_length=6, units=4, max_epochs=1, candidates=("gru",)
        ),
    )
    summary = forecast_pipeline(config)
    run = read_latest(config.output_dir, "sites")
    spec = json.loads((run.path / "preprocessing.json").read_text())
    assert summary["champion"] == "gru"
    assert spec["features"] == ["y", "temperature"] and spec["series_ids"] == ["s0", "s1", "s2"]
    text = pd.read_csv(run.path / "forecast.csv")
    assert text.groupby("unique_id").size().to_dict() == {"s0": 6, "s1": 6, "s2": 6}
    assert text["ds"].iloc[0] == "2024-01-17T16:00:00+05:30"
    assert run.manifest["as_of"] == "2024-01-17T15:00:00+05:30"


def test_config_file_paths_resolve_against_the_config_folder(tmp_path, monkeypatch) -> None:
    from forecasting.config import build_config, load_config_file

    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "pipeline.toml").write_text(
        'output_dir = "published"\n[data]\npath = "inputs/series.csv"\n'
    )
    monkeypatch.chdir(tmp_path)
    config = build_config(load_config_file(folder / "pipeline.toml"), base_dir=folder)
    assert config.data.path == folder / "inputs" / "series.csv"
    assert config.output_dir == folder / "published"
    # Defaults never depend on the config file: the bundled sample, and ./outputs of the run.
    defaults = build_config({}, base_dir=folder)
    assert defaults.data.path.read_bytes() == ETTH1.read_bytes()
    assert defaults.output_dir == Path("outputs")


def test_a_home_relative_path_expands_without_a_config_file(tmp_path, monkeypatch) -> None:
    from forecasting.config import build_config

    monkeypatch.setenv("HOME", str(tmp_path))
    config = build_config({"output_dir": "~/published", "data": {"path": "~/series.csv"}})
    assert config.output_dir == tmp_path / "published"
    assert config.data.path == tmp_path / "series.csv"


def test_a_hung_run_is_stopped_by_the_flow_timeout(prefect_harness, tiny_config, monkeypatch):
    import time

    from flows import pipeline
    from forecasting import pipeline as steps

    def hang(kind, folds, config, season_length, log):
        time.sleep(30)

    monkeypatch.setattr(steps, "train", hang)
    started = time.monotonic()
    state = pipeline.forecast_pipeline.with_options(timeout_seconds=3)(
        tiny_config, return_state=True
    )
    assert state.is_failed() and state.name == "TimedOut"
    assert time.monotonic() - started < 25
    assert not tiny_config.output_dir.exists()
    assert pipeline.forecast_pipeline.timeout_seconds == pipeline.FLOW_TIMEOUT_SECONDS


def test_backtest_table_and_leaderboard_come_from_the_same_folds(published) -> None:
    config, summary = published
    run_dir = Path(summary["path"])
    backtest = pd.read_parquet(run_dir / "backtest.parquet")
    board = pd.read_csv(run_dir / "leaderboard.csv").set_index("model")
    assert list(backtest.columns[:5]) == ["unique_id", "ds", "cutoff", "horizon_step", "y"]
    assert list(backtest.columns[5:]) == list(config.model.candidates)
    # 3 folds of 24 steps, every stride-1 window of horizon 6 inside each: 3 x 19 windows
    assert len(backtest) == 3 * 19 * 6
    for kind in config.model.candidates:
        mae = float(np.mean(np.abs(backtest[kind] - backtest["y"])))
        folds = [board.loc[kind, f"mase_fold_{n}"] for n in (1, 2, 3)]
        assert board.loc[kind, "mae"] == pytest.approx(mae, rel=1e-9)
        assert board.loc[kind, "mase"] == pytest.approx(np.mean(folds), rel=1e-9)
        assert 0 <= board.loc[kind, "coverage_80"] <= board.loc[kind, "coverage_95"] <= 100
