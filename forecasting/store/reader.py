"""The one reader of published runs: every file verified against its manifest before it is used.

Readers never see a partial run: a run is sealed by its manifest (see `writer`), and each file
is checked (size, then sha256) before it is parsed. Readers never list folders to find the
current run: they resolve `latest` once (`resolve_latest`: the symlink of a local folder, the
latest.json of an object store, whose manifest hash is checked too) and read that run.
Every function takes a local folder or an `s3://` URL alike.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from forecasting.errors import PublishError
from forecasting.store.backend import LocalBackend, open_backend
from forecasting.store.history import merge_accuracy, parse_history
from forecasting.store.layout import (
    ACCURACY_FILE,
    ACCURACY_PARTS,
    MANIFEST,
    POINTER,
    Location,
    basename,
    child,
    parent,
    pipeline_dir,
    run_key,
    url_scheme,
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
        path: The run folder (a `Path`), or its URL.
        manifest: manifest.json as written (extra keys included).
        forecast: The champion's forecast, one row per series and step.
        leaderboard: leaderboard.csv, when the run has one.
        parsed: The manifest checked against the `Manifest` schema.
    """

    path: Location
    manifest: dict
    forecast: pd.DataFrame
    leaderboard: pd.DataFrame | None = None
    parsed: Manifest | None = None


def read_run(run_dir: Location, manifest_sha256: str | None = None) -> PublishedRun:
    """Reads a sealed run folder, verifying every file against its manifest.

    Every file listed in the manifest is read once and checked (size, then sha256); the
    forecast and leaderboard are parsed from those verified bytes, never from a second read.

    Args:
        run_dir: The run folder or URL (`<pipeline>/runs/<run_id>`).
        manifest_sha256: When given (from latest.json), the manifest must have this sha256.

    Raises:
        PublishError: The manifest is missing, malformed or not the one expected, a file is
            missing or does not match its hash, or the manifest lists no forecast.parquet.
    """
    run_dir = _as_location(run_dir)
    document, manifest = read_manifest(run_dir, manifest_sha256)
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


def read_manifest(
    run_dir: Location, manifest_sha256: str | None = None
) -> tuple[dict[str, Any], Manifest]:
    """The manifest of a run folder, as written and as checked against the schema; its files
    are not verified here (`read_run` does that).

    Raises:
        PublishError: The manifest is missing, not a JSON object, not the one latest.json
            names (`manifest_sha256`), or does not fit the schema (a bad `files` listing is
            reported as such).
    """
    try:
        data = _read_file(run_dir, MANIFEST)
        if manifest_sha256 is not None and hashlib.sha256(data).hexdigest() != manifest_sha256:
            raise PublishError(
                f"The manifest of {str(run_dir)!r} is not the one latest.json names (its "
                "sha256 differs); it was changed after publishing. Republish, or roll back."
            )
        document = load_document(data)
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


def peek_manifest(run_dir: Location) -> dict[str, Any] | None:
    """The manifest document of a run folder, unverified and unchecked, for a quick look at
    one field; None when it cannot be read."""
    try:
        return load_document(_read_file(_as_location(run_dir), MANIFEST))
    except (OSError, ManifestError):
        return None


def read_file(run_dir: Location, filename: str) -> bytes:
    """The bytes of one file of a run folder or URL, unverified.

    Raises:
        OSError: It is missing or unreadable.
    """
    return _read_file(_as_location(run_dir), filename)


def _read_file(run_dir: Location, filename: str) -> bytes:
    if isinstance(run_dir, Path):
        return (run_dir / filename).read_bytes()
    runs = parent(run_dir)
    backend = open_backend(parent(runs))
    return backend.read_bytes(f"{basename(runs)}/{basename(run_dir)}/{filename}")


def _as_location(run_dir: Location) -> Location:
    """A `Path` for a local folder, the URL text for an object store."""
    return Path(run_dir) if url_scheme(run_dir) in (None, "file") else str(run_dir)


def _read_verified(run_dir: Location, filename: str, expected: FileEntry) -> bytes:
    where = str(child(run_dir, filename))
    try:
        data = _read_file(run_dir, filename)
    except OSError as error:
        raise PublishError(f"{where!r} is missing: {error}.") from None
    if len(data) != expected.bytes or hashlib.sha256(data).hexdigest() != expected.sha256:
        raise PublishError(
            f"{where!r} does not match the sha256 in its manifest; the "
            "file was changed after publishing. Republish, or roll back to another run."
        )
    return data


def resolve_latest(output_dir: Location, name: str) -> tuple[Location | None, str | None]:
    """The run `latest` names and, on an object store, its manifest's sha256 (latest.json)."""
    root = pipeline_dir(output_dir, name)
    backend = open_backend(root)
    if isinstance(backend, LocalBackend):
        return backend.latest_dir(), None
    try:
        pointer = backend.read_pointer()
    except OSError as error:
        raise PublishError(
            f"Cannot read {child(root, POINTER)!r}: {error}. Check the URL, AWS_ENDPOINT_URL "
            "and the credentials."
        ) from None
    if not pointer or not isinstance(pointer.get("run_id"), str):
        return None, None
    return child(root, run_key(pointer["run_id"])), pointer.get("manifest_sha256")


def read_latest(output_dir: Location, name: str) -> PublishedRun:
    """Resolves `<output_dir>/<name>/latest` once and reads that run with hashes verified.

    If the read fails and `latest` has meanwhile moved (a publish switched it, and retention
    may have removed the run first resolved), it reads the new target instead.

    Returns:
        The run's folder, manifest and forecast (the champion's, one row per series and step).

    Raises:
        PublishError: Nothing is published yet, or the run fails verification.
    """
    target, digest = resolve_latest(output_dir, name)
    if target is None:
        raise PublishError(
            f"No published run for pipeline {name!r} in {str(output_dir)!r}. "
            "Run `forecast run` first, or check --output-dir and the name."
        )
    for _ in range(3):
        try:
            return read_run(target, digest)
        except PublishError:
            moved, digest = resolve_latest(output_dir, name)
            if moved is None or moved == target:
                raise
            target = moved
    return read_run(target, digest)


def published_manifest(output_dir: Location, name: str, run_id: str) -> dict | None:
    """The manifest of run `run_id` when it is sealed and every file verifies; else None."""
    root = pipeline_dir(output_dir, name)
    if not open_backend(root).is_sealed(run_id):
        return None
    try:
        return read_run(child(root, run_key(run_id))).manifest
    except PublishError:
        return None


def latest_as_of(pipeline: Location) -> str | None:
    """The `as_of` of the run `latest` points to; None when there is none or it is unreadable."""
    pointer = open_backend(pipeline).read_pointer()
    return None if not pointer else pointer.get("as_of")


def sealed_runs(pipeline: Location) -> list[str]:
    """Ids of the sealed runs of a pipeline, in run id order (as-of order, oldest first)."""
    return open_backend(pipeline).run_ids()


def read_accuracy(pipeline: Location) -> pd.DataFrame | None:
    """The pipeline's accuracy history; None when there is none yet.

    On a local folder it is accuracy.parquet, which holds every part merged. Elsewhere it is
    the parts `accuracy/<run_id>.parquet` in run id order, a later row replacing an earlier one
    with the same run id, series and step.

    Raises:
        OSError, ValueError: A file exists but cannot be read or parsed (damaged).
    """
    backend = open_backend(pipeline)
    history: pd.DataFrame | None = None
    with contextlib.suppress(FileNotFoundError):
        history = parse_history(backend.read_bytes(ACCURACY_FILE))
        if backend.keeps_history_file:
            return history  # the parts are merged into it as they are written
    for key in backend.keys(ACCURACY_PARTS):
        history = merge_accuracy(history, parse_history(backend.read_bytes(key)))
    return history
