"""Peers: statsforecast's SeasonalNaive, AutoETS and AutoARIMA on ETTh1 h=24, beside ours.

ETTh1 OT on the Informer/DLinear protocol (as ett.py): train rows [0, 8640), validation
[8640, 11520), test [11520, 14400), z-scored with the training rows' mean and standard deviation;
MSE and MAE over all 2,857 stride-1 test windows of 24 steps. Each peer is fitted once on rows
[0, 11520) (train + validation: no early stopping to spend validation on; AutoARIMA on the last
ARIMA_FIT_ROWS of them) and applied, without refitting, at every test origin. The table then
puts each peer beside our champion and our best RNN from results/ett.csv (ETTh1 h=24) and
results/m4_hourly.csv (M4 Hourly, whose statsforecast rows that script measures itself); missing
files are named in the notes.

    uv run --group bench python benchmarks/peers.py

Writes benchmarks/results/peers.csv and peers.md.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np
import pandas as pd
from common import RESULTS, Report, long_frame
from ett import load_ot
from statsforecast import StatsForecast
from statsforecast.models import AutoARIMA, AutoETS, SeasonalNaive

TEST_START, TEST_END = 11520, 14400
HORIZON, SEASON = 24, 24
N_WINDOWS = TEST_END - TEST_START - HORIZON + 1  # 2857
# AutoARIMA(24)'s fit on all 11,520 rows took 1,167 s (fit alone; 2 shared cores, load ~7) and
# each forecast re-filters the whole history (~0.2 s x 2,857 origins), so it fits on, and each
# origin conditions on, the last 12 weeks only. None: all rows before the origin.
ARIMA_FIT_ROWS: int | None = 2016
PEERS = ("SeasonalNaive", "AutoETS", "AutoARIMA", "LSTM", "GRU")
RNNS = ("simple_rnn", "gru", "lstm")
COLUMNS = ["dataset", "horizon", "model", "source", "mse", "mae", "mase", "smape",
           "n_test_windows", "seconds", "vs", "accuracy_ratio", "seconds_ratio"]  # fmt: skip
SOURCE = "this script (peers.py)"
# Our results: (file in results/, dataset, horizon or None for all, accuracy metric)
OURS = (("ett.csv", "ETTh1", HORIZON, "mse"), ("m4_hourly.csv", "M4 Hourly", None, "mase"))


def load_frame() -> pd.DataFrame:
    """ETTh1 OT rows [0, 14400) as statsforecast's long frame, z-scored as in ett.py."""
    return long_frame({"OT": load_ot("ETTh1")}, start="2016-07-01")  # hourly, no gaps


def check_windows(cv: pd.DataFrame, frame: pd.DataFrame) -> None:
    """Asserts the cross-validation windows are the protocol's: cutoff rows 11519..14375."""
    ds = frame["ds"].to_numpy()
    cutoffs = cv["cutoff"].unique()
    assert len(cv) == N_WINDOWS * HORIZON and len(cutoffs) == N_WINDOWS, len(cv)
    assert cutoffs[0] == ds[TEST_START - 1] and cutoffs[-1] == ds[TEST_END - HORIZON - 1]
    first = cv[cv["cutoff"] == cutoffs[0]]["ds"].to_numpy()
    assert (first == ds[TEST_START : TEST_START + HORIZON]).all()
    assert cv["ds"].max() == ds[TEST_END - 1]


def score(name: str, cv: pd.DataFrame, seconds: float) -> dict:
    """One ETTh1 peer row: MSE and MAE over every window and step, z-scored scale."""
    error = cv[name].to_numpy() - cv["y"].to_numpy()
    return {"dataset": "ETTh1", "horizon": HORIZON, "model": name, "source": SOURCE,
            "mse": float(np.mean(error**2)), "mae": float(np.mean(np.abs(error))),
            "n_test_windows": cv["cutoff"].nunique(), "seconds": seconds}  # fmt: skip


def statsforecast_peers(frame: pd.DataFrame) -> list[dict]:
    """Fits each statsforecast model once before the test, then forecasts every test origin."""
    rows = []
    for model in (SeasonalNaive(SEASON), AutoETS(season_length=SEASON),
                  AutoARIMA(season_length=SEASON)):  # fmt: skip
        name = str(model)
        rows_in = ARIMA_FIT_ROWS if name == "AutoARIMA" else None
        refit = not hasattr(model, "forward")  # SeasonalNaive: nothing to fit, no forward
        started = time.perf_counter()
        cv = StatsForecast(models=[model], freq="h", n_jobs=1).cross_validation(
            h=HORIZON, df=frame, n_windows=N_WINDOWS, step_size=1, refit=refit,
            input_size=rows_in,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        check_windows(cv, frame)
        rows.append(score(name, cv, seconds))
        print(f"{name}: MSE {rows[-1]['mse']:.4f} MAE {rows[-1]['mae']:.4f} {seconds:.0f} s")
    return rows


def neuralforecast_peers(frame: pd.DataFrame) -> list[dict]:
    """neuralforecast's LSTM and GRU (200 steps, input 336), if that package is installed.

    Not a project dependency (torch's PyPI wheels pull in CUDA); run it from an environment that
    has it. Import it before TensorFlow/Keras: the other order aborts on a clash of LLVMs.
    """
    if importlib.util.find_spec("neuralforecast") is None:
        return []
    import torch
    from neuralforecast import NeuralForecast
    from neuralforecast.models import GRU, LSTM

    torch.set_flush_denormal(True)  # else backward through 336 steps hits denormals: ~10x slower
    torch.set_num_threads(1)  # the flag above holds for this thread only, not torch's workers
    rows = []
    for kind in (LSTM, GRU):
        model = kind(h=HORIZON, input_size=336, encoder_hidden_size=64, max_steps=200,
                     random_seed=42, accelerator="cpu", logger=False,
                     enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
        started = time.perf_counter()
        cv = NeuralForecast(models=[model], freq="h").cross_validation(
            frame, n_windows=N_WINDOWS, step_size=1, refit=False
        )
        check_windows(cv, frame)
        rows.append(score(kind.__name__, cv, time.perf_counter() - started))
    return rows


def ours(path: Path, dataset: str, horizon: int | None, metric: str) -> tuple[pd.DataFrame, list]:
    """From one results CSV: (our champion and best RNN, that script's own peer rows)."""
    table = pd.read_csv(path)
    table = table[(table["dataset"] == dataset) & table["source"].str.startswith("this script")]
    if horizon is not None:
        table = table[table["horizon"] == horizon]
    is_peer = table["model"].str.split(" ").str[0].isin(PEERS)
    champion = table[~is_peer & table["model"].str.startswith("champion")]
    rnn = table[table["model"].isin(RNNS)].nsmallest(1, metric)
    return pd.concat([champion, rnn]), table[is_peer].to_dict("records")


def compare(peers: list[dict], mine: pd.DataFrame, metric: str) -> list[dict]:
    """Each peer once per row of ours: accuracy and seconds ratios, peer / ours."""
    rows = []
    for peer in peers:
        for _, our in mine.iterrows():
            our_seconds = our["seconds"] if our["seconds"] > 0 else np.nan
            rows.append({**peer, "vs": our["model"],
                         "accuracy_ratio": peer[metric] / our[metric],
                         "seconds_ratio": peer["seconds"] / our_seconds})  # fmt: skip
    return rows


def side_by_side(ett_peers: list[dict]) -> tuple[pd.DataFrame, list[str]]:
    """Per dataset: our champion and best RNN, then each peer against each; notes on gaps."""
    rows, notes = [], []
    for name, dataset, horizon, metric in OURS:
        peers = ett_peers if dataset == "ETTh1" else []
        if not (RESULTS / name).is_file():
            notes.append(f"- results/{name} is missing: no {dataset} rows of ours to compare.")
            rows += peers
            continue
        mine, their_peers = ours(RESULTS / name, dataset, horizon, metric)
        mine = mine.assign(source=f"results/{name}")
        peers = peers or [{**row, "source": f"results/{name}"} for row in their_peers]
        if mine.empty:
            notes.append(f"- results/{name} has no champion or RNN rows for {dataset}.")
        rows += mine.to_dict("records") + (compare(peers, mine, metric) if len(mine) else peers)
    table = pd.DataFrame(rows).reindex(columns=COLUMNS)
    return table.astype({"horizon": "Int64", "n_test_windows": "Int64"}), notes


def seasonal_naive_mse(frame: pd.DataFrame) -> float:
    """The seasonal naive (h <= season: y[t - 24]) computed directly, to check the windows."""
    y = frame["y"].to_numpy()
    targets = np.arange(TEST_START, TEST_END - HORIZON + 1)[:, None] + np.arange(HORIZON)
    return float(np.mean((y[targets] - y[targets - SEASON]) ** 2))


def main() -> None:
    report = Report("peers", "Peers: statsforecast (and neuralforecast) beside ours", seed=None)
    frame = load_frame()
    peers = neuralforecast_peers(frame) + statsforecast_peers(frame)
    check = seasonal_naive_mse(frame)
    naive = next(row["mse"] for row in peers if row["model"] == "SeasonalNaive")
    assert np.isclose(naive, check), (naive, check)
    table, gaps = side_by_side(peers)
    fit = "all rows" if ARIMA_FIT_ROWS is None else f"the last {ARIMA_FIT_ROWS:,} rows only"
    notes = "\n".join([
        "Notes:", "",
        f"- ETTh1 peers fit on the z-scored OT rows [0, 11520) and forecast all {N_WINDOWS:,} "
        "stride-1 test windows without refitting (statsforecast `cross_validation(refit=False)`: "
        f"each origin's forecast conditions on the series up to it; AutoARIMA: {fit}, for "
        "time, see ARIMA_FIT_ROWS); windows checked: first cutoff row 11519, targets "
        "11520..11543, last target 14399.",
        f"- SeasonalNaive(24) MSE equals the seasonal naive computed directly ({check:.4f}).",
        "- `seconds`: fit + every forecast, wall time on a shared 2-core machine (inflated).",
        "- `vs`: our champion (chosen on validation) and our best RNN (lowest test metric, as "
        "ett.py's verdicts pick it); `accuracy_ratio` = peer / ours in MSE (ETTh1) or MASE (M4 "
        "Hourly; peers as m4_hourly.py measured them), `seconds_ratio` = peer / ours; < 1: the "
        "peer is better or faster.",
        *gaps,
    ])  # fmt: skip
    print(report.write(table.round(4).round({"seconds": 1}), notes=notes))


if __name__ == "__main__":
    main()
