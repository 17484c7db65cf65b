"""A many-series file whose series are not all long enough: the backtest folds shrink to fit the
typical series, and a series too short even for them is forecast by a baseline, outside the
tournament, instead of sinking the run.

The file is real data: seven ETTh1 columns as seven series (200 hours each), two of them cut
short: `OT` to 70 hours (more than a season), `LULL` to 10 (less than one).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from forecasting import pipeline, read_latest
from forecasting.config import DataConfig, ModelConfig, PipelineConfig
from forecasting.short_series import baseline_order, choose_baselines
from tests.conftest import ETTH1

HORIZON, INPUT_SIZE, SEASON = 12, 48, 24
LENGTH = 200  # defaults need 216 steps here: 48 + 12 + validation 12 + 3 folds of 48
SHORT = {"OT": 70, "LULL": 10}


class _Log:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def info(self, msg: str, /) -> None:
        pass

    def warning(self, msg: str, /) -> None:
        self.warnings.append(msg)


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    wide = pd.read_csv(ETTH1, nrows=LENGTH)
    long = wide.melt(id_vars="date", var_name="site", value_name="load")
    keep = [group.tail(SHORT.get(site, LENGTH)) for site, group in long.groupby("site", sort=False)]
    return pd.concat(keep, ignore_index=True)


@pytest.fixture(scope="module")
def published(panel: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("short")
    panel.to_csv(folder / "panel.csv", index=False)
    config = PipelineConfig(
        name="fleet",
        output_dir=folder / "out",
        data=DataConfig(
            path=folder / "panel.csv", id_column="site", time_column="date", target_column="load"
        ),
        model=ModelConfig(
            horizon=HORIZON,
            input_size=INPUT_SIZE,
            candidates=("naive", "seasonal_naive", "linear"),
        ),
    )
    log = _Log()
    pipeline.run(config, log=log)
    return read_latest(folder / "out", "fleet"), log


def test_a_series_too_short_is_forecast_by_a_baseline_and_named(panel, published) -> None:
    run, _ = published
    forecast = run.forecast
    assert sorted(forecast["unique_id"].unique()) == sorted(panel["site"].unique())
    assert (forecast.groupby("unique_id").size() == HORIZON).all()
    scores = run.manifest["champion"]["decision"]["scores"]
    best = min(("seasonal_naive", "naive"), key=lambda kind: scores[kind])
    # OT has a season of history, so it gets the better baseline of this run's backtest;
    # LULL has less than a season, so only naive fits it.
    assert run.manifest["short_series"] == [
        {"unique_id": "LULL", "length": 10, "needed": 198, "model": "naive"},
        {"unique_id": "OT", "length": 70, "needed": 198, "model": best},
    ]
    history = {site: group["load"].to_numpy() for site, group in panel.groupby("site")}
    ot = forecast[forecast["unique_id"] == "OT"]
    steps = np.arange(HORIZON)
    expected = history["OT"][-SEASON:][steps % SEASON] if best == "seasonal_naive" else None
    if expected is None:
        expected = np.full(HORIZON, history["OT"][-1])
    np.testing.assert_allclose(ot["y_hat"], expected)
    assert (ot["model"] == best).all()
    lull = forecast[forecast["unique_id"] == "LULL"]
    np.testing.assert_allclose(lull["y_hat"], history["LULL"][-1])
    assert (lull["model"] == "naive").all()
    assert (
        forecast.loc[~forecast["unique_id"].isin(SHORT), "model"]
        == run.manifest["champion"]["model"]
    ).all()
    # calibrated on the baseline's backtest errors over the other series: finite and ordered
    for level in (80, 95):
        assert (ot[f"y_hat_lo_{level}"] < ot["y_hat"]).all()
        assert (ot["y_hat"] < ot[f"y_hat_hi_{level}"]).all()
        assert np.isfinite(ot[f"y_hat_hi_{level}"]).all()


def test_short_series_stay_out_of_the_tournament(published) -> None:
    run, _ = published
    backtest = pd.read_parquet(run.path / "backtest.parquet")
    assert set(backtest["unique_id"]) == {"HUFL", "HULL", "MUFL", "MULL", "LUFL"}
    preprocessing = json.loads((run.path / "preprocessing.json").read_text())
    assert not set(SHORT) & set(preprocessing["series_ids"])
    candidates = pd.read_parquet(run.path / "candidate_forecasts.parquet")
    short_rows = candidates[candidates["unique_id"].isin(SHORT)]
    assert len(short_rows) == len(SHORT) * HORIZON  # once each, under their baseline's name
    assert dict(short_rows.groupby("unique_id")["model"].first()) == {
        entry["unique_id"]: entry["model"] for entry in run.manifest["short_series"]
    }


def test_default_folds_shrink_to_the_data_with_a_warning_and_a_record(published) -> None:
    run, log = published
    backtest = run.manifest["backtest"]
    # 200 steps: 48 + 12 + validation 12 + 3 folds of 42 = 198 fits, 43 would need 201
    assert (backtest["n_folds"], backtest["fold_size"]) == (3, 42)
    assert backtest["typical_length"] == LENGTH
    assert "too short for a backtest of 3 folds of 48 steps" in backtest["adapted"]
    assert "uses 3 folds of 42 steps" in backtest["adapted"]
    assert run.manifest["config"]["evaluation"]["n_folds"] is None  # as given: automatic
    assert backtest["adapted"] in log.warnings
    assert any("2 series are too short for the backtest: ['LULL', 'OT']" in w for w in log.warnings)
    leaderboard = run.leaderboard
    assert list(leaderboard.filter(like="mase_fold_").columns) == [
        "mase_fold_1",
        "mase_fold_2",
        "mase_fold_3",
    ]


@pytest.mark.parametrize(
    ("scores", "lengths", "chosen"),
    [
        (
            {"naive": 2.0, "seasonal_naive": 1.0},
            {"a": 30, "b": 5},
            {"a": "seasonal_naive", "b": "naive"},
        ),
        ({"naive": 1.0, "seasonal_naive": 2.0}, {"a": 30}, {"a": "naive"}),
        ({"linear": 0.5}, {"a": 30}, {"a": "seasonal_naive"}),  # no ranking: seasonal first
    ],
)
def test_the_best_baseline_that_fits(scores, lengths, chosen) -> None:
    assert choose_baselines(lengths, SEASON, baseline_order(scores)) == chosen
