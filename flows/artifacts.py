"""Keyed Prefect artifacts, so each pipeline's latest report, leaderboard, chart and training
progress show on the Artifacts page (a key is reused by every run of the pipeline, which makes
each run a new version of it)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import cast
from uuid import UUID

import pandas as pd
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from forecasting import report
from forecasting.store.layout import LATEST, POINTER, child, pipeline_of, url_scheme
from forecasting.store.reader import read_run


def key(name: str, part: str) -> str:
    """An artifact key: lowercase letters, digits and dashes only, as Prefect requires."""
    return re.sub(r"[^a-z0-9-]+", "-", f"{name}-{part}".lower()).strip("-")


def publish_reports(name: str, path: Path | str, history: pd.DataFrame) -> None:
    """The run's leaderboard (table), report (markdown with the chart) and chart on its own,
    read back from the published, hash-verified files."""
    run = read_run(path)
    run_dir = run.path
    board = run.leaderboard if run.leaderboard is not None else pd.DataFrame()
    files = ("forecast.csv", "forecast.parquet", "leaderboard.csv", "backtest.parquet")
    latest = LATEST if url_scheme(run_dir) is None else POINTER
    paths = {
        "run folder": str(run_dir),
        **{filename: str(child(run_dir, filename)) for filename in files},
        "latest": str(child(pipeline_of(run_dir), latest)),
    }
    champion = run.manifest["champion"]["model"]
    create_table_artifact(
        report.leaderboard_rows(board),
        key=key(name, "leaderboard"),
        description=f"Backtest leaderboard of run {run.manifest['run_id']}; champion {champion}.",
    )
    create_markdown_artifact(
        report.run_report(run.manifest, board, run.forecast, history, paths),
        key=key(name, "report"),
        description=f"Why {champion} is champion, the data, and where the files are.",
    )
    svg = report.forecast_chart_svg(history, run.forecast)
    create_markdown_artifact(
        report.chart_markdown(svg, f"{champion} forecast with 80% and 95% intervals"),
        key=key(name, "forecast-chart"),
        description=f"Recent history, {champion} forecast and its intervals.",
    )


def publish_superseded(name: str, run_name: str, as_of: str, reason: str) -> None:
    create_markdown_artifact(
        report.superseded_report(run_name, as_of, reason),
        key=key(name, "report"),
        description="This scheduled run was superseded and published nothing.",
    )


class Progress:
    """A progress artifact advanced once per trained candidate."""

    def __init__(self, name: str, steps: int) -> None:
        self.steps, self.done = max(steps, 1), 0
        created = create_progress_artifact(
            0.0, key=key(name, "training-progress"), description="Candidates trained."
        )
        self.id = cast(UUID, created)  # called from sync code, it returns the id itself

    def advance(self, what: str) -> None:
        self.done += 1
        update_progress_artifact(
            self.id,
            100.0 * self.done / self.steps,
            description=f"{self.done} of {self.steps} candidates trained (last: {what}).",
        )
