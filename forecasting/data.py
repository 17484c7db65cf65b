"""Loading user files (CSV or Parquet) into the long format `unique_id`, `ds`, `y` (+ covariates).

This is the only module that reads user data. It renames columns once and keeps each row's
position in the file (`row`) so that later errors can point at the lines at fault.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from forecasting.config import DataConfig
from forecasting.errors import DataValidationError

_PARQUET_SUFFIXES = {".parquet", ".pq"}


@dataclass(frozen=True)
class LoadedData:
    """A user file read into long format, values not yet checked.

    Attributes:
        frame: Columns `unique_id`, `ds`, `y`, one per covariate, and `row` (the 1-based line
            number in a CSV file, header = line 1; the 1-based row number in a Parquet file).
            `ds` and `y` hold the values as read (text or numbers).
        source: The file path.
        sha256: Hex digest of the file's bytes.
        row_label: "line" for CSV files, "row" for Parquet files.
    """

    frame: pd.DataFrame
    source: Path
    sha256: str
    row_label: str


def file_sha256(path: Path) -> str:
    """Returns the hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_series(config: DataConfig) -> LoadedData:
    """Reads the configured file and renames its columns to the long format.

    Raises:
        DataValidationError: The file is missing, larger than `config.max_file_bytes`,
            unreadable, empty, or lacks a named column.
    """
    path = Path(config.path)
    if not path.is_file():
        raise DataValidationError(
            f"Data file {str(path)!r} does not exist. Pass an existing CSV or Parquet file with "
            "--data (relative paths in a config file resolve against the config's folder)."
        )
    _check_size(path, config.max_file_bytes)
    wanted = [config.time_column, config.target_column, *config.covariates]
    if config.id_column:
        wanted.append(config.id_column)
    is_parquet = path.suffix.lower() in _PARQUET_SUFFIXES
    raw = _read_parquet(path, wanted) if is_parquet else _read_csv(path, wanted, config)
    frame = pd.DataFrame(
        {
            "unique_id": raw[config.id_column].astype(str)
            if config.id_column
            else config.target_column,
            "ds": raw[config.time_column],
            "y": raw[config.target_column],
            **{name: raw[name] for name in config.covariates},
            "row": raw.index.to_numpy() + (1 if is_parquet else 2),
        }
    )
    del raw
    release_arrow_memory()
    return LoadedData(frame, path, file_sha256(path), "row" if is_parquet else "line")


def release_arrow_memory() -> None:
    """Hands the memory pyarrow's pool keeps after a large read back to the system (reading a
    million-row file leaves hundreds of MB there otherwise; pandas' text columns live in it)."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


def _check_size(path: Path, limit: int) -> None:
    """Refuses a file larger than `limit` bytes before reading it: pandas needs several times
    a file's size in memory, so a huge file would exhaust the machine instead of failing."""
    size = path.stat().st_size
    if size > limit:
        raise DataValidationError(
            f"Data file {str(path)!r} is {_bytes(size)}, more than the limit of {_bytes(limit)} "
            "(reading it would take several times that in memory). Cut or resample the file, "
            "or raise the limit with data.max_file_bytes in a --config file if the machine "
            f"has the memory. Received: {size} bytes, max_file_bytes={limit}"
        )


def _bytes(count: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} bytes"


def _read_csv(path: Path, wanted: list[str], config: DataConfig) -> pd.DataFrame:
    try:
        header = pd.read_csv(path, nrows=0).columns.tolist()
    except pd.errors.EmptyDataError:
        raise DataValidationError(
            f"Data file {str(path)!r} is empty. Expected a header line naming the columns "
            f"({', '.join(wanted)}) followed by one line per observation. Export the data "
            "again, or point --data at the right file."
        ) from None
    except (UnicodeDecodeError, pd.errors.ParserError) as error:
        raise DataValidationError(
            f"Data file {str(path)!r} is not readable CSV: {error}."
        ) from None
    _check_columns(path, header, wanted)
    text_columns = {name: str for name in wanted}
    try:
        # Blank lines are kept, then dropped, so row positions stay file line numbers.
        raw = pd.read_csv(
            path,
            usecols=wanted,
            dtype=text_columns,
            na_values=list(config.na_values),
            skip_blank_lines=False,
        )
    except (UnicodeDecodeError, pd.errors.ParserError) as error:
        raise DataValidationError(
            f"Data file {str(path)!r} is not readable CSV: {error}."
        ) from None
    raw = raw.dropna(how="all")
    if raw.empty:
        raise DataValidationError(
            f"Data file {str(path)!r} has a header but no data lines. Add observations below the "
            "header."
        )
    return raw


def _read_parquet(path: Path, wanted: list[str]) -> pd.DataFrame:
    import pyarrow.parquet as pq

    try:
        header = pq.read_schema(path).names
    except Exception as error:  # pyarrow raises several types for a damaged file
        raise DataValidationError(
            f"Data file {str(path)!r} is not readable Parquet: {error}."
        ) from None
    _check_columns(path, header, wanted)
    raw = pd.read_parquet(path, columns=list(dict.fromkeys(wanted)))
    if raw.empty:
        raise DataValidationError(f"Data file {str(path)!r} has no rows.")
    return raw.reset_index(drop=True)


def _check_columns(path: Path, header: list[str], wanted: list[str]) -> None:
    missing = [name for name in dict.fromkeys(wanted) if name not in header]
    if not missing:
        return
    hints = []
    for name in missing:
        close = difflib.get_close_matches(name, header, n=1, cutoff=0.6)
        if not close:
            close = [column for column in header if column.lower() == name.lower()]
        hints.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
    message = (
        f"Data file {str(path)!r} has no column {', '.join(hints)}. "
        f"Its columns are {header!r}. Name the right columns with --time-column, "
        "--target-column, --id-column or --covariates."
    )
    if len(header) == 1 and _sniff_delimiter(path) not in (None, ","):
        message += f" The file seems to use {_sniff_delimiter(path)!r} as its delimiter; save it "
        message += "with commas."
    raise DataValidationError(message)


def _sniff_delimiter(path: Path) -> str | None:
    with open(path, encoding="utf-8", errors="replace") as handle:
        sample = handle.read(4096)
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return None
