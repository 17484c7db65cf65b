"""Should candidates train concurrently? Trains gru and lstm on the bundled ETTh1 default split
one after the other, then in two threads at once, and compares wall time and forecasts.

    uv run --group bench python benchmarks/concurrency.py

Writes benchmarks/results/concurrency.csv and concurrency.md.
"""

from __future__ import annotations

import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from forecasting.config import PipelineConfig  # noqa: E402
from forecasting.data import load_series  # noqa: E402
from forecasting.training import train_candidate  # noqa: E402
from forecasting.validation import validate  # noqa: E402
from forecasting.windowing import make_folds  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
KINDS = ("gru", "lstm")


def main() -> None:
    config = PipelineConfig()
    data = validate(load_series(config.data), config.data, config.model, config.evaluation)
    windows = make_folds(data.frame, ["y"], config.model, config.evaluation)[-1]

    def train(kind: str):
        return train_candidate(kind, [windows], config.model, 24, config.seed)

    train("naive")  # import TensorFlow outside the timings
    started = time.perf_counter()
    sequential = [train(kind) for kind in KINDS]
    sequential_wall = time.perf_counter() - started
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(KINDS)) as pool:
        concurrent = list(pool.map(train, KINDS))
    concurrent_wall = time.perf_counter() - started
    rows = []
    for mode, results, wall in (
        ("sequential", sequential, sequential_wall),
        ("two threads", concurrent, concurrent_wall),
    ):
        for result, reference in zip(results, sequential, strict=True):
            rows.append(
                {
                    "mode": mode,
                    "model": result.kind,
                    "mase": round(result.metrics["mase"], 4),
                    "epochs": result.epochs,
                    "candidate_seconds": round(result.seconds, 1),
                    "wall_seconds_both": round(wall, 1),
                    "same_forecasts_as_sequential": bool(
                        np.array_equal(result.test_predictions, reference.test_predictions)
                    ),
                }
            )
    table = pd.DataFrame(rows)
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / "concurrency.csv", index=False)
    header = (
        f"ETTh1 default split, gru and lstm (units 64, segment 24); {platform.machine()}, "
        f"{os.cpu_count()} cores\n\n"
    )
    (RESULTS / "concurrency.md").write_text(header + table.to_markdown(index=False) + "\n")
    print(header + table.to_markdown(index=False))


if __name__ == "__main__":
    main()
