"""The built wheel on its own: it ships the ETTh1 sample byte for byte, and `forecast run`
installed from it (no checkout on the path) publishes to ./outputs of the working directory and
writes nothing into site-packages.

Everything runs offline. The fresh environment gets the locked dependencies from uv's cache,
which `uv sync --locked` filled (`uv sync --no-install-project` into another environment, so
exactly the pins of uv.lock, never the checkout); the wheel then goes in with `--no-deps`, and
`uv pip check` confirms the wheel's own requirements are met by them. (`uv pip install --offline
<wheel>` would have to resolve against index pages that `uv sync --locked` never downloads.)
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from forecasting.store.reader import read_latest
from tests.helpers.prefect_server import own_prefect_environment

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parent.parent
SAMPLE = "forecasting/sample/ETTh1.csv"


def uv_command() -> list[str]:
    """uv itself: `uv run` names it in $UV; else the one on PATH."""
    found = os.environ.get("UV") or shutil.which("uv")
    if found is None:
        pytest.fail("This test needs uv (https://docs.astral.sh/uv/); run it with `uv run pytest`.")
    return [found]


def run(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def files_under(folder: Path) -> set[Path]:
    """Every file below `folder` except bytecode caches (which the install compiled)."""
    return {
        path.relative_to(folder)
        for path in folder.rglob("*")
        if "__pycache__" not in path.parts and not path.is_dir()
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    run([*uv_command(), "build", "--wheel", "--offline", "--out-dir", str(out)], PROJECT, env)
    (built,) = out.glob("*.whl")
    return built


def test_the_wheel_ships_the_sample_byte_for_byte_and_only_the_packages(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        sample = archive.read(SAMPLE)
        tops = {name.split("/")[0] for name in archive.namelist()}
    expected = (PROJECT / "data" / "ETTh1.csv").read_bytes()
    assert hashlib.sha256(sample).hexdigest() == hashlib.sha256(expected).hexdigest()
    assert tops == {"forecasting", "flows", "recurrent_forecast-0.1.0.dist-info"}


def test_forecast_run_from_the_installed_wheel_publishes_to_the_working_directory(
    wheel: Path, tmp_path: Path
) -> None:
    uv = uv_command()
    venv, work = tmp_path / "venv", tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    locked = ["--locked", "--offline", "--no-dev", "--no-install-project"]
    sync = [*uv, "sync", *locked, "--project", str(PROJECT), "--python", sys.executable]
    run(sync, work, {**env, "UV_PROJECT_ENVIRONMENT": str(venv)})
    python = str(venv / "bin" / "python")
    install = ["pip", "install", "--offline", "--no-deps", "--python", python, str(wheel)]
    run([*uv, *install], work, env)
    run([*uv, "pip", "check", "--python", python], work, env)
    where = run([python, "-c", "import forecasting; print(forecasting.__file__)"], work, env)
    site_packages = Path(where.strip()).parent.parent
    assert site_packages.name == "site-packages" and site_packages.is_relative_to(venv)
    before = files_under(site_packages)

    child = {**own_prefect_environment(tmp_path / "prefect"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    child.pop("VIRTUAL_ENV", None)
    child.pop("PYTHONPATH", None)
    options = ["--candidates", "naive,linear", "--max-epochs", "1", "--n-folds", "1"]
    run([str(venv / "bin" / "forecast"), "run", *options], work, child)

    latest = work / "outputs" / "etth1" / "latest"
    assert latest.is_symlink()
    published = read_latest(work / "outputs", "etth1")  # every file's hash verified
    assert published.manifest["champion"]["model"] in {"naive", "linear"}
    assert Path(published.manifest["data"]["source"]).is_relative_to(site_packages)
    forecast = pd.read_csv(latest / "forecast.csv")
    assert len(forecast) == 24 and forecast["y_hat"].notna().all()
    assert files_under(site_packages) == before
    assert sorted(path.name for path in work.iterdir()) == ["outputs"]
