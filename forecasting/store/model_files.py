"""Loads a published `model.keras` safely: inside the runs folder, verified, then `safe_mode`.

A `.keras` file is a zip of a JSON config and weights; loading it rebuilds Python objects from
that config, so a file from anywhere else can run code. The checks happen in this order and
Keras is imported only after the file's bytes have passed them:

1. The path is a local `.keras` file (no URL, `hf://` or `.h5`) whose real location, symlinks
   and `..` resolved, is `<runs_root>/<run_id>/<file>`.
2. The run's manifest lists the file; its size is within `max_bytes` and equals the manifest's.
3. Its sha256 equals the manifest's.
4. The verified bytes are copied to a private temporary folder and loaded from there with
   `keras.models.load_model(..., safe_mode=True, compile=False)`, so the file Keras reads is
   the file that was checked, and no optimizer or loss config is deserialized.

A model in an object store (`s3://`) has no local path to resolve: its run's manifest (checked
against latest.json's sha256 when it comes from `latest`) gives the size, checked before the
bytes are read, and the sha256; steps 3 and 4 are the same.

The manifest sits next to the model, so the hash catches corruption and a model replaced
without its manifest; `safe_mode` is what refuses code (Python lambdas, non-Keras modules,
non-modeling Keras functions such as `keras.config.enable_unsafe_deserialization`).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from forecasting.errors import ModelLoadError, PublishError
from forecasting.store.layout import MODEL_FILE, RUNS, Location, basename, pipeline_dir, url_scheme
from forecasting.store.manifest import FileEntry, ManifestError
from forecasting.store.reader import read_file, read_manifest, resolve_latest

if TYPE_CHECKING:
    import keras

MAX_MODEL_BYTES = 256 * 2**20  # 256 MiB: far above any model this pipeline trains
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")  # https://, hf://, file:/, s3://, gs://, ...
_MESSAGE_CHARS = 400


def load_published_model(
    model_path: Path | str, runs_root: Path | str, *, max_bytes: int = MAX_MODEL_BYTES
) -> keras.Model:
    """Loads a model file of a sealed run after checking where it is and that it is intact.

    Args:
        model_path: The `.keras` file inside a run folder, e.g.
            `outputs/etth1/runs/<run_id>/model.keras`. Symlinks are resolved first.
        runs_root: The pipeline's runs folder, e.g. `outputs/etth1/runs`; the resolved model
            must lie in one of its run folders.
        max_bytes: Largest file accepted, checked before the file is read.

    Returns:
        The uncompiled `keras.Model` (compile it before training it further).

    Raises:
        ModelLoadError: The path is a URL, not a `.keras` file or outside `runs_root`; the
            manifest does not list the file; its size or sha256 differs from the manifest or
            exceeds `max_bytes`; or Keras refused to load it (for example `safe_mode` refused a
            Python lambda or a non-Keras function in its config).
    """
    path = _resolve_inside(model_path, runs_root)
    expected = _manifest_entry(path.parent, path.name)
    data = _read_verified(path, expected, max_bytes)
    return _load_bytes(str(path), data)


def load_latest_model(
    output_dir: Path | str, name: str, *, max_bytes: int = MAX_MODEL_BYTES
) -> keras.Model:
    """Resolves `<output_dir>/<name>/latest` once and loads that run's model safely.

    Raises:
        ModelLoadError: Nothing is published, the champion is a naive model (no model file),
            or `load_published_model` refuses the file.
    """
    run_dir, digest = resolve_latest(output_dir, name)
    if run_dir is None:
        raise ModelLoadError(
            f"No published run for pipeline {name!r} in {str(output_dir)!r}. "
            "Run `forecast run` first, or check --output-dir and the name."
        )
    if isinstance(run_dir, Path):  # the link must not lead out of this pipeline's runs
        runs_root = Path(pipeline_dir(output_dir, name)) / RUNS
        return load_published_model(run_dir / MODEL_FILE, runs_root, max_bytes=max_bytes)
    return load_run_model(run_dir, MODEL_FILE, max_bytes=max_bytes, manifest_sha256=digest)


def load_run_model(
    run_dir: Location,
    filename: str = MODEL_FILE,
    *,
    max_bytes: int = MAX_MODEL_BYTES,
    manifest_sha256: str | None = None,
) -> keras.Model:
    """Loads the model file `filename` of a run folder (`load_published_model`) or of a run in
    an object store (`s3://.../runs/<run_id>`): verified against the run's manifest, whose own
    sha256 must be `manifest_sha256` when given, then loaded from a private local copy.

    Raises:
        ModelLoadError: As `load_published_model`.
    """
    if url_scheme(run_dir) in (None, "file"):
        folder = Path(str(run_dir).removeprefix("file://"))
        return load_published_model(folder / filename, folder.parent, max_bytes=max_bytes)
    where = f"{run_dir}/{filename}"
    if Path(filename).suffix != ".keras" or "/" in filename:
        raise ModelLoadError(
            f"Only Keras 3 `.keras` files of a run are loaded. Received: {where!r}"
        )
    expected = _manifest_entry(run_dir, filename, manifest_sha256)
    if expected.bytes > max_bytes:
        raise ModelLoadError(
            f"Model file {where!r} is larger than the {max_bytes} bytes allowed, so it is not "
            f"read. Pass a larger max_bytes if the model is really that big. "
            f"Received: bytes={expected.bytes}"
        )
    try:
        data = read_file(run_dir, filename)
    except OSError as error:
        raise ModelLoadError(
            f"Cannot read model file {where!r}: {error}. Check that the run is complete."
        ) from None
    _check_digest(where, data, expected)
    return _load_bytes(where, data)


def _resolve_inside(model_path: Path | str, runs_root: Path | str) -> Path:
    """Returns the real path of `model_path` after checking it is `<runs_root>/<run_id>/x.keras`."""
    for label, value in (("model_path", model_path), ("runs_root", runs_root)):
        # Checked on the text: Path() would fold 'hf://user/repo' into 'hf:/user/repo'.
        if _URL.match(str(value)):
            raise ModelLoadError(
                f"Models are loaded only from local files of this pipeline's runs, not from "
                f"URLs or hubs; download and publish it through a run instead. "
                f"Received: {label}={str(value)!r}"
            )
    if Path(model_path).suffix != ".keras":
        raise ModelLoadError(
            "Only Keras 3 `.keras` files are loaded (legacy `.h5`, SavedModel folders and other "
            "formats are refused); republish the model with a current run. "
            f"Received: model_path={str(model_path)!r}"
        )
    root = Path(os.path.realpath(runs_root))
    path = Path(os.path.realpath(model_path))
    if not _in_a_run_folder(path, root):
        raise ModelLoadError(
            f"A model is loaded only from a run folder directly inside the runs folder "
            f"{str(root)!r}; this path resolves elsewhere (a symlink or '..' that leads out, "
            "or another folder). Load it from the run folder itself. "
            f"Received: model_path={str(model_path)!r}, resolved={str(path)!r}"
        )
    return path


def _in_a_run_folder(path: Path, root: Path) -> bool:
    """Whether `path` is `<root>/<run_id>/<file>`: inside `root`, exactly two levels down."""
    return path.is_relative_to(root) and len(path.relative_to(root).parts) == 2


def _manifest_entry(
    run_dir: Location, filename: str, manifest_sha256: str | None = None
) -> FileEntry:
    """Returns the manifest's sha256 and size for `filename`, read from its run folder."""
    try:
        listing = read_manifest(run_dir, manifest_sha256)[1].listing()
    except (PublishError, ManifestError) as error:
        raise ModelLoadError(
            f"Run folder {str(run_dir)!r} has no readable manifest listing its files, so its "
            f"model cannot be verified; it is unfinished or damaged. Republish the run. "
            f"Received: {type(error).__name__}: {error}"
        ) from None
    entry = listing.get(filename)
    if entry is None:
        raise ModelLoadError(
            f"The manifest of run {basename(run_dir)!r} does not list {filename!r}, so the "
            "file was not published by this run (a naive champion has no model file). Load a "
            f"model from a run whose manifest lists it. Received: listed={sorted(listing)}"
        )
    return entry


def _read_verified(path: Path, expected: FileEntry, max_bytes: int) -> bytes:
    """Reads `path` and checks its size, then its sha256, against the manifest.

    `O_NOFOLLOW` refuses a symlink swapped in after resolving; `O_NONBLOCK` keeps a FIFO from
    blocking the open (it is then refused as not a regular file).
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise ModelLoadError(
            f"Cannot open model file {str(path)!r}: {error.strerror or error}. "
            "Check that the run is complete and readable."
        ) from None
    with os.fdopen(descriptor, "rb") as handle:
        _check_size(path, os.fstat(handle.fileno()), expected, max_bytes)
        data = handle.read(max_bytes + 1)
    _check_digest(str(path), data, expected)
    return data


def _check_digest(where: str, data: bytes, expected: FileEntry) -> None:
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != expected.bytes or digest != expected.sha256:
        raise ModelLoadError(
            f"Model file {where!r} does not match the sha256 in its manifest; it was changed "
            f"after publishing. Republish, or roll back to another run. "
            f"Received: sha256={digest}, manifest sha256={expected.sha256}"
        )


def _check_size(path: Path, info: os.stat_result, expected: FileEntry, max_bytes: int) -> None:
    """Refuses anything but a regular file of the manifest's size, at most `max_bytes`."""
    if not stat.S_ISREG(info.st_mode):
        raise ModelLoadError(
            f"Model path {str(path)!r} is not a regular file. Republish the run. "
            f"Received: mode={stat.filemode(info.st_mode)}"
        )
    if info.st_size > max_bytes:
        raise ModelLoadError(
            f"Model file {str(path)!r} is larger than the {max_bytes} bytes allowed, so it "
            "is not read. Pass a larger max_bytes if the model is really that big. "
            f"Received: bytes={info.st_size}"
        )
    if info.st_size != expected.bytes:
        raise ModelLoadError(
            f"Model file {str(path)!r} is not the size its manifest lists; it was truncated "
            "or replaced after publishing. Republish, or roll back to another run. "
            f"Received: bytes={info.st_size}, manifest bytes={expected.bytes}"
        )


def _load_bytes(path: str, data: bytes) -> keras.Model:
    """Loads verified bytes through `keras.models.load_model` with `safe_mode=True`."""
    import keras

    if _unsafe_deserialization_enabled():
        raise ModelLoadError(
            "Unsafe deserialization is switched on for this whole process (something called "
            "keras.config.enable_unsafe_deserialization()), which overrides safe_mode=True in "
            f"Keras; refusing to load {path!r}. Load models in a process that does not "
            "switch it on. Received: safe_mode overridden to False"
        )
    with tempfile.TemporaryDirectory(prefix="recurrent-model-") as folder:
        copy = Path(folder) / MODEL_FILE
        copy.write_bytes(data)
        try:
            return keras.models.load_model(copy, compile=False, safe_mode=True)
        except Exception as error:  # Keras raises ValueError, TypeError, BadZipFile, OSError...
            detail = f"{type(error).__name__}: {error}"
            if len(detail) > _MESSAGE_CHARS:
                detail = detail[:_MESSAGE_CHARS] + "..."
            raise ModelLoadError(
                f"Keras refused to load model file {path!r} in safe mode; it holds code "
                "(such as a Python lambda or a non-Keras function) or is not a valid Keras 3 "
                f"model. Publish a model built from standard Keras layers. Received: {detail}"
            ) from error


def _unsafe_deserialization_enabled() -> bool:
    """Whether `keras.config.enable_unsafe_deserialization()` was called in this process.

    Keras prefers that process-wide switch over the `safe_mode=True` argument, and has no public
    reader for it; if the private one moves, the `safe_mode=True` argument still applies.
    """
    try:
        from keras.src.saving import serialization_lib
    except ImportError:
        return False
    in_safe_mode = getattr(serialization_lib, "in_safe_mode", None)
    return in_safe_mode is not None and in_safe_mode() is False
