"""The run fingerprint: the code digest covers every module of the library, subpackages
included, and only installed packages that change results make a new run id."""

from __future__ import annotations

import shutil
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import pytest

from forecasting import outputs
from forecasting.config import PipelineConfig
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


INSTALLED = metadata.version


def fingerprint_with(monkeypatch: pytest.MonkeyPatch, package: str, version: str) -> str:
    monkeypatch.setattr(
        outputs.metadata, "version", lambda name: version if name == package else INSTALLED(name)
    )
    data = SimpleNamespace(sha256="0" * 64)  # the fingerprint reads only the data's hash
    return outputs.fingerprint(PipelineConfig(), data)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("package", "changes_results"),
    [("numpy", True), ("keras", True), ("scipy", True), ("prefect", False), ("pyarrow", False)],
)
def test_only_packages_that_change_results_change_the_fingerprint(
    monkeypatch: pytest.MonkeyPatch, package: str, changes_results: bool
) -> None:
    before = fingerprint_with(monkeypatch, package, "1.0.0")
    after = fingerprint_with(monkeypatch, package, "2.0.0")
    assert (before != after) is changes_results


def test_the_manifest_still_records_prefect_and_pyarrow() -> None:
    recorded = outputs._versions(outputs._RECORDED_PACKAGES)
    assert {"prefect", "pyarrow", "recurrent-forecast", "numpy", "keras"} <= set(recorded)
