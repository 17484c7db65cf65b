"""A forecast recomputed from a run's published files (model.keras and preprocessing.json,
fed each series' last rows of the input file by the published recipe) equals forecast.csv."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecasting.config import DataConfig, ModelConfig, PipelineConfig

pytestmark = pytest.mark.slow

# Per kind, how close the recomputation must be. local_linear's model is float64 and so is its
# forecast; linear's is a float32 Keras copy of float64 coefficients, and an RNN's forecast
# comes from `model.predict` in padded batches, so theirs agree to float32 rounding.
TOLERANCE = {"linear": 1e-5, "local_linear": 1e-12, "gru": 1e-5}


def calendar_inputs(recipe: dict, ds: pd.Series) -> np.ndarray:
    """The recipe's calendar channels of timestamps `ds`, (len(ds), n_channels), rebuilt from
    preprocessing.json's words alone (hourly data: the day and week cycles)."""
    calendar = recipe["calendar"]
    assert list(calendar["phase"]) == ["day", "week"]
    assert calendar["phase"]["day"] == "(hour + minute / 60 + second / 3600) / 24"
    assert calendar["phase"]["week"] == "(day_of_week + day_phase) / 7, Monday = 0"
    day = (ds.dt.hour + ds.dt.minute / 60 + ds.dt.second / 3600).to_numpy() / 24
    week = (ds.dt.day_of_week.to_numpy() + day) / 7
    angles = 2 * np.pi * np.stack([day, day, week, week], axis=1)
    return np.where([True, False, True, False], np.sin(angles), np.cos(angles))


@pytest.mark.parametrize(
    ("kind", "calendar"),
    [*((kind, False) for kind in TOLERANCE), ("gru", True), ("linear", True)],
)
def test_the_published_forecast_is_recomputed_from_the_published_files(
    kind: str, calendar: bool, panel_csv: Path, tmp_path: Path, tiny_model: ModelConfig
) -> None:
    """The scaled window is rounded to float32, as the pipeline holds its windows; with
    `model.calendar` each row also gets its calendar channels, unscaled."""
    from forecasting.pipeline import run
    from forecasting.store.model_files import load_latest_model

    config = PipelineConfig(
        name="panel",
        output_dir=tmp_path / "out",
        data=DataConfig(path=panel_csv, id_column="site", time_column="time", target_column="load"),
        model=tiny_model.model_copy(update={"candidates": (kind,), "calendar": calendar}),
    )
    result = run(config)
    assert result.champion == kind and result.path is not None
    run_dir = Path(result.path)
    forecast = pd.read_csv(run_dir / "forecast.csv")
    recipe = json.loads((run_dir / "preprocessing.json").read_text())
    assert recipe["model"] == kind
    model = load_latest_model(tmp_path / "out", "panel")
    assert (recipe["calendar"] is not None) == calendar
    history = pd.read_csv(panel_csv, parse_dates=["time"])
    for index, series_id in enumerate(recipe["series_ids"]):
        scaling = recipe["scaling"][series_id][recipe["features"][0]]
        rows = history.loc[history.site == series_id].iloc[-recipe["input_size"] :]
        x = ((rows["load"].to_numpy() - scaling["mean"]) / scaling["std"]).astype(np.float32)
        x = x.astype(np.float64)
        level = x[-1] if recipe["window_normalization"] == "last_value" else 0.0
        spread = np.std(x - level) if recipe["window_scale"] == "std" else 1.0
        window = ((x - level) / spread)[None, :, None]
        if calendar:  # unscaled: the recipe's mean 0 and std 1
            assert recipe["features"][1:] == recipe["calendar"]["channels"]
            assert {
                recipe["scaling"][series_id][name]["std"] for name in recipe["features"][1:]
            } == {1.0}
            channels = calendar_inputs(recipe, rows["time"]).astype(np.float32)
            window = np.concatenate([window, channels[None]], axis=2)
        if kind == "local_linear":  # a per-series model: which series' weights
            window = {"window": window, "series": np.array([[index]])}
        y = np.asarray(model(window), dtype=np.float64)[0] * spread + level
        expected = forecast.loc[forecast.unique_id == series_id, "y_hat"].to_numpy()
        np.testing.assert_allclose(
            y * scaling["std"] + scaling["mean"], expected, rtol=TOLERANCE[kind]
        )
