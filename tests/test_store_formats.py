"""The published file formats: Parquet written a row group at a time reads back whole."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest


def test_a_parquet_file_written_a_row_group_at_a_time_reads_back_as_the_frame(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pyarrow.parquet as pq

    from forecasting.store import formats

    frame = pd.DataFrame(
        {
            "unique_id": pd.Series(list("abc") * 5, dtype="str"),
            "ds": pd.date_range("2024-01-01", periods=15, freq="h"),
            "y": np.arange(15.0),
        }
    )
    monkeypatch.setattr(formats, "ROWS_PER_GROUP", 4)
    for part in (frame, frame.iloc[:0]):
        data = formats.parquet_bytes(part)
        pd.testing.assert_frame_equal(pd.read_parquet(io.BytesIO(data)), part)
    assert pq.ParquetFile(io.BytesIO(formats.parquet_bytes(frame))).num_row_groups == 4
