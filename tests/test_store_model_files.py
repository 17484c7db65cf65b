"""Safe model loading: only verified `.keras` files of this pipeline's runs, through safe_mode.

The malicious files are real: a Lambda layer whose Python bytecode writes a marker file, and
saved models whose `config.json` is edited into the gadgets used against Keras loaders (a
"layer" that is `os.system` or `subprocess.Popen` called through its inbound node, as in
CVE-2025-1550; `keras.config.enable_unsafe_deserialization` placed before a Lambda so the Lambda
would run). Each is published with a manifest whose sha256 matches, so the refusal has to come
from `safe_mode`, and each test checks that the marker was never written.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from forecasting.errors import ModelLoadError
from forecasting.store.model_files import load_latest_model, load_published_model
from forecasting.store.writer import publish_run

MODEL = "model.keras"


def tiny_model(lambda_source: str | None = None):
    """A GRU(2) forecaster of 3 steps from 8; with `lambda_source`, a Lambda layer first."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 1), name="window")
    hidden = inputs
    if lambda_source is not None:
        hidden = keras.layers.Lambda(eval(lambda_source), name="payload")(hidden)
    hidden = keras.layers.GRU(2, name="gru_0")(hidden)
    outputs = keras.layers.Dense(3, name="forecast")(hidden)
    return keras.Model(inputs, outputs, name="gru")


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict:
    """Builds the tiny models once: a good one, and a Lambda one whose code writes a marker."""
    folder = tmp_path_factory.mktemp("models")
    marker = folder / "code-ran.txt"
    good = tiny_model()
    good.save(folder / "good.keras")
    # The lambda runs whenever the layer is called: at build time here, and during loading if
    # Keras ever deserialized it. Its path is a literal in the bytecode, not a closure.
    source = f"lambda x: (__import__('pathlib').Path({str(marker)!r}).write_text('ran'), x)[1]"
    tiny_model(source).save(folder / "lambda.keras")
    marker.unlink()
    return {
        "model": good,
        "good": (folder / "good.keras").read_bytes(),
        "lambda": (folder / "lambda.keras").read_bytes(),
        "marker": marker,
    }


@pytest.fixture
def marker(saved) -> Iterator[Path]:
    saved["marker"].unlink(missing_ok=True)
    yield saved["marker"]
    saved["marker"].unlink(missing_ok=True)


@pytest.fixture
def keras_never_called(monkeypatch) -> None:
    """Fails the test if the loader reaches `keras.models.load_model`."""
    import keras

    def refuse(*args, **kwargs):
        # pytest.fail raises a BaseException, which the loader's `except Exception` lets through.
        pytest.fail("keras.models.load_model was called before the file was refused")

    monkeypatch.setattr(keras.models, "load_model", refuse)


def publish(root: Path, run_id: str, files: dict[str, bytes]) -> Path:
    """Publishes a sealed run of `files` under `root/demo`; the manifest hashes every file."""
    return publish_run(root, "demo", run_id, files, {"schema_version": 1})


def runs_root(root: Path) -> Path:
    return root / "demo" / "runs"


def edit_config(data: bytes, edit: Callable[[dict], None]) -> bytes:
    """Rewrites `config.json` inside a `.keras` zip, keeping every other member as it is."""
    source, target = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with source, zipfile.ZipFile(target, "w") as archive:
        for item in source.infolist():
            member = source.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(member)
                edit(config)
                member = json.dumps(config).encode()
            archive.writestr(item, member)
    return target.getvalue()


def insert_function_layer(module: str, function: str, args: list) -> Callable[[dict], None]:
    """A functional-model "layer" that is a plain function, called with `args` by its node."""

    def edit(config: dict) -> None:
        gadget = {
            "module": module,
            "class_name": "function",
            "config": function,
            "registered_name": "function",
            "name": "gadget",
            "inbound_nodes": [{"args": args, "kwargs": {}}],
        }
        config["config"]["layers"].insert(1, gadget)

    return edit


def malicious(saved: dict, case: str) -> bytes:
    marker = str(saved["marker"])
    if case == "lambda_layer":
        return saved["lambda"]
    if case == "os_system":
        edit = insert_function_layer("os", "system", [f"touch {marker}"])
        return edit_config(saved["good"], edit)
    if case == "subprocess_popen":
        edit = insert_function_layer("subprocess", "Popen", [["touch", marker]])
        return edit_config(saved["good"], edit)
    if case == "builtins_exec":
        edit = insert_function_layer("builtins", "exec", [f"open({marker!r}, 'w')"])
        return edit_config(saved["good"], edit)
    if case == "enable_unsafe_then_lambda":
        # If the gadget ran, safe mode would be off for the Lambda layer that follows it.
        edit = insert_function_layer("keras.config", "enable_unsafe_deserialization", [])
        return edit_config(saved["lambda"], edit)
    raise ValueError(case)


MALICIOUS = [
    "lambda_layer",
    "os_system",
    "subprocess_popen",
    "builtins_exec",
    "enable_unsafe_then_lambda",
]


def test_a_published_model_loads_and_predicts_identically(tmp_path, saved) -> None:
    run_dir = publish(tmp_path, "run-1", {MODEL: saved["good"]})
    loaded = load_published_model(run_dir / MODEL, runs_root(tmp_path))
    inputs = np.random.default_rng(0).normal(size=(5, 8, 1)).astype("float32")
    np.testing.assert_array_equal(
        saved["model"].predict(inputs, verbose=0), loaded.predict(inputs, verbose=0)
    )


def test_the_latest_model_loads_through_the_latest_link(tmp_path, saved) -> None:
    publish(tmp_path, "run-1", {MODEL: saved["good"]})
    loaded = load_latest_model(tmp_path, "demo")
    assert [layer.name for layer in loaded.layers] == ["window", "gru_0", "forecast"]


def test_the_lambda_payload_runs_when_safe_mode_is_off(tmp_path, saved, marker) -> None:
    """The control: the payload is live, so a missing marker below means it was refused."""
    import keras

    path = tmp_path / MODEL
    path.write_bytes(saved["lambda"])
    keras.models.load_model(path, safe_mode=False, compile=False)
    assert marker.read_text() == "ran"


@pytest.mark.parametrize("case", MALICIOUS)
def test_safe_mode_refuses_a_model_holding_code(tmp_path, saved, marker, case) -> None:
    data = malicious(saved, case)
    run_dir = publish(tmp_path, "run-1", {MODEL: data})
    listed = json.loads((run_dir / "manifest.json").read_text())["files"][MODEL]
    assert listed["sha256"] == hashlib.sha256(data).hexdigest()  # the hash check passes
    with pytest.raises(ModelLoadError, match="Keras refused to load") as refused:
        load_published_model(run_dir / MODEL, runs_root(tmp_path))
    assert isinstance(refused.value.__cause__, ValueError | TypeError)  # raised inside Keras
    assert not marker.exists()


def test_a_process_wide_unsafe_switch_does_not_override_safe_mode(tmp_path, saved, marker) -> None:
    # Keras prefers this scope (what enable_unsafe_deserialization sets) over safe_mode=True;
    # the scope form restores the process's setting when the test ends.
    from keras.src.saving.serialization_lib import SafeModeScope

    run_dir = publish(tmp_path, "run-1", {MODEL: saved["lambda"]})
    with SafeModeScope(False), pytest.raises(ModelLoadError, match="whole process"):
        load_published_model(run_dir / MODEL, runs_root(tmp_path))
    assert not marker.exists()


def flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("damage", "message"),
    [(flip_one_byte, "does not match the sha256"), (truncate, "not the size its manifest")],
    ids=["flipped_byte", "truncated"],
)
def test_a_changed_file_is_refused_before_keras_reads_it(
    tmp_path, saved, keras_never_called, damage, message
) -> None:
    run_dir = publish(tmp_path, "run-1", {MODEL: saved["good"]})
    damage(run_dir / MODEL)
    with pytest.raises(ModelLoadError, match=message):
        load_published_model(run_dir / MODEL, runs_root(tmp_path))


def test_a_truncated_file_sealed_with_its_own_hash_is_refused_by_keras(tmp_path, saved) -> None:
    data = saved["good"][: len(saved["good"]) // 2]
    run_dir = publish(tmp_path, "run-1", {MODEL: data})
    with pytest.raises(ModelLoadError, match="not a valid Keras 3 model"):
        load_published_model(run_dir / MODEL, runs_root(tmp_path))


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path, saved, keras_never_called):
    run_dir = publish(tmp_path, "run-1", {MODEL: saved["good"]})
    with pytest.raises(ModelLoadError, match="larger than the 1000 bytes allowed"):
        load_published_model(run_dir / MODEL, runs_root(tmp_path), max_bytes=1000)


def test_a_file_the_manifest_does_not_list_is_refused(tmp_path, saved, keras_never_called):
    run_dir = publish(tmp_path, "run-1", {"forecast.csv": b"unique_id,ds,y_hat\n"})
    (run_dir / MODEL).write_bytes(saved["good"])
    with pytest.raises(ModelLoadError, match="does not list 'model.keras'"):
        load_published_model(run_dir / MODEL, runs_root(tmp_path))


def test_a_run_without_a_manifest_is_refused(tmp_path, saved, keras_never_called) -> None:
    run_dir = runs_root(tmp_path) / "unsealed"
    run_dir.mkdir(parents=True)
    (run_dir / MODEL).write_bytes(saved["good"])
    with pytest.raises(ModelLoadError, match="no readable manifest"):
        load_published_model(run_dir / MODEL, runs_root(tmp_path))


@pytest.mark.parametrize(
    "model_path",
    [
        "hf://attacker/forecaster",
        "https://example.com/model.keras",
        "file:///tmp/model.keras",
        "s3://bucket/runs/run-1/model.keras",
    ],
)
def test_urls_and_hub_paths_are_refused(tmp_path, keras_never_called, model_path) -> None:
    with pytest.raises(ModelLoadError, match="not from URLs or hubs"):
        load_published_model(model_path, runs_root(tmp_path))


@pytest.mark.parametrize("filename", ["model.h5", "model.hdf5", "model.keras.h5", "model"])
def test_files_other_than_keras_are_refused(tmp_path, saved, keras_never_called, filename):
    run_dir = publish(tmp_path, "run-1", {filename: saved["good"]})
    with pytest.raises(ModelLoadError, match=r"Only Keras 3 `\.keras` files"):
        load_published_model(run_dir / filename, runs_root(tmp_path))


@pytest.fixture
def elsewhere(tmp_path, saved) -> Path:
    """A sealed run of the good model in another pipeline's folder, outside the runs root."""
    return publish(tmp_path / "elsewhere", "run-x", {MODEL: saved["good"]})


def test_a_model_file_symlinked_out_of_the_runs_root_is_refused(
    tmp_path, saved, elsewhere, keras_never_called
) -> None:
    run_dir = publish(tmp_path, "run-1", {MODEL: saved["good"]})
    (run_dir / MODEL).unlink()
    (run_dir / MODEL).symlink_to(elsewhere / MODEL)  # same bytes: only the location is wrong
    with pytest.raises(ModelLoadError, match="resolves elsewhere"):
        load_published_model(run_dir / MODEL, runs_root(tmp_path))


def test_a_run_folder_symlinked_out_of_the_runs_root_is_refused(
    tmp_path, saved, elsewhere, keras_never_called
) -> None:
    publish(tmp_path, "run-1", {MODEL: saved["good"]})
    (runs_root(tmp_path) / "run-2").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(ModelLoadError, match="resolves elsewhere"):
        load_published_model(runs_root(tmp_path) / "run-2" / MODEL, runs_root(tmp_path))


def test_a_dotdot_path_out_of_the_runs_root_is_refused(
    tmp_path, saved, elsewhere, keras_never_called
) -> None:
    publish(tmp_path, "run-1", {MODEL: saved["good"]})
    escape = runs_root(tmp_path) / "run-1" / ".." / ".." / ".." / "elsewhere" / "demo"
    with pytest.raises(ModelLoadError, match="resolves elsewhere"):
        load_published_model(escape / "runs" / "run-x" / MODEL, runs_root(tmp_path))


def test_a_latest_link_leading_out_of_the_runs_root_is_refused(
    tmp_path, saved, elsewhere, keras_never_called
) -> None:
    publish(tmp_path, "run-1", {MODEL: saved["good"]})
    latest = tmp_path / "demo" / "latest"
    latest.unlink()
    latest.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(ModelLoadError, match="resolves elsewhere"):
        load_latest_model(tmp_path, "demo")


def test_loading_the_latest_model_before_any_run_explains_what_to_do(tmp_path) -> None:
    with pytest.raises(ModelLoadError, match="Run `forecast run` first"):
        load_latest_model(tmp_path, "nothing")
