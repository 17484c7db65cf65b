"""The only module that writes outputs: crash-safe, versioned run folders and the `latest` link.

Layout under `<output_dir>/<name>/`:
    runs/<run_id>/   forecast.csv, forecast.parquet, candidate_forecasts.parquet, leaderboard.csv,
                     backtest.parquet, preprocessing.json, model.keras (absent when a naive
                     model wins), manifest.json (lists every other file with its sha256 and size)
    latest           relative symlink to runs/<run_id>; switching it is the commit point
    accuracy.parquet earlier runs' forecasts scored against the actuals that came later
    .publish.lock    held by every writer for its whole publish

While a writer works, its files carry temporary names that record who wrote them,
`.<target>.<pid>@<host>.<token>.tmp`: a run is assembled in `runs/.<run_id>.<pid>@<host>...tmp/`
and renamed to `runs/<run_id>/` only once its manifest is inside, so a folder named like a run
id is always sealed. Later publishes remove what dead writers left and keep the last
`keep_runs` runs. Readers (`reading`) never list folders: they resolve `latest` and verify hashes.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
from filelock import FileLock, Timeout

from forecasting.errors import ConfigError, PublishError

SCHEMA_VERSION = 2
MANIFEST = "manifest.json"
ACCURACY_FILE = "accuracy.parquet"
LOCK_FILE = ".publish.lock"
INTERVAL_COLUMNS = ["y_hat_lo_80", "y_hat_hi_80", "y_hat_lo_95", "y_hat_hi_95"]
FORECAST_COLUMNS = [
    "unique_id",
    "ds",
    "horizon_step",
    "y_hat",
    *INTERVAL_COLUMNS,
    "model",
    "run_id",
    "as_of",
]
LOCK_TIMEOUT_SECONDS = 600
KEEP_RUNS = 30
_TEMPORARY = re.compile(
    r"^\.(?P<target>.+)\.(?P<pid>\d+)@(?P<host>[A-Za-z0-9-]+)\.(?P<token>[0-9a-f]{8})\.tmp$"
)
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def make_run_id(as_of: pd.Timestamp, fingerprint: str) -> str:
    """A run id such as `20180626T190000-3f2a9c01bd`: the as-of time, then a fingerprint of
    everything that determines the result (data, config, seed, versions).

    The same inputs give the same id, so a rerun of identical inputs finds its run already
    published instead of writing a second copy, and ids sort by as-of time.
    """
    moment = pd.Timestamp(as_of)
    if moment.tzinfo is not None:
        return f"{moment.tz_convert('UTC'):%Y%m%dT%H%M%SZ}-{fingerprint[:10]}"
    return f"{moment:%Y%m%dT%H%M%S}-{fingerprint[:10]}"


def iso(value: pd.Timestamp) -> str:
    """ISO-8601 text for a timestamp, with its offset when it is time-zone aware."""
    return pd.Timestamp(value).isoformat()


def frame_files(
    forecast: pd.DataFrame,
    candidates: pd.DataFrame,
    leaderboard: pd.DataFrame,
    backtest: pd.DataFrame,
) -> dict[str, bytes]:
    """Serializes the run's tables: forecast as CSV (ISO-8601 `ds`, `as_of`) and Parquet, its
    columns in the readers' contract order (`FORECAST_COLUMNS`), and the backtest."""
    forecast = forecast[FORECAST_COLUMNS]
    candidates = candidates[FORECAST_COLUMNS]
    text = forecast.copy()
    for column in ("ds", "as_of"):
        text[column] = [iso(value) for value in text[column]]
    return {
        "forecast.csv": text.to_csv(index=False, lineterminator="\n").encode(),
        "forecast.parquet": _parquet_bytes(forecast),
        "candidate_forecasts.parquet": _parquet_bytes(candidates),
        "leaderboard.csv": leaderboard.to_csv(index=False, lineterminator="\n").encode(),
        "backtest.parquet": _parquet_bytes(backtest),
    }


def json_bytes(document: dict) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=False, default=str) + "\n").encode()


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def publish_run(
    output_dir: Path,
    name: str,
    run_id: str,
    files: dict[str, bytes],
    manifest: dict,
    keep_runs: int = KEEP_RUNS,
    accuracy: pd.DataFrame | None = None,
) -> Path:
    """Writes a run folder crash-safely, seals it with its manifest, then switches `latest`.

    Under the publish lock, in this order: leftovers of dead writers are removed; each file is
    written under a temporary name in a staging folder, fsynced and renamed; the manifest (sha256
    and size of every other file) is written last; the staging folder is fsynced and renamed to
    `runs/<run_id>` (so the run is sealed the moment it has its name); `runs/` is fsynced; then
    `latest` is switched by `os.replace` of a temporary symlink, the single commit point. A crash
    before it leaves the previous run published; readers see either the old run or the new one.

    `latest` moves only if this run's `as_of` is at or after the current latest's (a tie goes to
    this, newer, publish), so when two runs of a pipeline race, `latest` ends at the later as-of
    whichever finishes last. It also moves when either `as_of` is missing or the two cannot be
    compared (one time-zone aware, one not). A run id that is already sealed (identical inputs)
    is not rewritten; the same rule decides whether `latest` points at it.

    Leftovers of dead writers are removed only while holding the lock, which every writer holds
    for its whole publish and the kernel releases when a process dies (see `_writer_is_gone`).

    Retention then keeps the last `keep_runs` sealed runs in run id order, which is as-of order
    (`make_run_id`; runs with the same as-of follow their fingerprints). Run id order rather than
    `created_at`: it matches what `latest` follows, needs no other run's manifest (a damaged one
    cannot derail it), ignores clock skew between hosts, and a reused sealed run keeps its place.
    The run `latest` points to and the run just published are never deleted, so a backfill of
    an old as-of survives its own publish. Retention problems only warn: the run is published.

    Args:
        output_dir: Folder holding every pipeline's outputs.
        name: Pipeline name; the run goes to `<output_dir>/<name>/runs/<run_id>`.
        run_id: From `make_run_id`.
        files: File name to content, for every file of the run but the manifest.
        manifest: The manifest without `files`; its `as_of` (ISO-8601) decides `latest`.
        keep_runs: Sealed runs to keep, at least 1.
        accuracy: Newly scored rows of earlier runs' forecasts; merged into
            `<output_dir>/<name>/accuracy.parquet` (atomically replaced) after the run is sealed.

    Returns:
        The run's folder.

    Raises:
        ConfigError: `keep_runs` is below 1.
        PublishError: The run cannot be written (disk full, permissions), or another run held
            the publish lock for `LOCK_TIMEOUT_SECONDS`. `latest` is then untouched.
    """
    if keep_runs < 1:
        raise ConfigError(f"keep_runs must be at least 1. Received: keep_runs={keep_runs}")
    pipeline_dir = Path(output_dir) / name
    run_dir = pipeline_dir / "runs" / run_id
    with _locked(pipeline_dir, run_id, "Check for a stuck run, then retry."):
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(pipeline_dir / LOCK_FILE, timeout=LOCK_TIMEOUT_SECONDS):
            _remove_leftovers(pipeline_dir)
            if not (run_dir / MANIFEST).is_file():
                _write_run(run_dir, files, manifest)
            if _is_at_or_after(manifest.get("as_of"), latest_as_of(pipeline_dir)):
                _switch_latest(pipeline_dir, run_id)
            if accuracy is not None and len(accuracy):
                _append_accuracy(pipeline_dir, accuracy)
            _prune(pipeline_dir, keep_runs, run_id)
    return run_dir


@contextlib.contextmanager
def _locked(pipeline_dir: Path, run_id: str, retry: str) -> Iterator[None]:
    """Turns a publish-lock timeout or an OS error inside the block into a PublishError."""
    try:
        yield
    except Timeout:
        raise PublishError(
            f"Another run held the publish lock of {str(pipeline_dir)!r} for "
            f"{LOCK_TIMEOUT_SECONDS} s. {retry}"
        ) from None
    except OSError as error:
        run_dir = pipeline_dir / "runs" / run_id
        raise PublishError(_failure_message(run_id, run_dir, error)) from None


def rollback(output_dir: Path, name: str, run_id: str) -> Path:
    """Points `latest` at an earlier sealed run, after verifying every file's hash.

    It stays there until the next publish whose as-of is at or after that run's moves it on.

    Raises:
        PublishError: The run does not exist, fails verification, or the lock is held.
    """
    from forecasting.reading import read_run

    pipeline_dir = Path(output_dir) / name
    run_dir = pipeline_dir / "runs" / run_id
    if "/" in run_id or run_id.startswith(".") or not (run_dir / MANIFEST).is_file():
        known = ", ".join(sealed_runs(pipeline_dir)[-5:]) or "none"
        raise PublishError(
            f"Pipeline {name!r} in {str(output_dir)!r} has no complete run {run_id!r}. "
            f"Recent runs: {known}."
        )
    with (
        _locked(pipeline_dir, run_id, "Retry the rollback when it is done."),
        FileLock(pipeline_dir / LOCK_FILE, timeout=LOCK_TIMEOUT_SECONDS),
    ):
        read_run(run_dir)
        _switch_latest(pipeline_dir, run_id)
    return run_dir


def _append_accuracy(pipeline_dir: Path, rows: pd.DataFrame) -> None:
    """Merges scored rows into accuracy.parquet by writing a new file and renaming it."""
    from forecasting.accuracy import merge_accuracy

    path = pipeline_dir / ACCURACY_FILE
    try:
        existing = pd.read_parquet(path) if path.is_file() else None
    except Exception as error:  # noqa: BLE001 - a damaged history must not stop publishing
        warnings.warn(
            f"{str(path)!r} cannot be read ({type(error).__name__}: {error}); the new scores "
            "are not added. Move the file aside to start a new history.",
            stacklevel=3,
        )
        return
    _write_atomic(path, _parquet_bytes(merge_accuracy(existing, rows)))


def _failure_message(run_id: str, run_dir: Path, error: OSError) -> str:
    reason = error.strerror or str(error)
    if error.errno in _DISK_FULL:
        return (
            f"Could not publish run {run_id} to {str(run_dir)!r}: the disk is full ({reason}). "
            "Free space on that disk (old runs in its runs/ folder can go; a lower keep_runs "
            "keeps fewer) and rerun; the previous run stays published."
        )
    return (
        f"Could not publish run {run_id} to {str(run_dir)!r}: {reason}. "
        "Check free space and permissions; the previous run stays published."
    )


def _write_run(run_dir: Path, files: dict[str, bytes], manifest: dict) -> None:
    """Assembles the run in a staging folder and renames it to `run_dir` once sealed."""
    staging = run_dir.with_name(_temporary_name(run_dir.name))
    staging.mkdir()
    try:
        listing = {}
        for filename, data in files.items():
            _write_atomic(staging / filename, data)
            listing[filename] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        _write_atomic(staging / MANIFEST, json_bytes({**manifest, "files": listing}))
        _fsync_dir(staging)
        os.rename(staging, run_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _fsync_dir(run_dir.parent)


def _write_atomic(path: Path, data: bytes) -> None:
    """Writes under a temporary name, fsyncs, then renames, so `path` is whole or absent."""
    temporary = path.with_name(_temporary_name(path.name))
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        try:
            remaining = memoryview(data)
            while remaining:  # os.write may write less than asked, e.g. as the disk fills up
                remaining = remaining[os.write(descriptor, remaining) :]
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _switch_latest(pipeline_dir: Path, run_id: str) -> None:
    temporary = pipeline_dir / _temporary_name("latest")
    os.symlink(os.path.join("runs", run_id), temporary)
    try:
        os.replace(temporary, pipeline_dir / "latest")
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    try:
        _fsync_dir(pipeline_dir)
    except OSError as error:  # the switch is done and readers see it; only its flush failed
        warnings.warn(
            f"`latest` of {str(pipeline_dir)!r} now points at runs/{run_id}, but flushing that "
            f"to disk failed: {error.strerror or error}. A power loss could undo the switch; "
            "check the disk.",
            stacklevel=3,
        )


def latest_as_of(pipeline_dir: Path) -> str | None:
    """The `as_of` of the run `latest` points to; None when there is none or it is unreadable."""
    try:
        manifest = json.loads((pipeline_dir / "latest" / MANIFEST).read_bytes())
    except (OSError, ValueError):
        return None
    return manifest.get("as_of") if isinstance(manifest, dict) else None


def _is_at_or_after(as_of: object, current: object) -> bool:
    if as_of is None or current is None:
        return True
    try:
        return bool(pd.Timestamp(str(as_of)) >= pd.Timestamp(str(current)))
    except (TypeError, ValueError):  # unparseable, or aware against naive
        return True


@functools.cache
def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:63] or "host"


def _temporary_name(target: str) -> str:
    """`.<target>.<pid>@<host>.<token>.tmp`: hidden, unique, and naming its writer."""
    return f".{target}.{os.getpid()}@{_host()}.{secrets.token_hex(4)}.tmp"


def _writer_is_gone(temporary_name: str) -> bool:
    """Whether the writer of a temporary file or folder has stopped, for a caller holding the
    publish lock.

    Every writer holds the lock for its whole publish, so holding it already means no other
    writer is at work; the name is checked too, so a process that wrote without the lock (or a
    lock that the filesystem does not enforce) keeps its files: the writer is gone when it is
    this process (between publishes), or a pid of this host that no longer exists. A pid on
    another host cannot be checked, and a name without a writer (older versions) has none to
    check: for those the lock is the proof.
    """
    match = _TEMPORARY.match(temporary_name)
    if match is None or match["host"] != _host():
        return True
    pid = int(match["pid"])
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        return False
    return False


def _remove_leftovers(pipeline_dir: Path) -> None:
    """Removes what dead writers left in a pipeline folder: temporary files, links and staging
    folders (`.*.tmp`, see `_writer_is_gone`) and run folders without a manifest (older
    versions wrote runs in place). Only for a caller holding `<pipeline_dir>/.publish.lock`.
    """
    runs_dir = pipeline_dir / "runs"
    entries = [*pipeline_dir.iterdir(), *(runs_dir.iterdir() if runs_dir.is_dir() else [])]
    for entry in entries:
        if not _is_leftover(entry, runs_dir):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink(missing_ok=True)


def _is_leftover(entry: Path, runs_dir: Path) -> bool:
    if entry.name.startswith(".") and entry.name.endswith(".tmp"):
        return _writer_is_gone(entry.name)
    return (
        entry.parent == runs_dir
        and not entry.name.startswith(".")
        and entry.is_dir()
        and not entry.is_symlink()
        and not (entry / MANIFEST).is_file()
    )


def sealed_runs(pipeline_dir: Path) -> list[str]:
    """Ids of the sealed runs of a pipeline, in run id order (as-of order, oldest first)."""
    runs_dir = pipeline_dir / "runs"
    if not runs_dir.is_dir():
        return []
    return sorted(
        entry.name
        for entry in runs_dir.iterdir()
        if not entry.name.startswith(".") and (entry / MANIFEST).is_file()
    )


def _prune(pipeline_dir: Path, keep_runs: int, published: str) -> None:
    """Deletes sealed runs beyond the last `keep_runs`, sparing `latest` and `published`.

    A run is first renamed to a temporary name, then deleted, so a crash midway leaves a
    leftover for the next publish to remove rather than a sealed run with files missing.
    """
    try:
        protected = {published, os.path.basename(os.readlink(pipeline_dir / "latest"))}
    except OSError:
        protected = {published}
    for run_id in sealed_runs(pipeline_dir)[:-keep_runs]:
        if run_id in protected:
            continue
        run_dir = pipeline_dir / "runs" / run_id
        doomed = run_dir.with_name(_temporary_name(run_id))
        try:
            os.rename(run_dir, doomed)
            shutil.rmtree(doomed)
        except OSError as error:
            warnings.warn(
                f"Could not delete old run {str(run_dir)!r} (keep_runs={keep_runs}): "
                f"{error.strerror or error}. The next publish tries again.",
                stacklevel=3,
            )
