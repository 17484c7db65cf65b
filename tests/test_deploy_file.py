"""deploy/prefect.yaml is the one description of the deployments `forecast serve` serves."""

from __future__ import annotations

import pytest
import yaml

from flows.serving import DEPLOY_FILE, read_deployments, to_deployments
from forecasting.config import build_config
from forecasting.errors import ConfigError


def test_the_shipped_deployments_are_scheduled_limited_and_valid() -> None:
    deployments = {d.name: d for d in to_deployments(read_deployments(DEPLOY_FILE))}
    assert set(deployments) == {"etth1-hourly", "etth1-daily"}
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
        assert config.data.path.is_absolute() and config.output_dir.is_absolute()
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
