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
