"""Clients of a running Prefect server: `prefect` commands, and process workers of a work pool
started and stopped by PID; shared by tests/test_fleet.py and benchmarks/scale.py."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from tests.helpers.prefect_server import PREFECT, PROJECT, own_prefect_environment, stop


def client_environment(home: Path, api_url: str) -> dict[str, str]:
    """A client of the server at `api_url` with a Prefect home of its own."""
    return {
        **own_prefect_environment(home),
        "PREFECT_API_URL": api_url,
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


def prefect(arguments: list[str], env: dict[str, str]) -> None:
    """Runs a `prefect` command from the project root.

    Raises:
        RuntimeError: It failed; with its output.
    """
    done = subprocess.run(
        [PREFECT, *arguments], env=env, cwd=PROJECT, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"prefect {' '.join(arguments)} failed:\n{done.stdout}{done.stderr}")


@contextmanager
def process_workers(
    pool: str, api_url: str, folder: Path, count: int, query_seconds: float | None = None
) -> Iterator[list[subprocess.Popen]]:
    """Starts `count` `prefect worker start --pool POOL --limit 1` processes from the project
    root, each with a Prefect home and a log (`worker-<i>.log`) in `folder`, and stops them
    and their flow runs by PID at the end. `query_seconds`: how often they look for work
    (Prefect's default, 10 s, when None)."""
    workers = []
    try:
        for index in range(count):
            env = client_environment(folder / f"worker-{index}", api_url)
            if query_seconds is not None:
                env["PREFECT_WORKER_QUERY_SECONDS"] = str(query_seconds)
            log = open(folder / f"worker-{index}.log", "w")  # noqa: SIM115 - the worker owns it
            workers.append(
                subprocess.Popen(
                    [PREFECT, "worker", "start", "--pool", pool, "--limit", "1"],
                    cwd=PROJECT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            log.close()  # the worker holds its own copy
        yield workers
    finally:
        for worker in workers:
            # A flow run's process has a session of its own, out of reach of the worker's
            # process group, and outlives a worker stopped mid-run: stop it by PID too.
            runs = []
            with contextlib.suppress(psutil.Error):
                runs = psutil.Process(worker.pid).children(recursive=True)
            stop(worker)
            for run in runs:
                with contextlib.suppress(psutil.Error):
                    run.kill()
