"""The library stays free of Prefect, and importing it stays cheap."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

LIBRARY = Path(__file__).resolve().parent.parent / "forecasting"


MODULES = sorted(LIBRARY.rglob("*.py"))  # subpackages too (forecasting/store/, ...)


def test_modules_of_subpackages_are_checked() -> None:
    assert LIBRARY / "store" / "writer.py" in MODULES


@pytest.mark.parametrize("module", MODULES, ids=lambda path: path.relative_to(LIBRARY).as_posix())
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


def test_importing_the_library_and_listing_kinds_loads_neither_tensorflow_nor_prefect() -> None:
    code = (
        "import sys, forecasting, forecasting.validation, forecasting.store.writer; "
        "from forecasting.models import kinds, spec; kinds(); spec('gru'); "
        "print(sorted(m for m in ('tensorflow', 'keras', 'prefect') if m in sys.modules))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert output == "[]"


def _library_imports(module: Path, inside_functions: bool) -> set[str]:
    """Modules of `forecasting` that `module` imports at its top level (outside `if
    TYPE_CHECKING:`), or, with `inside_functions`, inside its functions."""
    tree = ast.parse(module.read_text())
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    if inside_functions:
        nodes = [node for function in functions for node in ast.walk(function)]
    else:
        nodes = [
            node
            for statement in tree.body
            if not (
                isinstance(statement, ast.If) and "TYPE_CHECKING" in ast.unparse(statement.test)
            )
            for node in ast.walk(statement)
            if not isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        ]
    names = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
    return {name for name in names if name.split(".")[0] == "forecasting"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(LIBRARY.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_library_modules_import_no_library_module_inside_a_function() -> None:
    """Imports inside functions would hide import cycles; heavy libraries may still be lazy."""
    offenders = {
        _module_name(module): sorted(found)
        for module in MODULES
        if (found := _library_imports(module, inside_functions=True))
    }
    assert offenders == {}


def test_library_modules_import_each_other_without_cycles() -> None:
    known = {_module_name(module) for module in MODULES}
    graph = {
        _module_name(module): {
            name for name in _library_imports(module, inside_functions=False) if name in known
        }
        - {_module_name(module)}
        for module in MODULES
        if module.name != "__init__.py"
    }
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        assert state.get(name) != "open", f"import cycle: {' -> '.join([*path, name])}"
        state[name] = "open"
        for child in sorted(graph.get(name, ())):
            visit(child, [*path, name])
        state[name] = "done"

    for name in sorted(graph):
        visit(name, [])


def test_the_store_depends_only_on_errors_and_itself() -> None:
    for module in sorted((LIBRARY / "store").rglob("*.py")):
        outside = {
            name
            for name in _library_imports(module, inside_functions=False)
            if not name.startswith(("forecasting.store", "forecasting.errors"))
        }
        assert outside == set(), f"{module.name} imports {sorted(outside)}"
