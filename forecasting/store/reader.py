"""The one reader of published runs: every file verified against its manifest before it is used.

Readers never see a partial run: a run is sealed by its manifest (see `writer`), and each file
is checked (size, then sha256) before it is parsed. Readers never list folders to find the
current run: they resolve `latest` once (`latest_run_dir`) and read that run.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from forecasting.errors import PublishError
from forecasting.store.backend import Backend, LocalBackend
from forecasting.store.history import parse_history
from forecasting.store.layout import (
    ACCURACY_FILE,
    MANIFEST,
    pipeline_dir,
    run_key,
)
from forecasting.store.manifest import (
    FileEntry,
    Manifest,
    ManifestError,
    load_document,
    parse_manifest,
)


@dataclass(frozen=True)
class PublishedRun:
    """A run read back from disk with every file's hash verified.

    Attributes:
        path: The run folder.
        manifest: manifest.json as written (extra keys included).
        forecast: The champion's forecast, one row per series and step.
        leaderboard: leaderboard.csv, when the run has one.
        parsed: The manifest checked against the `Manifest` schema.
    """

    path: Path
    manifest: dict
    forecast: pd.DataFrame
    leaderboard: pd.DataFrame | None = None
    parsed: Manifest | None = None


def read_run(run_dir: Path | str) -> PublishedRun:
    """Reads a sealed run folder, verifying every file against its manifest.

    Every file listed in the manifest is read once and checked (size, then sha256); the
    forecast and leaderboard are parsed from those verified bytes, never from a second read.

    Raises:
        PublishError: The manifest is missing or malformed, a file is missing or does not match
            its hash, or the manifest lists no forecast.parquet.
    """
    run_dir = Path(run_dir)
    document, manifest = read_manifest(run_dir)
    try:
        listing = manifest.listing()
    except ManifestError:
        raise PublishError(
            f"The manifest of {str(run_dir)!r} has no valid `files` listing "
            "(file name -> sha256 and bytes). Republish the run, or read another run."
        ) from None
    verified = {
        filename: _read_verified(run_dir, filename, expected)
        for filename, expected in listing.items()
    }
    forecast_bytes = verified.get("forecast.parquet")
    if forecast_bytes is None:
        raise PublishError(
            f"The manifest of {str(run_dir)!r} lists no forecast.parquet, so it is not a "
            "complete run. Republish it, or read another run."
        )
    board = verified.get("leaderboard.csv")
    return PublishedRun(
        run_dir,
        document,
        pd.read_parquet(io.BytesIO(forecast_bytes)),
        None if board is None else pd.read_csv(io.BytesIO(board)),
        manifest,
    )


def read_manifest(run_dir: Path) -> tuple[dict[str, Any], Manifest]:
    """The manifest of a run folder, as written and as checked against the schema; its files
    are not verified here (`read_run` does that).

    Raises:
        PublishError: The manifest is missing, not a JSON object, or does not fit the schema
            (a bad `files` listing is reported as such).
    """
    try:
        document = load_document((run_dir / MANIFEST).read_bytes())
    except OSError as error:
        raise PublishError(
            f"Run folder {str(run_dir)!r} has no readable manifest: {error}."
        ) from None
    except ManifestError as error:
        raise PublishError(f"The manifest of {str(run_dir)!r} cannot be used: {error}.") from None
    try:
        return document, parse_manifest(document)
    except ManifestError as error:
        if error.in_files:
            raise PublishError(
                f"The manifest of {str(run_dir)!r} has no valid `files` listing "
                "(file name -> sha256 and bytes). Republish the run, or read another run."
            ) from None
        raise PublishError(
            f"The manifest of {str(run_dir)!r} does not fit the manifest schema "
            f"(docs/manifest.schema.json): {error}. Republish the run, or read another run."
        ) from None


def peek_manifest(run_dir: Path) -> dict[str, Any] | None:
    """The manifest document of a run folder, unverified and unchecked, for a quick look at
    one field; None when it cannot be read."""
    try:
        return load_document((Path(run_dir) / MANIFEST).read_bytes())
    except (OSError, ManifestError):
        return None


def _read_verified(run_dir: Path, filename: str, expected: FileEntry) -> bytes:
    try:
        data = (run_dir / filename).read_bytes()
    except OSError as error:
        raise PublishError(f"{str(run_dir / filename)!r} is missing: {error}.") from None
    if len(data) != expected.bytes or hashlib.sha256(data).hexdigest() != expected.sha256:
        raise PublishError(
            f"{str(run_dir / filename)!r} does not match the sha256 in its manifest; the "
            "file was changed after publishing. Republish, or roll back to another run."
        )
    return data


def latest_run_dir(output_dir: Path | str, name: str) -> Path | None:
    """Resolves `<output_dir>/<name>/latest` once: the real path of the run folder it points
    to, or None when nothing is published."""
    return LocalBackend(pipeline_dir(output_dir, name)).latest_dir()


def read_latest(output_dir: Path | str, name: str) -> PublishedRun:
    """Resolves `<output_dir>/<name>/latest` once and reads that run with hashes verified.

    If the read fails and `latest` has meanwhile moved (a publish switched it, and retention
    may have removed the run first resolved), it reads the new target instead.

    Returns:
        The run's folder, manifest and forecast (the champion's, one row per series and step).

    Raises:
        PublishError: Nothing is published yet, or the run fails verification.
    """
    target = latest_run_dir(output_dir, name)
    if target is None:
        raise PublishError(
            f"No published run for pipeline {name!r} in {str(output_dir)!r}. "
            "Run `forecast run` first, or check --output-dir and the name."
        )
    for _ in range(3):
        try:
            return read_run(target)
        except PublishError:
            moved = latest_run_dir(output_dir, name)
            if moved is None or moved == target:
                raise
            target = moved
    return read_run(target)


def published_manifest(output_dir: Path | str, name: str, run_id: str) -> dict | None:
    """The manifest of run `run_id` when it is sealed and every file verifies; else None."""
    backend = LocalBackend(pipeline_dir(output_dir, name))
    if not backend.is_sealed(run_id):
        return None
    try:
        return read_run(backend.path(run_key(run_id))).manifest
    except PublishError:
        return None


def peek_latest(backend: Backend) -> dict[str, Any] | None:
    """The manifest document of the run `latest` points to, unverified and unchecked; None
    when there is none or it cannot be read."""
    run_id = backend.latest()
    if run_id is None:
        return None
    try:
        return load_document(backend.read_bytes(run_key(run_id, MANIFEST)))
    except (OSError, ManifestError):
        return None


def latest_as_of(pipeline: Path) -> str | None:
    """The `as_of` of the run `latest` points to; None when there is none or it is unreadable."""
    document = peek_latest(LocalBackend(pipeline))
    return None if document is None else document.get("as_of")


def sealed_runs(pipeline: Path) -> list[str]:
    """Ids of the sealed runs of a pipeline, in run id order (as-of order, oldest first)."""
    return LocalBackend(pipeline).run_ids()


def read_accuracy(pipeline: Path) -> pd.DataFrame | None:
    """The pipeline's accuracy history (accuracy.parquet); None when there is none yet.

    Raises:
        OSError, ValueError: The file exists but cannot be read or parsed (damaged).
    """
    backend = LocalBackend(pipeline)
    try:
        data = backend.read_bytes(ACCURACY_FILE)
    except FileNotFoundError:
        return None
    return parse_history(data)
