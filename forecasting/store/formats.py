"""How a run's tables and documents become bytes, so every writer stores them alike."""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Iterable

import pandas as pd

from forecasting.store.layout import FORECAST_COLUMNS, iso


def frame_files(
    forecast: pd.DataFrame,
    candidates: pd.DataFrame,
    leaderboard: pd.DataFrame,
    backtest: pd.DataFrame | Iterable[pd.DataFrame],
) -> dict[str, bytes]:
    """Serializes the run's tables: forecast as CSV (ISO-8601 `ds`, `as_of`) and Parquet, its
    columns in the readers' contract order (`FORECAST_COLUMNS`), and the backtest (whole, or
    in parts that are written one after another)."""
    forecast = forecast[FORECAST_COLUMNS]
    candidates = candidates[FORECAST_COLUMNS]
    text = forecast.copy()
    for column in ("ds", "as_of"):
        text[column] = [iso(value) for value in text[column]]
    return {
        "forecast.csv": text.to_csv(index=False, lineterminator="\n").encode(),
        "forecast.parquet": parquet_bytes(forecast),
        "candidate_forecasts.parquet": parquet_bytes(candidates),
        "leaderboard.csv": leaderboard.to_csv(index=False, lineterminator="\n").encode(),
        "backtest.parquet": parquet_bytes(backtest),
    }


def json_bytes(document: dict) -> bytes:
    """Indented JSON in the document's own key order, newline-terminated."""
    return (json.dumps(document, indent=2, sort_keys=False, default=str) + "\n").encode()


# Rows per Parquet row group (pyarrow's own default), converted to Arrow one group at a time,
# so a table of millions of rows is never a second time in memory whole.
ROWS_PER_GROUP = 1024 * 1024


def parquet_bytes(frame: pd.DataFrame | Iterable[pd.DataFrame]) -> bytes:
    """A Parquet file (pandas' schema metadata included, no index) of `frame`, or of the
    frames in turn, which share the first one's columns and dtypes (at least one frame)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = iter([frame] if isinstance(frame, pd.DataFrame) else frame)
    first = next(parts)
    buffer = io.BytesIO()
    schema = pa.Schema.from_pandas(first, preserve_index=False)
    with pq.ParquetWriter(buffer, schema) as writer:
        for whole in itertools.chain([first], parts):
            for start in range(0, max(len(whole), 1), ROWS_PER_GROUP):
                part = whole.iloc[start : start + ROWS_PER_GROUP]
                writer.write_table(pa.Table.from_pandas(part, schema=schema, preserve_index=False))
    return buffer.getvalue()
