"""A real `prefect server start` on a free loopback port, with its own PREFECT_HOME, and the
environment every process it serves must get (PREFECT_API_URL and friends)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flows.environment import TEMPORARY_SERVER_SETTINGS

PROJECT = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).parent / "prefect")
CLI = [sys.executable, "-c", "from flows.cli import app; app()"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def own_prefect_environment(home: Path) -> dict[str, str]:
    """This environment without any PREFECT_* setting it holds, and a Prefect home of its own:
    a child process sees no server, profile or database from the test's process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
    return env


def environment(home: Path, api_url: str, database_url: str | None = None) -> dict[str, str]:
    """The environment of a server on `home` at `api_url` and of the processes it serves; its
    database is `database_url` (SQLAlchemy URL), or SQLite in `home` when None."""
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    env.pop("PREFECT_SERVER_DATABASE_CONNECTION_URL", None)
    if database_url is not None:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database_url
    for name in TEMPORARY_SERVER_SETTINGS:  # a real server runs every service
        env.pop(name, None)
    return env


@contextmanager
def prefect_server(
    home: Path, timeout: float = 90, database_url: str | None = None
) -> Iterator[tuple[str, dict[str, str]]]:
    """Starts a server (on `database_url`, or SQLite in `home`) and yields (its API URL, the
    environment for processes that use it)."""
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = environment(home, api_url, database_url)
    log = open(home.parent / f"server-{port}.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"prefect server did not start: {log.name}")
            time.sleep(0.5)
        yield api_url, env
    finally:
        stop(server)
        log.close()


def start(arguments: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Starts a `forecast` command in its own process group, from the project root."""
    return subprocess.Popen(
        [*CLI, *arguments],
        cwd=PROJECT,
        env=env,
        stdout=open(log, "w"),  # noqa: SIM115 - the child owns it
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Stops a process and everything it started."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def write_slice(folder: Path) -> Path:
    """The first 1,200 hours of the bundled ETTh1, unchanged."""
    source = PROJECT / "data" / "ETTh1.csv"
    path = folder / "slice.csv"
    path.write_text("".join(source.read_text().splitlines(keepends=True)[:1201]))
    return path


def write_deploy_file(folder: Path, configs: dict[str, dict]) -> Path:
    """A prefect.yaml with one deployment of the flow per name, each limited to one run at a
    time with CANCEL_NEW, as deploy/prefect.yaml does."""
    import yaml

    spec = {
        "deployments": [
            {
                "name": name,
                "entrypoint": "flows/pipeline.py:forecast_pipeline",
                "description": f"{name}: a test deployment",
                "tags": ["test"],
                "parameters": {"config": {**config, "name": name}},
                "concurrency_limit": {"limit": 1, "collision_strategy": "CANCEL_NEW"},
            }
            for name, config in configs.items()
        ]
    }
    path = folder / "prefect.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path
