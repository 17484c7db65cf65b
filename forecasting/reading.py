"""Reading published runs back: every file verified against its manifest before it is used.

Readers never see a partial run: a run folder is sealed by its manifest (see `publishing`), and
each file is checked (size, then sha256) before it is parsed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from forecasting.errors import PublishError
from forecasting.publishing import MANIFEST


@dataclass(frozen=True)
class PublishedRun:
    """A run read back from disk with every file's hash verified."""

    path: Path
    manifest: dict
    forecast: pd.DataFrame
    leaderboard: pd.DataFrame | None = None


def published_manifest(output_dir: Path | str, name: str, run_id: str) -> dict | None:
    """The manifest of run `run_id` when it is sealed and every file verifies; else None."""
    run_dir = Path(output_dir) / name / "runs" / run_id
    if not (run_dir / MANIFEST).is_file():
        return None
    try:
        return read_run(run_dir).manifest
    except PublishError:
        return None


def read_run(run_dir: Path) -> PublishedRun:
    """Reads a sealed run folder, verifying every file against its manifest.

    Every file listed in the manifest is read once and checked (size, then sha256); the
    forecast and leaderboard are parsed from those verified bytes, never from a second read.

    Raises:
        PublishError: The manifest is missing or malformed, a file is missing or does not match
            its hash, or the manifest lists no forecast.parquet.
    """
    run_dir = Path(run_dir)
    manifest = _read_manifest(run_dir)
    verified = {
        filename: _read_verified(run_dir, filename, expected)
        for filename, expected in _listing(run_dir, manifest).items()
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
        manifest,
        pd.read_parquet(io.BytesIO(forecast_bytes)),
        None if board is None else pd.read_csv(io.BytesIO(board)),
    )


def _read_manifest(run_dir: Path) -> dict:
    try:
        manifest = json.loads((run_dir / MANIFEST).read_bytes())
    except (OSError, ValueError) as error:
        raise PublishError(
            f"Run folder {str(run_dir)!r} has no readable manifest: {error}."
        ) from None
    if not isinstance(manifest, dict):
        raise PublishError(f"The manifest of {str(run_dir)!r} is not a JSON object.")
    return manifest


def _listing(run_dir: Path, manifest: dict) -> dict[str, dict]:
    listing = manifest.get("files")
    if not isinstance(listing, dict):
        listing = None
    valid = listing is not None and all(
        isinstance(entry, dict)
        and isinstance(entry.get("sha256"), str)
        and isinstance(entry.get("bytes"), int)
        and filename not in ("", ".", "..", MANIFEST)
        and "/" not in filename
        for filename, entry in listing.items()
    )
    if listing is None or not valid:
        raise PublishError(
            f"The manifest of {str(run_dir)!r} has no valid `files` listing "
            "(file name -> sha256 and bytes). Republish the run, or read another run."
        )
    return listing


def _read_verified(run_dir: Path, filename: str, expected: dict) -> bytes:
    try:
        data = (run_dir / filename).read_bytes()
    except OSError as error:
        raise PublishError(f"{str(run_dir / filename)!r} is missing: {error}.") from None
    if len(data) != expected["bytes"] or hashlib.sha256(data).hexdigest() != expected["sha256"]:
        raise PublishError(
            f"{str(run_dir / filename)!r} does not match the sha256 in its manifest; the "
            "file was changed after publishing. Republish, or roll back to another run."
        )
    return data


def read_latest(output_dir: Path | str, name: str) -> PublishedRun:
    """Resolves `<output_dir>/<name>/latest` once and reads that run with hashes verified.

    If the read fails and `latest` has meanwhile moved (a publish switched it, and retention
    may have removed the run first resolved), it reads the new target instead.

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
    target = Path(os.path.realpath(link))
    for _ in range(3):
        try:
            return read_run(target)
        except PublishError:
            moved = Path(os.path.realpath(link))
            if moved == target:
                raise
            target = moved
    return read_run(target)
