"""Task runners for the candidates: a real process pool and a real Dask LocalCluster give the
run that training one after another gives; a dying worker fails only its candidate; a local
cluster leaves no process behind (checked by PID)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from flows.runners import EXIT_HOOK
from forecasting.config import DataConfig, ExecutionConfig, PipelineConfig
from forecasting.execution import cores
from forecasting.store.reader import read_latest
from tests.conftest import TINY_MODEL
from tests.helpers.prefect_server import own_prefect_environment

pytestmark = pytest.mark.slow

RUNNERS = ("sequential", "processes", "dask")
CANDIDATES = ("naive", "seasonal_naive", "gru")
CLI = [sys.executable, "-c", "from flows.cli import app; app()"]


def config_for(data: Path, output_dir: Path, runner: str, candidates=CANDIDATES) -> PipelineConfig:
    return PipelineConfig(
        name="slice",
        output_dir=output_dir,
        data=DataConfig(path=data),
        model=TINY_MODEL.model_copy(update={"candidates": candidates}),
        execution=ExecutionConfig(task_runner=runner, workers=2),
    )


def children() -> dict[int, list[int]]:
    """Each live process's children, from /proc (zombies count as gone)."""
    tree: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        state, parent = stat.rsplit(")", 1)[1].split()[:2]
        if entry.name.isdigit() and state != "Z":
            tree[int(parent)].append(int(entry.name))
    return tree


def descendants(pid: int) -> set[int]:
    tree, found, todo = children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pids: set[int], within: float = 20) -> set[int]:
    """Those of `pids` still running, after up to `within` seconds for them to exit."""
    deadline = time.monotonic() + within
    while True:
        running = {pid for tree in children().values() for pid in tree} & pids
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.2)


@pytest.fixture(scope="module")
def runs(prefect_harness, tmp_path_factory) -> dict[str, dict]:
    """The same run under each runner, each publishing to its own folder; for dask, also the
    processes this process had before and after it."""
    from prefect.settings import get_current_settings

    from flows.pipeline import forecast_pipeline
    from tests.conftest import ETTH1

    storage = get_current_settings().results.local_storage_path
    stored = set(storage.rglob("*")) if storage.exists() else set()
    folder = tmp_path_factory.mktemp("runners")
    data = folder / "slice.csv"
    data.write_text("".join(ETTH1.read_text().splitlines(keepends=True)[:1201]))
    found: dict[str, dict] = {}
    for runner in RUNNERS:
        before = descendants(os.getpid())
        config = config_for(data, folder / runner, runner)
        summary = forecast_pipeline(config)
        manifest = read_latest(config.output_dir, "slice").manifest
        found[runner] = {"summary": summary, "manifest": manifest, "before": before}
        found[runner]["after"] = descendants(os.getpid())
    found["data"] = {"path": data, "folder": folder}
    found["stored"] = {"before": stored, "after": set(storage.rglob("*"))}
    return found


def candidates(manifest: dict) -> dict[str, dict]:
    return {entry["model"]: entry for entry in manifest["candidates"]}


@pytest.mark.parametrize("runner", ["processes", "dask"])
def test_every_runner_gives_the_same_run_champion_and_metrics(runs, runner) -> None:
    sequential, other = runs["sequential"], runs[runner]
    for key in ("run_id", "champion", "action", "reason"):
        assert other["summary"][key] == sequential["summary"][key], key
    assert (
        other["manifest"]["champion"]["decision"] == sequential["manifest"]["champion"]["decision"]
    )
    expected, got = candidates(sequential["manifest"]), candidates(other["manifest"])
    for kind in ("naive", "seasonal_naive"):
        assert got[kind]["metrics"] == expected[kind]["metrics"]
        assert got[kind]["fold_metrics"] == expected[kind]["fold_metrics"]
    assert got["gru"]["status"] == "ok" and got["gru"]["epochs"] == expected["gru"]["epochs"]
    for name, value in expected["gru"]["metrics"].items():
        assert got["gru"]["metrics"][name] == pytest.approx(value, rel=1e-6), name


def test_the_manifest_records_where_each_candidate_trained(runs) -> None:
    sequential = runs["sequential"]["manifest"]["execution"]
    assert sequential["task_runner"] == "sequential" and sequential["workers"] == 1
    assert sequential["threads_per_worker"] is None
    assert {entry["pid"] for entry in sequential["candidates"]} == {os.getpid()}
    for runner in ("processes", "dask"):
        execution = runs[runner]["manifest"]["execution"]
        share = max(1, cores() // 2)
        assert (execution["task_runner"], execution["workers"]) == (runner, 2)
        assert execution["threads_per_worker"] == share
        assert [entry["model"] for entry in execution["candidates"]] == list(CANDIDATES)
        for entry in execution["candidates"]:
            assert entry["pid"] != os.getpid() and entry["host"] == os.uname().nodename
            assert entry["threads"] == share


def test_threads_share_the_runs_own_limit_not_the_machines() -> None:
    from forecasting.execution import threads_per_worker

    assert threads_per_worker(2, threads=8) == 4
    assert threads_per_worker(3, threads=2) == 1  # at least one each
    assert threads_per_worker(2) == max(1, cores() // 2)


def test_the_thread_limit_holds_numpys_blas_loaded_before_it() -> None:
    script = (
        "import numpy, threadpoolctl\n"
        "from forecasting.execution import limit_threads\n"
        "limit_threads(1)\n"
        "print(sorted({pool['num_threads'] for pool in threadpoolctl.threadpool_info()}))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stdout.strip() == "[1]", done.stderr


def test_a_run_with_threads_trains_within_them(prefect_harness, etth1_slice, tmp_path) -> None:
    """`forecast run --threads 1`: the process that trains the RNN runs TensorFlow on one
    thread, and the manifest says so (by default it records TensorFlow's own choice, null)."""
    from prefect.settings import PREFECT_API_URL

    options = ["--data", str(etth1_slice), "--output-dir", str(tmp_path / "out")]
    options += ["--candidates", "naive,gru", "--max-epochs", "1", "--input-size", "24"]
    env = own_prefect_environment(tmp_path / "prefect")
    env["PREFECT_API_URL"] = str(PREFECT_API_URL.value())
    for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        env.pop(name, None)
    done = subprocess.run([*CLI, "run", *options, "--threads", "1"], env=env, capture_output=True)
    assert done.returncode == 0, done.stderr
    execution = read_latest(tmp_path / "out", etth1_slice.stem).manifest["execution"]
    assert execution["threads"] == 1 and execution["threads_per_worker"] is None
    assert {entry["threads"] for entry in execution["candidates"]} == {1}


def test_no_task_result_is_persisted(runs) -> None:
    assert runs["stored"]["after"] == runs["stored"]["before"]


def test_a_trained_rnn_pickles_to_the_same_forecasts(tiny_model) -> None:
    """What a worker hands back: the same network, weights and counters, not a Keras object."""
    import pickle

    import numpy as np

    from forecasting.models import make_forecaster

    model = tiny_model.model_copy(update={"ensemble_size": 2})
    forecaster = make_forecaster("gru", model, 1, 24, seed=7)
    inputs = np.random.default_rng(0).normal(size=(5, 24, 1)).astype("float32")
    weights = forecaster.model.variables[0]
    weights.assign(weights.numpy() * 1.5)  # not what a fresh build from the seed holds
    forecaster.epochs_trained = 3
    copy = pickle.loads(pickle.dumps(forecaster))
    assert np.array_equal(copy.predict(inputs), forecaster.predict(inputs))
    assert copy.epochs_trained == 3 and len(copy.trainer.outputs) == 3  # members and mean


@pytest.mark.parametrize(
    "values, message",
    [
        ({"dask_address": "tcp://127.0.0.1:8786"}, "set task_runner to 'dask'"),
        ({"task_runner": "dask", "dask_address": "127.0.0.1:8786"}, "tcp://127.0.0.1:8786"),
        ({"task_runner": "threads"}, "execution.task_runner"),
        ({"task_runner": "processes", "workers": 0}, "execution.workers"),
    ],
)
def test_bad_execution_settings_are_refused_in_one_line(values, message) -> None:
    from forecasting.config import build_config
    from forecasting.errors import ConfigError

    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        build_config({"execution": values})


def test_a_local_dask_cluster_leaves_no_process_after_the_run(runs) -> None:
    dask = runs["dask"]
    workers = {entry["pid"] for entry in dask["manifest"]["execution"]["candidates"]}
    assert not alive(workers)
    assert not alive(dask["after"] - dask["before"])


def test_a_worker_that_dies_fails_only_its_candidate(runs, monkeypatch) -> None:
    from flows.pipeline import forecast_pipeline

    monkeypatch.setenv(EXIT_HOOK, "gru")
    data, folder = runs["data"]["path"], runs["data"]["folder"]
    for runner in ("processes", "dask"):
        config = config_for(data, folder / f"crash-{runner}", runner)
        summary = forecast_pipeline(config)
        manifest = read_latest(config.output_dir, "slice").manifest
        assert summary["run_id"] == runs["sequential"]["summary"]["run_id"]
        failed = candidates(manifest)["gru"]
        assert failed["status"] == "failed", runner
        assert failed["reason"].startswith("no result came back from its worker")
        assert "terminated abruptly" in failed["reason"] or "workers died" in failed["reason"]
        expected = candidates(runs["sequential"]["manifest"])
        for kind in ("naive", "seasonal_naive"):
            assert candidates(manifest)[kind]["metrics"] == expected[kind]["metrics"]
        where = {entry["model"]: entry for entry in manifest["execution"]["candidates"]}
        assert where["gru"]["pid"] is None and where["naive"]["pid"] is not None


def test_a_failed_run_closes_its_local_dask_cluster(runs, monkeypatch) -> None:
    from flows.pipeline import forecast_pipeline

    monkeypatch.setenv(EXIT_HOOK, "gru")
    data, folder = runs["data"]["path"], runs["data"]["folder"]
    before = descendants(os.getpid())
    config = config_for(data, folder / "all-fail", "dask", candidates=("gru",))
    state = forecast_pipeline(config, return_state=True)
    assert state.is_failed() and "Every candidate failed" in state.message
    assert not alive(descendants(os.getpid()) - before)
    assert not (folder / "all-fail" / "slice" / "latest").exists()


@pytest.mark.parametrize("runner", ["dask", "processes"])
@pytest.mark.parametrize("interrupt", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_an_interrupted_run_leaves_no_worker_process(
    prefect_harness, etth1_slice, tmp_path, interrupt, runner
):
    """`forecast run --task-runner dask|processes` stopped while a worker trains: every
    process it started is gone once it exits, even when it is killed outright (SIGKILL) and
    cannot close its workers."""
    from prefect.settings import PREFECT_API_URL

    options = ["--data", str(etth1_slice), "--output-dir", str(tmp_path / "out")]
    options += ["--candidates", "gru", "--max-epochs", "500", "--input-size", "48"]
    options += ["--task-runner", runner, "--workers", "2"]
    env = own_prefect_environment(tmp_path / "prefect")
    env["PREFECT_API_URL"] = str(PREFECT_API_URL.value())  # the session's server: no start-up
    cli = subprocess.Popen([*CLI, "run", *options], env=env, stdout=subprocess.PIPE, text=True)
    try:
        seen: set[int] = set()
        deadline = time.monotonic() + 120
        # a process pool's workers, or a local cluster's (its nannies run in the CLI's process)
        while (
            len(spawned(cli.pid)) < (2 if runner == "dask" else 1) and time.monotonic() < deadline
        ):
            seen |= descendants(cli.pid)
            time.sleep(0.5)
        assert spawned(cli.pid), "no worker started"
        while max(map(cpu_seconds, spawned(cli.pid)), default=0) < 10:  # it trains
            assert time.monotonic() < deadline, "no worker trained"
            time.sleep(0.5)
        seen |= descendants(cli.pid)
        cli.send_signal(interrupt)
        cli.wait(timeout=60)
    finally:
        cli.kill()
    assert cli.returncode != 0
    # An interrupted run exits and leaves nothing (Dask's worker processes also end with their
    # parent; a process pool's do not by themselves); the in-process tests check the close.
    assert not alive(seen)


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def spawned(pid: int) -> set[int]:
    """The processes under `pid` that multiprocessing spawned (workers of a pool or cluster)."""
    found = set()
    for child in descendants(pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in command:
            found.add(child)
    return found
