"""How does `forecast run` scale with the number of series? A seeded generator of N hourly
series of one year each (daily and weekly seasonality, a trend with breaks, noise, scales from
1 to 10,000), then one end-to-end `forecast run` per size and task runner, each in a fresh
process, Prefect home and output folder.

    uv run --group bench python benchmarks/scale.py [--sizes 10,100]
        [--runners sequential,processes] [--workers 2] [--windows-per-series 256]
        [-- extra forecast run options]

Per run: wall and CPU seconds (the whole process tree), the peak resident memory of the
largest single process and of the tree (sampled every 0.2 s), the RNNs' training seconds and
the champion's backtest MASE. Writes benchmarks/results/scale.csv and scale.md. The same
script runs on a larger machine with `--workers 16`, and `--sizes 10,100,1000` and beyond as
memory allows.
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

import numpy as np
import pandas as pd
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Report  # noqa: E402

CLI = [sys.executable, "-c", "from flows.cli import app; app()"]
HOURS = 365 * 24
SEED = 42


def generate(n_series: int, seed: int = SEED, hours: int = HOURS) -> pd.DataFrame:
    """N hourly series of `hours` steps in long form (`unique_id`, `ds`, `y`), all ending at
    the same hour: daily and weekly cycles of random phase and strength, a trend whose slope
    changes at up to three random hours, noise, and a scale drawn log-uniformly in [1, 1e4]."""
    rng = np.random.default_rng(seed)
    t = np.arange(hours)
    frames = []
    for index in range(n_series):
        daily = rng.uniform(0.2, 1.0) * np.sin(2 * np.pi * (t / 24 + rng.random()))
        weekly = rng.uniform(0.0, 0.6) * np.sin(2 * np.pi * (t / 168 + rng.random()))
        breaks = np.sort(rng.integers(0, hours, size=rng.integers(0, 4)))
        slopes = rng.normal(0, 1 / hours, size=len(breaks) + 1)
        trend = np.cumsum(slopes[np.searchsorted(breaks, t, side="right")])
        noise = rng.normal(0, rng.uniform(0.05, 0.3), size=hours)
        level = 10 ** rng.uniform(0, 4)
        y = level * (3 + daily + weekly + trend + noise)
        frames.append(pd.DataFrame({"unique_id": f"S{index:05d}", "t": t, "y": y}))
    frame = pd.concat(frames, ignore_index=True)
    frame["ds"] = pd.Timestamp("2025-01-01") + pd.to_timedelta(frame.pop("t"), unit="h")
    return frame[["unique_id", "ds", "y"]]


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(data: Path, runner: str, args: argparse.Namespace, folder: Path) -> dict:
    """One `forecast run` on `data` with `runner`, its costs and what it published."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(folder / "prefect"), TF_CPP_MIN_LOG_LEVEL="2", DO_NOT_TRACK="1")
    options = ["--data", str(data), "--id-column", "unique_id", "--time-column", "ds"]
    options += ["--target-column", "y", "--output-dir", str(folder / "outputs")]
    options += ["--task-runner", runner, *args.extra]
    if args.windows_per_series:
        options += ["--windows-per-series", str(args.windows_per_series)]
    if runner != "sequential":
        options += ["--workers", str(args.workers)]
    cpu_before, started = children_cpu_seconds(), time.perf_counter()
    process = subprocess.Popen(
        [*CLI, "run", *options],
        env=env,
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    tree = psutil.Process(process.pid)
    peak_one = peak_tree = 0
    while process.poll() is None:
        sizes = []
        for member in [tree, *tree.children(recursive=True)]:
            try:
                sizes.append(member.memory_info().rss)
            except psutil.Error:
                continue
        peak_one, peak_tree = max(peak_one, *sizes, 0), max(peak_tree, sum(sizes))
        time.sleep(0.2)
    stderr = process.stderr.read() if process.stderr else ""
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"{runner} failed:\n{stderr[-3000:]}")
    manifest = json.loads((folder / "outputs" / data.stem / "latest" / "manifest.json").read_text())
    rnns = [c for c in manifest["candidates"] if c["model"] in ("simple_rnn", "gru", "lstm")]
    champion = manifest["champion"]["model"]
    metrics = next(c["metrics"] for c in manifest["candidates"] if c["model"] == champion)
    return {
        "n_series": manifest["data"]["series"],
        "task_runner": runner,
        "workers": manifest["execution"]["workers"],
        "windows_per_series": args.windows_per_series or "all",
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(children_cpu_seconds() - cpu_before, 1),
        "peak_process_mb": round(peak_one / 2**20),
        "peak_tree_mb": round(peak_tree / 2**20),
        "rnn_seconds": round(sum(c.get("seconds") or 0 for c in rnns), 1),
        "champion": champion,
        "champion_mase": round(metrics["mase"], 4),
        "load_before": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100")
    parser.add_argument("--runners", default="sequential,processes")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--windows-per-series", type=int, default=256)
    parser.add_argument("extra", nargs="*", help="more forecast run options, after --")
    args = parser.parse_args()
    report = Report("scale", "forecast run on N one-year hourly series", SEED)
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="scale-") as temporary:
            folder = Path(temporary)
            data = folder / f"scale{size}.parquet"
            generate(size).to_parquet(data, index=False)
            for runner in args.runners.split(","):
                (folder / runner).mkdir()
                row = run(data, runner, args, folder / runner)
                rows.append(row)
                print(rows[-1], flush=True)
    notes = (
        f"Each series: {HOURS} hourly steps (one year), generated by `generate` (seed {SEED}). "
        "Default candidates and settings otherwise (horizon 24, input 168, 3 folds). "
        "`peak_process_mb`: the largest resident memory of any one process of the run; "
        "`peak_tree_mb`: of all of them together (CLI, Prefect's temporary server, workers). "
        "`rnn_seconds`: the three RNNs' backtest training time from the manifest. The load "
        "average before each run says whether other jobs shared the CPU."
    )
    print(report.write(pd.DataFrame(rows), notes=notes))


if __name__ == "__main__":
    main()
