"""What every benchmark script shares: where data and results live, the machine, and writing
a result as a CSV and a Markdown table that state how it was made."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
SHARED_DATA = ROOT.parent / "shared" / "data"
_PACKAGES = ("keras", "tensorflow-cpu", "numpy", "pandas", "prefect", "statsforecast")


def shared_file(name: str) -> Path:
    """A dataset from `../shared/data` (benchmarks only; the README's commands never need it).

    Raises:
        SystemExit: The file is not there, with where it was looked for.
    """
    path = SHARED_DATA / name
    if not path.is_file():
        raise SystemExit(
            f"Benchmark data {name} not found at {path}. The benchmarks read the real datasets "
            "from ../shared/data beside the repository; put the file there and rerun."
        )
    return path


def long_frame(series: dict[str, np.ndarray], start: str = "2000-01-01") -> pd.DataFrame:
    """Series as the pipeline's long frame (`unique_id`, `ds`, `y`), hourly steps from `start`."""
    return pd.concat(
        (
            pd.DataFrame(
                {
                    "unique_id": series_id,
                    "ds": pd.date_range(start, periods=len(values), freq="h"),
                    "y": values,
                }
            )
            for series_id, values in series.items()
        ),
        ignore_index=True,
    )


def cpu_model() -> str:
    """The CPU's model name as the kernel reports it (e.g. under KVM)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """One line: CPU, cores, memory, Python and the versions that matter."""
    memory = ""
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = f", {pages / 1024**3:.0f} GiB"
    except (ValueError, OSError):
        pass
    versions = []
    for package in _PACKAGES:
        try:
            versions.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return (
        f"{cpu_model()}, {os.cpu_count()} cores{memory}, no GPU used; Python "
        f"{platform.python_version()}; " + ", ".join(versions)
    )


class Report:
    """Collects one script's facts and writes `results/<name>.csv` and `results/<name>.md`.

    The Markdown file starts with the command that reproduces it, the machine and versions, the
    seed, the date and the script's wall time, then the table, then the notes.
    """

    def __init__(self, name: str, title: str, seed: int | None) -> None:
        self.name = name
        self.title = title
        self.seed = seed
        self.started = time.perf_counter()
        self.command = "uv run --group bench python " + shlex.join(
            [f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]]
        )

    def header(self) -> str:
        seed = f"seed {self.seed}; " if self.seed is not None else ""
        return (
            f"# {self.title}\n\n"
            f"- command: `{self.command}`\n"
            f"- machine: {machine()}\n"
            f"- {seed}run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, wall time "
            f"{time.perf_counter() - self.started:.0f} s\n"
        )

    def write(self, table: pd.DataFrame, notes: str = "") -> str:
        """Writes the CSV (the full table) and the Markdown; returns the Markdown text.

        A table with a `section` column becomes one Markdown table per section, each without
        the columns that section leaves empty.
        """
        RESULTS.mkdir(exist_ok=True)
        table.to_csv(RESULTS / f"{self.name}.csv", index=False)
        if "section" in table:
            body = "\n".join(
                f"## {name}\n\n{_markdown(part.drop(columns='section'))}"
                for name, part in table.groupby("section", sort=False)
            )
        else:
            body = _markdown(table)
        text = self.header() + "\n" + body + (f"\n{notes.strip()}\n" if notes.strip() else "")
        (RESULTS / f"{self.name}.md").write_text(text)
        return text


def _markdown(table: pd.DataFrame) -> str:
    return table.dropna(axis=1, how="all").to_markdown(index=False, floatfmt="g") + "\n"
