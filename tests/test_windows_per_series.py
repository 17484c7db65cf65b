"""`model.windows_per_series`: each RNN epoch draws at most that many windows of each series,
afresh every epoch and reproducibly from the seed, so an epoch's cost stops growing with the
length of history."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from forecasting import pipeline
from forecasting.config import EvaluationConfig, ModelConfig, PipelineConfig
from forecasting.models.rnn import RNNForecaster, _window_batches, draw_per_series
from forecasting.windowing import WindowSet, make_folds


def test_at_most_cap_windows_of_each_series_distinct_and_shorter_series_whole() -> None:
    series = np.repeat([0, 1, 2], [50, 3, 20])
    drawn = draw_per_series(series, 8, np.random.default_rng(1))
    assert len(set(drawn.tolist())) == len(drawn) == 8 + 3 + 8
    assert np.bincount(series[drawn]).tolist() == [8, 3, 8]
    assert set(drawn[series[drawn] == 1].tolist()) == {50, 51, 52}
    again = draw_per_series(series, 8, np.random.default_rng(1))
    np.testing.assert_array_equal(drawn, again)


def cut_rows(windows: WindowSet, rows: np.ndarray):
    """A `cut` for `_window_batches` that hands back which windows it was asked for."""
    return windows.take(rows)[1][:, 0], rows


def test_each_epoch_draws_again_from_one_seeded_generator() -> None:
    series = np.repeat([0, 1], [40, 40])
    windows = WindowSet.of(
        np.zeros((80, 3, 1), "float32"), np.arange(80, dtype="float32")[:, None], series
    )

    def epochs(seed: int, cap: int | None = 5, shuffle: bool = True) -> list[list[int]]:
        batches = _window_batches()(cut_rows, windows, cap, 4, seed, shuffle)
        seen = []
        for _ in range(3):
            rows = np.concatenate([batches[i][0] for i in range(len(batches))]).astype(int)
            assert len(batches) == -(-len(rows) // 4)
            np.testing.assert_array_equal(rows, np.concatenate([b[1] for b in batches]))
            seen.append(rows.tolist())
            batches.on_epoch_end()
        return seen

    first = epochs(7)
    assert all(np.bincount(series[rows]).tolist() == [5, 5] for rows in first)
    assert first == epochs(7)
    assert sorted(first[0]) != sorted(first[1])  # a fresh draw, not the same windows every epoch
    validation = epochs(7, shuffle=False)
    assert validation[0] == validation[1] == sorted(validation[0])  # drawn once, kept
    assert np.bincount(series[validation[0]]).tolist() == [5, 5]
    whole = epochs(7, cap=None)
    assert all(sorted(rows) == list(range(80)) for rows in whole) and whole[0] != whole[1]
    assert epochs(7, cap=None, shuffle=False)[0] == list(range(80))


@pytest.mark.slow
def test_a_capped_rnn_trains_reproducibly_on_its_share_of_windows(tiny_model: ModelConfig) -> None:
    rng = np.random.default_rng(0)
    windows = WindowSet.of(
        rng.normal(size=(300, 24, 1)).astype("float32"),
        rng.normal(size=(300, 6)).astype("float32"),
        np.repeat([0, 1, 2], 100),
        np.arange(300),
    )
    config = tiny_model.model_copy(update={"windows_per_series": 16, "max_epochs": 3})

    def weights() -> list[np.ndarray]:
        forecaster = RNNForecaster("gru", config, n_features=1, seed=3)
        forecaster.fit(windows, windows)
        assert forecaster.epochs_trained >= 1
        forecaster.finetune(windows, 1)
        return forecaster.model.get_weights()

    for a, b in zip(weights(), weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    uncapped = RNNForecaster("gru", tiny_model.model_copy(update={"max_epochs": 3}), 1, seed=3)
    uncapped.fit(windows, windows)
    assert not np.array_equal(uncapped.model.get_weights()[0], weights()[0])


def test_a_run_with_huge_uncapped_epochs_says_how_to_bound_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frame = pd.DataFrame(
        {
            "unique_id": np.repeat(["a", "b"], 300),
            "ds": np.tile(pd.date_range("2024-01-01", periods=300, freq="h"), 2),
            "y": np.random.default_rng(0).normal(size=600),
        }
    )
    model = ModelConfig(input_size=24, horizon=6, candidates=("naive", "gru"))
    fold = make_folds(frame, ["y"], model, EvaluationConfig(n_folds=1, fold_size=6))[0]
    monkeypatch.setattr(pipeline, "LONG_EPOCH_WINDOWS", len(fold.train) - 1)
    said: list[str] = []
    log = SimpleNamespace(warning=said.append)

    def warned(**update) -> list[str]:
        said.clear()
        config = PipelineConfig(model=model.model_copy(update=update))
        pipeline._warn_of_long_epochs(fold, config, log)
        return said

    (line,) = warned()
    assert f"all {len(fold.train):,} training windows" in line and "--windows-per-series" in line
    assert warned(windows_per_series=64) == []
    assert warned(candidates=("naive", "linear")) == []  # no RNN: no epochs
    monkeypatch.setattr(pipeline, "LONG_EPOCH_WINDOWS", len(fold.train))
    assert warned() == []
