"""Does bounding the training windows per series per epoch (`model.windows_per_series`) keep
the accuracy while cutting the cost of an epoch? GRU with today's defaults on M4 Hourly's
official split (see ablation.py's M4 setup), every window per epoch against caps of 256, 128
and 64 windows per series; the cap is judged on validation MASE, test MASE beside it.

    uv run --group bench python benchmarks/windows_per_series.py [--caps 256,128,64]

Writes benchmarks/results/windows_per_series.csv and .md.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from ablation import M4, SEED, model_config
from common import Report

VARIANT = "mase, mae, scaled windows"  # today's defaults: MASE scaling, MAE loss, input 168
MAX_EPOCHS = 100  # the product's default; early stopping (patience 5) ends sooner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--caps", default="256,128,64")
    args = parser.parse_args()
    report = Report("windows_per_series", "Windows per series per epoch on M4 Hourly", SEED)
    m4 = M4()
    fold = m4.fold(model_config(VARIANT, 48, MAX_EPOCHS))
    per_series = np.bincount(fold.train.series)
    rows = []
    for cap in [None, *(int(c) for c in args.caps.split(","))]:
        row = m4.row("gru", VARIANT, MAX_EPOCHS, windows_per_series=cap)
        drawn = np.minimum(per_series, cap or per_series.max()).sum()
        rows.append({"windows_per_series": cap or "all", "windows_per_epoch": int(drawn), **row})
        rows[-1]["seconds_per_epoch"] = row["seconds"] / max(row["epochs"], 1)
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows).round(
        {"validation_mase": 4, "mase": 4, "seconds": 1, "seconds_per_epoch": 2}
    )
    columns = ["dataset", "horizon", "windows_per_series", "windows_per_epoch",
               "validation_mase", "mase", "epochs", "seconds", "seconds_per_epoch"]  # fmt: skip
    notes = (
        f"GRU, units 64, input 168, MASE scaling, MAE loss, per-window scaling, at most "
        f"{MAX_EPOCHS} epochs with early stopping (patience 5), seed {SEED}. The training "
        f"windows per series range from {per_series.min()} to {per_series.max()} "
        f"(median {int(np.median(per_series))}); `windows_per_epoch` is what one epoch trains "
        "on. `seconds`: fit and predict wall time. Patience counts epochs, so a smaller cap "
        "also means less data seen before early stopping can end training.\n\n" + verdict(table)
    )
    print(report.write(table[columns], notes=notes))


def change(value: float, base: float) -> float:
    return 100 * (value / base - 1)


def verdict(table: pd.DataFrame) -> str:
    best = table.loc[table["validation_mase"].idxmin()]
    every = table.iloc[0]
    return (
        f"Chosen on validation MASE: `windows_per_series = {best['windows_per_series']}` "
        f"({best['validation_mase']:.4f}). Against every window, each cap's validation MASE: "
        + ", ".join(
            f"{row.windows_per_series}: {change(row.validation_mase, every.validation_mase):+.1f}%"
            f" in {change(row.seconds, every.seconds):+.0f}% time"
            for row in table.iloc[1:].itertuples()
        )
        + "."
    )


if __name__ == "__main__":
    main()
