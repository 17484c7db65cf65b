"""Choosing the champion from the backtest: lowest mean fold score, ties to the simpler model,
and a published champion that keeps its title unless a challenger beats it by a margin and
significantly. Every decision is spelled out for the report and the manifest."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from forecasting.backtest import Backtest
from forecasting.config import EvaluationConfig
from forecasting.errors import TrainingError
from forecasting.evaluation import METRICS
from forecasting.intervals import out_of_fold_coverage
from forecasting.models import spec
from forecasting.significance import DMResult, diebold_mariano
from forecasting.training import CandidateResult

REFERENCES = ("simple_rnn", "seasonal_naive")


@dataclass(frozen=True)
class Incumbent:
    """The published champion this run must beat.

    Attributes:
        model: Its kind.
        run_id: The published run it won in.
        problem: Why it cannot defend its title (its files do not load, or its settings
            differ from this run's); empty when it can.
        live_mase: Mean MASE of its published forecasts scored against later actuals, when
            any have been scored.
    """

    model: str
    run_id: str
    problem: str = ""
    live_mase: float | None = None


@dataclass(frozen=True)
class Choice:
    """The champion and why.

    Attributes:
        model: The champion's kind.
        reason: Sentences a person can read in the report.
        margins: Percent by which the champion's score beats each reference kind
            (`simple_rnn`, `seasonal_naive`) that finished; positive means better.
        decision: The champion-challenger decision and the numbers behind it, for the manifest.
    """

    model: str
    reason: str
    margins: dict[str, float]
    decision: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Evidence:
    """What selection reads besides the results: the shared backtest and its timestamps."""

    backtest: Backtest
    dates: list[np.ndarray]
    horizon: int

    @cached_property
    def cutoffs(self) -> np.ndarray:
        """Each backtest window's cutoff, looked up once for every test that reads them."""
        return self.backtest.cutoffs(self.dates)

    def dm(self, kind: str, other: str) -> DMResult:
        """Diebold-Mariano test of `kind` against `other` on their per-origin losses."""
        return diebold_mariano(
            self.backtest.origin_losses(kind, self.cutoffs),
            self.backtest.origin_losses(other, self.cutoffs),
            self.horizon,
        )


def leaderboard(results: list[CandidateResult], evidence: Evidence, metric: str) -> pd.DataFrame:
    """One row per candidate in the order given: mean fold scores, each fold's `metric`,
    out-of-fold interval coverage and width, Diebold-Mariano tests against the references,
    cost and failure reason."""
    rows = []
    for result in results:
        row: dict = {"model": result.kind, "status": result.status, **result.metrics}
        for number, scores in enumerate(result.fold_metrics, start=1):
            row[f"{metric}_fold_{number}"] = scores[metric]
        if result.ok:
            backtest = evidence.backtest
            row |= out_of_fold_coverage(
                backtest.y, backtest.predictions[result.kind], backtest.scale, backtest.fold
            )
            for reference in REFERENCES:
                if reference != result.kind and reference in backtest.predictions:
                    test = evidence.dm(result.kind, reference)
                    row[f"dm_vs_{reference}"] = test.statistic
                    row[f"p_vs_{reference}"] = test.p_value
        row |= {
            "seconds": round(result.seconds, 3),
            "epochs": result.epochs,
            "best_epoch": result.best_epoch,
            "reason": result.reason,
        }
        rows.append(row)
    board = pd.DataFrame(rows)
    fixed = ["model", "status", *METRICS]
    tail = ["seconds", "epochs", "best_epoch", "reason"]
    middle = [c for c in board.columns if c not in fixed + tail]
    return board.reindex(columns=fixed + middle + tail)


def select_champion(
    results: list[CandidateResult],
    evidence: Evidence,
    evaluation: EvaluationConfig,
    incumbent: Incumbent | None = None,
) -> Choice:
    """Picks the champion from the backtest scores.

    The candidate with the lowest mean `metric` (ties to the simpler kind, the lower
    `ModelSpec.rank`) wins, unless the published champion's kind (`incumbent`) also finished:
    then a challenger replaces it only if its score is at least `promotion_margin_percent`
    lower and its Diebold-Mariano test against the incumbent is significant at
    `significance_level`.
    An incumbent with a `problem` cannot defend its title, so the best candidate wins.

    Raises:
        TrainingError: No candidate finished.
    """
    metric = evaluation.metric
    finished = {r.kind: r.metrics[metric] for r in results if r.ok}
    if not finished:
        reasons = "; ".join(f"{r.kind}: {r.reason}" for r in results)
        raise TrainingError(f"Every candidate failed, so nothing is published. {reasons}")
    ranked = sorted(finished, key=lambda kind: (finished[kind], spec(kind).rank))
    best = ranked[0]
    decision: dict = {
        "metric": metric,
        "margin_percent": evaluation.promotion_margin_percent,
        "significance_level": evaluation.significance_level,
        "scores": finished,
        "incumbent": None,
    }
    champion, opening = best, _lowest(best, finished[best], metric)
    if incumbent is None:
        decision["action"] = "first_run"
    else:
        decision["incumbent"] = {
            "model": incumbent.model,
            "run_id": incumbent.run_id,
            "problem": incumbent.problem,
            f"backtest_{metric}": finished.get(incumbent.model),
            "live_mase": incumbent.live_mase,
        }
        champion, opening = _defend(incumbent, best, finished, evidence, evaluation, decision)
    margins = {
        kind: 100.0 * (finished[kind] - finished[champion]) / finished[kind]
        for kind in REFERENCES
        if kind in finished and finished[kind] > 0
    }
    text = opening + _versus(champion, ranked, margins, evidence, evaluation.significance_level)
    text += _rnn_note(champion, finished, metric)
    if incumbent is not None and incumbent.live_mase is not None:
        text += (
            f" The published {incumbent.model} forecasts scored so far have MASE "
            f"{incumbent.live_mase:.4g} against the actuals that followed"
        )
        if incumbent.model in finished:
            text += f" (backtest {metric.upper()} {finished[incumbent.model]:.4g})"
        text += "."
    return Choice(champion, text, margins, decision)


def _lowest(kind: str, score: float, metric: str) -> str:
    return f"{kind} has the lowest backtest {metric.upper()} ({score:.4g})"


def _defend(
    incumbent: Incumbent,
    best: str,
    finished: dict[str, float],
    evidence: Evidence,
    evaluation: EvaluationConfig,
    decision: dict,
) -> tuple[str, str]:
    """Applies the champion-challenger rule; returns (champion, opening sentence)."""
    metric = evaluation.metric
    name = f"the published champion {incumbent.model} (run {incumbent.run_id})"
    if incumbent.problem:
        decision["action"] = "incumbent_unavailable"
        return best, f"{name} cannot defend its title ({incumbent.problem}); " + _lowest(
            best, finished[best], metric
        )
    if incumbent.model not in finished:
        decision["action"] = "incumbent_not_trained"
        return best, f"{name} did not finish in this run; " + _lowest(best, finished[best], metric)
    held = finished[incumbent.model]
    if best == incumbent.model:
        decision["action"] = "kept"
        return (
            best,
            f"{best} keeps its title with the lowest backtest {metric.upper()} ({held:.4g})",
        )
    improvement = 100.0 * (held - finished[best]) / held if held > 0 else 0.0
    test = evidence.dm(best, incumbent.model)
    past_margin = improvement >= evaluation.promotion_margin_percent
    significant = test.a_better(evaluation.significance_level)
    decision |= {
        "challenger": {"model": best, f"backtest_{metric}": finished[best]},
        "improvement_percent": improvement,
        "dm_statistic": None if np.isnan(test.statistic) else test.statistic,
        "p_value": test.p_value,
        "dm_note": test.note,
        "significant": significant,
    }
    numbers = (
        f"{best} scores {finished[best]:.4g} against {incumbent.model}'s {held:.4g} "
        f"({improvement:.1f}% better, Diebold-Mariano p = {test.p_value:.3g})"
    )
    if past_margin and significant:
        decision["action"] = "promoted"
        return best, (
            f"{best} replaces {name}: {numbers}, past the "
            f"{evaluation.promotion_margin_percent:g}% margin and significant"
        )
    why = [
        f"within the {evaluation.promotion_margin_percent:g}% margin" if not past_margin else "",
        f"not significant at {evaluation.significance_level:g}" if not significant else "",
    ]
    decision["action"] = "kept"
    return incumbent.model, (
        f"{incumbent.model} keeps its title: challenger {numbers}, but "
        + " and ".join(w for w in why if w)
    )


def _versus(
    champion: str,
    ranked: list[str],
    margins: dict[str, float],
    evidence: Evidence,
    alpha: float,
) -> str:
    """Clauses on the champion's margin over the references and, when it ranks first, over the
    runner-up, with whether each difference is significant."""
    others = [kind for kind in REFERENCES if kind in margins and kind != champion]
    runner_up = ranked[1] if len(ranked) > 1 and ranked[0] == champion else None
    if runner_up is not None and runner_up not in others:
        others.append(runner_up)
    clauses = []
    for kind in others:
        test = evidence.dm(champion, kind)
        verdict = "significant" if test.a_better(alpha) else "not significant"
        share = margins.get(kind)
        if share is None:
            amount = f"ahead of {kind}"
        elif share >= 0:
            amount = f"{share:.1f}% better than {kind}"
        else:
            amount = f"{-share:.1f}% worse than {kind}"
        clauses.append(f"{amount} ({verdict}, p = {test.p_value:.3g})")
    return (". Against the others: " + "; ".join(clauses) + ".") if clauses else "."


def _rnn_note(champion: str, finished: dict[str, float], metric: str) -> str:
    """Says when no RNN beats the champion, or when a trained non-recurrent kind (`linear`)
    beats an RNN champion."""
    rnns = {kind: score for kind, score in finished.items() if spec(kind).recurrent}
    if champion in rnns:
        simpler = [
            kind
            for kind, score in finished.items()
            if spec(kind).trains and not spec(kind).recurrent and score < finished[champion]
        ]
        if not simpler:
            return ""
        kind = min(simpler, key=lambda name: (finished[name], spec(name).rank))
        return f" {kind} scores lower ({finished[kind]:.4g} {metric.upper()}) than {champion}."
    if not rnns:
        return ""
    best_rnn = min(rnns, key=lambda kind: rnns[kind])
    return (
        f" No RNN beats {champion}: the best RNN, {best_rnn}, scores {rnns[best_rnn]:.4g} "
        f"{metric.upper()}, so {champion} is published."
    )
