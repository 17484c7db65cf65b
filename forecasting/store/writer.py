"""The one writer of a pipeline's outputs: crash-safe, versioned runs, the `latest` pointer,
retention and the accuracy history.

Every change happens under the pipeline's publish lock, which every writer holds for its whole
publish (and the kernel releases when a process dies). The storage primitives, atomic and
create-only, are the backend's (`backend.LocalBackend`); this module decides what to write and
in which order. Readers (`reader`) resolve `latest` and verify hashes.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from forecasting.errors import ConfigError, PublishError
from forecasting.store.backend import Backend, LocalBackend, LockTimeout
from forecasting.store.formats import json_bytes, parquet_bytes
from forecasting.store.history import merge_accuracy, parse_history
from forecasting.store.layout import (
    ACCURACY_FILE,
    MANIFEST,
    pipeline_dir,
    run_key,
)
from forecasting.store.manifest import ManifestError, parse_manifest
from forecasting.store.reader import peek_latest, read_run

KEEP_RUNS = 30
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def publish_run(
    output_dir: Path | str,
    name: str,
    run_id: str,
    files: dict[str, bytes],
    manifest: Mapping[str, Any],
    keep_runs: int = KEEP_RUNS,
    accuracy: pd.DataFrame | None = None,
) -> Path:
    """Writes a run crash-safely, seals it with its manifest, then switches `latest`.

    Under the publish lock, in this order: leftovers of dead writers are removed; the run is
    created whole or not at all (`Backend.create_run`: each file written and flushed, the
    manifest, with the sha256 and size of every other file, last); then `latest` is switched,
    the single commit point. A crash before it leaves the previous run published; readers see
    either the old run or the new one.

    `latest` moves only if this run's `as_of` is at or after the current latest's (a tie goes to
    this, newer, publish), so when two runs of a pipeline race, `latest` ends at the later as-of
    whichever finishes last. It also moves when either `as_of` is missing or the two cannot be
    compared (one time-zone aware, one not). A run id that is already sealed (identical inputs)
    is not rewritten; the same rule decides whether `latest` points at it.

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
        manifest: The manifest without `files` (see `manifest.Manifest`); its `as_of`
            (ISO-8601) decides `latest`.
        keep_runs: Sealed runs to keep, at least 1.
        accuracy: Newly scored rows of earlier runs' forecasts; merged into
            `<output_dir>/<name>/accuracy.parquet` (atomically replaced) after the run is sealed.

    Returns:
        The run's folder.

    Raises:
        ConfigError: `keep_runs` is below 1.
        PublishError: The manifest does not fit the schema, the run cannot be written (disk
            full, permissions), or another run held the publish lock for
            `backend.LOCK_TIMEOUT_SECONDS`. `latest` is then untouched.
    """
    if keep_runs < 1:
        raise ConfigError(f"keep_runs must be at least 1. Received: keep_runs={keep_runs}")
    backend = LocalBackend(pipeline_dir(output_dir, name))
    _publish(backend, run_id, files, manifest, keep_runs, accuracy)
    return backend.path(run_key(run_id))


def _publish(
    backend: Backend,
    run_id: str,
    files: dict[str, bytes],
    manifest: Mapping[str, Any],
    keep_runs: int,
    accuracy: pd.DataFrame | None,
) -> None:
    """`publish_run` on any backend; see there."""
    with _locked(backend, run_id, "Check for a stuck run, then retry."), backend.lock():
        _remove_leftovers(backend)
        if not backend.is_sealed(run_id):
            backend.create_run(run_id, _sealed_files(run_id, files, manifest))
        current = peek_latest(backend) or {}
        if _is_at_or_after(manifest.get("as_of"), current.get("as_of")):
            backend.point_latest(run_id)
        if accuracy is not None and len(accuracy):
            _append_accuracy(backend, accuracy)
        _prune(backend, keep_runs, run_id)


def _sealed_files(
    run_id: str, files: dict[str, bytes], manifest: Mapping[str, Any]
) -> dict[str, bytes]:
    """The run's files followed by its manifest, which lists every other file's sha256 and
    size; the manifest is checked against the schema first."""
    listing = {
        filename: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        for filename, data in files.items()
    }
    document = {**manifest, "files": listing}
    try:
        parse_manifest(document)
    except ManifestError as error:
        raise PublishError(
            f"The manifest of run {run_id} does not fit the manifest schema "
            f"(docs/manifest.schema.json): {error}. This is a bug in the code that built it; "
            "nothing was published and the previous run stays published."
        ) from None
    return {**files, MANIFEST: json_bytes(document)}


def rollback(output_dir: Path | str, name: str, run_id: str) -> Path:
    """Points `latest` at an earlier sealed run, after verifying every file's hash.

    It stays there until the next publish whose as-of is at or after that run's moves it on.

    Raises:
        PublishError: The run does not exist, fails verification, or the lock is held.
    """
    backend = LocalBackend(pipeline_dir(output_dir, name))
    if not backend.is_sealed(run_id):
        known = ", ".join(backend.run_ids()[-5:]) or "none"
        raise PublishError(
            f"Pipeline {name!r} in {str(output_dir)!r} has no complete run {run_id!r}. "
            f"Recent runs: {known}."
        )
    run_dir = backend.path(run_key(run_id))
    with _locked(backend, run_id, "Retry the rollback when it is done."), backend.lock():
        read_run(run_dir)
        backend.point_latest(run_id)
    return run_dir


@contextlib.contextmanager
def _locked(backend: Backend, run_id: str, retry: str) -> Iterator[None]:
    """Turns a publish-lock timeout or an OS error inside the block into a PublishError."""
    try:
        yield
    except LockTimeout as error:
        raise PublishError(f"{error} {retry}") from None
    except OSError as error:
        where = backend.location(run_key(run_id))
        raise PublishError(_failure_message(run_id, where, error)) from None


def _failure_message(run_id: str, where: str, error: OSError) -> str:
    reason = error.strerror or str(error)
    if error.errno in _DISK_FULL:
        return (
            f"Could not publish run {run_id} to {where!r}: the disk is full ({reason}). "
            "Free space on that disk (old runs in its runs/ folder can go; a lower keep_runs "
            "keeps fewer) and rerun; the previous run stays published."
        )
    return (
        f"Could not publish run {run_id} to {where!r}: {reason}. "
        "Check free space and permissions; the previous run stays published."
    )


def _is_at_or_after(as_of: object, current: object) -> bool:
    if as_of is None or current is None:
        return True
    try:
        return bool(pd.Timestamp(str(as_of)) >= pd.Timestamp(str(current)))
    except (TypeError, ValueError):  # unparseable, or aware against naive
        return True


def _append_accuracy(backend: Backend, rows: pd.DataFrame) -> None:
    """Merges scored rows into accuracy.parquet by writing a new file and renaming it."""
    existing: pd.DataFrame | None
    try:
        existing = parse_history(backend.read_bytes(ACCURACY_FILE))
    except FileNotFoundError:
        existing = None
    except Exception as error:  # noqa: BLE001 - a damaged history must not stop publishing
        warnings.warn(
            f"{backend.location(ACCURACY_FILE)!r} cannot be read ({type(error).__name__}: "
            f"{error}); the new scores are not added. Move the file aside to start a new "
            "history.",
            stacklevel=4,
        )
        return
    backend.write_file(ACCURACY_FILE, parquet_bytes(merge_accuracy(existing, rows)))


def _remove_leftovers(backend: Backend) -> None:
    """Removes what dead writers left (see `LocalBackend.leftovers`); only under the lock."""
    for key in backend.leftovers():
        backend.remove(key)


def _prune(backend: Backend, keep_runs: int, published: str) -> None:
    """Deletes sealed runs beyond the last `keep_runs`, sparing `latest` and `published`.

    A run stops looking sealed before its files go (`Backend.remove`), so a crash midway leaves
    a leftover for the next publish to remove rather than a sealed run with files missing.
    """
    protected = {published, backend.latest()}
    for run_id in backend.run_ids()[:-keep_runs]:
        if run_id in protected:
            continue
        try:
            backend.remove(run_key(run_id))
        except OSError as error:
            warnings.warn(
                f"Could not delete old run {backend.location(run_key(run_id))!r} "
                f"(keep_runs={keep_runs}): {error.strerror or error}. The next publish tries "
                "again.",
                stacklevel=4,
            )
