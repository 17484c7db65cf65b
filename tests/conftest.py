"""Shared fixtures: a deterministic synthetic panel, tiny configs, and one Prefect harness."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecasting.config import DataConfig, EvaluationConfig, ModelConfig, PipelineConfig

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PROJECT = Path(__file__).resolve().parent.parent
ETTH1 = PROJECT / "data" / "ETTh1.csv"


def synthetic_panel(n_series: int = 3, length: int = 400, seed: int = 0) -> pd.DataFrame:
    """Hourly series with trend + daily season + noise, long format `unique_id`, `ds`, `y`."""
    rng = np.random.default_rng(seed)
    frames = []
    for index in range(n_series):
        steps = np.arange(length)
        y = (
            10 * (index + 1)
            + 0.01 * steps
            + 3 * np.sin(2 * np.pi * steps / 24)
            + rng.normal(0, 0.3, length)
        )
        frames.append(
            pd.DataFrame(
                {
                    "unique_id": f"s{index}",
                    "ds": pd.date_range("2024-01-01", periods=length, freq="h"),
                    "y": y,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


@pytest.fixture
def panel() -> pd.DataFrame:
    return synthetic_panel()


@pytest.fixture
def panel_csv(tmp_path: Path, panel: pd.DataFrame) -> Path:
    path = tmp_path / "panel.csv"
    panel.rename(columns={"unique_id": "site", "ds": "time", "y": "load"}).to_csv(path, index=False)
    return path


# Small enough to train in a second or two; real Keras all the same.
TINY_MODEL = ModelConfig(
    horizon=6,
    input_size=24,
    segment_length=6,
    units=4,
    max_epochs=2,
    patience=1,
    batch_size=64,
    finetune_epochs=1,
)


@pytest.fixture
def tiny_model() -> ModelConfig:
    return TINY_MODEL


@pytest.fixture
def evaluation() -> EvaluationConfig:
    return EvaluationConfig()


@pytest.fixture
def etth1_slice(tmp_path: Path) -> Path:
    """The first 1,200 hours of the bundled ETTh1 file, unchanged."""
    path = tmp_path / "etth1_slice.csv"
    with open(ETTH1) as source, open(path, "w") as target:
        for _, line in zip(range(1201), source, strict=False):
            target.write(line)
    return path


@pytest.fixture
def tiny_config(etth1_slice: Path, tmp_path: Path, tiny_model: ModelConfig) -> PipelineConfig:
    return PipelineConfig(
        name="slice",
        output_dir=tmp_path / "outputs",
        data=DataConfig(path=etth1_slice),
        model=tiny_model,
    )


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect server for the whole session (starting one costs ~7 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield
