"""Storage of published runs: one writer, one verified reader, behind a small backend seam.

    layout       file names, run ids, the readers' column contract
    manifest     manifest.json as a schema (docs/manifest.schema.json), parsed in one place
    formats      how tables and documents become bytes
    history      the accuracy history file's shape and merge
    s3           `S3Backend`: the same primitives on object storage (create-only writes,
                 latest.json by compare-and-swap, age rules instead of a lock)
    backend      the `Backend` primitives, `LocalBackend` (atomic renames, `latest` symlink,
                 file lock, leftovers of dead writers) and `open_backend` for a folder or URL
    writer       publish_run, rollback, retention, accuracy history append
    reader       read_run, read_latest, published_manifest: every file verified
    model_files  safe loading of a published model.keras

Only `writer` writes; dependencies point down this list and never back to the rest of the
library (only `forecasting.errors`).
"""

from forecasting.store.model_files import load_latest_model, load_published_model
from forecasting.store.reader import PublishedRun, published_manifest, read_latest, read_run
from forecasting.store.writer import publish_run, rollback

__all__ = [
    "PublishedRun",
    "load_latest_model",
    "load_published_model",
    "publish_run",
    "published_manifest",
    "read_latest",
    "read_run",
    "rollback",
]
