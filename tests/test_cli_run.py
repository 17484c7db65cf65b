"""The newcomer's path: `forecast run` in a fresh process, then `forecast show`."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers.prefect_server import own_prefect_environment

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-c", "from flows.cli import app; app()"]


def forecast(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = own_prefect_environment(home)
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=300)


def run_on_slice(data: Path, output_dir: Path, home: Path, *options: str):
    """`forecast run` on an ETTh1 slice with a small window, in a fresh process."""
    arguments = ["--data", str(data), "--input-size", "48", "--horizon", "12"]
    return forecast("run", *arguments, "--output-dir", str(output_dir), *options, home=home)


def test_run_publishes_and_show_reads_it_back(etth1_slice: Path, tmp_path: Path) -> None:
    output_dir = tmp_path / "out"
    run = run_on_slice(
        etth1_slice, output_dir, tmp_path / "prefect", "--max-epochs", "2", "--name", "demo"
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Traceback" not in run.stdout + run.stderr
    # the server `forecast run` starts early (flows/temporary_server.py), on loopback only
    assert "Started Prefect's temporary server on http://127.0.0.1:" in run.stdout
    with sqlite3.connect(tmp_path / "prefect" / "prefect.db") as database:
        logs, artifacts = database.execute(
            "SELECT (SELECT COUNT(*) FROM log), (SELECT COUNT(*) FROM artifact)"
        ).fetchone()
    assert logs > 10 and artifacts >= 4  # sent before the server stopped at exit
    for kind in ("naive", "seasonal_naive", "simple_rnn", "gru", "lstm"):
        assert kind in run.stdout
    latest = output_dir / "demo" / "latest"
    assert f"Published to {latest.resolve()}" in run.stdout
    forecast_file = pd.read_csv(latest / "forecast.csv")
    assert len(forecast_file) == 12

    again = run_on_slice(
        etth1_slice, output_dir, tmp_path / "prefect", "--max-epochs", "2", "--name", "demo"
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert "Nothing new to train" in again.stdout
    assert " epoch " not in again.stdout + again.stderr  # nothing was trained
    assert latest.resolve().name == forecast_file["run_id"].iloc[0]
    assert len(list((output_dir / "demo" / "runs").iterdir())) == 1

    show = forecast("show", "demo", "--output-dir", str(output_dir), home=tmp_path / "prefect")
    assert show.returncode == 0, show.stderr
    champion = forecast_file["model"].iloc[0]
    assert f"Champion: {champion}." in show.stdout
    assert forecast_file["ds"].iloc[0].replace("T", " ") in show.stdout


def test_show_without_a_run_says_what_to_do(tmp_path: Path) -> None:
    show = forecast("show", "nothing", "--output-dir", str(tmp_path), home=tmp_path / "prefect")
    assert show.returncode == 2
    assert "Run `forecast run` first" in show.stderr
    assert "Traceback" not in show.stderr


def test_show_refuses_a_name_that_leads_out_of_the_output_folder(tmp_path: Path) -> None:
    show = forecast("show", "../etc", "--output-dir", str(tmp_path), home=tmp_path / "prefect")
    assert show.returncode == 2
    assert "cannot escape the output folder" in show.stderr
