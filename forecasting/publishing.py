"""The only module that writes outputs: atomic, versioned run folders and the `latest` link.

Layout under `<output_dir>/<name>/`:
    runs/<run_id>/   forecast.csv, forecast.parquet, candidate_forecasts.parquet, leaderboard.csv,
                     preprocessing.json, model.keras (absent when a naive model wins),
                     manifest.json (written last; lists every other file with its sha256)
    latest           relative symlink to runs/<run_id>, switched only after a run is complete
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from filelock import FileLock, Timeout

from forecasting.errors import PublishError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
FORECAST_COLUMNS = ["unique_id", "ds", "horizon_step", "y_hat", "model", "run_id", "as_of"]
LOCK_TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class PublishedRun:
    """A run read back from disk with every file's hash verified."""

    path: Path
    manifest: dict
    forecast: pd.DataFrame


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
    forecast: pd.DataFrame, candidates: pd.DataFrame, leaderboard: pd.DataFrame
) -> dict[str, bytes]:
    """Serializes the run's tables: forecast as CSV (ISO-8601 `ds`, `as_of`) and Parquet."""
    text = forecast.copy()
    for column in ("ds", "as_of"):
        text[column] = [iso(value) for value in text[column]]
    return {
        "forecast.csv": text.to_csv(index=False, lineterminator="\n").encode(),
        "forecast.parquet": _parquet_bytes(forecast),
        "candidate_forecasts.parquet": _parquet_bytes(candidates),
        "leaderboard.csv": leaderboard.to_csv(index=False, lineterminator="\n").encode(),
    }


def json_bytes(document: dict) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=False, default=str) + "\n").encode()


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def publish_run(
    output_dir: Path, name: str, run_id: str, files: dict[str, bytes], manifest: dict
) -> Path:
    """Writes a run folder atomically, seals it with its manifest, then switches `latest`.

    Each file is written under a temporary name, fsynced and renamed; the manifest (with the
    sha256 and size of every other file) is written last; `latest` moves only after that, by
    `os.replace` of a temporary symlink, so readers see either the old run or the new one.
    A run id that is already sealed (identical inputs) is not rewritten: `latest` points at it.
    A folder of that id without a manifest is a leftover of a writer that died (writers hold the
    publish lock, which the system releases when a process dies); it is replaced.

    Raises:
        PublishError: The folder cannot be written or the publish lock cannot be taken.
    """
    pipeline_dir = Path(output_dir) / name
    run_dir = pipeline_dir / "runs" / run_id
    try:
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(pipeline_dir / ".publish.lock", timeout=LOCK_TIMEOUT_SECONDS):
            if (run_dir / MANIFEST).is_file():
                _switch_latest(pipeline_dir, run_id)
                return run_dir
            if run_dir.exists():
                shutil.rmtree(run_dir)
            run_dir.mkdir()
            listing = {}
            for filename, data in files.items():
                _write_atomic(run_dir / filename, data)
                listing[filename] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
            _write_atomic(run_dir / MANIFEST, json_bytes({**manifest, "files": listing}))
            _fsync_dir(run_dir)
            _fsync_dir(run_dir.parent)
            _switch_latest(pipeline_dir, run_id)
    except Timeout:
        raise PublishError(
            f"Another run held the publish lock of {str(pipeline_dir)!r} for "
            f"{LOCK_TIMEOUT_SECONDS} s. Check for a stuck run, then retry."
        ) from None
    except OSError as error:
        raise PublishError(
            f"Could not publish run {run_id} to {str(run_dir)!r}: {error.strerror or error}. "
            "Check free space and permissions; the previous run stays published."
        ) from None
    return run_dir


def _write_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temporary, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _switch_latest(pipeline_dir: Path, run_id: str) -> None:
    temporary = pipeline_dir / f".latest.{uuid.uuid4().hex[:8]}.tmp"
    os.symlink(os.path.join("runs", run_id), temporary)
    try:
        os.replace(temporary, pipeline_dir / "latest")
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_dir(pipeline_dir)


def read_run(run_dir: Path) -> PublishedRun:
    """Reads a sealed run folder, verifying every file against its manifest.

    Raises:
        PublishError: The manifest is missing or a file is missing or does not match its hash.
    """
    try:
        manifest = json.loads((run_dir / MANIFEST).read_bytes())
    except (OSError, json.JSONDecodeError) as error:
        raise PublishError(
            f"Run folder {str(run_dir)!r} has no readable manifest: {error}."
        ) from None
    for filename, expected in manifest["files"].items():
        try:
            data = (run_dir / filename).read_bytes()
        except OSError as error:
            raise PublishError(f"{str(run_dir / filename)!r} is missing: {error}.") from None
        if len(data) != expected["bytes"] or hashlib.sha256(data).hexdigest() != expected["sha256"]:
            raise PublishError(
                f"{str(run_dir / filename)!r} does not match the sha256 in its manifest; the "
                "file was changed after publishing. Republish, or roll back to another run."
            )
    forecast = pd.read_parquet(run_dir / "forecast.parquet")
    return PublishedRun(run_dir, manifest, forecast)


def read_latest(output_dir: Path | str, name: str) -> PublishedRun:
    """Resolves `<output_dir>/<name>/latest` once and reads that run with hashes verified.

    Returns:
        The run's folder, manifest and forecast (the champion's, one row per series and step).

    Raises:
        PublishError: Nothing is published yet, or the run fails verification.
    """
    link = Path(output_dir) / name / "latest"
    if not link.is_symlink():
        raise PublishError(
            f"No published run for pipeline {name!r} in {str(output_dir)!r}. "
            "Run `forecast run` first, or check --output-dir and the name."
        )
    return read_run(Path(os.path.realpath(link)))
