"""Crash hygiene on a real server: a served run whose process is killed stops sending heartbeats,
and the automation `forecast automations` installs marks it Crashed, freeing its slot."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from tests.helpers.prefect_server import (
    CLI,
    PROJECT,
    prefect_server,
    start,
    stop,
    write_deploy_file,
    write_slice,
)
from tests.test_serving import client_for, wait_for

pytestmark = pytest.mark.slow


def slow_deploy_file(folder):
    config = {
        "output_dir": str(folder / "out"),
        "data": {"path": str(write_slice(folder))},
        "as_of": "2016-08-19T23:00:00",
        # trains for hours unless something stops it
        "model": {
            "horizon": 6,
            "input_size": 24,
            "units": 4,
            "candidates": ["gru"],
            "max_epochs": 10000,
            "patience": 1000,
        },
    }
    return write_deploy_file(folder, {"slow": config})


def test_a_killed_run_is_marked_crashed_by_the_heartbeat_automation(tmp_path) -> None:
    home = tmp_path / "prefect"
    home.mkdir()
    with prefect_server(home) as (api_url, env):
        installed = subprocess.run(
            [*CLI, "automations", "--within", "45"],
            cwd=PROJECT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert installed.returncode == 0, installed.stderr[-2000:]
        assert "Created automation recurrent-crashed-heartbeat" in installed.stdout
        serve = start(["serve", "--file", str(slow_deploy_file(tmp_path))], env, tmp_path / "s.log")
        try:
            with client_for(api_url) as client:
                deployment = wait_for(
                    lambda: _deployment(client), 120, f"the deployment ({tmp_path / 's.log'})"
                )
                run_id = client.create_flow_run_from_deployment(deployment.id).id
                wait_for(
                    lambda: client.read_flow_run(run_id).state_type.value == "RUNNING",
                    120,
                    "the run to start",
                )
                time.sleep(40)  # past one heartbeat period (forecast serve sets 30 s)
                stop(serve, signal.SIGKILL)  # the run's process dies with it: no final state
                assert client.read_flow_run(run_id).state_type.value == "RUNNING"
                crashed = wait_for(
                    lambda: client.read_flow_run(run_id).state_type.value == "CRASHED",
                    180,
                    "the automation to mark the run Crashed",
                )
                assert crashed
                assert "No heartbeat for 45 s" in client.read_flow_run(run_id).state.message
        finally:
            stop(serve)


def _deployment(client):
    try:
        return client.read_deployment_by_name("forecast-pipeline/slow")
    except Exception:  # noqa: BLE001 - not registered yet
        return None
