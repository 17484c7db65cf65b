"""What does Prefect cost? Runs the default pipeline on the bundled ETTh1 three ways, each in a
fresh process from its first import to its exit:

- `plain`: the library's pipeline, `forecasting.pipeline.run`, from a plain script (no Prefect
  import);
- `flow`: the `forecast-pipeline` flow with no server configured, set up as `forecast run` sets
  it up (a temporary server on $PREFECT_HOME's database, started before TensorFlow loads, see
  flows/temporary_server.py). Every repeat reuses one
  Prefect home, migrated once beforehand as a user's earlier runs would have: the migration is
  a one-time cost, timed and reported on its own;
- `server`: the flow against an already-running `prefect server start`.

    uv run --group bench python benchmarks/overhead.py [--repeat 3]

Every run also reports its candidates' training seconds (from the manifest it publishes), and
each mode is compared with the plain run of the same repeat, both in wall time and outside
training: Prefect's fixed costs sit outside training, while nearly all of this machine's
run-to-run variation sits inside it. Writes benchmarks/results/overhead.csv (per mode),
overhead_runs.csv (every run) and overhead.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

PROJECT = Path(__file__).resolve().parent.parent
RESULTS = PROJECT / "benchmarks" / "results"
sys.path.insert(0, str(PROJECT))


def plain(output_dir: Path) -> None:
    """The flow's steps as plain library calls (`forecasting.pipeline.run`, which the flow runs
    as tasks). Like `forecast run`, it loads Keras before the first step, so both modes'
    training seconds exclude that import."""
    from forecasting.config import PipelineConfig
    from forecasting.pipeline import run

    config = PipelineConfig(output_dir=output_dir)
    if config.model.trains_rnns:
        import keras  # noqa: F401
    run(config)


def flow(output_dir: Path) -> None:
    """What `forecast run` does after its data check: the same settings, the temporary server
    started early (none when PREFECT_API_URL is set), then the flow."""
    from flows import environment
    from forecasting.config import PipelineConfig

    config = PipelineConfig(output_dir=output_dir)
    environment.prepare()
    environment.run_flow(config, environment.start_server(config))


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds, and CPU seconds (user + system) of the process and the children it
    waited for (the flow's temporary server included; a running server is not)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, cwd=PROJECT, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return time.perf_counter() - started, cpu


def run_mode(mode: str, env: dict[str, str]) -> tuple[float, float, float]:
    """Wall and CPU seconds of one run, and its candidates' training seconds (fit and backtest
    scoring, all folds) as its published manifest records them."""
    with tempfile.TemporaryDirectory() as folder:
        seconds, cpu = timed([sys.executable, __file__, "--child", mode, folder], env)
        manifest = json.loads((Path(folder) / "out/etth1/latest/manifest.json").read_text())
    return seconds, cpu, sum(c["seconds"] for c in manifest["candidates"])


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Per mode: medians, and gaps to the plain run of the same repeat (run next to it, so a
    machine that drifts in speed moves both). Identical runs vary by 5-25% on a shared VM, more
    than Prefect costs, and nearly all of that variation is in training, so the gap outside
    training measures Prefect's fixed costs far more precisely than the gap in wall time."""
    summary = table.groupby("mode", sort=False).agg(
        runs=("seconds", "size"),
        fastest=("seconds", "min"),
        median=("seconds", "median"),
        median_training=("training_seconds", "median"),
        median_cpu=("cpu_seconds", "median"),
    )

    def gaps(column: str) -> pd.DataFrame:
        wide = table.pivot(index="repeat", columns="mode", values=column).dropna()
        return wide.sub(wide["plain"], axis=0)

    for column, name in [("seconds", "gap"), ("outside_training", "gap_outside_training")]:
        summary[name] = gaps(column).median()
        summary[f"{name}_percent"] = 100 * summary[name] / summary["median"]
    training = gaps("training_seconds")
    summary["gap_training"] = training.median()
    summary["trained_slower"] = (training > 0).sum().astype(str) + f" of {len(training)}"
    return summary.round(2).reset_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, folder = args.child
        (plain if mode == "plain" else flow)(Path(folder) / "out")
        return
    from tests.helpers.prefect_server import environment, prefect_server

    base = {
        **os.environ,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    for name in ("PREFECT_API_URL", "PREFECT_HOME"):
        base.pop(name, None)
    rows = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder) / "server-home"
        home.mkdir()
        flow_env = {**base, "PREFECT_HOME": str(Path(folder) / "flow-home")}
        prefect = [str(Path(sys.executable).with_name("prefect"))]
        migration, _ = timed([*prefect, "server", "database", "upgrade", "-y"], flow_env)
        with prefect_server(home) as (api_url, _):
            modes = [
                ("plain", base),
                ("flow", flow_env),
                ("server", {**base, **environment(home, api_url)}),
            ]
            for repeat in range(args.repeat):
                # Every other repeat runs the modes in reverse: a machine that speeds up or
                # slows down during the benchmark then favours no mode.
                for mode, env in modes if repeat % 2 == 0 else modes[::-1]:
                    seconds, cpu, training = run_mode(mode, env)
                    rows.append(
                        {
                            "repeat": repeat + 1,
                            "mode": mode,
                            "seconds": round(seconds, 1),
                            "cpu_seconds": round(cpu, 1),
                            "training_seconds": round(training, 1),
                            "outside_training": round(seconds - training, 1),
                        }
                    )
                    print(rows[-1], flush=True)
    write_results(pd.DataFrame(rows), args.repeat, time.perf_counter() - started, migration)


def write_results(table: pd.DataFrame, repeat: int, wall: float, migration: float) -> None:
    """Writes every run, the summary and the report; to redo the summary of an earlier run,
    pass its overhead_runs.csv, and its wall and migration seconds from overhead.md."""
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / "overhead_runs.csv", index=False)
    summary = summarize(table)
    summary.to_csv(RESULTS / "overhead.csv", index=False)
    header = (
        f"Default pipeline on ETTh1, each mode a fresh process (imports included), "
        f"{repeat} repeat(s), interleaved; {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; wall {wall:.0f} s. "
        f"Migrating the new Prefect home the flow runs reuse took {migration:.1f} s (once per "
        "home). gap = the mode's seconds minus the plain run's of the same repeat, median over "
        "repeats; outside_training = wall minus the candidates' training seconds (fit and "
        "backtest scoring, from the run's manifest); gap_training and trained_slower compare "
        "those training seconds the same way; percent = of the mode's median wall; median_cpu "
        "= user + system seconds of the run's process tree (a running server's own CPU not "
        "included).\n\n"
    )
    (RESULTS / "overhead.md").write_text(header + summary.to_markdown(index=False) + "\n")
    print(header + summary.to_markdown(index=False))


if __name__ == "__main__":
    main()
