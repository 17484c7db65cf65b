"""Scheduled operation against a real Prefect server: `forecast serve` serves the deployments of a
prefect.yaml, runs triggered through the API publish and leave keyed artifacts, overlapping runs
are cancelled, a backlog of late scheduled runs publishes exactly once, and a headless Chromium
sees the leaderboard and the chart on the artifact pages."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.helpers.prefect_server import (
    prefect_server,
    start,
    stop,
    write_deploy_file,
    write_slice,
)

pytestmark = pytest.mark.slow

DEPLOYMENT = "forecast-pipeline/slice"
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}
# .ci/run sets it after installing chromium, so there a missing browser fails the test.
REQUIRE_BROWSER = "RECURRENT_REQUIRE_BROWSER"


def deploy_file(folder: Path, anchor: datetime) -> Path:
    config = {
        "output_dir": str(folder / "out"),
        "data": {"path": str(write_slice(folder))},
        "model": {
            "horizon": 6,
            "input_size": 24,
            "candidates": ["naive", "seasonal_naive", "linear"],
        },
        # the slice ends 2016-08-19 23:00; now is 2016-08-15 00:00 on the replay clock
        "replay": {"anchor": anchor.isoformat(), "start": "2016-08-15T00:00:00"},
    }
    return write_deploy_file(folder, {"slice": config, "backlog": config})


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium; without it the browser test is skipped (before a server starts),
    or fails when RECURRENT_REQUIRE_BROWSER=1."""
    found = shutil.which("chromium")
    if found is None:
        message = "This test needs Debian's chromium: apt-get install chromium (.ci/run does)."
        if os.environ.get(REQUIRE_BROWSER) == "1":
            pytest.fail(f"{message} {REQUIRE_BROWSER}=1 makes its absence a failure.")
        pytest.skip(f"{message} Set {REQUIRE_BROWSER}=1 to fail instead of skipping.")
    return found


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serving")
    home = folder / "prefect"
    home.mkdir()
    with prefect_server(home) as (api_url, env):
        anchor = datetime.now(UTC).replace(microsecond=0)
        spec = deploy_file(folder, anchor)
        serve = start(["serve", "--file", str(spec)], env, folder / "serve.log")
        try:
            with client_for(api_url) as client:
                wait_for(lambda: _deployment(client), 120, f"deployment ({folder / 'serve.log'})")
            yield api_url, env, folder
        finally:
            stop(serve)


def client_for(api_url: str):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    class Client:
        def __enter__(self):
            self.settings = temporary_settings({PREFECT_API_URL: api_url})
            self.settings.__enter__()
            self.client = get_client(sync_client=True)
            return self.client.__enter__()

        def __exit__(self, *exc):
            self.client.__exit__(*exc)
            self.settings.__exit__(*exc)

    return Client()


def _deployment(client):
    try:
        return client.read_deployment_by_name(DEPLOYMENT)
    except Exception:  # noqa: BLE001 - not registered yet
        return None


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def final(client, run_ids, timeout: float = 240):
    def done():
        runs = [client.read_flow_run(run_id) for run_id in run_ids]
        return runs if all(r.state_type.value in FINAL for r in runs) else None

    return wait_for(done, timeout, f"flow runs {run_ids} to finish")


def trigger(client, name: str = "slice", **options):
    deployment = client.read_deployment_by_name(f"forecast-pipeline/{name}")
    return client.create_flow_run_from_deployment(deployment.id, **options).id


def published_runs(folder: Path, name: str = "slice") -> set[str]:
    runs = folder / "out" / name / "runs"
    return {p.name for p in runs.iterdir()} if runs.is_dir() else set()


def artifacts_of(client, run_id):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    found = client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
    )
    return {artifact.key: artifact for artifact in found}


def test_a_run_triggered_through_the_api_publishes_and_leaves_keyed_artifacts(served) -> None:
    api_url, _, folder = served
    with client_for(api_url) as client:
        run_id = trigger(client)
        (run,) = final(client, [run_id])
        assert run.state_type.value == "COMPLETED", run.state.message
        found = artifacts_of(client, run_id)
    assert {"slice-leaderboard", "slice-report", "slice-forecast-chart"} <= set(found)
    rows = found["slice-leaderboard"].data
    rows = json.loads(rows) if isinstance(rows, str) else rows
    assert [row["model"] for row in rows] == ["naive", "seasonal_naive", "linear"]
    report = found["slice-report"].data
    assert "Champion" in report and "data:image/svg+xml;base64," in report
    assert str(folder / "out" / "slice" / "runs") in report
    progress = found["slice-training-progress"]
    assert progress.type == "progress" and float(progress.data) == 100.0
    # the replay clock, not the wall clock, set the as-of: 2016-08-15 plus minutes
    (published,) = published_runs(folder)
    assert published.startswith("20160815T00")


def test_an_overlapping_run_is_cancelled(served) -> None:
    api_url, _, _ = served
    with client_for(api_url) as client:
        runs = final(client, [trigger(client), trigger(client)])
    states = sorted(r.state_type.value for r in runs)
    assert states == ["CANCELLED", "COMPLETED"], [r.state.message for r in runs]


def test_a_backlog_of_late_scheduled_runs_publishes_once(served) -> None:
    from prefect.states import Scheduled

    api_url, _, folder = served
    now = datetime.now(UTC)
    with client_for(api_url) as client:
        ids = [
            trigger(
                client,
                "backlog",
                state=Scheduled(scheduled_time=now - timedelta(minutes=minutes)),
                tags=["auto-scheduled"],  # as Prefect's scheduler marks the runs it makes
            )
            for minutes in (90, 60, 30)
        ]
        runs = final(client, ids)
    assert all(r.state_type.value in {"COMPLETED", "CANCELLED"} for r in runs)
    assert len(published_runs(folder, "backlog")) == 1
    # a scheduled run older than what is published stands down: Completed, nothing published
    with client_for(api_url) as client:
        late = trigger(
            client,
            "backlog",
            state=Scheduled(scheduled_time=now - timedelta(minutes=120)),
            tags=["auto-scheduled"],
        )
        (run,) = final(client, [late])
        report = artifacts_of(client, late)["backlog-report"].data
    assert run.state_type.value == "COMPLETED"
    assert len(published_runs(folder, "backlog")) == 1
    assert "superseded" in report.lower() and "already published" in report


def test_the_artifact_pages_show_the_leaderboard_and_the_chart(chromium, served) -> None:
    api_url, _, _ = served
    with client_for(api_url) as client:
        run_id = trigger(client)
        final(client, [run_id])
        found = artifacts_of(client, run_id)
    ui = api_url.removesuffix("/api")
    board = dump_dom(chromium, f"{ui}/artifacts/artifact/{found['slice-leaderboard'].id}")
    for model in ("naive", "seasonal_naive", "linear"):
        assert f">{model}<" in board
    chart = dump_dom(chromium, f"{ui}/artifacts/artifact/{found['slice-forecast-chart'].id}")
    assert "<img" in chart and "data:image/svg+xml;base64," in chart


def dump_dom(chromium: str, url: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=15000",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout
