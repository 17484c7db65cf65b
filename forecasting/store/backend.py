"""Where a pipeline's files live: the primitive operations the writer and reader need, the
local-disk implementation (atomic renames with fsync, a `latest` symlink, a file lock), and
`open_backend`, which picks the implementation for a folder or URL (`s3://` is `store.s3`).

Keys are `/`-separated paths relative to one pipeline's root, as `layout` names them
(`runs/<run_id>/forecast.csv`, `latest`, `accuracy.parquet`). A backend knows nothing of what
the files mean: the writer (`writer`) decides what to write and when to switch `latest`, and the
reader (`reader`) verifies what it reads against the manifest.

`LocalBackend` names every file it is still writing `.<target>.<pid>@<host>.<token>.tmp`, so
that a later writer can tell what a dead writer left (`leftovers`): a run is assembled in
`runs/.<run_id>.<pid>@<host>...tmp/` and renamed to `runs/<run_id>/` only once its manifest is
inside, so a folder named like a run id is always sealed.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from filelock import FileLock, Timeout

from forecasting.errors import ConfigError
from forecasting.store.layout import (
    LATEST,
    LOCK_FILE,
    MANIFEST,
    POINTER,
    RUNS,
    Location,
    as_url,
    is_run_id,
    run_key,
    url_scheme,
)
from forecasting.store.manifest import ManifestError, load_document
from forecasting.store.s3 import S3Backend

LOCK_TIMEOUT_SECONDS = 600
_TEMPORARY = re.compile(
    r"^\.(?P<target>.+)\.(?P<pid>\d+)@(?P<host>[A-Za-z0-9-]+)\.(?P<token>[0-9a-f]{8})\.tmp$"
)


class LockTimeout(TimeoutError):
    """Another writer held the pipeline's publish lock for the whole timeout."""


SCHEMES = ("s3",)
"""URL schemes with a backend; anything else but a local path is refused."""

ShouldMove = Callable[[dict[str, Any] | None], bool]
"""Given the current pointer (None when there is none), whether `latest` should move."""


class Backend(Protocol):
    """The storage of one pipeline. Every write is all-or-nothing: a reader sees a file or a run
    whole or not at all. Callers that write hold `lock()` for their whole change (a backend
    without a lock returns a no-op and makes each primitive safe on its own)."""

    keeps_history_file: bool
    """Whether the writer also keeps the merged accuracy.parquet (it needs the lock)."""

    def location(self, key: str) -> str:
        """Where `key` is, for messages to a person (a path, a URL; never a credential)."""
        ...

    def check_writable(self) -> None:
        """Refuses, with a `PublishError`, storage that cannot keep the guarantees."""
        ...

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Holds the pipeline's exclusive writer lock; raises `LockTimeout` if it stays taken."""
        ...

    def create_run(self, run_id: str, files: Mapping[str, bytes]) -> None:
        """Creates run `run_id` from `files` (its manifest among them), create-only: the run
        appears under its id whole, its manifest written last, or not at all."""
        ...

    def create_file(self, key: str, data: bytes) -> bool:
        """Writes file `key` whole only if it does not exist; False when it already did."""
        ...

    def write_file(self, key: str, data: bytes) -> None:
        """Replaces the file `key` atomically: readers see the old bytes or the new ones."""
        ...

    def read_bytes(self, key: str) -> bytes:
        """The bytes of file `key`; raises `OSError` when it is missing or unreadable."""
        ...

    def keys(self, folder: str) -> list[str]:
        """Keys of the files directly in `folder` whose names do not start with '.', sorted."""
        ...

    def read_pointer(self) -> dict[str, Any] | None:
        """The current pointer (`run_id`, `as_of`, `manifest_sha256`); None when there is none."""
        ...

    def move_latest(self, pointer: dict[str, Any], should_move: ShouldMove) -> bool:
        """Points `latest` at `pointer["run_id"]` if `should_move(current pointer)`, in one
        atomic step (the commit point of a publish); whether it moved."""
        ...

    def settled(self, run_id: str) -> bool:
        """Whether no writer can still be at work on sealed run `run_id`, so it may go."""
        ...

    def run_ids(self) -> list[str]:
        """Ids of the sealed runs (those holding a manifest), sorted."""
        ...

    def is_sealed(self, run_id: str) -> bool:
        """Whether run `run_id` exists with its manifest."""
        ...

    def latest(self) -> str | None:
        """The run id `latest` points to; None when it points nowhere."""
        ...

    def leftovers(self) -> list[str]:
        """Keys of what writers that are gone left behind: unsealed runs and temporary files."""
        ...

    def remove(self, key: str) -> None:
        """Removes a file or a run; a run first stops looking sealed, then goes."""
        ...


class LocalBackend:
    """A pipeline folder on a local (POSIX) filesystem; see the module docstring.

    Files are written under a temporary name, fsynced, then renamed; folders are fsynced after
    each rename into them. `latest` is a relative symlink replaced by `os.replace`. The lock is
    `<root>/.publish.lock`, an flock(2) that the kernel releases when its holder dies.
    """

    keeps_history_file = True

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def check_writable(self) -> None:
        """Nothing to probe: renames, symlinks and flock are POSIX."""

    def path(self, key: str) -> Path:
        """The local path of `key`."""
        return self.root / key

    def location(self, key: str) -> str:
        return str(self.path(key))

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        (self.root / RUNS).mkdir(parents=True, exist_ok=True)
        try:
            with FileLock(self.root / LOCK_FILE, timeout=LOCK_TIMEOUT_SECONDS):
                yield
        except Timeout:
            raise LockTimeout(
                f"Another run held the publish lock of {str(self.root)!r} for "
                f"{LOCK_TIMEOUT_SECONDS} s."
            ) from None

    def create_run(self, run_id: str, files: Mapping[str, bytes]) -> None:
        """Assembles the run in a staging folder and renames it to `runs/<run_id>` once sealed.

        Files are written in the order given, so the caller puts the manifest last.
        """
        run_dir = self.path(run_key(run_id))
        staging = run_dir.with_name(_temporary_name(run_dir.name))
        staging.mkdir()
        try:
            for filename, data in files.items():
                _write_atomic(staging / filename, data)
            _fsync_dir(staging)
            os.rename(staging, run_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _fsync_dir(run_dir.parent)

    def write_file(self, key: str, data: bytes) -> None:
        _write_atomic(self.path(key), data)

    def create_file(self, key: str, data: bytes) -> bool:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            return False
        _write_atomic(path, data)  # under the lock: nobody else creates it meanwhile
        return True

    def keys(self, folder: str) -> list[str]:
        path = self.path(folder)
        if not path.is_dir():
            return []
        return sorted(
            f"{folder}/{entry.name}"
            for entry in path.iterdir()
            if not entry.name.startswith(".") and entry.is_file()
        )

    def read_pointer(self) -> dict[str, Any] | None:
        """latest.json when it names the run the symlink points to; else what the symlink's
        run manifest says (runs published before latest.json existed)."""
        run_id = self.latest()
        if run_id is None:
            return None
        with contextlib.suppress(OSError, ManifestError):
            pointer = load_document(self.read_bytes(POINTER))
            if pointer.get("run_id") == run_id:
                return pointer
        try:
            manifest = self.read_bytes(run_key(run_id, MANIFEST))
            as_of = load_document(manifest).get("as_of")
        except (OSError, ManifestError):
            return {"run_id": run_id, "as_of": None}
        return make_pointer(run_id, as_of, manifest)

    def move_latest(self, pointer: dict[str, Any], should_move: ShouldMove) -> bool:
        """Under the lock: switches the symlink (the commit point), then rewrites latest.json
        beside it for readers that do not follow symlinks."""
        if not should_move(self.read_pointer()):
            return False
        self.point_latest(str(pointer["run_id"]))
        _write_atomic(self.root / POINTER, json.dumps(pointer).encode())
        return True

    def settled(self, run_id: str) -> bool:
        """Always: every writer holds the lock the caller holds."""
        return True

    def read_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def run_ids(self) -> list[str]:
        runs_dir = self.root / RUNS
        if not runs_dir.is_dir():
            return []
        return sorted(
            entry.name
            for entry in runs_dir.iterdir()
            if not entry.name.startswith(".") and (entry / MANIFEST).is_file()
        )

    def is_sealed(self, run_id: str) -> bool:
        return is_run_id(run_id) and self.path(run_key(run_id, MANIFEST)).is_file()

    def latest(self) -> str | None:
        run_dir = self.latest_dir()
        return None if run_dir is None else run_dir.name

    def latest_dir(self) -> Path | None:
        """The real path of the run folder `latest` points to, resolved once; None when there
        is no `latest` link."""
        link = self.root / LATEST
        if not link.is_symlink():
            return None
        return Path(os.path.realpath(link))

    def point_latest(self, run_id: str) -> None:
        """Points the `latest` symlink at `runs/<run_id>` by renaming a new link over it."""
        temporary = self.root / _temporary_name(LATEST)
        os.symlink(os.path.join(RUNS, run_id), temporary)
        try:
            os.replace(temporary, self.root / LATEST)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        try:
            _fsync_dir(self.root)
        except OSError as error:  # the switch is done and readers see it; only its flush failed
            warnings.warn(
                f"`latest` of {str(self.root)!r} now points at runs/{run_id}, but flushing that "
                f"to disk failed: {error.strerror or error}. A power loss could undo the switch; "
                "check the disk.",
                stacklevel=4,
            )

    def leftovers(self) -> list[str]:
        """What dead writers left: temporary files, links and staging folders (`.*.tmp`, see
        `_writer_is_gone`) and run folders without a manifest (older versions wrote runs in
        place). Only meaningful for a caller holding the lock."""
        runs_dir = self.root / RUNS
        entries = [*self.root.iterdir(), *(runs_dir.iterdir() if runs_dir.is_dir() else [])]
        return [
            entry.relative_to(self.root).as_posix()
            for entry in entries
            if _is_leftover(entry, runs_dir)
        ]

    def remove(self, key: str) -> None:
        """Removes a file or link; a folder is first renamed to a temporary name, then deleted,
        so a crash midway leaves a leftover for the next writer rather than a sealed run with
        files missing."""
        path = self.path(key)
        if not path.is_dir() or path.is_symlink():
            path.unlink(missing_ok=True)
            return
        if not (path.name.startswith(".") and path.name.endswith(".tmp")):
            doomed = path.with_name(_temporary_name(path.name))
            os.rename(path, doomed)
            path = doomed
        shutil.rmtree(path)


def make_pointer(run_id: str, as_of: object, manifest: bytes) -> dict[str, Any]:
    """The content of latest.json for a run: its id, as-of and the sha256 of its manifest."""
    return {
        "run_id": run_id,
        "as_of": None if as_of is None else str(as_of),
        "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
    }


def is_supported(location: Location) -> None:
    """Refuses, in one line, a URL whose scheme has no backend or whose backend's package is
    not installed; local paths (and `file://`) always pass.

    Raises:
        ConfigError: The scheme is unknown, or `s3://` without s3fs.
    """
    scheme = url_scheme(location)
    if scheme in (None, "file"):
        return
    if scheme not in SCHEMES:
        raise ConfigError(
            f"output_dir {str(location)!r} uses the scheme {scheme!r}, which has no storage "
            "backend; use a local folder or an s3:// URL (S3 and compatible stores). "
            f"Received: output_dir={str(location)!r}"
        )
    try:
        import s3fs  # noqa: F401
    except ImportError:
        raise ConfigError(
            f"output_dir {str(location)!r} needs s3fs, which is not installed; install the "
            "extra with `pip install 'recurrent-forecast[s3]'`, or use a local folder."
        ) from None


def open_backend(root: Location) -> Backend:
    """The backend of a pipeline folder or URL (`s3://bucket/prefix/<name>`).

    Raises:
        ConfigError: `is_supported` refuses it.
    """
    is_supported(root)
    scheme = url_scheme(root)
    if scheme is None:
        return LocalBackend(root)
    if scheme == "file":
        return LocalBackend("/" + as_url(root).removeprefix("file://").lstrip("/"))
    return S3Backend(as_url(root))


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
