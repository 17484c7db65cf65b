"""How does `forecast run` scale with the number of series? A seeded generator of N hourly
series of one year each (daily and weekly seasonality, a trend with breaks, noise, scales from
1 to 10,000), then one end-to-end `forecast run` per size and task runner, each in a fresh
process, Prefect home and output folder. Runner `fleet` is `forecast fleet` instead (groups of
at most `--series-per-group` series, each run with cores / workers threads) against a Prefect
server on PostgreSQL (deploy/postgres.sh) with `--workers` process workers of
deploy/prefect.yaml's `fleet-group` deployment, all started for the measurement and stopped by
PID after it.

    uv run --group bench python benchmarks/scale.py [--sizes 10,100,1000]
        [--runners sequential,processes,dask,fleet] [--workers 2] [--windows-per-series 32]
        [--big] [--series-per-group 500] [--output scale] [-- extra forecast run options]

Per run: wall and CPU seconds (the whole process tree), the peak resident memory of the
largest single process and of the tree (sampled every 0.2 s), the RNNs' training seconds and
training windows per second, the champion's backtest MASE, and for the fleet Prefect's
overhead per group run. Writes benchmarks/results/scale.csv and scale.md (`--output`). The
same script runs on a larger machine with `--workers 16`, and `--sizes 10,100,1000` and beyond
as memory allows."""

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
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.helpers
from common import ROOT, Report  # noqa: E402

from forecasting.execution import threads_per_worker  # noqa: E402

CLI = [sys.executable, "-c", "from flows.cli import app; app()"]
DEPLOY_FILE = str(ROOT / "deploy" / "prefect.yaml")
POOL = "recurrent-process"  # deploy/prefect.yaml's pool
RNNS = ("simple_rnn", "gru", "lstm")
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


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a running process and of its descendants, running or reaped (a reaped
    child counts in its parent's `children_*` times)."""
    total = 0.0
    try:
        root = psutil.Process(pid)
        members = [root, *root.children(recursive=True)]
    except psutil.Error:
        return total
    for member in members:
        try:
            times = member.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def measure(process: subprocess.Popen, roots: list[int]) -> tuple[float, float, int, int]:
    """Waits for `process` and returns its wall seconds, the CPU seconds of it and of the
    running processes `roots` (and all their descendants) meanwhile, and the peak resident
    memory of the largest single process and of all of them together (sampled every 0.2 s)."""
    started, cpu_before = time.perf_counter(), children_cpu_seconds()
    roots_before = sum(tree_cpu_seconds(pid) for pid in roots)
    peak_one = peak_tree = 0
    while process.poll() is None:
        sizes = []
        for pid in [process.pid, *roots]:
            try:
                root = psutil.Process(pid)
                members = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            for member in members:
                try:
                    sizes.append(member.memory_info().rss)
                except psutil.Error:
                    continue
        peak_one, peak_tree = max(peak_one, *sizes, 0), max(peak_tree, sum(sizes))
        time.sleep(0.2)
    wall = time.perf_counter() - started
    roots_cpu = sum(tree_cpu_seconds(pid) for pid in roots) - roots_before
    return wall, children_cpu_seconds() - cpu_before + roots_cpu, peak_one, peak_tree


def measure_command(
    arguments: list[str], env: dict[str, str], folder: Path, roots: list[int]
) -> tuple[float, float, int, int]:
    """Runs a `forecast` command in `folder` and returns `measure`'s costs. Its output goes to
    `folder/forecast.log`, not a pipe: worker processes inherit it and would block once a
    pipe nobody reads is full.

    Raises:
        SystemExit: The command failed; with the end of its output.
    """
    log = folder / "forecast.log"
    with log.open("w") as output:
        process = subprocess.Popen(arguments, env=env, cwd=folder, stdout=output, stderr=output)
        costs = measure(process, roots)
    if process.returncode != 0:
        raise SystemExit(f"{arguments[3]} failed:\n{log.read_text()[-3000:]}")
    return costs


def command(
    data: Path, n_series: int, runner: str, args: argparse.Namespace, folder: Path
) -> list[str]:
    """The `forecast run` (or, for the fleet, `forecast fleet`) command of one measurement.
    The fleet's groups hold at most `--series-per-group` series each (at least `--workers`
    groups) and share this machine's cores: each gets `cores / workers` threads."""
    options = ["--data", str(data), "--id-column", "unique_id", "--time-column", "ds"]
    options += ["--target-column", "y", "--output-dir", str(folder / "outputs"), *args.extra]
    if args.windows_per_series:
        options += ["--windows-per-series", str(args.windows_per_series)]
    if runner == "fleet":
        groups = max(args.workers, -(-n_series // args.series_per_group))
        threads = str(threads_per_worker(args.workers))  # the groups share this machine
        return [*CLI, "fleet", *options, "--groups", str(groups), "--threads", threads]
    options += ["--task-runner", runner]
    if runner != "sequential":
        options += ["--workers", str(args.workers)]
    return [*CLI, "run", *options]


def run(data: Path, n_series: int, runner: str, args: argparse.Namespace, folder: Path) -> dict:
    """One `forecast run` (or `forecast fleet`) on `data` with `runner`, its costs and what it
    published."""
    if runner == "fleet":
        return run_fleet(data, n_series, args, folder)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(folder / "prefect"), TF_CPP_MIN_LOG_LEVEL="2", DO_NOT_TRACK="1")
    costs = measure_command(command(data, n_series, runner, args, folder), env, folder, [])
    manifest = json.loads((folder / "outputs" / data.stem / "latest" / "manifest.json").read_text())
    return row(runner, manifest["execution"]["workers"], args, costs, [manifest])


def run_fleet(data: Path, n_series: int, args: argparse.Namespace, folder: Path) -> dict:
    """`forecast fleet` (see `command`) against a Prefect server on PostgreSQL with
    `--workers` process workers, all started here first and stopped by PID at the end; the
    costs are those of `forecast fleet` and of every server, database and worker process
    while it ran."""
    from tests.helpers.postgres import postgres_database
    from tests.helpers.prefect_server import prefect_server
    from tests.helpers.workers import client_environment, prefect, process_workers

    (folder / "server").mkdir()
    with (
        postgres_database() as (database_url, postgres_pid),
        prefect_server(folder / "server", timeout=180, database_url=database_url) as (api, _),
    ):
        env = client_environment(folder / "client", api)
        prefect(["work-pool", "create", POOL, "--type", "process"], env)
        deployments = ["--name", "fleet-group", "--name", "fleet"]
        prefect(["--no-prompt", "deploy", *deployments, "--prefect-file", DEPLOY_FILE], env)
        with process_workers(POOL, api, folder, args.workers):
            roots = [postgres_pid, *(child.pid for child in psutil.Process().children())]
            costs = measure_command(
                command(data, n_series, "fleet", args, folder), env, folder, roots
            )
            overhead = prefect_overhead_pct(api)
    groups = folder / "outputs" / data.stem / "groups"
    manifests = [json.loads(path.read_text()) for path in groups.glob("*/latest/manifest.json")]
    return {**row("fleet", args.workers, args, costs, manifests), "prefect_overhead_pct": overhead}


def prefect_overhead_pct(api_url: str) -> float:
    """The largest share, over the fleet's group runs, of a group run's wall time (its end
    minus its start, from the API) not spent in one of its task runs (the pipeline's steps),
    in percent."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from tests.test_serving import client_for

    shares = []
    with client_for(api_url) as client:
        for child in client.read_flow_runs():
            if child.deployment_id is None or child.start_time is None or not child.end_time:
                continue  # the parent (run by `forecast fleet` itself) has no deployment
            only = FlowRunFilter(id=FlowRunFilterId(any_=[child.id]))
            tasks = client.read_task_runs(flow_run_filter=only)
            spans = sorted((t.start_time, t.end_time) for t in tasks if t.start_time and t.end_time)
            wall = (child.end_time - child.start_time).total_seconds()
            shares.append(100 * (wall - covered_seconds(spans)) / wall)
    return round(max(shares), 2)


def covered_seconds(spans: list) -> float:
    """Seconds covered by the union of sorted (start, end) spans."""
    total, reach = 0.0, None
    for start, end in spans:
        if reach is None or start > reach:
            total += (end - start).total_seconds()
            reach = end
        elif end > reach:
            total += (end - reach).total_seconds()
            reach = end
    return total


def training_windows_per_epoch(manifest: dict) -> float:
    """Training windows one RNN epoch draws, mean over the backtest's folds: per series and
    fold, its windows with targets before the fold's validation slice, at most
    `windows_per_series`; computed from the manifest's config and folds and the series'
    length (every generated series has the same)."""
    from forecasting.config import EvaluationConfig
    from forecasting.windowing import fold_bounds

    config, backtest = manifest["config"], manifest["backtest"]
    model = config["model"]
    evaluation = EvaluationConfig.model_validate(
        {**config["evaluation"], "n_folds": backtest["n_folds"], "fold_size": backtest["fold_size"]}
    )
    length = manifest["data"]["rows"] // manifest["data"]["series"]
    cap = model["windows_per_series"] or length
    per_fold = [
        min(cap, max(0, train_end - model["horizon"] + 1 - model["input_size"]))
        for train_end, _, _ in fold_bounds(length, model["horizon"], evaluation)
    ]
    return manifest["data"]["series"] * sum(per_fold) / len(per_fold)


def row(runner: str, workers: int, args: argparse.Namespace, costs: tuple, manifests: list) -> dict:
    """One line of the table from the measured costs and the published manifests (one per
    group of a fleet): MASE is the series-weighted mean of the champions'."""
    wall, cpu, peak_one, peak_tree = costs
    series = [m["data"]["series"] for m in manifests]
    mase, windows, seconds, champions = 0.0, 0.0, 0.0, []
    for manifest, count in zip(manifests, series, strict=True):
        champion = manifest["champion"]["model"]
        champions.append(champion)
        metrics = next(c["metrics"] for c in manifest["candidates"] if c["model"] == champion)
        mase += metrics["mase"] * count / sum(series)
        rnns = [c for c in manifest["candidates"] if c["model"] in RNNS and c["status"] == "ok"]
        windows += sum(c["epochs"] for c in rnns) * training_windows_per_epoch(manifest)
        seconds += sum(c["seconds"] for c in rnns)
    return {
        "n_series": sum(series),
        "task_runner": runner,
        "workers": workers,
        "windows_per_series": args.windows_per_series or "all",
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),
        "peak_process_mb": round(peak_one / 2**20),
        "peak_tree_mb": round(peak_tree / 2**20),
        "rnn_seconds": round(seconds, 1),
        "windows_per_second": round(windows / seconds) if seconds else None,
        "champion": "+".join(sorted(set(champions))),
        "champion_mase": round(mase, 4),
        "prefect_overhead_pct": None,
        "load_before": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument(
        "--runners",
        default="sequential,processes,dask,fleet",
        help="of sequential, processes, dask, fleet",
    )
    parser.add_argument("--big", action="store_true", help="also 10,000 series")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--series-per-group", type=int, default=500, help="fleet groups' size")
    parser.add_argument("--output", default="scale", help="writes results/<output>.csv, .md")
    parser.add_argument("--windows-per-series", type=int, default=32)
    parser.add_argument("extra", nargs="*", help="more forecast run options, after --")
    args = parser.parse_args()
    report = Report(args.output, "forecast run on N one-year hourly series", SEED)
    sizes = [int(s) for s in args.sizes.split(",")] + ([10_000] if args.big else [])
    rows = []
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="scale-") as temporary:
            folder = Path(temporary)
            data = folder / f"scale{size}.parquet"
            generate(size).to_parquet(data, index=False)
            for runner in args.runners.split(","):
                (folder / runner).mkdir()
                row = run(data, size, runner, args, folder / runner)
                rows.append(row)
                print(rows[-1], flush=True)
    notes = (
        f"Each series: {HOURS} hourly steps (one year), generated by `generate` (seed {SEED}). "
        "Default candidates and settings otherwise (horizon 24, input 168, 3 folds). "
        "`peak_process_mb`: the largest resident memory of any one process of the run; "
        "`peak_tree_mb`: of all of them together (CLI, Prefect's temporary server, workers). "
        "`rnn_seconds`: the three RNNs' backtest training time from the manifest (summed over a "
        "fleet's groups). `windows_per_second`: training windows drawn by the RNNs' backtest "
        "epochs (epochs from the manifest; windows per epoch computed here from the series' "
        "length, the folds and `windows_per_series`, the mean over folds) per `rnn_seconds`, "
        "which also hold validation and test predictions. The load average before each run "
        "says whether other jobs shared the CPU.\n\n"
        "`fleet`: `forecast fleet --groups G --threads T` on a Prefect server backed by "
        "PostgreSQL with `<workers>` process workers (`--limit 1`) on this machine, each group "
        "a `fleet-group` run with the sequential runner; G is at least `<workers>`, with at "
        "most `--series-per-group` series per group, and T is this machine's cores / "
        "`<workers>`, so that the groups side by side do not oversubscribe the cores. "
        "Its wall time is that of `forecast fleet` alone (starting the "
        "database, server and workers and deploying come first and are not counted); CPU and "
        "memory count the command, the server, PostgreSQL and the workers with their group "
        "runs. `champion_mase` is the series-weighted mean of the groups' champions' MASE and "
        "`champion` lists the groups' champions. `prefect_overhead_pct`: per group run, its "
        "wall time from the Prefect API (end minus start, so the worker's start of the run's "
        "process comes before it) less the time covered by its task runs (the pipeline's "
        "steps), as a share of that wall time; the largest over groups. Target: at most 5."
    )
    print(report.write(pd.DataFrame(rows), notes=notes))


if __name__ == "__main__":
    main()
