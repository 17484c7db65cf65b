"""How fast do the RNNs train on this CPU, against its peak, and where does the time go?

Four sections, one table (`section` column):
- `throughput`: windows per second, seconds per epoch and achieved GFLOP/s per model kind and
  width (32, 64, 128 units) at input_size 168, batch 256, on every ETTh1 window (segments of 24,
  the default, and step by step for 64 units).
- `variants`: GRU(64) trained to early stopping as the pipeline trains it, on ETTh1's protocol
  (ett.py's splits, horizon 24) and on the first 100 M4 Hourly series (one fold, horizon 48),
  with one change at a time (the recurrent loop or unrolled, XLA's jit_compile, batch size with
  a scaled learning rate, seed ensembles trained jointly or one member after another), each in
  a fresh process: wall and CPU seconds, epochs, validation and test MSE, so a speed-up is only
  taken if the validation accuracy stays (the test columns are reported, never used to choose).
- `scaling`: how windowing, a GRU epoch and the ridge fit grow with series length (ETTh1
  prefixes) and with the number of series (M4 Hourly's 414, topped up to 1,000 with 960-step
  pieces of the ETT files' columns).
- `end_to_end`: `forecast run` per stage and peak RSS, from results/run_time.csv (run
  `benchmarks/run_time.py` first; this script does not repeat it).

    uv run --group bench python benchmarks/speed.py [--quick] [--variants 'A;B' --datasets 'C']

FLOPs count the matrix multiplies only: per recurrent step 2 * gates * units * (inputs + units)
(gates: SimpleRNN 1, GRU 3, LSTM 4), plus the Dense head's 2 * units * horizon, times 3 for a
training step (forward, and a backward pass that costs about twice the forward).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from common import RESULTS, Report, long_frame, shared_file  # noqa: E402
from ett import load_ot, split_windows  # noqa: E402
from m4_hourly import load_m4  # noqa: E402

from forecasting.config import EvaluationConfig, ModelConfig  # noqa: E402
from forecasting.windowing import WindowSet, make_folds  # noqa: E402

SEED = 42
GATES = {"simple_rnn": 1, "gru": 3, "lstm": 4}
# name: (ModelConfig changes, environment) for the `variants` section. The environment sets
# the training-speed constants of forecasting.models.rnn in the variant's own process:
# RECURRENT_BENCH_UNROLL (UNROLL_MAX_STEPS; 0 keeps the loop), RECURRENT_BENCH_JIT
# (JIT_COMPILE), RECURRENT_BENCH_STEPS (STEPS_PER_EXECUTION); unset, the library's default.
LOOP = {"RECURRENT_BENCH_UNROLL": "0", "RECURRENT_BENCH_JIT": "0"}
UNROLLED = {"RECURRENT_BENCH_UNROLL": "32", "RECURRENT_BENCH_JIT": "0"}
VARIANTS: dict[str, tuple[dict, dict]] = {
    "before: recurrent loop, no XLA, batch 256": ({}, LOOP),
    "XLA (jit_compile)": ({}, {"RECURRENT_BENCH_UNROLL": "0", "RECURRENT_BENCH_JIT": "1"}),
    "unrolled (7 segments)": ({}, UNROLLED),
    "unrolled + XLA": ({}, {"RECURRENT_BENCH_UNROLL": "32", "RECURRENT_BENCH_JIT": "1"}),
    "unrolled, batch 512, learning rate 1.4e-3": (
        {"batch_size": 512, "learning_rate": 1.4e-3},
        UNROLLED,
    ),
    "unrolled, batch 1024, learning rate 2e-3": (
        {"batch_size": 1024, "learning_rate": 2e-3},
        UNROLLED,
    ),
    "ensemble of 3, trained jointly (unrolled)": ({"ensemble_size": 3}, UNROLLED),
    "ensemble of 3, members trained one after another (unrolled)": (
        {"ensemble_size": 3, "separate": True},
        UNROLLED,
    ),
    "ensemble of 5, trained jointly (unrolled)": ({"ensemble_size": 5}, UNROLLED),
}
# Where the variants train: ETTh1's protocol (ett.py's splits, horizon 24) and the last fold of
# the first M4 Hourly series (horizon 48), both z-scored as their scripts do.
VARIANT_DATA = {"ETTh1": 24, "M4 Hourly (first 100 series)": 48}


def peak_gflops() -> tuple[float, str]:
    """FP32 peak of this CPU as assumed here, and how it was derived."""
    mhz = max(
        float(line.split(":")[1])
        for line in Path("/proc/cpuinfo").read_text().splitlines()
        if line.startswith("cpu MHz")
    )
    cores = os.cpu_count() or 1
    peak = cores * mhz / 1000 * 2 * 16 * 2
    return peak, (
        f"{cores} cores x {mhz / 1000:.2f} GHz (the clock /proc/cpuinfo reports; turbo unknown "
        f"under KVM) x 2 AVX-512 FMA units x 16 float32 lanes x 2 FLOPs per FMA = {peak:.0f} "
        "GFLOP/s"
    )


def sgemm_gflops(size: int = 2048, repeats: int = 5) -> float:
    """Achieved float32 GFLOP/s of NumPy's BLAS on a square matrix multiply (a practical cap)."""
    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    a @ a
    started = time.perf_counter()
    for _ in range(repeats):
        a @ a
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9


def train_flops(kind: str, config: ModelConfig, n_features: int = 1) -> float:
    """Matrix-multiply FLOPs of one training step on one window (see the module docstring)."""
    segment = min(config.segment_length, config.input_size)
    steps, inputs = config.input_size // segment, segment * n_features
    recurrent = steps * 2 * GATES[kind] * config.units * (inputs + config.units)
    return 3.0 * (recurrent + 2 * config.units * config.horizon)


def epoch_clock(times: list[float], cpu_times: list[float] | None = None):
    """A Keras callback that appends each epoch's wall time to `times` and the process's CPU
    time (all threads; less disturbed than wall time on a shared machine) to `cpu_times`."""
    import keras

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()
            self.cpu_started = time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.started)
            if cpu_times is not None:
                cpu_times.append(time.process_time() - self.cpu_started)

    return Clock()


def epoch_seconds(kind: str, config: ModelConfig, train: WindowSet, validation: WindowSet) -> float:
    """Median seconds of epochs 2 and 3 (the first one traces the graph)."""
    from forecasting.models.rnn import RNNForecaster

    times: list[float] = []
    config = config.model_copy(update={"max_epochs": 3, "patience": 100})
    RNNForecaster(kind, config, train.inputs.shape[2], SEED).fit(
        train, validation, callbacks=[epoch_clock(times)]
    )
    return float(np.median(times[1:]))


def throughput(quick: bool, peak: float) -> list[dict]:
    """Windows/s, s/epoch and GFLOP/s per kind and width on every ETTh1 window."""
    windows = split_windows(load_ot("ETTh1"), 1, 24, input_size=168)
    train, validation = windows["train"], windows["validation"]
    rows = []
    designs = [(kind, units, 24) for kind in GATES for units in (32, 64, 128)]
    designs += [(kind, 64, 1) for kind in GATES]
    for kind, units, segment in designs[:3] if quick else designs:
        config = ModelConfig(horizon=24, units=units, segment_length=segment)
        seconds = epoch_seconds(kind, config, train, validation)
        rate = len(train) / seconds
        gflops = train_flops(kind, config) * rate / 1e9
        rows.append(
            {
                "section": "throughput",
                "model": kind,
                "units": units,
                "segment_length": segment,
                "batch_size": config.batch_size,
                "n_windows": len(train),
                "seconds_per_epoch": seconds,
                "windows_per_second": rate,
                "gflops": gflops,
                "percent_of_peak": 100 * gflops / peak,
            }
        )
        print(rows[-1], flush=True)
    return rows


def variant_windows(dataset: str) -> dict[str, WindowSet]:
    """Training, validation and test windows of one `VARIANT_DATA` dataset."""
    if dataset == "ETTh1":
        return split_windows(load_ot("ETTh1"), 1, 24, input_size=168)
    model = ModelConfig(horizon=VARIANT_DATA[dataset])
    fold = make_folds(many_series(100), ["y"], model, EvaluationConfig(n_folds=1))[0]
    return {"train": fold.train, "validation": fold.validation, "test": fold.test}


def _speed_settings() -> None:
    """Applies this process's RECURRENT_BENCH_* settings (see VARIANTS) to the library."""
    policy = os.environ.get("RECURRENT_BENCH_POLICY")
    if policy:
        import keras

        keras.mixed_precision.set_global_policy(policy)
    from forecasting.models import rnn

    for variable, name in (
        ("RECURRENT_BENCH_UNROLL", "UNROLL_MAX_STEPS"),
        ("RECURRENT_BENCH_JIT", "JIT_COMPILE"),
        ("RECURRENT_BENCH_STEPS", "STEPS_PER_EXECUTION"),
    ):
        if os.environ.get(variable):
            value = int(os.environ[variable])
            setattr(rnn, name, bool(value) if name == "JIT_COMPILE" else value)


def run_variant(name: str, dataset: str) -> dict:
    """Trains GRU(64) to early stopping on `dataset` with one variant; in this process.

    "members trained one after another" fits each member as a single model from its member
    seed and averages their forecasts, which is what the joint ensemble computes in one model.
    """
    from forecasting.models.rnn import RNNForecaster, member_seed

    _speed_settings()
    changes = dict(VARIANTS[name][0])
    separate = changes.pop("separate", False)
    windows = variant_windows(dataset)
    config = ModelConfig(horizon=VARIANT_DATA[dataset], **changes)
    members = (
        [
            (config.model_copy(update={"ensemble_size": 1}), member_seed(SEED, number))
            for number in range(config.ensemble_size)
        ]
        if separate
        else [(config, SEED)]
    )
    times: list[float] = []
    cpu_times: list[float] = []
    epochs = 0
    errors = {"validation": 0.0, "test": 0.0}
    started, cpu_started = time.perf_counter(), time.process_time()
    for member_config, seed in members:
        model = RNNForecaster("gru", member_config, 1, seed).fit(
            windows["train"], windows["validation"], callbacks=[epoch_clock(times, cpu_times)]
        )
        epochs += model.epochs_trained
        for split in errors:
            errors[split] = errors[split] + model.predict(windows[split].inputs) / len(members)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    for split in errors:
        errors[split] = errors[split] - windows[split].targets
    per_epoch = float(np.median(times[1:]))
    return {
        "section": "variants",
        "dataset": dataset,
        "model": "gru",
        "variant": name,
        "units": 64,
        "ensemble_size": config.ensemble_size,
        "batch_size": config.batch_size,
        "n_windows": len(windows["train"]),
        "seconds_per_epoch": per_epoch,
        "windows_per_second": len(windows["train"]) / per_epoch,
        "epochs": epochs,
        "seconds": seconds,
        "cpu_seconds_per_epoch": float(np.median(cpu_times[1:])),
        "cpu_seconds": cpu_seconds,
        "validation_mse": float(np.mean(errors["validation"] ** 2)),
        "validation_mae": float(np.mean(np.abs(errors["validation"]))),
        "mse": float(np.mean(errors["test"] ** 2)),
        "mae": float(np.mean(np.abs(errors["test"]))),
    }


def variants(names: list[str], datasets: list[str]) -> list[dict]:
    """Each variant and dataset in a fresh process, so settings and dtype policies do not leak."""
    rows = []
    for dataset in datasets:
        for name in names:
            output = subprocess.run(
                [sys.executable, __file__, "--variant", name, "--dataset", dataset],
                env={**os.environ, **VARIANTS[name][1]},
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            rows.append(json.loads(output.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    return rows


def many_series(count: int) -> pd.DataFrame:
    """`count` real hourly series as a long frame: M4 Hourly's, then 960-step ETT pieces."""
    _, series, _ = load_m4()
    for name in ("ETTh1.csv", "ETTh2.csv", "ETTm1.csv", "ETTm2.csv"):
        values = pd.read_csv(shared_file(name)).drop(columns="date").to_numpy(np.float64)
        for column in values.T:
            series.extend(np.array_split(column, len(column) // 960))
    return long_frame({f"s{number}": values for number, values in enumerate(series[:count])})


def scaling(quick: bool) -> list[dict]:
    """Windowing, one GRU epoch and the ridge fit against series length and series count."""
    from forecasting.models.linear import LinearForecaster

    model = ModelConfig(horizon=24)
    evaluation = EvaluationConfig(n_folds=1)
    ett = load_ot("ETTh1")
    cases = [
        (f"ETTh1 first {n} steps", long_frame({"OT": ett[:n]}, "2016-07-01"))
        for n in (2000, 4000, 8000, 14400)
    ]
    cases += [(f"{n} series", many_series(n)) for n in (10, 100, 414, 1000)]
    rows = []
    for label, frame in cases[:2] if quick else cases:
        started = time.perf_counter()
        fold = make_folds(frame, ["y"], model, evaluation)[0]
        windowing = time.perf_counter() - started
        started = time.perf_counter()
        LinearForecaster(model, SEED).fit(fold.train, fold.validation)
        ridge = time.perf_counter() - started
        rows.append(
            {
                "section": "scaling",
                "variant": label,
                "model": "gru",
                "units": 64,
                "n_series": frame.unique_id.nunique(),
                "n_windows": len(fold.train),
                "windowing_seconds": windowing,
                "seconds_per_epoch": epoch_seconds("gru", model, fold.train, fold.validation),
                "ridge_seconds": ridge,
            }
        )
        print(rows[-1], flush=True)
    return rows


def end_to_end() -> list[dict]:
    """`forecast run`'s stages and peak RSS as benchmarks/run_time.py last measured them."""
    path = RESULTS / "run_time.csv"
    if not path.is_file():
        return []
    stages = pd.read_csv(path)
    return [
        {"section": "end_to_end", "variant": row.stage, "seconds": row.seconds}
        for row in stages.itertuples()
    ]


NOTES = """\
Variants: `cpu_seconds` is the training process's CPU time (all threads), steadier than wall
time on a shared machine; `*_change_percent` compare each variant with the `before` row of its
dataset. Taken: unrolling loops of at most 32 steps (library default `UNROLL_MAX_STEPS`), the
same model with fewer while-loop steps. Not taken: XLA (its compile time per fit exceeds what it
saves), larger batches (no less CPU time per epoch here). Seed ensembles (`ensemble_size`) are
trained jointly (less CPU than members one after another); they cost about their size in time,
so the default stays 1 and they are an option where accuracy is worth the time.

"""


def with_changes(table: pd.DataFrame) -> pd.DataFrame:
    """Adds each variant's CPU time and validation MSE change against its dataset's `before`."""
    if "dataset" not in table:
        return table
    variants = table["section"] == "variants"
    before = table[variants & table["variant"].str.startswith("before")].set_index("dataset")
    for column in ("cpu_seconds", "validation_mse"):
        reference = table["dataset"].map(before[column])
        table.loc[variants, f"{column}_change_percent"] = 100 * (table[column] / reference - 1)
    return table


def replace_variants(rows: list[dict], datasets: list[str]) -> pd.DataFrame:
    """results/speed.csv with its variants rows of `datasets` replaced by `rows`."""
    path = RESULTS / "speed.csv"
    previous = pd.read_csv(path) if path.is_file() else pd.DataFrame({"section": []})
    if "dataset" not in previous:
        previous["dataset"] = None
    stale = (previous["section"] == "variants") & (
        previous["dataset"].isin(datasets) | previous["dataset"].isna()
    )
    kept = previous[~stale].drop(columns=[c for c in previous if c.endswith("_change_percent")])
    table = pd.concat([kept, pd.DataFrame(rows)], ignore_index=True)
    order = {"throughput": 0, "variants": 1, "scaling": 2, "end_to_end": 3}
    table = table.sort_values("section", key=lambda s: s.map(order), kind="stable")
    return tidy(with_changes(table.reset_index(drop=True)))


def tidy(table: pd.DataFrame) -> pd.DataFrame:
    """What each row is first; errors to 5 decimals (they differ in the 4th), the rest to 3."""
    first = [c for c in ("section", "dataset", "variant", "model") if c in table]
    table = table[first + [c for c in table if c not in first]]
    errors = [c for c in table if c.endswith(("mse", "mae"))]
    return table.round(3).assign(**{c: table[c].round(5) for c in errors})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few cases of each section")
    parser.add_argument(
        "--variants",
        help="only these VARIANTS (names separated by ';'); their rows replace those of the same "
        "datasets in results/speed.csv, the other sections are kept",
    )
    parser.add_argument(
        "--datasets", default=";".join(VARIANT_DATA), help="with --variants: separated by ';'"
    )
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # one variant, in a subprocess
    parser.add_argument("--dataset", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.dataset)))
        return
    report = Report("speed", "Training speed against this CPU's peak", SEED)
    if args.variants:
        datasets = args.datasets.split(";")
        rows = variants(args.variants.split(";"), datasets)
        carried = (
            f"This command reran the variants on {', '.join(datasets)} only; the other rows are "
            "carried over from the previous results/speed.csv (see its history for their command)."
        )
        print(report.write(replace_variants(rows, datasets), notes=NOTES + carried))
        return
    peak, derivation = peak_gflops()
    rows = throughput(args.quick, peak)
    rows += [] if args.quick else variants(list(VARIANTS), list(VARIANT_DATA))
    rows += scaling(args.quick) + end_to_end()
    table = tidy(with_changes(pd.DataFrame(rows)))
    notes = NOTES + (
        f"Peak assumed: {derivation}. NumPy's float32 matrix multiply (2048 x 2048) reached "
        f"{sgemm_gflops():.0f} GFLOP/s here, a practical ceiling for dense work.\n\n"
        "The end_to_end rows are copied from results/run_time.csv (benchmarks/run_time.py)."
    )
    print(report.write(table, notes=notes))


if __name__ == "__main__":
    main()
