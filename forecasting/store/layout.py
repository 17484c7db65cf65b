"""Names of everything a pipeline's storage holds, and how run ids and times are spelled.

Layout under `<output_dir>/<name>/`:
    runs/<run_id>/   forecast.csv, forecast.parquet, candidate_forecasts.parquet, leaderboard.csv,
                     backtest.parquet, preprocessing.json, model.keras (absent when a naive
                     model wins), manifest.json (lists every other file with its sha256 and size)
    latest           relative symlink to runs/<run_id>; switching it is the commit point
    accuracy.parquet earlier runs' forecasts scored against the actuals that came later
    .publish.lock    held by every writer for its whole publish
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

SCHEMA_VERSION = 3
RUNS = "runs"
LATEST = "latest"
MANIFEST = "manifest.json"
MODEL_FILE = "model.keras"
ACCURACY_FILE = "accuracy.parquet"
LOCK_FILE = ".publish.lock"
INTERVAL_COLUMNS = ["y_hat_lo_80", "y_hat_hi_80", "y_hat_lo_95", "y_hat_hi_95"]
FORECAST_COLUMNS = [
    "unique_id",
    "ds",
    "horizon_step",
    "y_hat",
    *INTERVAL_COLUMNS,
    "model",
    "run_id",
    "as_of",
]


def make_run_id(as_of: pd.Timestamp, fingerprint: str) -> str:
    """A run id such as `20180626T190000-3f2a9c01bd`: the as-of time, then a fingerprint of
    everything that determines the result (data, config, seed, versions).

    The same inputs give the same id, so a rerun of identical inputs finds its run already
    published instead of writing a second copy, and ids sort by as-of time.
    """
    moment = pd.Timestamp(as_of)
    if moment.tzinfo is not None:
        return f"{moment.tz_convert('UTC'):%Y%m%dT%H%M%SZ}-{fingerprint[:10]}"
    return f"{moment:%Y%m%dT%H%M%S}-{fingerprint[:10]}"


def iso(value: pd.Timestamp) -> str:
    """ISO-8601 text for a timestamp, with its offset when it is time-zone aware."""
    return pd.Timestamp(value).isoformat()


def is_run_id(text: str) -> bool:
    """Whether `text` can name a run folder: not empty, not hidden (temporary names are), and
    a single path component."""
    return bool(text) and not text.startswith(".") and "/" not in text and text != ".."


def run_key(run_id: str, filename: str | None = None) -> str:
    """The storage key of a run folder, or of one of its files: `runs/<run_id>[/<filename>]`."""
    folder = f"{RUNS}/{run_id}"
    return folder if filename is None else f"{folder}/{filename}"


def pipeline_dir(output_dir: Path | str, name: str) -> Path:
    """`<output_dir>/<name>`: the folder holding one pipeline's runs, `latest` and history."""
    return Path(output_dir) / name


def pipeline_of(run_dir: Path) -> Path:
    """The pipeline folder of a run folder `<pipeline>/runs/<run_id>`.

    Raises:
        ValueError: `run_dir` is not directly inside a `runs` folder.
    """
    runs = Path(run_dir).parent
    if runs.name != RUNS:
        raise ValueError(
            f"A run folder lies directly inside a {RUNS!r} folder. "
            f"Received: run_dir={str(run_dir)!r}"
        )
    return runs.parent
