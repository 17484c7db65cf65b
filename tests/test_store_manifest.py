"""The manifest schema: what this version writes fits it, readers accept older and newer
manifests, writers and readers refuse ones that do not fit, and docs/manifest.schema.json is
generated from it."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest

from forecasting.errors import PublishError
from forecasting.store.manifest import (
    Manifest,
    ManifestError,
    check_manifest,
    json_schema,
    load_document,
    parse_manifest,
    unset_fields,
)
from forecasting.store.reader import read_latest, read_run
from forecasting.store.writer import publish_run
from tests.helpers.publish_child import latest_id, publish, run_files

PROJECT = Path(__file__).resolve().parent.parent
SAMPLE = Path(__file__).parent / "helpers" / "manifest_sample.json"  # a real run's, trimmed


def sample() -> dict:
    return json.loads(SAMPLE.read_text())


def test_the_committed_json_schema_is_generated_from_the_model() -> None:
    committed = (PROJECT / "docs" / "manifest.schema.json").read_text()
    assert committed == json_schema(), (
        "docs/manifest.schema.json is out of date with forecasting.store.manifest.Manifest; "
        "regenerate it: uv run python -m forecasting.store > docs/manifest.schema.json"
    )


def test_a_manifest_of_this_version_sets_every_field_of_the_schema() -> None:
    manifest = check_manifest(sample())
    assert unset_fields(manifest) == []
    assert manifest.model_extra == {} and manifest.data.model_extra == {}  # nothing undocumented


def test_a_failed_candidate_and_unscored_coverage_fit_the_schema() -> None:
    document = sample()
    document["candidates"].append(
        {
            "model": "lstm",
            "status": "failed",
            "metrics": {},
            "fold_metrics": [],
            "reason": "the loss became NaN",
            "seconds": 0.5,
            "epochs": 0,
            "best_epoch": 0,
            "fine_tuned_epochs": 0,
        }
    )
    document["published_accuracy"]["recent"] = [{"run_id": "r0", "coverage_95": math.nan}]
    document["champion"]["decision"]["incumbent"] = {"model": "gru", "run_id": "r0"}
    check_manifest(document)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("champion",), "gru"),
        (("data", "rows"), "many"),
        (("candidates",), {"gru": {}}),
        (("seeds", "seed"), [42]),
    ],
)
def test_a_field_of_the_wrong_type_is_refused(path: tuple[str, ...], value: object) -> None:
    document = sample()
    *parents, last = path
    target = document
    for key in parents:
        target = target[key]
    target[last] = value
    with pytest.raises(ManifestError, match=".".join(path)):
        parse_manifest(document)


def test_a_manifest_this_version_builds_must_be_complete() -> None:
    document = sample()
    del document["data"]["rows_out_of_order"], document["versions"]
    with pytest.raises(ManifestError, match="data.rows_out_of_order, versions"):
        check_manifest(document)


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"{", "not valid JSON"), (b"[1, 2]", "not a JSON object")],
)
def test_only_a_json_object_is_a_manifest(data: bytes, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        load_document(data)


def test_readers_accept_older_manifests_and_keys_of_newer_writers(tmp_path: Path) -> None:
    """Sections missing (runs of earlier versions) or unknown (later versions) do not stop a
    reader: the readers' contract only grows."""
    _, files, _ = run_files(0)
    older = {"schema_version": 1, "run_id": "old", "as_of": "2024-01-01T00:00:00"}
    publish_run(tmp_path, "demo", "old", files, older)
    newer = {**copy.deepcopy(sample()), "as_of": "2024-01-02T00:00:00", "lineage": {"x": 1}}
    newer["champion"]["confidence"] = "high"
    publish_run(tmp_path, "demo", "new", files, newer)
    run = read_latest(tmp_path, "demo")
    assert run.manifest["lineage"] == {"x": 1} and run.manifest["champion"]["confidence"] == "high"
    assert isinstance(run.parsed, Manifest) and run.parsed.champion.model == "linear"
    assert read_run(tmp_path / "demo" / "runs" / "old").manifest["schema_version"] == 1


def test_the_writer_refuses_a_manifest_that_does_not_fit_and_keeps_latest(tmp_path: Path) -> None:
    previous = publish(tmp_path, 0)
    _, files, _ = run_files(1)
    with pytest.raises(PublishError, match="does not fit the manifest schema.*champion"):
        publish_run(tmp_path, "demo", "bad", files, {"champion": "gru"})
    assert latest_id(tmp_path) == previous.name
    assert not (tmp_path / "demo" / "runs" / "bad").exists()


def test_the_reader_refuses_a_manifest_that_does_not_fit(tmp_path: Path) -> None:
    run_dir = publish(tmp_path, 0)
    document = json.loads((run_dir / "manifest.json").read_text())
    (run_dir / "manifest.json").write_text(json.dumps({**document, "data": {"rows": "many"}}))
    with pytest.raises(PublishError, match=r"does not fit the manifest schema.*data\.rows"):
        read_run(run_dir)
