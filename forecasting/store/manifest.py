"""The run manifest (`manifest.json`) as a schema: what every run records, and the one place
that parses it.

The manifest seals a run: it lists every other file of the run with its sha256 and size, and
says what produced the run (data, settings, versions, candidates, the champion and why).
`outputs.build_manifest` writes every field; the writer adds `files` last. Readers accept
extra keys (a newer writer may add some) and missing sections (runs written by earlier
versions lack some), so the readers' contract only grows.

The documented JSON Schema, docs/manifest.schema.json, is generated from `Manifest`:

    uv run python -m forecasting.store > docs/manifest.schema.json
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from forecasting.store.layout import MANIFEST

__all__ = [
    "Manifest",
    "ManifestError",
    "check_manifest",
    "json_schema",
    "load_document",
    "parse_manifest",
    "unset_fields",
]


class ManifestError(ValueError):
    """A manifest is not valid JSON, not an object, or does not fit `Manifest`.

    Attributes:
        in_files: Whether the problem is in the `files` listing.
    """

    def __init__(self, message: str, in_files: bool = False) -> None:
        super().__init__(message)
        self.in_files = in_files


class _Section(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class FileEntry(BaseModel):
    """One file of the run, as it must read back."""

    model_config = ConfigDict(extra="allow", frozen=True)

    sha256: StrictStr = Field(description="Hex sha256 of the file's bytes.")
    bytes: StrictInt = Field(ge=0, description="Size of the file in bytes.")


class DataSummary(_Section):
    """The data the run was trained on, after validation."""

    source: str | None = Field(None, description="The file the data came from.")
    sha256: str | None = Field(None, description="Hex sha256 of that file's bytes.")
    first_ds: str | None = Field(None, description="First timestamp (ISO-8601).")
    last_ds: str | None = Field(None, description="Last timestamp kept (ISO-8601).")
    rows: int | None = Field(None, description="Rows after validation, all series.")
    series: int | None = Field(None, description="Number of series.")
    freq: str | None = Field(None, description="pandas frequency, e.g. 'h'.")
    filled_values: int | None = Field(None, description="Values filled by interpolation.")
    filled_by_series: dict[str, int] | None = Field(
        None, description="Filled values per series, only series with any."
    )
    duplicates_dropped: int | None = Field(None, description="Exact duplicate rows removed.")
    rows_after_as_of: int | None = Field(
        None, description="Rows left out because they are after the as-of."
    )
    rows_out_of_order: int | None = Field(
        None, description="Rows earlier than the previous row of the same series (sorted)."
    )


class Seeds(_Section):
    """The seeds behind every random choice."""

    seed: int | None = Field(None, description="The run's seed.")
    per_candidate: dict[str, int] | None = Field(None, description="Seed per candidate kind.")


class Champion(_Section):
    """The published model and why it won."""

    model: str | None = Field(None, description="Kind of the champion, e.g. 'gru'.")
    reason: str | None = Field(None, description="Sentences a person can read.")
    margins_percent: dict[str, float | None] | None = Field(
        None, description="Percent by which the champion beats each reference kind."
    )
    decision: dict[str, Any] | None = Field(
        None,
        description="The champion-challenger decision: `action` (first_run, kept, promoted, "
        "incumbent_unavailable, incumbent_not_trained), the incumbent and the scores.",
    )


class BacktestSummary(_Section):
    """How candidates were backtested."""

    n_folds: int | None = Field(None, description="Rolling-origin folds.")
    fold_size: int | None = Field(None, description="Test steps per fold.")
    warm_start: bool | None = Field(None, description="Whether folds continue training.")
    interval_levels: list[int] | None = Field(None, description="Interval levels, percent.")
    adapted: str | None = Field(
        None,
        description="Why `n_folds` and `fold_size` are fewer or smaller than configured (left "
        "empty, they shrink when the series are too short for the defaults); null when not.",
    )
    typical_length: int | None = Field(
        None,
        description="The series length the folds were fitted to: that of the series at the "
        "shortest tenth (the shortest, for fewer than 11 series).",
    )


class ShortSeries(_Section):
    """A series too short for the backtest: forecast by a baseline, outside the tournament."""

    unique_id: str | None = Field(None, description="The series.")
    length: int | None = Field(None, description="Its steps after validation.")
    needed: int | None = Field(None, description="Steps the backtest's windows need.")
    model: str | None = Field(
        None, description="The baseline that forecast it: 'seasonal_naive' or 'naive'."
    )


class PublishedAccuracy(_Section):
    """Earlier published forecasts scored against the actuals that came later."""

    newly_scored: list[str] | None = Field(None, description="Run ids scored by this run.")
    recent: list[dict[str, Any]] | None = Field(
        None,
        description="The last scored runs: run_id, model, as_of, mae, mase, coverage_80, "
        "coverage_95, n_points.",
    )
    warning: str | None = Field(None, description="An accuracy-drop warning, or null.")


class CandidateSummary(_Section):
    """One candidate's backtest."""

    model: str | None = Field(None, description="Kind, e.g. 'lstm'.")
    status: str | None = Field(None, description="'ok' or 'failed'.")
    metrics: dict[str, float | None] | None = Field(
        None, description="Mean over folds of each metric, original units."
    )
    fold_metrics: list[dict[str, float | None]] | None = Field(
        None, description="Each fold's metrics, oldest fold first."
    )
    reason: str | None = Field(None, description="Why it failed, or how training ended.")
    seconds: float | None = Field(None, description="Wall time of the backtest.")
    epochs: int | None = Field(None, description="Epochs trained, all folds.")
    best_epoch: int | None = Field(None, description="Epoch whose weights the last fold kept.")
    fine_tuned_epochs: int | None = Field(
        None, description="Epochs the champion was fine-tuned on all data (0 otherwise)."
    )


class CandidatePlacement(_Section):
    """Where one candidate trained."""

    model: str | None = Field(None, description="Kind, e.g. 'gru'.")
    host: str | None = Field(
        None, description="Host name of the machine; null when its worker died."
    )
    pid: int | None = Field(None, description="Process id that trained it; null likewise.")
    threads: int | None = Field(
        None,
        description="TensorFlow thread limit in that process; null: TensorFlow's default (one "
        "thread per core).",
    )


class Execution(_Section):
    """How the candidates were trained: one after another, or side by side in workers."""

    task_runner: str | None = Field(
        None, description="'sequential', 'processes' or 'dask' (`execution.task_runner`)."
    )
    workers: int | None = Field(None, description="Worker processes (1 for sequential).")
    threads: int | None = Field(
        None,
        description="CPU threads the run was allowed on its machine (`execution.threads`); "
        "null: the machine's cores.",
    )
    threads_per_worker: int | None = Field(
        None,
        description="TensorFlow threads each worker was given: its share of `threads`, or of "
        "the run machine's cores; null for sequential (TensorFlow's default). A remote Dask "
        "worker computes its share of its own machine: see `candidates`.",
    )
    dask_address: str | None = Field(
        None, description="The Dask scheduler used; null for a local cluster or other runners."
    )
    candidates: list[CandidatePlacement] | None = Field(
        None, description="Where each candidate trained, in the order of `candidates`."
    )


class Manifest(_Section):
    """manifest.json of a sealed run. Every field is optional to readers (runs written by
    earlier versions lack some; a `files` listing is checked by the reader), and extra keys
    are allowed; runs written by this version hold every field."""

    model_config = ConfigDict(
        extra="allow",
        frozen=True,
        title="Recurrent run manifest",
        json_schema_extra={
            "$comment": "Generated from forecasting.store.manifest.Manifest; regenerate with "
            "`uv run python -m forecasting.store > docs/manifest.schema.json`."
        },
    )

    schema_version: int | None = Field(None, description="Version of this layout (3).")
    run_id: str | None = Field(None, description="`<as-of>-<fingerprint>`, the folder's name.")
    created_at: str | None = Field(None, description="When the run was built (ISO-8601, UTC).")
    as_of: str | None = Field(
        None, description="The run knows nothing later (ISO-8601); `latest` follows it."
    )
    data: DataSummary | None = None
    config: dict[str, Any] | None = Field(
        None, description="The full pipeline configuration (`PipelineConfig`) as JSON."
    )
    season_length: int | None = Field(None, description="Season length in steps.")
    seeds: Seeds | None = None
    versions: dict[str, str] | None = Field(
        None, description="Python and package versions that produced the run."
    )
    champion: Champion | None = None
    backtest: BacktestSummary | None = None
    published_accuracy: PublishedAccuracy | None = None
    candidates: list[CandidateSummary] | None = Field(None, description="Every candidate.")
    short_series: list[ShortSeries] | None = Field(
        None,
        description="Series too short for the backtest (empty when none): each is forecast by "
        "the best baseline that fits it and left out of the tournament; `forecast.csv` names "
        "that baseline in its `model` column.",
    )
    execution: Execution | None = None
    files: dict[str, FileEntry] | None = Field(
        None,
        description="Every other file of the run (not manifest.json itself): name -> sha256 "
        "and size. Names are plain file names.",
    )

    def listing(self) -> dict[str, FileEntry]:
        """The `files` listing, checked: present, with plain file names other than the
        manifest's own.

        Raises:
            ManifestError: There is no listing or a name is not a plain file name.
        """
        files = self.files
        if files is None or not all(_plain_name(name) for name in files):
            raise ManifestError("no valid `files` listing", in_files=True)
        return files


def _plain_name(filename: str) -> bool:
    return filename not in ("", ".", "..", MANIFEST) and "/" not in filename


def load_document(data: bytes) -> dict[str, Any]:
    """The JSON object in `data`, unchecked against the schema (for a quick look).

    Raises:
        ManifestError: `data` is not JSON, or not a JSON object.
    """
    try:
        document = json.loads(data)
    except ValueError as error:
        raise ManifestError(f"it is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise ManifestError("it is not a JSON object")
    return document


def parse_manifest(document: dict[str, Any]) -> Manifest:
    """Checks a manifest document against `Manifest`.

    Raises:
        ManifestError: A field has the wrong type; `in_files` says whether it is in `files`.
    """
    try:
        return Manifest.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        in_files = all(problem["loc"][:1] == ("files",) for problem in error.errors())
        raise ManifestError(
            f"{where}: {first['msg']} ({error.error_count()} problem(s))", in_files=in_files
        ) from None


def check_manifest(document: dict[str, Any]) -> Manifest:
    """Checks a manifest built by this version: it fits `Manifest` and sets every field but
    `files` (which the writer adds).

    Raises:
        ManifestError: A field is missing or has the wrong type.
    """
    manifest = parse_manifest(document)
    missing = [field for field in unset_fields(manifest) if field != "files"]
    if missing:
        raise ManifestError(f"fields missing: {', '.join(missing)}")
    return manifest


def unset_fields(model: BaseModel, prefix: str = "") -> list[str]:
    """Dotted names of the schema's fields that `model` (and its sections) leave unset."""
    missing = []
    for name in type(model).model_fields:
        if name not in model.model_fields_set:
            missing.append(prefix + name)
            continue
        value = getattr(model, name)
        if isinstance(value, _Section):
            missing += unset_fields(value, f"{prefix}{name}.")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, _Section):
                    missing += unset_fields(item, f"{prefix}{name}[{index}].")
    return missing


def json_schema() -> str:
    """The JSON Schema of `Manifest`, as committed in docs/manifest.schema.json."""
    return json.dumps(Manifest.model_json_schema(), indent=2) + "\n"
