"""Publishing to object storage with the local folder's guarantees, against a real S3 server
(SeaweedFS on 127.0.0.1, started and stopped by PID): the same publish/read/rollback/rerun body
on both backends, racing publishers, publishers SIGKILLed while a reader reads, a stale ETag,
an endpoint that ignores conditional writes, and credentials kept out of everything written."""

from __future__ import annotations

import json
import os
import random
import secrets
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from forecasting.config import build_config
from forecasting.errors import ConfigError, PublishError
from forecasting.store import s3, writer
from forecasting.store.backend import open_backend
from forecasting.store.layout import POINTER, basename, pipeline_dir, run_key
from forecasting.store.reader import read_accuracy, read_latest, read_run, sealed_runs
from tests.helpers import seaweedfs
from tests.helpers.publish_child import run_files, run_id_for
from tests.test_store_writer_faults import Child

pytest.importorskip("s3fs", reason="the s3 extra (s3fs) is a dev dependency")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[seaweedfs.Server]:
    """One SeaweedFS for the session; the AWS variables point every S3 client at it."""
    with seaweedfs.seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        patch = pytest.MonkeyPatch()
        patch.setenv("AWS_ENDPOINT_URL", server.endpoint)
        patch.setenv("AWS_ACCESS_KEY_ID", seaweedfs.ACCESS_KEY)
        patch.setenv("AWS_SECRET_ACCESS_KEY", seaweedfs.SECRET_KEY)
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        try:
            yield server
        finally:
            patch.undo()


@pytest.fixture
def s3_url(s3_server: seaweedfs.Server) -> str:
    """A fresh prefix in the test bucket."""
    return f"s3://{seaweedfs.BUCKET}/t{secrets.token_hex(6)}"


@pytest.fixture(params=["local", "s3"])
def output_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    if request.param == "local":
        return tmp_path / "out"
    return request.getfixturevalue("s3_url")


def publish(output_dir: Path | str, index: int, keep_runs: int = 30, **extra) -> str:
    run_id, files, manifest = run_files(index)
    writer.publish_run(output_dir, "demo", run_id, files, {**manifest, **extra}, keep_runs)
    return run_id


def pointer(output_dir: Path | str) -> dict:
    return json.loads(open_backend(pipeline_dir(output_dir, "demo")).read_bytes(POINTER))


def test_publish_read_verify_rollback_and_rerun(output_dir: Path | str) -> None:
    first = publish(output_dir, 0, created_at="first")
    second = publish(output_dir, 1)
    latest = read_latest(output_dir, "demo")
    assert basename(latest.path) == second and latest.forecast["run_id"].eq(second).all()
    assert pointer(output_dir)["run_id"] == second
    assert pointer(output_dir)["as_of"] == latest.manifest["as_of"]

    writer.rollback(output_dir, "demo", first)
    assert read_latest(output_dir, "demo").manifest["run_id"] == first
    assert pointer(output_dir)["run_id"] == first

    publish(output_dir, 0, created_at="second")  # a rerun of identical inputs
    rerun = read_latest(output_dir, "demo")
    assert rerun.manifest["run_id"] == first and rerun.manifest["created_at"] == "first"
    publish(output_dir, 1)  # the newer as-of moves latest on again
    assert read_latest(output_dir, "demo").manifest["run_id"] == second
    assert sealed_runs(pipeline_dir(output_dir, "demo")) == [first, second]

    store = open_backend(pipeline_dir(output_dir, "demo"))
    store.write_file(run_key(second, "forecast.csv"), b"changed after publishing\n")
    with pytest.raises(PublishError, match="does not match the sha256"):
        read_latest(output_dir, "demo")


def test_the_accuracy_history_is_written_as_parts(output_dir: Path | str) -> None:
    import pandas as pd

    from forecasting.store.history import ACCURACY_COLUMNS

    def scored(run_id: str, error: float) -> pd.DataFrame:
        row = {column: [None] for column in ACCURACY_COLUMNS}
        times = {"as_of": "2024-01-01", "ds": "2024-01-02", "scored_at_as_of": "2024-01-03"}
        row.update({key: [pd.Timestamp(value)] for key, value in times.items()})
        row.update(run_id=[run_id], model=["gru"], unique_id=["a"], horizon_step=[1])
        row.update(y=[1.0], y_hat=[1.0 + error], abs_error=[error], scaled_error=[error])
        return pd.DataFrame(row).assign(in_80=True, in_95=True)

    for index, rows in ((1, scored("old-1", 0.5)), (2, scored("old-2", 0.25))):
        run_id, files, manifest = run_files(index)
        writer.publish_run(output_dir, "demo", run_id, files, manifest, accuracy=rows)
    history = read_accuracy(pipeline_dir(output_dir, "demo"))
    assert history is not None and history["run_id"].tolist() == ["old-1", "old-2"]
    store = open_backend(pipeline_dir(output_dir, "demo"))
    assert store.keys("accuracy") == [f"accuracy/{run_id_for(i)}.parquet" for i in (1, 2)]


def test_two_publishers_race_and_latest_ends_at_the_newer_as_of(s3_url: str) -> None:
    rng = random.Random(7)
    for trial in range(20):
        output_dir = f"{s3_url}/trial{trial}"
        older, newer = 10 * trial, 10 * trial + 1
        runs = {index: run_files(index) for index in (older, newer)}
        errors: list[BaseException] = []

        def publish_later(index: int, delay: float, runs=runs, errors=errors, where=output_dir):
            time.sleep(delay)
            try:
                run_id, files, manifest = runs[index]
                writer.publish_run(where, "demo", run_id, files, manifest)
            except BaseException as error:  # noqa: BLE001 - reported below
                errors.append(error)

        threads = [
            threading.Thread(target=publish_later, args=(index, rng.uniform(0, 0.05)))
            for index in (older, newer)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert pointer(output_dir)["run_id"] == run_id_for(newer), f"trial {trial}"
        assert sealed_runs(pipeline_dir(output_dir, "demo")) == sorted(
            [run_id_for(older), run_id_for(newer)]
        )
        for index in (older, newer):
            read_run(f"{output_dir}/demo/runs/{run_id_for(index)}")


def test_a_stale_etag_is_retried(s3_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another writer moves latest.json between this writer's read and its PUT: the PUT with
    the stale ETag gets 412, and the writer reads again and decides again."""
    publish(s3_url, 0)
    real = s3.S3Backend._read_pointer
    reads: list[str | None] = []

    def read_then_interleave(self: s3.S3Backend):
        found = real(self)
        reads.append(found[1])
        if len(reads) == 1:
            publish(s3_url, 1)  # lands between this read and the PUT
        return found

    monkeypatch.setattr(s3.S3Backend, "_read_pointer", read_then_interleave)
    publish(s3_url, 2)
    assert len(reads) >= 3 and reads[0] != reads[-1]  # (interloper's own read in between)
    assert pointer(s3_url)["run_id"] == run_id_for(2)


def test_killed_publishers_never_expose_a_partial_run(s3_url: str, tmp_path: Path) -> None:
    """50 publisher processes SIGKILLed at random moments while another process reads latest:
    every read verifies, and the previous latest stays readable."""
    publish(s3_url, 0)
    server = Child(tmp_path, "serve", s3_url, "demo", 1000)
    server.expect("ready")
    reader = Child(tmp_path, "read", s3_url, "demo")
    reader.expect("ready")
    rng = random.Random(1)
    try:
        for trial in range(1, 51):
            previous = pointer(s3_url)["run_id"]
            server.send(f"go {trial * 1000}")
            pid = int(server.expect("pid"))
            server.expect("writing")
            time.sleep(rng.uniform(0, 0.25))
            os.kill(pid, signal.SIGKILL)
            assert server.expect("exit") == str(-signal.SIGKILL), server.stderr()
            read_run(f"{s3_url}/demo/runs/{previous}")
            latest = read_latest(s3_url, "demo").manifest["run_id"]
            assert latest >= previous
    finally:
        server.close()
        reader.process.stdin.close()
    reads = int(reader.expect("reads"))
    errors = []
    while (line := reader.lines.get(timeout=30)) != "done":
        errors.append(line)
    reader.close()
    assert errors == []
    assert reads >= 50


def test_leftovers_and_old_runs_go_only_once_no_writer_can_be_at_work(s3_url: str) -> None:
    store = s3.S3Backend(f"{s3_url}/demo", leftover_age=2)
    for index in (0, 1):
        run_id, files, manifest = run_files(index)
        writer._publish(store, run_id, files, manifest, 30, None)
    abandoned = run_key("20231231T000000-dead", "forecast.csv")
    store.create_file(abandoned, b"a writer died here")
    time.sleep(3.2)  # Last-Modified has one-second steps
    young = run_key("20231231T010000-busy", "forecast.csv")
    store.create_file(young, b"a writer is still at work")
    run_id, files, manifest = run_files(2)
    writer._publish(store, run_id, files, manifest, 1, None)
    # The old leftover and run 0 went; run 1 (settled, beyond keep_runs) went too; the young
    # leftover and the just-published run stay.
    assert store.run_ids() == [run_id_for(2)]
    keys = set(store._modified_under("runs"))
    assert young in keys and abandoned not in keys


def test_a_cleanup_that_judged_a_run_abandoned_spares_it_once_a_writer_sealed_it(
    s3_url: str,
) -> None:
    """A rerun of a crashed attempt's run id keeps the old files and seals them; a cleanup that
    listed the run as abandoned just before must not delete it under the new manifest."""
    store = s3.S3Backend(f"{s3_url}/demo", leftover_age=2)
    run_id, files, manifest = run_files(0)
    for filename, data in files.items():  # the crashed attempt: every file but the manifest
        store.create_file(run_key(run_id, filename), data)
    time.sleep(3.2)  # Last-Modified has one-second steps
    judged = store.leftovers()
    assert run_key(run_id) in judged
    writer._publish(store, run_id, files, manifest, 30, None)  # the rerun seals it
    for key in judged:  # the cleanup goes on with what it listed
        store.remove(key)
    assert read_run(f"{s3_url}/demo/runs/{run_id}").manifest["run_id"] == run_id
    assert store.latest() == run_id


def test_an_endpoint_that_ignores_conditional_writes_is_refused(
    s3_server: seaweedfs.Server, s3_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with seaweedfs.ignoring_conditions(s3_server.endpoint) as shim:
        monkeypatch.setenv("AWS_ENDPOINT_URL", shim)
        with pytest.raises(PublishError, match="ignores conditional writes") as refused:
            writer.check_output(s3_url, "demo")
        assert shim in str(refused.value) and "\n" not in str(refused.value)
        with pytest.raises(PublishError, match="ignores conditional writes"):
            publish(s3_url, 0)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    assert sealed_runs(pipeline_dir(s3_url, "demo")) == []


def test_an_unreachable_endpoint_is_refused_in_one_line(
    s3_server: seaweedfs.Server, s3_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """botocore's own errors (no connection, no credentials) are storage errors like any other,
    not a traceback."""
    closed = f"http://127.0.0.1:{seaweedfs.free_ports(1)[0]}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", closed)
    with pytest.raises(PublishError, match="Could not connect to the endpoint") as refused:
        writer.check_output(s3_url, "demo")
    assert closed in str(refused.value) and "\n" not in str(refused.value)
    with pytest.raises(PublishError, match="Could not connect"):
        read_latest(s3_url, "demo")


def test_a_url_without_a_backend_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="scheme 'gs', which has no storage backend"):
        build_config({"output_dir": "gs://bucket/x"})
    assert build_config({"output_dir": "s3://bucket/x/"}).output_dir == "s3://bucket/x"
    monkeypatch.setitem(sys.modules, "s3fs", None)  # as if the s3 extra were not installed
    with pytest.raises(ConfigError, match=r"needs s3fs.*recurrent-forecast\[s3\]") as refused:
        build_config({"output_dir": "s3://bucket/x"})
    assert "\n" not in str(refused.value)


def test_credentials_appear_in_nothing_written(
    s3_url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    publish(s3_url, 0)
    with pytest.raises(PublishError) as missing:
        read_latest(s3_url, "nothing")
    store = open_backend(pipeline_dir(s3_url, "demo"))
    written = b"".join(store.read_bytes(key) for key in store._modified_under(""))
    said = capfd.readouterr()
    for secret in (seaweedfs.ACCESS_KEY, seaweedfs.SECRET_KEY):
        assert secret.encode() not in written
        assert secret not in said.out + said.err + str(missing.value)


def test_the_pipeline_publishes_to_a_bucket_reuses_and_keeps_the_title(
    s3_url: str, tiny_config
) -> None:
    """The whole pipeline against the bucket: a linear champion published, read back and loaded
    (its model bytes verified, copied to a private file); the same run again reuses it; an
    older as-of publishes beside it and leaves `latest` at the newer run."""
    from forecasting.pipeline import run
    from forecasting.store.model_files import load_latest_model

    config = tiny_config.model_copy(
        update={
            "output_dir": s3_url,
            "model": tiny_config.model.model_copy(update={"candidates": ("naive", "linear")}),
        }
    )
    first = run(config)
    assert first.champion == "linear" and str(first.path).startswith(s3_url)
    latest = read_latest(s3_url, "slice")
    assert (
        latest.manifest["run_id"] == first.run_id and pointer_of(s3_url)["run_id"] == first.run_id
    )
    model = load_latest_model(s3_url, "slice")
    assert model.output_shape == (None, config.model.horizon)

    again = run(config)
    assert again.reused and again.run_id == first.run_id

    frame_end = latest.forecast["as_of"].iloc[0]
    older = run(config.model_copy(update={"as_of": frame_end - pd_hours(24)}))
    assert not older.reused and older.run_id != first.run_id
    assert read_latest(s3_url, "slice").manifest["run_id"] == first.run_id
    assert sealed_runs(pipeline_dir(s3_url, "slice")) == sorted([first.run_id, older.run_id])


def pointer_of(output_dir: str) -> dict:
    return json.loads(open_backend(pipeline_dir(output_dir, "slice")).read_bytes(POINTER))


def pd_hours(hours: int):
    import pandas as pd

    return pd.Timedelta(hours=hours)
