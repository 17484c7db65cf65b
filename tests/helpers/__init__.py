"""Helpers shared by tests: editing CSV rows by file line, and the shape of a user error.

The scripts beside this file run as child processes.
"""

from __future__ import annotations

import pandas as pd


def at_line(frame: pd.DataFrame, line: int, column: str, value: str | None) -> pd.DataFrame:
    """Returns a copy with the cell on CSV line `line` (header = line 1) set to `value`."""
    changed = frame.copy()
    changed.loc[line - 2, column] = value
    return changed


def drop_lines(frame: pd.DataFrame, first: int, count: int) -> pd.DataFrame:
    """Returns a copy without `count` data lines starting at CSV line `first`."""
    return frame.drop(index=range(first - 2, first - 2 + count)).reset_index(drop=True)


def repeat_line(frame: pd.DataFrame, line: int, value: str | None = None) -> pd.DataFrame:
    """Returns a copy with CSV line `line` repeated right after itself (target `value`)."""
    copy = frame.iloc[[line - 2]]
    if value is not None:
        copy = copy.assign(OT=value)
    return pd.concat([frame.iloc[: line - 1], copy, frame.iloc[line - 1 :]], ignore_index=True)


def shift_to_90_minutes(rows: pd.DataFrame) -> pd.DataFrame:
    """400 hourly rows, then the rest every 90 minutes: every other one is off the hourly grid
    (lines 402, 404, ...)."""
    start = pd.Timestamp(rows["date"].iloc[399]) + pd.Timedelta(minutes=90)
    later = pd.date_range(start, periods=len(rows) - 400, freq="90min")
    return rows.assign(date=[*rows["date"].iloc[:400], *later.strftime("%Y-%m-%d %H:%M:%S")])


def one_error_line(result) -> str:
    """Checks what every user mistake shows through the CLI (exit 2, no traceback, nothing on
    stdout, one `Error:` line on stderr) and returns that line."""
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]
