"""Names of everything a pipeline's storage holds, and how run ids and times are spelled.

Layout under `<output_dir>/<name>/`:
    runs/<run_id>/   forecast.csv, forecast.parquet, candidate_forecasts.parquet, leaderboard.csv,
                     backtest.parquet, preprocessing.json, model.keras (absent when a naive
                     model wins), manifest.json (lists every other file with its sha256 and size)
    latest           relative symlink to runs/<run_id> (local folders only)
    latest.json      {"run_id", "as_of", "manifest_sha256"}: the pointer every backend keeps;
                     moving it is the commit point on object storage
    accuracy.parquet earlier runs' forecasts scored against the actuals that came later
                     (local folders; rewritten under the lock)
    accuracy/<run_id>.parquet  the rows each run scored, written once (every backend)
    .publish.lock    held by every writer for its whole publish (local folders)

`<output_dir>` is a local folder or an object-store URL (`s3://bucket/prefix`); `pipeline_dir`
and `child` join both kinds alike.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

SCHEMA_VERSION = 4
RUNS = "runs"
LATEST = "latest"
POINTER = "latest.json"
ACCURACY_PARTS = "accuracy"
MANIFEST = "manifest.json"
MODEL_FILE = "model.keras"
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


def is_run_id(text: str) -> bool:
    """Whether `text` can name a run folder: not empty, not hidden (temporary names are), and
    a single path component."""
    return bool(text) and not text.startswith(".") and "/" not in text and text != ".."


def run_key(run_id: str, filename: str | None = None) -> str:
    """The storage key of a run folder, or of one of its files: `runs/<run_id>[/<filename>]`."""
    folder = f"{RUNS}/{run_id}"
    return folder if filename is None else f"{folder}/{filename}"


# `scheme://rest`; also `scheme:/rest`, which is what Path() makes of a URL on its way in.
_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]+):/+(?P<rest>.*)$")

Location = Path | str
"""A local folder (`Path`) or an object-store URL (`str`, such as `s3://bucket/prefix`)."""


def url_scheme(location: object) -> str | None:
    """The lower-case scheme of a URL (`s3`), or None for a local path."""
    match = _URL.match(str(location))
    return None if match is None else match["scheme"].lower()


def as_url(location: object) -> str:
    """`scheme://rest` for a URL, repairing the `s3:/bucket` that Path() makes of `s3://bucket`."""
    match = _URL.match(str(location))
    if match is None:
        raise ValueError(f"Not a URL: {str(location)!r}")
    return f"{match['scheme'].lower()}://{match['rest'].rstrip('/')}"


def child(location: Location, *parts: str) -> Location:
    """`location/part/...` for a folder or a URL alike."""
    if isinstance(location, Path) or url_scheme(location) is None:
        return Path(location, *parts)
    return "/".join([as_url(location), *parts])


def basename(location: Location) -> str:
    """The last component of a folder or URL (`runs/<run_id>` gives the run id)."""
    return Path(str(location).rstrip("/")).name


def parent(location: Location) -> Location:
    """The folder or URL one level up."""
    if isinstance(location, Path) or url_scheme(location) is None:
        return Path(location).parent
    return as_url(location).rsplit("/", 1)[0]


def pipeline_dir(output_dir: Location, name: str) -> Location:
    """`<output_dir>/<name>`: the folder (or URL) of one pipeline's runs, `latest` and history."""
    return child(output_dir, name)


def pipeline_of(run_dir: Location) -> Location:
    """The pipeline folder (or URL) of a run `<pipeline>/runs/<run_id>`.

    Raises:
        ValueError: `run_dir` is not directly inside a `runs` folder.
    """
    runs = parent(run_dir)
    if basename(runs) != RUNS:
        raise ValueError(
            f"A run folder lies directly inside a {RUNS!r} folder. "
            f"Received: run_dir={str(run_dir)!r}"
        )
    return parent(runs)
