"""Choosing the champion: lowest test score, ties to the simpler model, reasons spelled out."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from forecasting.config import MODEL_ORDER, RNN_KINDS
from forecasting.errors import TrainingError
from forecasting.training import CandidateResult

LEADERBOARD_COLUMNS = [
    "model",
    "status",
    "mae",
    "rmse",
    "mase",
    "smape",
    "seconds",
    "epochs",
    "best_epoch",
    "reason",
]


@dataclass(frozen=True)
class Choice:
    """The champion and why.

    Attributes:
        model: The champion's kind.
        reason: One or two sentences a person can read in the report.
        margins: Percent by which the champion's score beats each reference kind
            (`simple_rnn`, `seasonal_naive`) that finished; positive means better.
    """

    model: str
    reason: str
    margins: dict[str, float]


def leaderboard(results: list[CandidateResult]) -> pd.DataFrame:
    """One row per candidate in the order given, with metrics, status and failure reason."""
    rows = [
        {
            "model": r.kind,
            "status": r.status,
            **r.metrics,
            "seconds": round(r.seconds, 3),
            "epochs": r.epochs,
            "best_epoch": r.best_epoch,
            "reason": r.reason,
        }
        for r in results
    ]
    return pd.DataFrame(rows).reindex(columns=LEADERBOARD_COLUMNS)


def select_champion(results: list[CandidateResult], metric: str) -> Choice:
    """Picks the candidate with the lowest `metric`; ties go to the earlier kind in MODEL_ORDER.

    Raises:
        TrainingError: No candidate finished.
    """
    finished = [r for r in results if r.ok]
    if not finished:
        reasons = "; ".join(f"{r.kind}: {r.reason}" for r in results)
        raise TrainingError(f"Every candidate failed, so nothing is published. {reasons}")
    best = min(finished, key=lambda r: (r.metrics[metric], MODEL_ORDER.index(r.kind)))
    score = best.metrics[metric]
    margins = {
        r.kind: 100.0 * (r.metrics[metric] - score) / r.metrics[metric]
        for r in finished
        if r.kind in ("simple_rnn", "seasonal_naive") and r.metrics[metric] > 0
    }
    return Choice(best.kind, _reason(best, finished, metric, margins), margins)


def _reason(
    best: CandidateResult, finished: list[CandidateResult], metric: str, margins: dict[str, float]
) -> str:
    score = best.metrics[metric]
    text = f"{best.kind} has the lowest test {metric.upper()} ({score:.4g})"
    compared = [
        f"{margin:.1f}% better than {kind}" for kind, margin in margins.items() if kind != best.kind
    ]
    if compared:
        text += ", " + " and ".join(compared)
    text += "."
    rnns = [r for r in finished if r.kind in RNN_KINDS]
    if best.kind not in RNN_KINDS and rnns:
        best_rnn = min(rnns, key=lambda r: r.metrics[metric])
        text += (
            f" No RNN beats the best naive model: the best RNN, {best_rnn.kind}, scores "
            f"{best_rnn.metrics[metric]:.4g}, so the naive model is published."
        )
    return text
