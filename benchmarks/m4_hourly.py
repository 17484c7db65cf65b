"""M4 Hourly: our global models against statsforecast's AutoETS and AutoARIMA, on M4's metrics.

Trains one global model per kind over all 414 series (horizon 48, the library's other defaults),
with the M4 test block as the single backtest fold, picks the champion on the validation slice
as the pipeline would, and fits statsforecast's SeasonalNaive, AutoETS and AutoARIMA per series.
MASE and sMAPE follow the M4 definitions (scale: in-sample lag-24 MAE over the whole training
part; both averaged over series).

    uv run --group bench python benchmarks/m4_hourly.py [--quick] [--arima approx|default]

To rerun in under 20 minutes on 2 cores, the RNNs stop after at most 20 epochs (`--max-epochs`)
and AutoARIMA searches with `approximation=True` (CSS during the search, as R's auto.arima does
for series this long) and at most one seasonal AR and one seasonal MA term (~8 min here, against
~24 min with statsforecast's max_P = max_Q = 2: `--arima approx`; its default exact search,
`--arima default`, takes 5-6 hours). `--quick` trains naive, seasonal_naive, linear and gru only
and skips AutoETS and AutoARIMA.
Writes benchmarks/results/m4_hourly.csv and m4_hourly.md.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from common import Report, long_frame, shared_file  # noqa: E402

from forecasting.config import EvaluationConfig, ModelConfig  # noqa: E402
from forecasting.evaluation import insample_scale, mase, predict_windows, smape  # noqa: E402
from forecasting.models import kinds, spec  # noqa: E402
from forecasting.training import CandidateResult, train_candidate  # noqa: E402
from forecasting.windowing import Windows, make_folds  # noqa: E402

HORIZON, SEASON, SEED = 48, 24, 42
MAX_EPOCHS = 20  # the library's default is 100; lstm and simple_rnn ran 73 and 94 epochs here
QUICK_KINDS = ("naive", "seasonal_naive", "linear", "gru")
# Nixtla/statsforecast experiments/arima/README.md: auto_arima_nixtla, M4 Hourly, 12.92 min.
PUBLISHED_ARIMA_MASE = 0.92
ARIMA_SEARCH = {
    "fast": {"approximation": True, "max_P": 1, "max_Q": 1},
    "approx": {"approximation": True},
    "default": {},
}
ARIMA_NOTE = (
    "`fast` (the default) searches with CSS (`approximation=True`) and at most one seasonal AR "
    "and one seasonal MA term; on 30 evenly spaced series it scored MASE 0.9841 in 34 s, "
    "against 0.9848 in 103 s with statsforecast's max_P = max_Q = 2 (`--arima approx`)."
)
COLUMNS = ["dataset", "horizon", "model", "source", "mase", "smape", "n_series",
           "n_test_windows", "seconds", "epochs"]  # fmt: skip


def load_m4() -> tuple[list[str], list[np.ndarray], np.ndarray]:
    """Series ids, each series' training values (NaN padding dropped) and the (414, 48) test."""
    train = pd.read_csv(shared_file("M4_Hourly-train.csv"), index_col="V1")
    test = pd.read_csv(shared_file("M4_Hourly-test.csv"), index_col="V1")
    assert list(train.index) == list(test.index), "train and test list different series"
    histories = [row[~np.isnan(row)] for row in train.to_numpy(np.float64)]
    return [str(i) for i in train.index], histories, test.to_numpy(np.float64)


def m4_scores(truth: np.ndarray, forecast: np.ndarray, scale: np.ndarray) -> dict[str, float]:
    """M4 MASE and sMAPE of one 48-step forecast per series (rows); `scale` per series."""
    return {"mase": mase(truth, forecast, scale), "smape": smape(truth, forecast, scale)}


def run_statsforecast(
    ids: list[str], histories: list[np.ndarray], arima: str | None, ets: bool = True
) -> list[tuple[str, np.ndarray, float]]:
    """Fits SeasonalNaive, AutoETS (if `ets`) and AutoARIMA (unless `arima` is None) per series;
    one row per model with its (n_series, 48) forecasts in `ids` order and its seconds."""
    from statsforecast import StatsForecast
    from statsforecast.models import AutoARIMA, AutoETS, SeasonalNaive

    frame = pd.DataFrame(
        {
            "unique_id": np.repeat(ids, [len(h) for h in histories]),
            "ds": np.concatenate([np.arange(len(h)) for h in histories]),  # int steps, no dates
            "y": np.concatenate(histories),
        }
    )
    models = [SeasonalNaive(SEASON), *([AutoETS(season_length=SEASON)] if ets else [])]
    if arima is not None:
        models.append(AutoARIMA(season_length=SEASON, **ARIMA_SEARCH[arima]))
    rows = []
    for model in models:
        name = str(model)
        started = time.perf_counter()
        forecast = StatsForecast(models=[model], freq=1, n_jobs=-1).forecast(df=frame, h=HORIZON)
        seconds = time.perf_counter() - started
        step = forecast.groupby("unique_id", sort=False).cumcount()  # ds differ by length
        wide = forecast.assign(step=step).pivot(index="unique_id", columns="step", values=name)
        label = f"{name} {arima}" if name == "AutoARIMA" and arima != "default" else name
        rows.append((f"{label} (statsforecast)", wide.loc[ids].to_numpy(np.float64), seconds))
        print(f"statsforecast {label}: {seconds:.0f} s", flush=True)
    return rows


def m4_fold(ids: list[str], histories: list[np.ndarray], test: np.ndarray) -> Windows:
    """The pipeline's single backtest fold over train + test; its test block is M4's test."""
    frame = long_frame(
        {
            sid: np.concatenate([h, future])
            for sid, h, future in zip(ids, histories, test, strict=True)
        }
    )
    evaluation = EvaluationConfig(n_folds=1, fold_size=HORIZON)
    fold = make_folds(frame, ["y"], ModelConfig(horizon=HORIZON), evaluation)[0]
    assert fold.series_ids == ids and np.array_equal(fold.test.series, np.arange(len(ids)))
    assert np.array_equal(fold.test_start, [len(h) for h in histories])
    truth = fold.scaling.descale_target(fold.test.targets.astype(np.float64), fold.test.series)
    assert np.allclose(truth, test, rtol=1e-4, atol=1e-3), "test windows differ from the CSV"
    return fold


def validation_mase(result: CandidateResult, fold: Windows) -> float:
    """MASE on the fold's validation windows (scale from before them), as selection sees it."""
    split = fold.validation
    truth = fold.scaling.descale_target(split.targets.astype(np.float64), split.series)
    forecast = predict_windows(result.fitted(), fold, split)
    return mase(truth, forecast, insample_scale(fold, SEASON)[split.series])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 kinds, no AutoETS or AutoARIMA")
    parser.add_argument(
        "--arima", choices=list(ARIMA_SEARCH), default="fast", help="AutoARIMA's search"
    )
    parser.add_argument("--max-epochs", type=int, default=MAX_EPOCHS, help="cap for the RNNs")
    args = parser.parse_args()
    report = Report("m4_hourly", "M4 Hourly: global models vs statsforecast", SEED)
    warnings.filterwarnings("ignore", message="possible convergence problem")  # AutoARIMA
    ids, histories, test = load_m4()
    scale = np.array([np.mean(np.abs(h[SEASON:] - h[:-SEASON])) for h in histories])
    arima = None if args.quick else args.arima
    rows = []
    for name, forecast, seconds in run_statsforecast(ids, histories, arima, ets=not args.quick):
        rows.append({"model": name, **m4_scores(test, forecast, scale), "seconds": seconds})

    fold = m4_fold(ids, histories, test)
    config = ModelConfig(horizon=HORIZON, max_epochs=args.max_epochs)
    validation = {}
    for kind in QUICK_KINDS if args.quick else kinds():
        result = train_candidate(kind, [fold], config, SEASON, SEED, progress=print)
        if not result.ok:
            continue
        validation[kind] = validation_mase(result, fold)
        epochs = result.epochs if spec(kind).trains else None
        rows.append({"model": kind, **m4_scores(test, result.predictions[0], scale),
                     "seconds": result.seconds, "epochs": epochs})  # fmt: skip
        print(rows[-1], f"validation mase {validation[kind]:.4f}", flush=True)
    champion = min(validation, key=validation.__getitem__)  # ties: the simpler kind
    best = next(row for row in rows if row["model"] == champion)
    published = {"model": "AutoARIMA", "source": "published (statsforecast)",
                 "mase": PUBLISHED_ARIMA_MASE}  # fmt: skip
    table = pd.DataFrame(
        [{**best, "model": f"champion ({champion})"}, *sorted(rows, key=lambda r: r["mase"])]
    ).assign(source="this script")
    table = pd.concat([table, pd.DataFrame([published])], ignore_index=True).assign(
        dataset="M4 Hourly", horizon=HORIZON, n_series=len(ids), n_test_windows=len(fold.test)
    )
    table = table[COLUMNS].round({"mase": 4, "smape": 3, "seconds": 1})
    table = table.astype({"epochs": "Int64"}).astype(object).where(table.notna(), "")
    arima_row = next((r for r in rows if r["model"].startswith("AutoARIMA")), None)
    text = notes(champion, best["mase"], validation, arima_row, fold, args.max_epochs)
    print(report.write(table, notes=text))


def notes(
    champion: str,
    champion_mase: float,
    validation: dict,
    arima: dict | None,
    fold: Windows,
    max_epochs: int,
) -> str:
    """Plain notes: how the champion was chosen, whether the target is met, the caveats."""
    ours = f"{arima['model']} {arima['mase']:.4f}" if arima else "AutoARIMA not run (--quick)"
    met = champion_mase < PUBLISHED_ARIMA_MASE and (arima is None or champion_mase < arima["mase"])
    windows = np.bincount(fold.train.series)
    scores = ", ".join(f"{kind} {value:.4f}" for kind, value in validation.items())
    return f"""
**Champion**: `{champion}`, the kind with the lowest MASE on the validation windows (the last
10% of each series' training part, never the test), as the pipeline chooses without looking
at the test. Validation MASE: {scores}.

**Target "champion MASE below AutoARIMA's": {"met" if met else "not met"}.** Champion test
MASE {champion_mase:.4f}; this script's {ours}; published AutoARIMA {PUBLISHED_ARIMA_MASE}
(statsforecast's experiments/arima README: default settings, 12.92 min on their machine).

AutoARIMA here: {ARIMA_NOTE}

Caveats: one global model per kind over all 414 series, library defaults except horizon 48 and
at most {max_epochs} epochs, to keep the script under 20 minutes (input_size 168, units 64,
segment_length 24, normalize_window, patience 5, batch 256, seed {SEED}); an `epochs` of
{max_epochs} means the cap, not early stopping, ended training. input_size 168 leaves
{windows.min()}-{windows.max()} stride-1 training windows per series ({len(fold.train)} in all)
and {len(fold.validation)} validation windows; the validation slice also drives early stopping,
so the trained kinds' validation scores are a little optimistic next to the naive ones. Each
series is z-scored with its own mean and std from before the validation slice. MASE: per series,
mean |error| over the 48 test steps divided by the in-sample lag-24 MAE over the whole training
part, then the mean over series; sMAPE per series, then the mean. `seconds`: fit + forecast wall
time on 2 cores (statsforecast with n_jobs=-1, numba compilation included); `linear` is a ridge
regression solved in closed form (its one "epoch").
"""


if __name__ == "__main__":
    main()
