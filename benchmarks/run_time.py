"""How long does the default `forecast run` take, stage by stage, and how much memory does it
need? Runs the README's command exactly, in a fresh PREFECT_HOME, and samples the resident
memory of the whole process tree (uv, the CLI, Prefect's temporary server) every 0.1 s.

    uv run --group bench python benchmarks/run_time.py [-- extra forecast run options]

Writes benchmarks/results/run_time.csv and run_time.md, and what the command printed (without
Prefect's log lines) to run_time_output.txt.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
import psutil

PROJECT = Path(__file__).resolve().parent.parent
RESULTS = PROJECT / "benchmarks" / "results"
LOG_LINE = re.compile(r"^(\d\d:\d\d:\d\d\.\d{3}) \| \w+ +\| (Flow|Task) run '([^']+)' - (.*)$")


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            continue
    return total


def stages(log: str, started: datetime, ended: datetime) -> list[tuple[str, float]]:
    """Turns Prefect's log lines into (stage, seconds); tasks run one after another."""
    marks: list[tuple[str, datetime]] = [("start", started)]
    for line in log.splitlines():
        match = LOG_LINE.match(line)
        if not match:
            continue
        clock, kind, name, text = match.groups()
        moment = datetime.combine(started.date(), datetime.strptime(clock, "%H:%M:%S.%f").time())
        if kind == "Flow" and text.startswith("Beginning flow run"):
            marks.append(("startup: uv, imports, config and data check, Prefect server", moment))
        elif kind == "Task" and text.startswith("Finished in state"):
            marks.append((re.sub(r"-[0-9a-f]{3}$", "", name), moment))
        elif kind == "Flow" and text.startswith("Finished in state"):
            marks.append(("flow wrap-up", moment))
    marks.append(("shutdown: print results, stop Prefect server", ended))
    return [
        (name, (moment - previous).total_seconds())
        for (_, previous), (name, moment) in zip(marks, marks[1:], strict=False)
    ]


def main() -> None:
    extra = sys.argv[1:]
    with tempfile.TemporaryDirectory() as folder:
        env = {
            **os.environ,
            "PREFECT_HOME": str(Path(folder) / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
        }
        command = [
            "uv",
            "run",
            "forecast",
            "run",
            "--output-dir",
            str(Path(folder) / "out"),
            *extra,
        ]
        started = datetime.now()
        clock = time.perf_counter()
        process = subprocess.Popen(
            command,
            cwd=PROJECT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        watcher = psutil.Process(process.pid)
        peak = 0
        output: list[str] = []
        import threading

        reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
        reader.start()
        while process.poll() is None:
            peak = max(peak, tree_rss(watcher))
            time.sleep(0.1)
        reader.join()
        wall = time.perf_counter() - clock
        ended = datetime.now()
    log = "".join(output)
    if process.returncode != 0:
        sys.exit(f"forecast run failed ({process.returncode}):\n{log[-3000:]}")
    table = pd.DataFrame(stages(log, started, ended), columns=["stage", "seconds"])
    table = table.groupby("stage", sort=False, as_index=False)["seconds"].sum().round(1)
    table.loc[len(table)] = ["total wall time", round(wall, 1)]
    table.loc[len(table)] = ["peak RSS of the process tree (MB)", round(peak / 2**20)]
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / "run_time.csv", index=False)
    header = (
        f"`{' '.join(['uv', 'run', 'forecast', 'run', *extra])}` on "
        f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {started:%Y-%m-%d}\n\n"
    )
    (RESULTS / "run_time.md").write_text(header + table.to_markdown(index=False) + "\n")
    printed = [
        line for line in log.splitlines() if not re.match(r"^\d\d:\d\d:\d\d\.\d{3} \|", line)
    ]
    (RESULTS / "run_time_output.txt").write_text("\n".join(printed) + "\n")
    print(header + table.to_markdown(index=False))


if __name__ == "__main__":
    main()
