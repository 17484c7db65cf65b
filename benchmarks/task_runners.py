"""Which task runner should train the candidates? Runs the README's `forecast run` (bundled
ETTh1, default settings) once per runner, each in a fresh process, Prefect home and output
folder, and compares wall time, CPU time and the result (run id, champion, its MASE).

    uv run --group bench python benchmarks/task_runners.py [--workers 2] [-- extra options]

Writes benchmarks/results/task_runners.csv and task_runners.md. The load average before and
after each run is recorded: on a shared machine the wall times are inflated.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Report  # noqa: E402

PROJECT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-c", "from flows.cli import app; app()"]
RUNNERS = ("sequential", "processes", "dask")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(runner: str, workers: int, extra: list[str], folder: Path) -> dict:
    """One `forecast run` with `runner`; its wall and CPU seconds and what it published."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(folder / "prefect"), TF_CPP_MIN_LOG_LEVEL="2", DO_NOT_TRACK="1")
    options = ["--output-dir", str(folder / "outputs"), "--task-runner", runner, *extra]
    if runner != "sequential":
        options += ["--workers", str(workers)]
    load_before = os.getloadavg()[0]
    cpu_before, started = children_cpu_seconds(), time.perf_counter()
    done = subprocess.run(
        [*CLI, "run", *options], env=env, cwd=folder, capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{runner} failed:\n{done.stderr[-3000:]}")
    manifest = json.loads((folder / "outputs" / "etth1" / "latest" / "manifest.json").read_text())
    champion = manifest["champion"]["model"]
    scores = {entry["model"]: entry["metrics"] for entry in manifest["candidates"]}
    return {
        "task_runner": runner,
        "workers": manifest["execution"]["workers"],
        "threads_per_worker": manifest["execution"]["threads_per_worker"],
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(children_cpu_seconds() - cpu_before, 1),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "run_id": manifest["run_id"],
        "champion": champion,
        "champion_mase": round(scores[champion]["mase"], 6),
        "gru_mase": round(scores.get("gru", {}).get("mase", float("nan")), 6),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("extra", nargs="*", help="more `forecast run` options, after --")
    arguments = parser.parse_args()
    report = Report("task_runners", "`forecast run` under each task runner", seed=42)
    rows = []
    for runner in RUNNERS:
        with tempfile.TemporaryDirectory() as folder:
            rows.append(run(runner, arguments.workers, arguments.extra, Path(folder)))
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    same = table["run_id"].nunique() == 1 and table["champion"].nunique() == 1
    notes = (
        f"\nSame run id and champion under every runner: {same}. CPU seconds are those of the "
        "whole process tree (CLI, Prefect's temporary server, workers). A load average above "
        "the core count before a run means other jobs shared the CPU and inflated its wall "
        "time.\n"
    )
    print(report.write(table, notes))


if __name__ == "__main__":
    main()
