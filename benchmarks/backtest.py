"""What does each backtest fold cost, and does warm-starting folds beat training from scratch?

Trains every candidate on the bundled ETTh1 with the default settings (3 folds of 4 x horizon)
once with `warm_start` off (each fold from scratch) and once on (each fold from the previous
fold's weights), and records each fold's seconds, epochs and MASE.

    uv run --group bench python benchmarks/backtest.py [--kinds simple_rnn,gru,lstm]

Writes benchmarks/results/backtest.csv and backtest.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pandas as pd  # noqa: E402

from forecasting.config import PipelineConfig  # noqa: E402
from forecasting.data import load_series  # noqa: E402
from forecasting.training import train_candidate  # noqa: E402
from forecasting.validation import validate  # noqa: E402
from forecasting.windowing import make_folds  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", default="linear,simple_rnn,gru,lstm")
    args = parser.parse_args()
    config = PipelineConfig()
    data = validate(load_series(config.data), config.data, config.model, config.evaluation)
    folds = make_folds(data.frame, ["y"], config.model, config.evaluation)
    rows, totals = [], []
    started = time.perf_counter()
    for warm in (False, True):
        for kind in args.kinds.split(","):
            result = train_candidate(
                kind, folds, config.model, data.season_length, config.seed, warm_start=warm
            )
            mode = "warm start" if warm else "from scratch"
            for number, metrics in enumerate(result.fold_metrics):
                rows.append(
                    {
                        "mode": mode,
                        "model": kind,
                        "fold": number + 1,
                        "train_windows": len(folds[number].train),
                        "seconds": round(result.fold_seconds[number], 1),
                        "epochs": result.fold_epochs[number],
                        "mase": round(metrics["mase"], 4),
                    }
                )
            totals.append(
                {
                    "mode": mode,
                    "model": kind,
                    "seconds": round(result.seconds, 1),
                    "epochs": result.epochs,
                    "mase": round(result.metrics["mase"], 4),
                    "n_test_windows": sum(len(f.test) for f in folds),
                }
            )
            print(totals[-1], flush=True)
    per_fold, overall = pd.DataFrame(rows), pd.DataFrame(totals)
    RESULTS.mkdir(exist_ok=True)
    per_fold.to_csv(RESULTS / "backtest.csv", index=False)
    header = (
        f"ETTh1 OT, horizon {config.model.horizon}, input_size {config.model.input_size}, "
        f"units {config.model.units}, {config.evaluation.n_folds} folds of "
        f"{config.evaluation.block_size(config.model.horizon)} steps, seed {config.seed}; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"wall {time.perf_counter() - started:.0f} s\n\n"
    )
    text = (
        header
        + "Per candidate, all folds:\n\n"
        + overall.to_markdown(index=False)
        + "\n\nPer fold:\n\n"
        + per_fold.to_markdown(index=False)
        + "\n"
    )
    (RESULTS / "backtest.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
