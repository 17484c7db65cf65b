"""Same data, config and seed give a byte-identical forecast.csv in two fresh processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_cli_run import run_on_slice

pytestmark = pytest.mark.slow


def test_two_fresh_processes_publish_byte_identical_forecasts(
    etth1_slice: Path, tmp_path: Path
) -> None:
    published = []
    for attempt in ("first", "second"):
        output_dir = tmp_path / attempt
        run = run_on_slice(
            etth1_slice, output_dir, tmp_path / f"prefect-{attempt}", "--max-epochs", "3"
        )
        assert run.returncode == 0, run.stderr[-2000:]
        published.append((output_dir / "etth1_slice" / "latest").resolve())  # the file name
    first, second = published
    assert first.name == second.name  # the run id is a fingerprint of the inputs
    assert (first / "forecast.csv").read_bytes() == (second / "forecast.csv").read_bytes()
    assert (first / "candidate_forecasts.parquet").read_bytes() == (
        second / "candidate_forecasts.parquet"
    ).read_bytes()
