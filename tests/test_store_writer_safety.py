"""Publishing under trouble, in one process: a full disk, leftovers of dead writers, retention,
`latest` following the as-of, and readers that only trust bytes the manifest vouches for."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path

import pytest

from forecasting.errors import ConfigError, PublishError
from forecasting.store import backend, reader
from forecasting.store.reader import read_latest, read_run, sealed_runs
from forecasting.store.writer import publish_run
from tests.helpers.publish_child import (
    latest_id,
    publish,
    run_files,
    run_id_for,
    temporary_entries,
)


def _disk_full_after(budget: int):
    """An `os.write` that writes `budget` bytes in all, then fails as a full disk does."""
    real_write = os.write
    left = [budget]

    def write(descriptor: int, data) -> int:
        if left[0] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = real_write(descriptor, bytes(data[: left[0]]))
        left[0] -= written
        return written

    return write


def _sizes() -> tuple[int, int]:
    _, files, _ = run_files(1)
    return files["model.keras"].__len__(), sum(len(data) for data in files.values())


MODEL_BYTES, RUN_BYTES = _sizes()


@pytest.mark.parametrize(
    "budget",
    [0, RUN_BYTES - MODEL_BYTES // 2, RUN_BYTES + 100],
    ids=["first-file", "inside-the-model", "inside-the-manifest"],
)
def test_a_full_disk_fails_clearly_and_leaves_latest_and_no_leftovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, budget: int
) -> None:
    previous = publish(tmp_path, 0)
    monkeypatch.setattr(os, "write", _disk_full_after(budget))
    with pytest.raises(PublishError, match=r"disk is full .*Free space.*previous run stays"):
        publish(tmp_path, 1)
    monkeypatch.undo()
    assert latest_id(tmp_path) == previous.name
    assert read_latest(tmp_path, "demo").path == previous.resolve()
    assert sealed_runs(tmp_path / "demo") == [previous.name]
    publish(tmp_path, 2)
    assert not temporary_entries(tmp_path / "demo")
    assert sealed_runs(tmp_path / "demo") == [previous.name, run_id_for(2)]


def test_a_full_disk_at_the_switch_keeps_latest_and_a_rerun_reuses_the_sealed_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    previous = publish(tmp_path, 0)

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "symlink", no_space)
    with pytest.raises(PublishError, match="disk is full"):
        publish(tmp_path, 1)
    monkeypatch.undo()
    assert latest_id(tmp_path) == previous.name
    sealed = publish(tmp_path, 1)
    assert latest_id(tmp_path) == sealed.name == run_id_for(1)
    assert not temporary_entries(tmp_path / "demo")


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def _host() -> str:
    return backend._host()


@pytest.fixture
def live_pid():
    child = subprocess.Popen(["sleep", "60"])
    yield child.pid
    child.kill()
    child.wait()


@pytest.mark.parametrize(
    ("writer", "removed"),
    [
        ("dead", True),
        ("this process", True),
        ("other host", True),
        ("no writer (older version)", True),
        ("live", False),
    ],
)
def test_leftovers_are_removed_only_when_their_writer_is_gone(
    tmp_path: Path, live_pid: int, writer: str, removed: bool
) -> None:
    """The rule of `_writer_is_gone`, seen through the next publish."""
    publish(tmp_path, 0)
    owner = {
        "dead": f"{_dead_pid()}@{_host()}",
        "this process": f"{os.getpid()}@{_host()}",
        "other host": f"{live_pid}@not-{_host()}",
        "live": f"{live_pid}@{_host()}",
    }.get(writer)
    token = f".{owner}.0123abcd.tmp" if owner else ".0123abcd.tmp"
    runs = tmp_path / "demo" / "runs"
    staging = runs / f".{run_id_for(7)}{token}"
    staging.mkdir()
    (staging / "forecast.csv").write_bytes(b"partial")
    link = tmp_path / "demo" / f".latest{token}"
    link.symlink_to(os.path.join("runs", run_id_for(7)))
    publish(tmp_path, 1)
    assert staging.exists() is not removed and link.is_symlink() is not removed
    assert read_latest(tmp_path, "demo").manifest["run_id"] == run_id_for(1)


def test_an_unsealed_run_folder_is_removed_by_the_next_publish(tmp_path: Path) -> None:
    publish(tmp_path, 0)
    unsealed = tmp_path / "demo" / "runs" / run_id_for(5)
    unsealed.mkdir()
    (unsealed / ".forecast.csv.0123abcd.tmp").touch()  # as older versions named it
    publish(tmp_path, 1)
    assert not unsealed.exists()


def test_retention_keeps_the_last_runs_by_as_of(tmp_path: Path) -> None:
    for index in range(5):
        publish(tmp_path, index, keep_runs=3)
    assert sealed_runs(tmp_path / "demo") == [run_id_for(index) for index in (2, 3, 4)]
    assert not temporary_entries(tmp_path / "demo")


def test_retention_never_deletes_latest_nor_the_run_just_published(tmp_path: Path) -> None:
    newest = publish(tmp_path, 100)
    for index in range(4):  # a backfill of older as-ofs
        publish(tmp_path, index, keep_runs=1)
    assert latest_id(tmp_path) == newest.name
    assert sealed_runs(tmp_path / "demo") == [run_id_for(3), newest.name]
    read_run(tmp_path / "demo" / "runs" / run_id_for(3))


def test_keep_runs_below_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="keep_runs must be at least 1"):
        publish(tmp_path, 0, keep_runs=0)


@pytest.mark.parametrize(
    ("current", "new", "moves"),
    [
        ("2024-01-02T00:00:00", "2024-01-01T00:00:00", False),
        ("2024-01-01T00:00:00", "2024-01-01T00:00:00", True),
        ("2024-01-01T00:00:00", "2024-01-02T00:00:00", True),
        ("2024-01-02T00:00:00+02:00", "2024-01-01T23:00:00+00:00", True),
        ("2024-01-02T00:00:00+00:00", "2024-01-01T23:00:00+00:00", False),
        ("2024-01-02T00:00:00", None, True),
        ("2024-01-02T00:00:00", "2024-01-01T00:00:00+00:00", True),  # cannot compare
    ],
)
def test_latest_moves_only_to_an_as_of_at_or_after_the_current(
    tmp_path: Path, current: str, new: str | None, moves: bool
) -> None:
    _, files, _ = run_files(0)
    publish_run(tmp_path, "demo", "first", files, {"as_of": current})
    second = {} if new is None else {"as_of": new}
    run_dir = publish_run(tmp_path, "demo", "second", files, second)
    assert latest_id(tmp_path) == ("second" if moves else "first")
    assert read_run(run_dir).manifest.get("as_of") == new


def test_reading_needs_a_manifest_that_lists_valid_files(tmp_path: Path) -> None:
    run_dir = publish(tmp_path, 0)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    for listing, message in [
        ({}, "lists no forecast.parquet"),
        ({"../outside.csv": {"sha256": "0", "bytes": 1}}, "no valid `files` listing"),
        (["forecast.csv"], "no valid `files` listing"),
    ]:
        (run_dir / "manifest.json").write_text(json.dumps({**manifest, "files": listing}))
        with pytest.raises(PublishError, match=message):
            read_run(run_dir)


def test_read_latest_follows_latest_when_it_moves_during_a_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resolved once; if that run vanishes because `latest` moved on, the new target is read."""
    first = publish(tmp_path, 0)
    real_read_run = reader.read_run
    calls = []

    def read_run_while_a_publish_lands(run_dir: Path, *args):
        calls.append(Path(run_dir).name)
        if len(calls) == 1:
            publish(tmp_path, 1, keep_runs=1)  # moves latest, then retention deletes `first`
        return real_read_run(run_dir, *args)

    monkeypatch.setattr(reader, "read_run", read_run_while_a_publish_lands)
    latest = read_latest(tmp_path, "demo")
    assert calls == [first.name, run_id_for(1)]
    assert latest.manifest["run_id"] == run_id_for(1)


def test_a_failed_flush_after_the_switch_warns_and_keeps_the_run_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(tmp_path, 0)
    real_fsync_dir = backend._fsync_dir

    def fsync_dir(path: Path) -> None:
        if path == tmp_path / "demo":
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_fsync_dir(path)

    monkeypatch.setattr(backend, "_fsync_dir", fsync_dir)
    with pytest.warns(UserWarning, match="A power loss could undo the switch"):
        publish(tmp_path, 1)
    assert read_latest(tmp_path, "demo").manifest["run_id"] == run_id_for(1)
