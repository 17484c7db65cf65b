"""The champion rule: lowest metric, ties to the simpler kind, honest reasons."""

from __future__ import annotations

import pytest

from forecasting.errors import TrainingError
from forecasting.selection import leaderboard, select_champion
from forecasting.training import CandidateResult


def result(kind: str, mase: float | None) -> CandidateResult:
    if mase is None:
        return CandidateResult(kind, "failed", reason="RuntimeError: NaN loss")
    return CandidateResult(
        kind, "ok", metrics={"mae": mase * 2, "rmse": 1.0, "mase": mase, "smape": 10.0}
    )


def test_lowest_metric_wins() -> None:
    results = [
        result("naive", 0.9),
        result("seasonal_naive", 0.8),
        result("simple_rnn", 0.6),
        result("gru", 0.5),
        result("lstm", 0.55),
    ]
    choice = select_champion(results, "mase")
    assert choice.model == "gru"
    assert choice.margins["simple_rnn"] == pytest.approx(100 * (0.6 - 0.5) / 0.6)
    assert choice.margins["seasonal_naive"] == pytest.approx(100 * (0.8 - 0.5) / 0.8)
    assert "16.7% better than simple_rnn" in choice.reason


@pytest.mark.parametrize(
    ("tied", "winner"),
    [
        (("lstm", "gru"), "gru"),
        (("gru", "simple_rnn"), "simple_rnn"),
        (("simple_rnn", "seasonal_naive"), "seasonal_naive"),
        (("seasonal_naive", "naive"), "naive"),
    ],
)
def test_ties_go_to_the_simpler_model(tied: tuple[str, str], winner: str) -> None:
    results = [result(kind, 0.5) for kind in tied] + [
        result("lstm" if "lstm" not in tied else "naive", 0.9)
    ]
    assert select_champion(results, "mase").model == winner


def test_selection_uses_the_configured_metric() -> None:
    results = [result("gru", 0.5), result("lstm", 0.6)]
    results[1] = CandidateResult(
        "lstm", "ok", metrics={"mae": 0.1, "rmse": 1, "mase": 0.6, "smape": 1}
    )
    assert select_champion(results, "mae").model == "lstm"


def test_naive_champion_is_reported_plainly() -> None:
    results = [result("naive", 0.5), result("seasonal_naive", 0.7), result("gru", 0.6)]
    choice = select_champion(results, "mase")
    assert choice.model == "naive"
    assert "No RNN beats the best naive model" in choice.reason
    assert "gru" in choice.reason


def test_failed_candidates_are_skipped_and_listed() -> None:
    results = [result("naive", 0.9), result("gru", None)]
    assert select_champion(results, "mase").model == "naive"
    board = leaderboard(results)
    assert board.loc[board["model"] == "gru", "status"].item() == "failed"
    assert "NaN loss" in board.loc[board["model"] == "gru", "reason"].item()
    assert list(board.columns[:6]) == ["model", "status", "mae", "rmse", "mase", "smape"]


def test_all_failed_raises_a_training_error() -> None:
    with pytest.raises(TrainingError, match="Every candidate failed"):
        select_champion([result("gru", None), result("lstm", None)], "mase")
