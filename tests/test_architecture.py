"""The library stays free of Prefect, and importing it stays cheap."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

LIBRARY = Path(__file__).resolve().parent.parent / "forecasting"


@pytest.mark.parametrize(
    "module", sorted(LIBRARY.rglob("*.py")), ids=lambda path: str(path.relative_to(LIBRARY))
)
def test_library_module_does_not_import_prefect(module: Path) -> None:
    tree = ast.parse(module.read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert "prefect" not in imported


def test_importing_the_library_loads_neither_tensorflow_nor_prefect() -> None:
    code = (
        "import sys, forecasting, forecasting.validation, forecasting.publishing; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'prefect') if m in sys.modules))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert output == "[]"
