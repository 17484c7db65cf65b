"""A fleet: one many-series file split into groups, each forecast as a pipeline of its own.

Group `g` of fleet `name` is the pipeline named `g` in the folder `<output_dir>/<name>/groups`,
so it publishes under `<output_dir>/<name>/groups/<g>/` with the usual contract and
`read_latest(<output_dir>/<name>/groups, g)` reads it. The group's rows are written, columns
and text unchanged, to `<output_dir>/<name>/inputs/<g>.csv` (or `.parquet` for a Parquet file),
which every worker must be able to read (a shared folder when workers sit on several machines).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from forecasting.config import NAME_PATTERN, PipelineConfig
from forecasting.data import _PARQUET_SUFFIXES, load_series, release_arrow_memory
from forecasting.errors import ConfigError, DataValidationError, PublishError
from forecasting.store.layout import Location, child, pipeline_dir, url_scheme
from forecasting.store.reader import read_latest

GROUPS = "groups"
INPUTS = "inputs"


@dataclass(frozen=True)
class Group:
    """One group of a fleet.

    Attributes:
        name: The group's name, also its pipeline's name.
        config: The group's pipeline: the fleet's settings on the group's data file, named
            `name`, publishing to `<output_dir>/<fleet>/groups`.
        series: How many series the group holds.
    """

    name: str
    config: PipelineConfig
    series: int


def groups_dir(output_dir: Location, name: str) -> Location:
    """`<output_dir>/<name>/groups`: the output folder of every group's pipeline."""
    return child(pipeline_dir(output_dir, name), GROUPS)


def hash_group(unique_id: str, groups: int) -> int:
    """The group index of a series: the first 8 bytes of the sha256 of its UTF-8 id, read as a
    big-endian integer, modulo `groups`; the same on every machine and in every process
    (unlike `hash()`)."""
    return int.from_bytes(hashlib.sha256(unique_id.encode()).digest()[:8], "big") % groups


def idempotency_key(parent_run: object, group: str) -> str:
    """The key that makes a rerun of the same parent run find its group's child run instead of
    starting a second one."""
    return f"forecast-fleet/{parent_run}/{group}"


def check_grouping(config: PipelineConfig, group_column: str | None, groups: int | None) -> None:
    """Checks the way of grouping before anything is read or started.

    Raises:
        ConfigError: Neither or both ways given, `groups` below 1, no id column for hashing,
            or outputs in object storage (the group files need a shared folder).
    """
    if (group_column is None) == (groups is None):
        raise ConfigError("Give exactly one of --group-column C or --groups N to split a fleet.")
    if groups is not None and groups < 1:
        raise ConfigError(f"--groups must be at least 1. Received: groups={groups}")
    if groups is not None and not config.data.id_column:
        raise ConfigError(
            "--groups N hashes each series' id: name the id column with --id-column, or split "
            "by a column with --group-column."
        )
    if url_scheme(config.output_dir) is not None:
        raise ConfigError(
            "forecast fleet writes each group's data next to its outputs, which needs a folder "
            f"every worker can read; use a (shared) folder. Received: "
            f"output_dir={str(config.output_dir)!r}"
        )


def split(
    config: PipelineConfig, group_column: str | None = None, groups: int | None = None
) -> list[Group]:
    """Splits the configured file into groups, by the values of `group_column` or into
    `groups` groups by a stable hash of each series' id, writes each group's rows to its own
    file, and returns the groups in name order (empty groups left out).

    Raises:
        ConfigError: See `check_grouping`.
        DataValidationError: The file cannot be read, lacks the column, or a group value
            cannot name a pipeline.
    """
    check_grouping(config, group_column, groups)
    load_series(config.data)  # the file's and the columns' mistakes, as `forecast run` says them
    path = Path(config.data.path)
    raw = _read_text(path)
    column = group_column or str(config.data.id_column)
    if column not in raw.columns:
        raise DataValidationError(
            f"Data file {str(path)!r} has no column {column!r} to group by. Its columns are "
            f"{list(raw.columns)!r}; name one with --group-column."
        )
    group_of_row, names = _group_rows(raw[column], groups, path, column)
    folder = Path(pipeline_dir(config.output_dir, config.name), INPUTS)
    folder.mkdir(parents=True, exist_ok=True)
    result = []
    for index, rows in raw.groupby(group_of_row, sort=True):
        label = names[index]
        target = folder / f"{label}{'.parquet' if _is_parquet(path) else '.csv'}"
        _write_atomic(rows, target)
        data = config.data.model_copy(update={"path": target})
        update = {"name": str(label), "output_dir": groups_dir(config.output_dir, config.name)}
        series = rows[config.data.id_column].nunique() if config.data.id_column else 1
        result.append(Group(str(label), config.model_copy(update={**update, "data": data}), series))
    del raw
    release_arrow_memory()  # the fleet's process waits for its groups, for hours maybe
    return result


def read_fleet(output_dir: Location, name: str) -> pd.DataFrame:
    """The latest forecast of every group of fleet `name`, each read with `read_latest` (hashes
    verified), as one frame with a `group` column first.

    Raises:
        PublishError: No group is published, or a group's folder holds no verified run.
    """
    root = groups_dir(output_dir, name)
    if url_scheme(root) is not None:
        raise PublishError(f"read_fleet reads local folders only. Received: {str(root)!r}")
    names = sorted(entry.name for entry in Path(root).glob("*") if entry.is_dir())
    names = [group for group in names if NAME_PATTERN.match(group)]
    if not names:
        raise PublishError(
            f"No published group of fleet {name!r} in {str(output_dir)!r}. Run `forecast fleet` "
            "first, or check --output-dir and the name."
        )
    frames = [read_latest(root, group).forecast.assign(group=group) for group in names]
    frame = pd.concat(frames, ignore_index=True)
    return frame[["group", *(c for c in frame.columns if c != "group")]]


def _group_rows(
    values: pd.Series, groups: int | None, path: Path, column: str
) -> tuple[np.ndarray, list[str]]:
    """Per row, the index of its group in the returned names (sorted): the hash of its id
    with `groups`, else its value as text. Each distinct value is named once, not once per
    row: at 10,000 one-year series that is 10,000 hashes instead of 87 million."""
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    texts = [str(value) for value in uniques]
    if groups is not None:
        width = len(str(groups - 1))
        labels = [f"{hash_group(text, groups):0{width}d}" for text in texts]
    else:
        bad = sorted(text for text in texts if not NAME_PATTERN.match(text))
        if bad:
            raise DataValidationError(
                f"Data file {str(path)!r}, column {column!r}: {bad[:5]!r} cannot name a group "
                "(1-64 letters, digits, '_', '.' or '-', starting with a letter or digit). "
                "Rename those values, or split with --groups N."
            )
        labels = texts
    names = sorted(set(labels))
    position = {name: index for index, name in enumerate(names)}
    return np.array([position[label] for label in labels], dtype=np.int32)[codes], names


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in _PARQUET_SUFFIXES


def _read_text(path: Path) -> pd.DataFrame:
    """Every column of the file; a CSV's cells as the exact text written."""
    if _is_parquet(path):
        return pd.read_parquet(path)
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)


def _write_atomic(rows: pd.DataFrame, target: Path) -> None:
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    if _is_parquet(target):
        rows.to_parquet(temporary, index=False)
    else:
        rows.to_csv(temporary, index=False)
    os.replace(temporary, target)
