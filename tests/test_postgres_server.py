"""A Prefect server on PostgreSQL (deploy/postgres.sh, Debian's PostgreSQL on 127.0.0.1 in a
temporary folder) takes concurrent `forecast run`s that SQLite would answer with "database is
locked", and records each run with its artifacts in PostgreSQL, with no SQLite file anywhere."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.postgres import postgres_database, postgres_missing
from tests.helpers.prefect_server import prefect_server, start, write_slice
from tests.test_serving import client_for

pytestmark = pytest.mark.slow

RUNS = 4


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """PostgreSQL started by deploy/postgres.sh; yields the Prefect database URL. Stopped by the
    script at the end, and its postmaster's PID checked gone."""
    missing = postgres_missing()
    if missing and os.environ.get("RECURRENT_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{missing}, and RECURRENT_REQUIRE_POSTGRES=1")
    if missing:
        pytest.skip(missing)
    with postgres_database() as (url, _):
        yield url


def test_concurrent_runs_against_a_postgres_backed_server(postgres: str, tmp_path: Path) -> None:
    assert postgres.startswith("postgresql+asyncpg://postgres@127.0.0.1:")
    home = tmp_path / "server"
    home.mkdir()
    data = write_slice(tmp_path)
    with prefect_server(home, timeout=180, database_url=postgres) as (api_url, env):
        runs = []
        for index in range(RUNS):
            run_home = tmp_path / f"home-{index}"
            run_home.mkdir()
            arguments = ["run", "--data", str(data), "--name", f"pg-{index}"]
            arguments += ["--output-dir", str(tmp_path / "out"), "--input-size", "48"]
            arguments += ["--horizon", "12", "--candidates", "naive,seasonal_naive"]
            log = tmp_path / f"run-{index}.log"
            runs.append((start(arguments, {**env, "PREFECT_HOME": str(run_home)}, log), log))
        for process, log in runs:
            assert process.wait(timeout=600) == 0, log.read_text()[-3000:]
        for _, log in runs:
            text = log.read_text()
            assert "database is locked" not in text
            assert "Traceback" not in text
        with client_for(api_url) as client:
            flow_runs = client.read_flow_runs()
            names = {run.parameters["config"]["name"] for run in flow_runs}
            assert names == {f"pg-{index}" for index in range(RUNS)}
            assert {run.state_type.value for run in flow_runs} == {"COMPLETED"}
            for run in flow_runs:
                keys = {artifact.key for artifact in _artifacts(client, run.id)}
                name = run.parameters["config"]["name"]
                assert {f"{name}-leaderboard", f"{name}-report"} <= keys
    assert _count_flow_runs(postgres) == RUNS  # the server's state is in PostgreSQL
    for index in range(RUNS):
        assert (tmp_path / "out" / f"pg-{index}" / "latest" / "forecast.csv").is_file()
    assert not list(tmp_path.rglob("*.db")), "a SQLite database was created"


def _artifacts(client, flow_run_id):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    flow_run_filter = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
    return client.read_artifacts(artifact_filter=flow_run_filter)


def _count_flow_runs(database_url: str) -> int:
    import asyncio

    import asyncpg

    async def count() -> int:
        connection = await asyncpg.connect(database_url.replace("+asyncpg", ""))
        try:
            return await connection.fetchval("SELECT count(*) FROM flow_run")
        finally:
            await connection.close()

    return asyncio.run(count())
