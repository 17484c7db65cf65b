"""Which RNN design should be the default? Trains every candidate on the bundled ETTh1 default
split under several designs and prints test scores (original units) and training time.

    uv run --group bench python benchmarks/candidates.py [--variants default,no_normalize,step_wise]

Writes benchmarks/results/candidates.csv and candidates.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pandas as pd  # noqa: E402

from forecasting.config import PipelineConfig, season_for  # noqa: E402
from forecasting.data import load_series  # noqa: E402
from forecasting.training import train_candidate  # noqa: E402
from forecasting.validation import validate  # noqa: E402
from forecasting.windowing import make_folds  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = {
    "default": {},
    "no_normalize": {"normalize_window": False},
    "segment_12": {"segment_length": 12},
    "segment_8": {"segment_length": 8},
    "step_wise": {"segment_length": 1},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--kinds", default="naive,seasonal_naive,simple_rnn,gru,lstm")
    parser.add_argument("--output", default="candidates", help="file stem in results/")
    args = parser.parse_args()
    config = PipelineConfig()
    data = validate(load_series(config.data), config.data, config.model, config.evaluation)
    season = season_for(data.freq, config.model.season_length)
    rows = []
    started = time.perf_counter()
    for variant in args.variants.split(","):
        model = config.model.model_copy(update=VARIANTS[variant])
        windows = make_folds(data.frame, ["y"], model, config.evaluation)[-1]  # last fold
        for kind in args.kinds.split(","):
            if variant != "default" and kind in ("naive", "seasonal_naive"):
                continue
            result = train_candidate(kind, [windows], model, season, config.seed)
            rows.append(
                {
                    "variant": variant,
                    "model": kind,
                    "status": result.status,
                    **{k: round(v, 4) for k, v in result.metrics.items()},
                    "epochs": result.epochs,
                    "best_epoch": result.best_epoch,
                    "seconds": round(result.seconds, 1),
                    "seconds_per_epoch": round(result.seconds / max(result.epochs, 1), 2),
                    "n_test_windows": len(windows.test),
                }
            )
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    RESULTS.mkdir(exist_ok=True)
    target = RESULTS / args.output
    table.to_csv(target.with_suffix(".csv"), index=False)
    header = (
        f"ETTh1 default split (OT, horizon {config.model.horizon}, input_size "
        f"{config.model.input_size}, units {config.model.units}, seed {config.seed}); "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"wall {time.perf_counter() - started:.0f} s\n\n"
    )
    target.with_suffix(".md").write_text(header + table.to_markdown(index=False) + "\n")
    print(header + table.to_markdown(index=False))


if __name__ == "__main__":
    main()
