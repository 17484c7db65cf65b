"""The code fingerprint covers every module of the library, subpackages included."""

from __future__ import annotations

import shutil
from pathlib import Path

from forecasting.outputs import _code_digest

LIBRARY = Path(__file__).resolve().parent.parent / "forecasting"


def _copy(tmp_path: Path) -> Path:
    copied = tmp_path / "forecasting"
    shutil.copytree(LIBRARY, copied, ignore=shutil.ignore_patterns("__pycache__"))
    return copied


def test_the_code_digest_depends_on_content_and_relative_paths_only(tmp_path: Path) -> None:
    assert _code_digest(_copy(tmp_path)) == _code_digest()


def test_a_change_in_a_subpackage_module_changes_the_code_digest(tmp_path: Path) -> None:
    copied = _copy(tmp_path)
    before = _code_digest(copied)
    module = copied / "store" / "writer.py"
    module.write_text(module.read_text() + "\n# a change\n")
    assert _code_digest(copied) != before


def test_a_new_module_in_a_subpackage_changes_the_code_digest(tmp_path: Path) -> None:
    copied = _copy(tmp_path)
    before = _code_digest(copied)
    (copied / "store" / "extra.py").write_text('"""New."""\n')
    assert _code_digest(copied) != before


def test_moving_a_module_to_another_package_changes_the_code_digest(tmp_path: Path) -> None:
    copied = _copy(tmp_path)
    before = _code_digest(copied)
    (copied / "store" / "layout.py").rename(copied / "layout.py")  # same bytes, new place
    assert _code_digest(copied) != before
