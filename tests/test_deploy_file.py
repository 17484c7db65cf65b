"""deploy/prefect.yaml is the one description of the deployments `forecast serve` serves."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flows import serving
from flows.serving import read_deployments, to_deployments
from forecasting.config import DEFAULT_DATA, build_config
from forecasting.errors import ConfigError

PROJECT = Path(__file__).resolve().parent.parent
DEPLOY_FILE = PROJECT / serving.DEPLOY_FILE  # `forecast serve` reads it relative to the cwd


def test_the_shipped_deployments_are_scheduled_limited_and_valid() -> None:
    deployments = {d.name: d for d in to_deployments(read_deployments(DEPLOY_FILE))}
    assert set(deployments) == {"etth1-hourly", "etth1-daily", "fleet-group", "fleet"}
    group, fleet = deployments.pop("fleet-group"), deployments.pop("fleet")
    assert (group.flow_name, fleet.flow_name) == ("forecast-pipeline", "forecast-fleet")
    assert not group.schedules and group.concurrency_limit is None  # every worker takes a group
    assert fleet.parameters["deployment"] == f"forecast-pipeline/{group.name}"
    assert build_config(fleet.parameters["config"]).data.id_column  # --groups N hashes ids
    hourly, daily = deployments["etth1-hourly"], deployments["etth1-daily"]
    assert hourly.schedules[0].schedule.cron == "0 * * * *"
    assert daily.schedules[0].schedule.cron == "0 6 * * *"
    assert daily.schedules[0].schedule.timezone == "Europe/Berlin"
    for deployment in deployments.values():
        assert deployment.concurrency_limit == 1
        assert deployment.concurrency_options.collision_strategy.value == "CANCEL_NEW"
        assert "recurrent" in deployment.tags and deployment.description
        config = build_config(deployment.parameters["config"])
        assert config.name == deployment.name and config.replay is not None
        # Relative outputs land in the working directory of the run: where `forecast serve`
        # runs, or where `prefect deploy` ran (its set_working_directory pull step) for a worker.
        assert config.data.path == DEFAULT_DATA and config.output_dir == Path("outputs")
    raw = yaml.safe_load(DEPLOY_FILE.read_text())
    assert all(d["work_pool"]["name"] == "recurrent-process" for d in raw["deployments"])


def test_a_bad_parameter_is_one_line_naming_the_deployment(tmp_path) -> None:
    entries = read_deployments(DEPLOY_FILE)
    entries[0]["parameters"]["config"]["model"] = {"horizon": 0}
    with pytest.raises(ConfigError, match="deployment 'etth1-hourly'.*model.horizon"):
        to_deployments(entries)
    with pytest.raises(ConfigError, match="No deployment named \\['nope'\\]"):
        to_deployments(read_deployments(DEPLOY_FILE), only=["nope"])
    empty = tmp_path / "prefect.yaml"
    empty.write_text("deployments: []\n")
    with pytest.raises(ConfigError, match="lists no deployments"):
        read_deployments(empty)


def test_a_missing_file_names_the_working_directory(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="does not exist in the working directory .*--file"):
        read_deployments(serving.DEPLOY_FILE)
