"""What the `forecast` commands print: a run's leaderboard, its summary, a backfill's progress
and how published forecasts scored against later actuals."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    import pandas as pd

    from forecasting.config import PipelineConfig
    from forecasting.store.reader import PublishedRun

LEADERBOARD_COLUMNS = [
    "model",
    "status",
    "mase",
    "mae",
    "coverage_80",
    "width_80",
    "seconds",
    "epochs",
]
TREND_COLUMNS = ["as_of", "run_id", "model", "mae", "mase", "coverage_80", "coverage_95"]


def leaderboard(run: PublishedRun) -> None:
    """Prints a run's leaderboard, read from its hash-verified bytes (every run has one)."""
    if run.leaderboard is None:
        return
    tests = [c for c in run.leaderboard.columns if c.startswith("p_vs_")]  # significance
    shown = run.leaderboard.reindex(columns=[*LEADERBOARD_COLUMNS, *tests])
    typer.echo(shown.to_string(index=False, float_format=lambda value: f"{value:.4f}"))


def short_series(run: PublishedRun, shown: int = 5) -> None:
    """Names the series too short for the backtest and the baseline that forecast each."""
    short = run.manifest.get("short_series") or []
    if not short:
        return
    named = ", ".join(f"{entry['unique_id']} ({entry['model']})" for entry in short[:shown])
    more = f" and {len(short) - shown} more" if len(short) > shown else ""
    typer.echo(
        f"\n{len(short)} series too short for the backtest, forecast by a baseline outside the "
        f"tournament: {named}{more} (manifest.json: short_series)."
    )


def published(summary: dict, config: PipelineConfig, seconds: float) -> None:
    """Prints what `forecast run` published: the leaderboard, the champion and where it is."""
    from forecasting.store.reader import read_run

    run = read_run(summary["path"])
    leaderboard(run)
    short_series(run)
    typer.echo(f"\nChampion: {summary['champion']}. {summary['reason']}")
    if summary["reused"]:
        typer.echo("Nothing new to train: this data, config and seed were already published.")
    typer.echo(f"Published to {summary['path']} ({seconds:.0f} s)")
    latest(config)


def latest_run(run: PublishedRun, rows: int) -> None:
    """Prints `forecast show`: the run, its champion, leaderboard and first forecast rows."""
    manifest = run.manifest
    typer.echo(f"Run {manifest['run_id']} (as of {manifest['as_of']}), {run.path}")
    typer.echo(f"Champion: {manifest['champion']['model']}. {manifest['champion']['reason']}\n")
    leaderboard(run)
    short_series(run)
    typer.echo("\n" + run.forecast.head(rows).to_string(index=False))


def backfilled(moment: pd.Timestamp, summary: dict) -> None:
    """Prints one line per run of a backfill: its as-of, run, champion and what it decided."""
    action = "reused" if summary["reused"] else summary.get("action", "")
    typer.echo(f"{moment}  {summary['run_id']}  {summary['champion']:<14} {action}")


def latest(config: PipelineConfig) -> None:
    """Prints the path that always holds the pipeline's newest published run."""
    from forecasting.store.layout import LATEST, POINTER, child, pipeline_dir, url_scheme

    root = pipeline_dir(config.output_dir, config.name)
    typer.echo(f"Latest:     {child(root, LATEST if url_scheme(root) is None else POINTER)}")


def trend(output_dir: Path | str, name: str, runs: int = 10) -> None:
    """Prints how the last `runs` scored published forecasts did against later actuals."""
    from forecasting.accuracy import run_summary
    from forecasting.store.layout import pipeline_dir
    from forecasting.store.reader import read_accuracy

    history = read_accuracy(pipeline_dir(output_dir, name))
    if history is None:
        typer.echo("\nNo published forecast has been scored against later actuals yet.")
        return
    summary = run_summary(history).tail(runs)
    typer.echo("\nPublished forecasts scored against later actuals (newest last):")
    typer.echo(
        summary[TREND_COLUMNS].to_string(index=False, float_format=lambda value: f"{value:.3f}")
    )
