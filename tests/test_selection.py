"""The champion rules: lowest backtest score, ties to the simpler kind, and a published
champion that keeps its title unless a challenger wins by the margin and significantly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting.backtest import Backtest
from forecasting.config import EvaluationConfig, PipelineConfig
from forecasting.errors import TrainingError
from forecasting.incumbent import find_incumbent
from forecasting.selection import Evidence, Incumbent, leaderboard, select_champion
from forecasting.store.writer import publish_run
from forecasting.training import CandidateResult

N_ORIGINS, HORIZON = 300, 2
EVALUATION = EvaluationConfig()  # margin 2%, level 0.05


def evidence(errors: dict[str, np.ndarray]) -> Evidence:
    """One series, one window per origin; `errors` are each kind's absolute errors per window
    (the truth is 0, the scale 1), so a kind's MASE is the mean of its errors."""
    starts = np.arange(10, 10 + N_ORIGINS)
    backtest = Backtest(
        y=np.zeros((N_ORIGINS, HORIZON)),
        scale=np.ones(N_ORIGINS),
        fold=np.repeat(np.arange(3), N_ORIGINS // 3),
        series=np.zeros(N_ORIGINS, dtype=int),
        target_start=starts,
        predictions={kind: np.repeat(e[:, None], HORIZON, axis=1) for kind, e in errors.items()},
    )
    dates = [pd.date_range("2024-01-01", periods=N_ORIGINS + 20, freq="h").to_numpy()]
    return Evidence(backtest, dates, HORIZON)


def results(errors: dict[str, np.ndarray]) -> list[CandidateResult]:
    def metrics(e: np.ndarray) -> dict[str, float]:
        return {"mae": float(e.mean()), "rmse": 1.0, "mase": float(e.mean()), "smape": 1.0}

    return [
        CandidateResult(kind, "ok", metrics=metrics(e), fold_metrics=[metrics(e)] * 3)
        for kind, e in errors.items()
    ]


def rivals(ratio: float, noise: float, seed: int = 0) -> dict[str, np.ndarray]:
    """gru as incumbent, lstm as a challenger whose errors are `ratio` times gru's plus noise."""
    rng = np.random.default_rng(seed)
    gru = 1.0 + rng.uniform(0, 0.5, N_ORIGINS)
    lstm = np.abs(ratio * gru + rng.normal(0, noise, N_ORIGINS))
    return {"seasonal_naive": gru * 1.5, "simple_rnn": gru * 1.2, "gru": gru, "lstm": lstm}


def decide(errors: dict[str, np.ndarray], incumbent: Incumbent | None = None):
    return select_champion(results(errors), evidence(errors), EVALUATION, incumbent)


GRU_INCUMBENT = Incumbent("gru", "20240101T000000-aaaaaaaaaa")


def test_first_run_takes_the_lowest_score_and_says_how_sure_it_is() -> None:
    choice = decide(rivals(0.8, 0.02))
    assert choice.model == "lstm"
    assert choice.decision["action"] == "first_run"
    assert "lowest backtest MASE" in choice.reason
    assert "better than simple_rnn (significant" in choice.reason
    assert "ahead of gru (significant" in choice.reason


def test_better_but_not_significant_keeps_the_incumbent() -> None:
    rng = np.random.default_rng(3)
    gru = np.repeat(1.0 + rng.uniform(0, 0.5, N_ORIGINS // 2), 2)
    swing = np.array([rng.permutation([0.8, -0.8]) for _ in range(N_ORIGINS // 2)]).ravel()
    errors = {"simple_rnn": gru * 1.2, "gru": gru, "lstm": gru * (0.95 + swing)}
    test = evidence(errors).dm("lstm", "gru")
    assert errors["lstm"].mean() == pytest.approx(0.95 * errors["gru"].mean())  # past 2%
    assert not test.a_better(0.05)  # but not significant
    choice = decide(errors, GRU_INCUMBENT)
    assert choice.model == "gru"
    assert choice.decision["action"] == "kept"
    assert choice.decision["challenger"]["model"] == "lstm"
    assert choice.decision["p_value"] == pytest.approx(test.p_value)
    assert "not significant at 0.05" in choice.reason
    assert "within the" not in choice.reason


def test_significant_and_past_the_margin_promotes_the_challenger() -> None:
    choice = decide(rivals(0.8, 0.02), GRU_INCUMBENT)
    assert choice.model == "lstm"
    assert choice.decision["action"] == "promoted"
    assert choice.decision["improvement_percent"] > 2 and choice.decision["significant"]
    assert "lstm replaces the published champion gru" in choice.reason


def test_significant_but_within_the_margin_keeps_the_incumbent() -> None:
    errors = rivals(0.99, 0.001)
    assert evidence(errors).dm("lstm", "gru").a_better(0.05)
    choice = decide(errors, GRU_INCUMBENT)
    assert choice.model == "gru"
    assert "within the 2% margin" in choice.reason
    assert "margin and not significant" not in choice.reason


def test_an_incumbent_with_a_problem_cannot_defend_its_title() -> None:
    broken = Incumbent("gru", "20240101T000000-aaaaaaaaaa", problem="its files do not load: x")
    choice = decide(rivals(0.99, 0.001), broken)
    assert choice.model == "lstm"
    assert choice.decision["action"] == "incumbent_unavailable"
    assert choice.decision["incumbent"]["problem"] == "its files do not load: x"
    assert "cannot defend its title (its files do not load: x)" in choice.reason


def test_unloadable_published_model_is_found_and_named(tmp_path) -> None:
    config = PipelineConfig(output_dir=tmp_path, name="demo")
    manifest = {
        "schema_version": 2,
        "run_id": "20240101T000000-aaaaaaaaaa",
        "as_of": "2024-01-01T00:00:00",
        "champion": {"model": "gru"},
        "config": config.model_dump(mode="json"),
    }
    forecast = pd.DataFrame({"unique_id": ["a"], "y_hat": [1.0]}).to_parquet(index=False)
    files = {"forecast.parquet": forecast, "model.keras": b"not a zip"}
    publish_run(tmp_path, "demo", manifest["run_id"], files, manifest)
    found = find_incumbent(config, {"gru": 0.7})
    assert found is not None and found.model == "gru" and found.live_mase == 0.7
    assert found.problem.startswith("its files do not load")
    # units does not change a naive model (its recipe), so only the horizon is named
    update = {"units": 8, "horizon": 12}
    changed = config.model_copy(update={"model": config.model.model_copy(update=update)})
    manifest["run_id"] = "20240102T000000-bbbbbbbbbb"
    manifest["champion"]["model"] = "naive"
    manifest["as_of"] = "2024-01-02T00:00:00"
    publish_run(tmp_path, "demo", manifest["run_id"], {"forecast.parquet": forecast}, manifest)
    moved = find_incumbent(changed, {})
    assert moved is not None and moved.model == "naive"
    assert moved.problem == "its settings differ from this run's (model.horizon: 24 -> 12)"
    assert find_incumbent(PipelineConfig(output_dir=tmp_path, name="none"), {}) is None


def test_a_failed_incumbent_kind_hands_the_title_over() -> None:
    errors = rivals(0.99, 0.001)
    outcome = results(errors)
    outcome[2] = CandidateResult("gru", "failed", reason="RuntimeError: NaN loss")
    del errors["gru"]
    choice = select_champion(outcome, evidence(errors), EVALUATION, GRU_INCUMBENT)
    assert choice.model == "lstm"
    assert choice.decision["action"] == "incumbent_not_trained"


@pytest.mark.parametrize(
    ("tied", "winner"),
    [
        (("lstm", "gru"), "gru"),
        (("gru", "simple_rnn"), "simple_rnn"),
        (("simple_rnn", "linear"), "linear"),
        (("linear", "seasonal_naive"), "seasonal_naive"),
        (("seasonal_naive", "naive"), "naive"),
    ],
)
def test_ties_go_to_the_simpler_model(tied: tuple[str, str], winner: str) -> None:
    same = 1.0 + np.random.default_rng(1).uniform(0, 0.5, N_ORIGINS)
    errors = {kind: same for kind in tied}
    assert decide(errors).model == winner


def test_naive_and_linear_champions_are_reported_plainly() -> None:
    errors = rivals(0.8, 0.02)
    errors["linear"] = errors["lstm"] * 0.9
    choice = decide(errors)
    assert choice.model == "linear"
    assert "No RNN beats linear: the best RNN, lstm" in choice.reason


def test_leaderboard_has_fold_interval_and_significance_columns() -> None:
    errors = rivals(0.8, 0.02)
    outcome = results(errors) + [CandidateResult("naive", "failed", reason="boom")]
    board = leaderboard(outcome, evidence(errors), "mase")
    assert list(board.columns[:6]) == ["model", "status", "mae", "rmse", "mase", "smape"]
    for column in ("mase_fold_1", "mase_fold_3", "coverage_80", "width_95"):
        assert column in board
    lstm = board.set_index("model").loc["lstm"]
    assert lstm["dm_vs_simple_rnn"] < 0 and lstm["p_vs_simple_rnn"] < 0.05
    assert np.isnan(board.set_index("model").loc["simple_rnn", "dm_vs_simple_rnn"])
    assert board.set_index("model").loc["naive", "reason"] == "boom"


def test_all_failed_raises_a_training_error() -> None:
    failed = [CandidateResult("gru", "failed", reason="x"), CandidateResult("lstm", "failed")]
    with pytest.raises(TrainingError, match="Every candidate failed"):
        select_champion(failed, evidence({}), EVALUATION)


def test_the_incumbents_live_score_is_reported_beside_its_backtest() -> None:
    live = Incumbent("gru", "20240101T000000-aaaaaaaaaa", live_mase=0.812)
    choice = decide(rivals(0.99, 0.001), live)
    assert "published gru forecasts scored so far have MASE 0.812" in choice.reason
    assert choice.decision["incumbent"]["live_mase"] == 0.812
