"""The run fingerprint: which installed versions make a new run id."""

from __future__ import annotations

from importlib import metadata
from types import SimpleNamespace

import pytest

from forecasting import outputs
from forecasting.config import PipelineConfig

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
