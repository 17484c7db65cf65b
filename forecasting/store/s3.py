"""A pipeline stored in an S3 bucket (or any S3-compatible store): the same primitives as the
local folder, made safe without renames or locks by conditional writes.

- Every run file is written create-only (`If-None-Match: *`), the manifest last: a run whose
  manifest exists is sealed, and no writer ever overwrites another's file.
- `latest.json` (`run_id`, `as_of`, `manifest_sha256`) is the commit point. It moves by
  compare-and-swap: read it with its ETag, decide, PUT with `If-Match: <etag>` (or
  `If-None-Match: *` when there is none); a 412 means another writer moved it first, so the
  writer reads it again and decides again.
- Nothing is deleted that a live writer may still use: an unsealed run (files without a
  manifest) is a leftover only once its newest file is older than `leftover_age` seconds, and a
  sealed run goes to retention only once its manifest is as old (and `latest.json` does not
  name it). Ages are measured on the server's clock, read from a probe object's
  `Last-Modified`, so clock skew between hosts does not matter.
- `check_writable` writes a probe object twice, create-only: an endpoint that accepts the
  second PUT ignores conditional writes, and everything above would be unsafe there.

The endpoint comes from `AWS_ENDPOINT_URL`, the credentials from the usual AWS variables or
profile (botocore's own lookup); neither is ever put in a message, a manifest or a file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from forecasting.errors import PublishError
from forecasting.store.formats import json_bytes
from forecasting.store.layout import MANIFEST, POINTER, RUNS, is_run_id, run_key
from forecasting.store.manifest import ManifestError, load_document

LEFTOVER_AGE_SECONDS = 3600.0
ShouldMove = Callable[[dict[str, Any] | None], bool]  # as `backend.ShouldMove`
PROBE_FOLDER = ".probe"
_CAS_ATTEMPTS = 50


class S3Backend:
    """One pipeline under `s3://bucket/prefix/<name>`; see the module docstring.

    Args:
        url: `s3://bucket/prefix/<name>`.
        leftover_age: Seconds after its last write that an unsealed run counts as abandoned,
            and after its manifest that a sealed run may be deleted by retention. A publish
            writes its files within seconds; the default hour leaves a wide margin.
    """

    keeps_history_file = False

    def __init__(self, url: str, leftover_age: float = LEFTOVER_AGE_SECONDS) -> None:
        import s3fs

        self.url = url.rstrip("/")
        self.root = self.url.removeprefix("s3://")
        self.bucket = self.root.split("/", 1)[0]
        self.leftover_age = leftover_age
        endpoint = os.environ.get("AWS_ENDPOINT_URL") or None
        self.endpoint = endpoint or "AWS S3"
        self.fs = _OSErrors(
            s3fs.S3FileSystem(
                client_kwargs={"endpoint_url": endpoint} if endpoint else {},
                use_listings_cache=False,
            )
        )
        self._clock_offset: float | None = None

    def location(self, key: str) -> str:
        return f"{self.url}/{key}"

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """No lock: each primitive is safe on its own (conditional writes, age rules)."""
        return contextlib.nullcontext()

    def check_writable(self) -> None:
        """Probes that a second create-only PUT fails with 412,
        and reads the server's clock from the probe.

        Raises:
            PublishError: The endpoint accepted the second PUT, or cannot be written.
        """
        key = f"{PROBE_FOLDER}/{secrets.token_hex(8)}"
        try:
            self._put(key, b"probe", create_only=True)
            honoured = not self._put_if_absent(key, b"probe again")
            self._clock_offset = self._modified(key) - time.time()
            self.fs.rm_file(self._path(key))
        except OSError as error:
            raise PublishError(
                f"Cannot write to {self.location(key)!r} at endpoint {self.endpoint}: "
                f"{error.strerror or error}. Check the bucket, AWS_ENDPOINT_URL and the "
                "credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or a profile)."
            ) from None
        if not honoured:
            raise PublishError(
                f"The object store at {self.endpoint} ignores conditional writes: a second "
                f"create-only PUT (If-None-Match: *) of {self.location(key)!r} succeeded. "
                "Publishing there could overwrite runs and move `latest` backwards; use an "
                "endpoint that honours If-None-Match and If-Match (AWS S3, SeaweedFS, MinIO)."
            )

    def create_run(self, run_id: str, files: Mapping[str, bytes]) -> None:
        """Writes each file create-only, in order (the manifest last).

        A file already there was left by a writer of the same run id, that is of identical
        inputs (`make_run_id`); it is kept, and the manifest lists the bytes actually stored,
        so the sealed run verifies. A manifest already there means another writer sealed the
        run first: that run stands.
        """
        stored = dict(files)
        manifest = stored.pop(MANIFEST)
        for filename, data in stored.items():
            key = run_key(run_id, filename)
            if not self._put_if_absent(key, data):
                stored[filename] = self.read_bytes(key)
        if stored != {name: data for name, data in files.items() if name != MANIFEST}:
            manifest = _relist(manifest, stored)
        self._put_if_absent(run_key(run_id, MANIFEST), manifest)
        # Files kept from an earlier writer look old to a concurrent cleanup, which may have
        # judged this run abandoned just before the manifest landed: check that none is gone.
        present = self._run_files(run_id)
        if missing := sorted(set(files) - set(present)):
            raise PublishError(
                f"Files {missing} of run {run_id} at {self.location(run_key(run_id))!r} were "
                "removed while it was being sealed (a cleanup judged an earlier, crashed "
                "attempt abandoned); `latest` is untouched. Rerun to publish it."
            )

    def create_file(self, key: str, data: bytes) -> bool:
        return self._put_if_absent(key, data)

    def write_file(self, key: str, data: bytes) -> None:
        self._put(key, data, create_only=False)

    def read_bytes(self, key: str) -> bytes:
        return bytes(self.fs.cat_file(self._path(key)))

    def keys(self, folder: str) -> list[str]:
        prefix = f"{self.root}/"
        try:
            entries = self.fs.ls(self._path(folder), detail=False, refresh=True)
        except FileNotFoundError:
            return []
        names = [str(entry).removeprefix(prefix) for entry in entries]
        return sorted(
            name
            for name in names
            if not name.rsplit("/", 1)[-1].startswith(".") and self.fs.isfile(prefix + name)
        )

    def run_ids(self) -> list[str]:
        return sorted(run_id for run_id, files in self._runs().items() if MANIFEST in files)

    def is_sealed(self, run_id: str) -> bool:
        return is_run_id(run_id) and self.fs.exists(self._path(run_key(run_id, MANIFEST)))

    def latest(self) -> str | None:
        pointer = self.read_pointer()
        run_id = None if pointer is None else pointer.get("run_id")
        return str(run_id) if run_id else None

    def read_pointer(self) -> dict[str, Any] | None:
        return self._read_pointer()[0]

    def move_latest(self, pointer: dict[str, Any], should_move: ShouldMove) -> bool:
        """Compare-and-swap on latest.json's ETag, retried with a short random pause while
        other writers move it first.

        Raises:
            PublishError: Other writers won the race `_CAS_ATTEMPTS` times in a row.
        """
        data = json.dumps(pointer).encode()
        for attempt in range(_CAS_ATTEMPTS):
            current, etag = self._read_pointer()
            if not should_move(current):
                return False
            if self._put_conditional(POINTER, data, etag):
                return True
            time.sleep(random.uniform(0, 0.01 * (attempt + 1)))
        raise PublishError(
            f"{self.location(POINTER)!r} kept changing under {_CAS_ATTEMPTS} attempts to move "
            "it; too many runs publish this pipeline at once. Rerun; the run itself is sealed."
        )

    def leftovers(self) -> list[str]:
        """Unsealed runs and probe objects whose newest file is older than `leftover_age`."""
        now = self._server_now()
        runs = self._runs()
        old = [
            run_key(run_id)
            for run_id, files in runs.items()
            if MANIFEST not in files and now - max(files.values()) > self.leftover_age
        ]
        probes = self._modified_under(PROBE_FOLDER)
        return old + [key for key, moment in probes.items() if now - moment > self.leftover_age]

    def settled(self, run_id: str) -> bool:
        """Whether the run's manifest is older than `leftover_age`, so its writer is done."""
        try:
            return self._server_now() - self._modified(run_key(run_id, MANIFEST)) > (
                self.leftover_age
            )
        except FileNotFoundError:
            return False

    def remove(self, key: str) -> None:
        """Removes a file, or a run: its manifest first, so it stops looking sealed. A run is
        looked at again first and kept if its newest file (the manifest, when sealed) is
        younger than `leftover_age`: a writer sealed it or wrote to it since it was judged
        abandoned or settled."""
        path = self._path(key)
        if key.startswith(f"{RUNS}/") and key.count("/") == 1:
            files = self._run_files(key.split("/")[1])
            newest = files[MANIFEST] if MANIFEST in files else max(files.values(), default=0.0)
            if self._server_now() - newest <= self.leftover_age:
                return
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(f"{path}/{MANIFEST}")
            for entry in self.fs.find(path):
                with contextlib.suppress(FileNotFoundError):
                    self.fs.rm_file(entry)
            return
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(path)

    # Conditional writes and listings.

    def _put(self, key: str, data: bytes, create_only: bool) -> None:
        extra = {"IfNoneMatch": "*"} if create_only else {}
        self.fs.pipe_file(self._path(key), data, **extra)

    def _put_if_absent(self, key: str, data: bytes) -> bool:
        """A create-only PUT; False when the object already existed (412)."""
        return self._put_conditional(key, data, None)

    def _put_conditional(self, key: str, data: bytes, etag: str | None) -> bool:
        """PUT with `If-Match: etag`, or `If-None-Match: *` when `etag` is None; False on 412
        (or 409, a concurrent conditional write AWS asks to retry)."""
        extra = {"IfNoneMatch": "*"} if etag is None else {"IfMatch": etag}
        try:
            self.fs.pipe_file(self._path(key), data, **extra)
        except OSError as error:
            if _status(error) in (409, 412):
                return False
            raise
        return True

    def _read_pointer(self) -> tuple[dict[str, Any] | None, str | None]:
        """latest.json and its ETag, from one GET; (None, None) when it does not exist."""
        from fsspec.asyn import sync

        try:
            with _as_os_errors():
                data, etag = sync(self.fs.loop, self._get, self._path(POINTER))
        except FileNotFoundError:
            return None, None
        try:
            return load_document(data), etag
        except ManifestError:  # damaged: treated as no pointer, replaced by the next publish
            return {}, etag

    async def _get(self, path: str) -> tuple[bytes, str]:
        bucket, key = path.split("/", 1)
        response = await self.fs._call_s3("get_object", Bucket=bucket, Key=key)
        async with response["Body"] as body:
            data = await body.read()
        return data, response["ETag"]

    def _runs(self) -> dict[str, dict[str, float]]:
        """Run id -> file name -> Last-Modified (epoch seconds), from one listing."""
        runs: dict[str, dict[str, float]] = {}
        for key, moment in self._modified_under(RUNS).items():
            parts = key.split("/")
            if len(parts) == 3 and is_run_id(parts[1]):
                runs.setdefault(parts[1], {})[parts[2]] = moment
        return runs

    def _run_files(self, run_id: str) -> dict[str, float]:
        """One run's file name -> Last-Modified, from a listing of its folder alone."""
        found = self._modified_under(run_key(run_id))
        return {key.rsplit("/", 1)[-1]: moment for key, moment in found.items()}

    def _modified_under(self, folder: str) -> dict[str, float]:
        prefix = f"{self.root}/"
        try:
            found = self.fs.find(self._path(folder), detail=True)
        except FileNotFoundError:
            return {}
        return {
            str(name).removeprefix(prefix): info["LastModified"].timestamp()
            for name, info in found.items()
            if info.get("type") == "file"
        }

    def _modified(self, key: str) -> float:
        return float(self.fs.info(self._path(key), refresh=True)["LastModified"].timestamp())

    def _server_now(self) -> float:
        if self._clock_offset is None:
            self.check_writable()
        return time.time() + (self._clock_offset or 0.0)


def _relist(manifest: bytes, stored: Mapping[str, bytes]) -> bytes:
    """The manifest with its `files` listing recomputed from the bytes actually stored."""
    document = load_document(manifest)
    document["files"] = {
        name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        for name, data in stored.items()
    }
    return json_bytes(document)


def _status(error: BaseException) -> int | None:
    """The HTTP status behind an s3fs error (it turns a 412 into a plain OSError)."""
    seen: BaseException | None = error
    while seen is not None:
        response = getattr(seen, "response", None)
        if isinstance(response, dict):
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status is not None:
                return int(status)
        seen = seen.__cause__ or seen.__context__
    text = str(error)
    return 412 if "pre-condition" in text or "PreconditionFailed" in text else None


class _OSErrors:
    """The s3fs file system, its botocore errors raised as `OSError`: s3fs turns an S3 error
    answer into one, but not an endpoint it cannot reach or credentials it cannot find, and
    every caller here handles storage failures as `OSError`."""

    def __init__(self, fs: Any) -> None:
        self._fs = fs

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._fs, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            with _as_os_errors():
                return attribute(*args, **kwargs)

        return call


@contextlib.contextmanager
def _as_os_errors() -> Iterator[None]:
    """Raises botocore's errors (no connection, no credentials) as `OSError`."""
    from botocore.exceptions import BotoCoreError

    try:
        yield
    except BotoCoreError as error:
        raise OSError(str(error)) from error
