"""The one writer of a pipeline's outputs: crash-safe, versioned runs, the `latest` pointer,
retention and the accuracy history.

On a local folder every change happens under the pipeline's publish lock, which every writer
holds for its whole publish (and the kernel releases when a process dies); on object storage
(`s3.S3Backend`) there is no lock, and each primitive is safe on its own (create-only writes,
compare-and-swap of latest.json, age rules for deletion). The storage primitives are the
backend's; this module decides what to write and in which order, the same for both. Readers
(`reader`) resolve `latest` and verify hashes.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import pandas as pd

from forecasting.errors import ConfigError, PublishError
from forecasting.store.backend import Backend, LockTimeout, make_pointer, open_backend
from forecasting.store.formats import json_bytes, parquet_bytes
from forecasting.store.history import merge_accuracy, normalized, parse_history
from forecasting.store.layout import (
    ACCURACY_FILE,
    ACCURACY_PARTS,
    MANIFEST,
    Location,
    child,
    pipeline_dir,
    run_key,
)
from forecasting.store.manifest import ManifestError, load_document, parse_manifest
from forecasting.store.reader import read_run

KEEP_RUNS = 30
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def check_output(output_dir: Location, name: str) -> None:
    """Refuses, before any training, an output location that cannot be published to safely:
    a URL scheme without a backend, `s3://` without s3fs, or an object store that ignores
    conditional writes (probed with a second create-only PUT).

    Raises:
        ConfigError: The scheme has no backend, or its package is not installed.
        PublishError: The store cannot be written or ignores conditional writes.
    """
    open_backend(pipeline_dir(output_dir, name)).check_writable()


def publish_run(
    output_dir: Location,
    name: str,
    run_id: str,
    files: dict[str, bytes],
    manifest: Mapping[str, Any],
    keep_runs: int = KEEP_RUNS,
    accuracy: pd.DataFrame | None = None,
) -> Location:
    """Writes a run crash-safely, seals it with its manifest, then switches `latest`.

    In this order (on a local folder under the publish lock): leftovers of dead writers are
    removed; the run is created whole or not at all (`Backend.create_run`: each file written
    create-only, the manifest, with the sha256 and size of every other file, last); then
    `latest` is switched, the single commit point (the symlink and latest.json locally, a
    compare-and-swap of latest.json on object storage). A crash before it leaves the previous
    run published; readers see either the old run or the new one.

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
        output_dir: Folder or URL (`s3://bucket/prefix`) holding every pipeline's outputs.
        name: Pipeline name; the run goes to `<output_dir>/<name>/runs/<run_id>`.
        run_id: From `make_run_id`.
        files: File name to content, for every file of the run but the manifest.
        manifest: The manifest without `files` (see `manifest.Manifest`); its `as_of`
            (ISO-8601) decides `latest`.
        keep_runs: Sealed runs to keep, at least 1.
        accuracy: Newly scored rows of earlier runs' forecasts; written once as
            `accuracy/<run_id>.parquet` after the run is sealed and, on a local folder, also
            merged into `accuracy.parquet` (atomically replaced).

    Returns:
        The run's folder (a `Path`) or URL.

    Raises:
        ConfigError: `keep_runs` is below 1.
        PublishError: The manifest does not fit the schema, the run cannot be written (disk
            full, permissions), or another run held the publish lock for
            `backend.LOCK_TIMEOUT_SECONDS`. `latest` is then untouched.
    """
    if keep_runs < 1:
        raise ConfigError(f"keep_runs must be at least 1. Received: keep_runs={keep_runs}")
    backend = open_backend(pipeline_dir(output_dir, name))
    with _locked(backend, run_id, "Check for a stuck run, then retry."):
        backend.check_writable()
    _publish(backend, run_id, files, manifest, keep_runs, accuracy)
    return child(pipeline_dir(output_dir, name), run_key(run_id))


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
        sealed = backend.read_bytes(run_key(run_id, MANIFEST))  # as stored, maybe by another
        as_of = load_document(sealed).get("as_of")
        backend.move_latest(
            make_pointer(run_id, as_of, sealed),
            lambda current: _is_at_or_after(as_of, (current or {}).get("as_of")),
        )
        if accuracy is not None and len(accuracy):
            _append_accuracy(backend, run_id, accuracy)
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


def rollback(output_dir: Location, name: str, run_id: str) -> Location:
    """Points `latest` at an earlier sealed run, after verifying every file's hash.

    It stays there until the next publish whose as-of is at or after that run's moves it on.

    Raises:
        PublishError: The run does not exist, fails verification, or the lock is held.
    """
    backend = open_backend(pipeline_dir(output_dir, name))
    if not backend.is_sealed(run_id):
        known = ", ".join(backend.run_ids()[-5:]) or "none"
        raise PublishError(
            f"Pipeline {name!r} in {str(output_dir)!r} has no complete run {run_id!r}. "
            f"Recent runs: {known}."
        )
    run_dir = child(pipeline_dir(output_dir, name), run_key(run_id))
    with _locked(backend, run_id, "Retry the rollback when it is done."), backend.lock():
        backend.check_writable()
        read_run(run_dir)
        sealed = backend.read_bytes(run_key(run_id, MANIFEST))
        pointer = make_pointer(run_id, load_document(sealed).get("as_of"), sealed)
        backend.move_latest(pointer, lambda current: True)
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


def _append_accuracy(backend: Backend, run_id: str, rows: pd.DataFrame) -> None:
    """Writes the scored rows once as `accuracy/<run_id>.parquet` (a rerun of the same id
    scored the same rows), then, where the backend keeps it, merges them into accuracy.parquet
    by writing a new file and renaming it."""
    backend.create_file(f"{ACCURACY_PARTS}/{run_id}.parquet", parquet_bytes(normalized(rows)))
    if not backend.keeps_history_file:
        return
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
    """Removes what dead writers left (see `LocalBackend.leftovers`, `S3Backend.leftovers`)."""
    for key in backend.leftovers():
        backend.remove(key)


def _prune(backend: Backend, keep_runs: int, published: str) -> None:
    """Deletes sealed runs beyond the last `keep_runs`, sparing `latest`, `published` and runs
    a writer may still be at work on (`Backend.settled`).

    A run stops looking sealed before its files go (`Backend.remove`), so a crash midway leaves
    a leftover for the next publish to remove rather than a sealed run with files missing.
    `latest` is read again before each deletion, as another writer may have moved it.
    """
    for run_id in backend.run_ids()[:-keep_runs]:
        if run_id == published or not backend.settled(run_id) or run_id == backend.latest():
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
