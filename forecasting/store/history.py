"""The accuracy history file (accuracy.parquet): its columns, and merging new scores into it.

Scoring forecasts is `forecasting.accuracy`'s business; this module only fixes the file's
shape, so that rows from different runs concatenate and round-trip through Parquet alike.
"""

from __future__ import annotations

import io

import pandas as pd

ACCURACY_COLUMNS = [
    "run_id", "model", "as_of", "unique_id", "horizon_step", "ds", "y", "y_hat",
    "abs_error", "scaled_error", "in_80", "in_95", "scored_at_as_of",
]  # fmt: skip
_KEY = ["run_id", "unique_id", "horizon_step"]
_DTYPES = {
    "run_id": "str", "model": "str", "unique_id": "str", "horizon_step": "int64",
    "y": "float64", "y_hat": "float64", "abs_error": "float64", "scaled_error": "float64",
    "in_80": "boolean", "in_95": "boolean",
}  # fmt: skip
_TIMES = ["as_of", "ds", "scored_at_as_of"]


def normalized(frame: pd.DataFrame) -> pd.DataFrame:
    """`ACCURACY_COLUMNS` in order with fixed dtypes (times in microseconds, as pandas 3 makes
    them), so frames from different runs concatenate and round-trip through Parquet alike."""
    frame = frame[ACCURACY_COLUMNS].astype(_DTYPES)
    for column in _TIMES:
        frame[column] = pd.to_datetime(frame[column]).dt.as_unit("us")
    return frame.reset_index(drop=True)


def empty() -> pd.DataFrame:
    """A history with no rows, in `ACCURACY_COLUMNS`."""
    return normalized(pd.DataFrame({column: [] for column in ACCURACY_COLUMNS}))


def merge_accuracy(existing: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    """Appends `new` to `existing`; a row of `new` replaces one with the same
    (run_id, unique_id, horizon_step), so scoring a run again changes nothing.

    Returns:
        `ACCURACY_COLUMNS`, sorted by as_of, run_id, unique_id, horizon_step, with the dtypes
        `accuracy.score_forecast` gives, which survive a Parquet round trip unchanged.
    """
    parts = [normalized(part) for part in (existing, new) if part is not None and len(part)]
    if not parts:
        return normalized(new)
    merged = pd.concat(parts, ignore_index=True).drop_duplicates(_KEY, keep="last")
    order = ["as_of", "run_id", "unique_id", "horizon_step"]
    return merged.sort_values(order, kind="stable", ignore_index=True)


def parse_history(data: bytes) -> pd.DataFrame:
    """The history table in accuracy.parquet's bytes."""
    return pd.read_parquet(io.BytesIO(data))
