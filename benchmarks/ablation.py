"""Which ingredients make the RNNs forecast well: target scaling, training loss, the residual
(hybrid) base and the lookback, each switched on and off, on M4 Hourly and ETTh1.

M4 Hourly: the official split (414 series, h=48), one global model over all series, trained on
each series' training part with early stopping on its last 10% (the validation windows), scored
on M4's test with M4's MASE (in-sample lag-24 MAE over the whole training part). ETTh1: OT on
the Informer protocol (train [0, 8640), validation [8640, 11520), test [11520, 14400)), the
library's scaling fitted on the training rows, every stride-1 window, at horizons 24, 48, 96
and 168; MSE on the protocol's z-scored scale and MASE (lag-24 MAE of the training rows).

Every variant is one `ModelConfig`; the rows go from today's recipe (z-score, MSE, no base,
input 168) one ingredient at a time. `--kinds` trains those kinds at the variant with the lowest
M4 validation MASE among the gru rows (chosen on validation, never on test).

`--calendar` runs only the calendar comparison: the default recipe (mase, mae, scaled windows,
168) without and with `model.calendar` (sine and cosine of hour of day and day of week as extra
input channels), for gru, and on ETTh1 also for linear and local_linear; its rows replace the
rows of the same dataset, horizon, model and variant and keep every other row. M4 Hourly has no
real timestamps here (M4-info.csv is missing): every series is dated from 2000-01-01 00:00, so
its channels carry each series' phase modulo 24 and 168 steps, not its true hour and weekday.

    uv run --group bench python benchmarks/ablation.py [--datasets m4,etth1] [--max-epochs 20]
    uv run --group bench python benchmarks/ablation.py --calendar [--datasets m4,etth1]

Writes benchmarks/results/ablation.csv and ablation.md.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from common import RESULTS, ROOT, Report, long_frame  # noqa: E402
from m4_hourly import load_m4  # noqa: E402

from forecasting.config import EvaluationConfig, ModelConfig  # noqa: E402
from forecasting.evaluation import mase  # noqa: E402
from forecasting.models import make_forecaster, spec  # noqa: E402
from forecasting.windowing import (  # noqa: E402
    calendar_channels,
    fit_scaling,
    make_folds,
    window_set,
)

SEED, SEASON = 42, 24
DEFAULT_RECIPE = "mase, mae, scaled windows"
CALENDAR = f"{DEFAULT_RECIPE}, calendar"
# name: (target_scaling, loss, base, input_size, scale_window); the first rows change one thing
# at a time from today's recipe, the rest one thing from the window-scaled recipe. A name ending
# in ", calendar" adds `model.calendar` (see `calendar_of`).
VARIANTS = {
    "today: zscore, mse, no base, 168": ("zscore", "mse", "none", 168, False),
    "mase scaling": ("mase", "mse", "none", 168, False),
    "mase, mae loss": ("mase", "mae", "none", 168, False),
    "mase, huber loss": ("mase", "huber", "none", 168, False),
    "mase, mae, scaled windows": ("mase", "mae", "none", 168, True),
    "zscore, mae, scaled windows": ("zscore", "mae", "none", 168, True),
    "mase, mse, scaled windows": ("mase", "mse", "none", 168, True),
    "mase, huber, scaled windows": ("mase", "huber", "none", 168, True),
    "mase, mae, scaled windows, seasonal_naive base": ("mase", "mae", "seasonal_naive", 168, True),
    "mase, mae, scaled windows, 336": ("mase", "mae", "none", 336, True),
    "mase, mae, scaled windows, seasonal_naive base, 336": (
        "mase", "mae", "seasonal_naive", 336, True,
    ),
    CALENDAR: ("mase", "mae", "none", 168, True),
}  # fmt: skip
LINEAR_VARIANTS = (
    "today: zscore, mse, no base, 168",
    "mase scaling",
    "mase, mae, scaled windows, 336",
)
ETT_BORDERS = (0, 8640, 11520, 14400)
ETT_HORIZONS = (24, 48, 96, 168)
CALENDAR_CYCLES = ("day", "week")  # hourly data
COLUMNS = ["dataset", "horizon", "model", "variant", "target_scaling", "loss", "base",
           "scale_window", "calendar", "input_size", "validation_mase", "mase", "mse", "seconds",
           "epochs"]  # fmt: skip
KEY = ["dataset", "horizon", "model", "variant"]


def calendar_of(variant: str) -> bool:
    return variant.endswith(", calendar")


def model_config(variant: str, horizon: int, max_epochs: int) -> ModelConfig:
    scaling, loss, base, input_size, scale_window = VARIANTS[variant]
    return ModelConfig(
        calendar=calendar_of(variant),
        horizon=horizon,
        input_size=input_size,
        target_scaling=scaling,
        loss=loss,
        base=base,
        scale_window=scale_window,
        max_epochs=max_epochs,
    )


def fit_and_predict(kind: str, config: ModelConfig, splits: dict, n_features: int = 1) -> tuple:
    """Fits `kind` on the scaled splits; returns (forecaster, {split: scaled forecasts}, s)."""
    started = time.perf_counter()
    model = make_forecaster(kind, config, n_features, SEASON, SEED)
    model.fit(splits["train"], splits["validation"])
    forecasts = {name: model.predict(splits[name].inputs) for name in ("validation", "test")}
    return model, forecasts, time.perf_counter() - started


class M4:
    """The official M4 Hourly split as one backtest fold per lookback and scaling."""

    def __init__(self) -> None:
        self.ids, self.histories, self.test = load_m4()
        self.frame = long_frame(
            {
                sid: np.concatenate([history, future])
                for sid, history, future in zip(self.ids, self.histories, self.test, strict=True)
            }
        )
        self.scale = np.array([np.mean(np.abs(h[SEASON:] - h[:-SEASON])) for h in self.histories])
        self._folds: dict = {}

    def fold(self, config: ModelConfig):
        key = (config.input_size, config.target_scaling, config.calendar)
        if key not in self._folds:
            evaluation = EvaluationConfig(n_folds=1, fold_size=48)
            self._folds[key] = make_folds(self.frame, ["y"], config, evaluation, SEASON)[0]
        return self._folds[key]

    def row(self, kind: str, variant: str, max_epochs: int, **overrides) -> dict:
        config = model_config(variant, 48, max_epochs).model_copy(update=overrides)
        fold = self.fold(config)
        splits = {"train": fold.train, "validation": fold.validation, "test": fold.test}
        model, scaled, seconds = fit_and_predict(kind, config, splits, len(fold.features))
        truth, y_hat = {}, {}
        for name in ("validation", "test"):
            split = splits[name]
            truth[name] = fold.scaling.descale_target(
                split.targets.astype(np.float64), split.series
            )
            y_hat[name] = fold.scaling.descale_target(scaled[name], split.series)
        # Validation windows are scored with the scale of the data before them, as selection is.
        val_scale = self.scale_before(fold)[fold.validation.series]
        return {
            "dataset": "M4 Hourly",
            "horizon": 48,
            "validation_mase": mase(truth["validation"], y_hat["validation"], val_scale),
            "mase": mase(truth["test"], y_hat["test"], self.scale),
            "mse": np.nan,
            "seconds": seconds,
            "epochs": model.epochs_trained,
        }

    @staticmethod
    def scale_before(fold) -> np.ndarray:
        return np.array(
            [
                np.mean(np.abs(v[SEASON:end, 0] - v[: end - SEASON, 0]))
                for v, end in zip(fold.values, fold.train_end, strict=True)
            ]
        )


class ETTh1:
    """OT on the Informer protocol, scaled by the library's `fit_scaling` on the train rows."""

    def __init__(self) -> None:
        frame = pd.read_csv(ROOT / "data" / "ETTh1.csv", parse_dates=["date"])[: ETT_BORDERS[-1]]
        self.values = frame["OT"].to_numpy(np.float64)[:, None]
        self.calendar = calendar_channels(frame["date"], CALENDAR_CYCLES)
        train = self.values[: ETT_BORDERS[1], 0]
        self.std = float(train.std())  # the protocol reports MSE on the z-scored scale
        self.scale = float(np.mean(np.abs(train[SEASON:] - train[:-SEASON])))

    def row(self, kind: str, variant: str, horizon: int, max_epochs: int) -> dict:
        config = model_config(variant, horizon, max_epochs)
        values = np.hstack([self.values, self.calendar]) if config.calendar else self.values
        unscaled = values.shape[1] - 1  # the calendar channels, as `make_folds` leaves them
        scaling = fit_scaling(
            [values], np.array([ETT_BORDERS[1]]), SEASON, config.target_scaling, unscaled
        )
        scaled = scaling.scale([values])
        splits = {
            name: window_set(scaled, np.array([start]), np.array([end]), config.input_size, horizon)
            for name, start, end in zip(
                ("train", "validation", "test"), ETT_BORDERS, ETT_BORDERS[1:], strict=False
            )
        }
        model, forecasts, seconds = fit_and_predict(kind, config, splits, values.shape[1])
        errors = {}
        for name in ("validation", "test"):
            split = splits[name]
            truth = scaling.descale_target(split.targets.astype(np.float64), split.series)
            errors[name] = scaling.descale_target(forecasts[name], split.series) - truth
        return {
            "dataset": "ETTh1",
            "horizon": horizon,
            "validation_mase": float(np.mean(np.abs(errors["validation"]))) / self.scale,
            "mase": float(np.mean(np.abs(errors["test"]))) / self.scale,
            "mse": float(np.mean((errors["test"] / self.std) ** 2)),
            "seconds": seconds,
            "epochs": model.epochs_trained,
        }


def describe(kind: str, variant: str, scores: dict) -> dict:
    scaling, loss, base, input_size, scale_window = VARIANTS[variant]
    recurrent = spec(kind).recurrent
    row = {
        "model": kind,
        "variant": variant,
        "target_scaling": scaling,
        "loss": loss if recurrent else "",
        "base": base if recurrent else "",
        "scale_window": scale_window if recurrent else "",
        "calendar": calendar_of(variant),
        "input_size": input_size,
        **scores,
    }
    print({k: row[k] for k in ("dataset", "horizon", "model", "variant", "validation_mase",
                               "mase", "mse", "seconds")}, flush=True)  # fmt: skip
    return row


def run(dataset: str, kinds: tuple[str, ...], max_epochs: int, calendar: bool) -> list[dict]:
    rows = []
    source = M4() if dataset == "m4" else ETTh1()
    horizons = (48,) if dataset == "m4" else ETT_HORIZONS
    for horizon in horizons:

        def score(kind: str, variant: str, horizon: int = horizon) -> dict:
            if isinstance(source, M4):
                return describe(kind, variant, source.row(kind, variant, max_epochs))
            return describe(kind, variant, source.row(kind, variant, horizon, max_epochs))

        if calendar:  # M4: gru only (the costly one); ETTh1: every trained kind
            compared = ("gru",) if isinstance(source, M4) else ("linear", "local_linear", "gru")
            rows.extend(score(k, v) for k in compared for v in (DEFAULT_RECIPE, CALENDAR))
            continue
        rows.append(score("seasonal_naive", "mase scaling"))
        rows.extend(score("linear", variant) for variant in LINEAR_VARIANTS)
        gru = [score("gru", variant) for variant in VARIANTS if not calendar_of(variant)]
        rows.extend(gru)
        best = min(gru, key=lambda row: row["validation_mase"])["variant"]
        rows.extend(score(kind, best) for kind in kinds if kind != "gru")
    return rows


def verdicts(table: pd.DataFrame) -> str:
    """The issue's targets on these numbers, and which gru variant validation picks."""
    lines = []
    for (dataset, horizon), rows in table.groupby(["dataset", "horizon"], sort=False):
        gru = rows[rows.model == "gru"]
        picked = gru.loc[gru.validation_mase.idxmin()]
        rnns = rows[rows.model.isin(["simple_rnn", "gru", "lstm"])]
        best = rnns.loc[rnns.mase.idxmin()]
        naive = rows[rows.model == "seasonal_naive"].mase.iloc[0]
        linear = rows[rows.model == "linear"].mase.min()
        lines.append(
            f"- {dataset} h={horizon}: validation picks gru `{picked.variant}` (test MASE "
            f"{picked.mase:.4f}); best RNN row on test {best.model} `{best.variant}` "
            f"{best.mase:.4f} (test-picked); seasonal_naive {naive:.4f}; best linear {linear:.4f}"
        )
    return "\n".join(lines)


def calendar_verdicts(table: pd.DataFrame) -> str:
    """Per dataset, horizon and kind: validation and test MASE without -> with calendar."""
    lines = []
    pairs = table[table.variant.isin([DEFAULT_RECIPE, CALENDAR])]
    for (dataset, horizon, kind), rows in pairs.groupby(
        ["dataset", "horizon", "model"], sort=False
    ):
        if len(rows) != 2:
            continue
        off, on = (rows[rows.variant == name].iloc[0] for name in (DEFAULT_RECIPE, CALENDAR))
        better = "better" if on.validation_mase < off.validation_mase else "not better"
        lines.append(
            f"- {dataset} h={horizon} {kind}: validation MASE {off.validation_mase:.4f} -> "
            f"{on.validation_mase:.4f} ({better} on validation), test MASE {off.mase:.4f} -> "
            f"{on.mase:.4f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="m4,etth1")
    parser.add_argument("--kinds", default="simple_rnn,gru,lstm", help="RNNs at the picked variant")
    parser.add_argument("--max-epochs", type=int, default=20, help="cap for the RNNs")
    parser.add_argument("--calendar", action="store_true", help="only the calendar comparison")
    args = parser.parse_args()
    report = Report("ablation", "Ablation: scaling, loss, residual base, lookback, calendar", SEED)
    rows = []
    for dataset in args.datasets.split(","):
        rows.extend(run(dataset, tuple(args.kinds.split(",")), args.max_epochs, args.calendar))
    table = pd.DataFrame(rows)
    previous = RESULTS / "ablation.csv"  # rerunning one dataset keeps the other's rows
    if previous.is_file():
        kept = pd.read_csv(previous)
        if "calendar" not in kept:
            kept.insert(kept.columns.get_loc("input_size"), "calendar", False)
        if args.calendar:  # only the rerun rows are replaced
            rerun = kept.set_index(KEY).index.isin(table.set_index(KEY).index)
            kept = kept[~rerun]
        else:
            kept = kept[~kept.dataset.isin(table.dataset.unique())]
        table = pd.concat([kept, table], ignore_index=True)
        table = table.sort_values(["dataset", "horizon"], kind="stable", ignore_index=True)
    table = table[COLUMNS].round({"validation_mase": 4, "mase": 4, "mse": 4, "seconds": 1})
    notes = (
        "Verdicts (the variant is chosen on validation MASE; the best-on-test row is labelled "
        "test-picked and is not a choice):\n\n" + verdicts(table) + "\n\nCalendar inputs "
        "(`model.calendar`, the default recipe without -> with):\n\n"
        + calendar_verdicts(table)
        + f"\n\nRNNs: units 64, "
        f"segments of 24, last-value window normalization, Adam 1e-3, batch 256, early stopping "
        f"(patience 5) on the validation loss, at most {args.max_epochs} epochs, seed {SEED}. "
        "`seconds`: fit + predict wall time on 2 cores shared with other jobs (inflated)."
    )
    print(report.write(table, notes=notes))


if __name__ == "__main__":
    main()
