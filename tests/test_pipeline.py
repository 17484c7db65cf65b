"""The pipeline as a library call: no Prefect, every step through the given step runner, the
same result as the Prefect flow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from forecasting import pipeline
from forecasting.config import DataConfig, ModelConfig, PipelineConfig

pytestmark = pytest.mark.slow

STEPS = [
    "load",
    "validate",
    "find_published",
    "make_folds",
    "track",
    "find_incumbent",
    "train",
    "train",
    "select",
    "forecast",
    "forecast_short",
    "package",
    "publish",
]


def _config(data: Path, output_dir: Path) -> PipelineConfig:
    return PipelineConfig(
        name="slice",
        output_dir=output_dir,
        data=DataConfig(path=data),
        model=ModelConfig(horizon=6, input_size=24, candidates=("naive", "linear")),
    )


def test_run_publishes_without_prefect(etth1_slice: Path, tmp_path: Path) -> None:
    code = (
        "import json, sys\n"
        "from forecasting.config import DataConfig, ModelConfig, PipelineConfig\n"
        "from forecasting.pipeline import run\n"
        f"config = PipelineConfig(name='slice', output_dir={str(tmp_path / 'out')!r},\n"
        f"    data=DataConfig(path={str(etth1_slice)!r}),\n"
        "    model=ModelConfig(horizon=6, input_size=24, candidates=('naive', 'linear')))\n"
        "result = run(config)\n"
        "print(json.dumps({'prefect': 'prefect' in sys.modules, 'path': result.path,\n"
        "    'champion': result.champion, 'reused': result.reused}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["prefect"] is False
    assert result["champion"] in {"naive", "linear"}
    assert result["reused"] is False
    run_dir = Path(result["path"])
    assert run_dir.parent.parent == tmp_path / "out" / "slice"
    assert (run_dir / "forecast.csv").is_file()
    assert (tmp_path / "out" / "slice" / "latest").resolve() == run_dir.resolve()


def test_every_step_goes_through_the_step_runner_in_order(
    etth1_slice: Path, tmp_path: Path
) -> None:
    seen: list[str] = []

    def recording(function, /, *args, **kwargs):
        seen.append(function.__name__)
        return function(*args, **kwargs)

    config = _config(etth1_slice, tmp_path / "out")
    first = pipeline.run(config, step=recording)
    assert seen == STEPS
    seen.clear()
    again = pipeline.run(config, step=recording)
    assert seen == ["load", "validate", "find_published", "publish"]
    assert again.reused is True
    assert (again.run_id, again.champion, again.path) == (first.run_id, first.champion, first.path)


def test_observer_sees_each_milestone_and_can_stand_a_run_down(
    etth1_slice: Path, tmp_path: Path
) -> None:
    events: list[tuple] = []

    class Recorder(pipeline.Observer):
        def training(self, kinds):
            events.append(("training", kinds))

        def trained(self, kind):
            events.append(("trained", kind))

        def published(self, path, history):
            events.append(("published", path, len(history)))

    config = _config(etth1_slice, tmp_path / "out")
    result = pipeline.run(config, observer=Recorder())
    assert events == [
        ("training", ("naive", "linear")),
        ("trained", "naive"),
        ("trained", "linear"),
        ("published", result.path, 1200),
    ]

    class StandDown(pipeline.Observer):
        def schedule(self, config, loaded):
            return config, "a newer run is due"

    later = _config(etth1_slice, tmp_path / "other")
    stood_down = pipeline.run(later, observer=StandDown())
    assert stood_down.superseded and stood_down.reason == "a newer run is due"
    assert stood_down.path is None and not (tmp_path / "other").exists()


def test_the_flow_runs_the_library_pipeline(
    prefect_harness, etth1_slice: Path, tmp_path: Path
) -> None:
    from flows.pipeline import forecast_pipeline

    library = pipeline.run(_config(etth1_slice, tmp_path / "library"))
    flow = forecast_pipeline(_config(etth1_slice, tmp_path / "flow"))
    assert (flow["run_id"], flow["champion"], flow["action"]) == (
        library.run_id,
        library.champion,
        library.action,
    )
    # Seconds differ from run to run; every score is the same.
    boards = [
        pd.read_csv(Path(path) / "leaderboard.csv").drop(columns="seconds")
        for path in (library.path, flow["path"])
    ]
    pd.testing.assert_frame_equal(*boards)
