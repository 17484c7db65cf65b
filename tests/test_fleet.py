"""The fleet: a many-series file split into groups (by a column, or by a stable hash of each
series' id), each group forecast by a `forecast-pipeline` deployment run that process workers
pick up, published under `<output_dir>/<name>/groups/<group>/` and read back by `read_fleet`;
rerunning the parent run starts no second child run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from forecasting import fleet, read_latest
from forecasting.config import build_config
from forecasting.errors import ConfigError, DataValidationError, PublishError
from tests.helpers.prefect_server import CLI, PREFECT, PROJECT, prefect_server, stop
from tests.helpers.workers import client_environment, prefect, process_workers
from tests.test_postgres_server import postgres  # noqa: F401 - the fixture
from tests.test_serving import client_for, final, wait_for

SERIES = ["HUFL", "HULL", "MUFL", "MULL"]
POOL = "fleet-test"
PARENT_POOL = "fleet-parent"  # no worker: the test executes the parent runs itself
MODEL = {"horizon": 6, "input_size": 24, "candidates": ["naive", "seasonal_naive"]}


def write_many_series(folder: Path, hours: int = 720) -> Path:
    """The first `hours` hours of four ETTh1 load columns, each a series of a long file."""
    wide = pd.read_csv(PROJECT / "data" / "ETTh1.csv", nrows=hours, dtype=str)
    long = wide.melt(id_vars="date", value_vars=SERIES, var_name="unique_id", value_name="load")
    long["site"] = long["unique_id"].str[0].map({"H": "high", "M": "middle"})
    path = folder / "loads.csv"
    long.to_csv(path, index=False)
    return path


def fleet_config(folder: Path, **extra: object):
    values = {
        "name": "loads",
        "output_dir": str(folder / "out"),
        "data": {
            "path": str(write_many_series(folder)),
            "id_column": "unique_id",
            "target_column": "load",
        },
        "model": MODEL,
        **extra,
    }
    return build_config(values)


def test_hashing_places_every_series_in_one_group_and_keeps_its_rows(tmp_path) -> None:
    config = fleet_config(tmp_path)
    groups = fleet.split(config, groups=2)
    original = pd.read_csv(config.data.path, dtype=str)
    parts = [pd.read_csv(group.config.data.path, dtype=str) for group in groups]
    assert [group.name for group in groups] == ["0", "1"]  # four ids fall into both groups
    ids = [set(part["unique_id"]) for part in parts]
    assert not ids[0] & ids[1] and ids[0] | ids[1] == set(SERIES)
    assert [group.series for group in groups] == [len(part) for part in ids]
    rows = pd.concat(parts).sort_values(["unique_id", "date"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(
        rows, original.sort_values(["unique_id", "date"]).reset_index(drop=True)
    )
    for group, part in zip(groups, ids, strict=True):
        assert all(fleet.hash_group(series, 2) == int(group.name) for series in part)
        assert group.config.name == group.name
        assert Path(group.config.output_dir) == tmp_path / "out" / "loads" / "groups"


def test_hashing_is_the_same_in_every_process() -> None:
    """Python's hash() of a string changes with PYTHONHASHSEED; the fleet's must not."""
    code = "from forecasting.fleet import hash_group; print([hash_group(s, 7) for s in 'abcdefgh'])"
    seen = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(seen) == 1 and len(set(eval(seen.pop()))) > 1  # stable, and spread over groups


def test_a_group_column_names_the_groups(tmp_path) -> None:
    groups = fleet.split(fleet_config(tmp_path), group_column="site")
    assert [(group.name, group.series) for group in groups] == [("high", 2), ("middle", 2)]


def test_grouping_mistakes_are_one_line(tmp_path) -> None:
    config = fleet_config(tmp_path)
    with pytest.raises(ConfigError, match="exactly one of"):
        fleet.split(config)
    with pytest.raises(ConfigError, match="--id-column"):
        fleet.split(
            config.model_copy(update={"data": config.data.model_copy(update={"id_column": None})}),
            groups=2,
        )
    with pytest.raises(DataValidationError, match="no column 'region'"):
        fleet.split(config, group_column="region")
    with pytest.raises(DataValidationError, match="'date'.*cannot name a group"):
        fleet.split(config, group_column="date")  # '2016-07-01 00:00:00' holds spaces and colons


def test_the_idempotency_key_is_one_per_parent_run_and_group() -> None:
    keys = {fleet.idempotency_key(parent, group) for parent in ("a", "b") for group in ("0", "1")}
    assert len(keys) == 4
    assert fleet.idempotency_key("a", "0") == fleet.idempotency_key("a", "0")


def test_read_fleet_without_groups_says_so(tmp_path) -> None:
    with pytest.raises(PublishError, match="No published group of fleet 'loads'"):
        fleet.read_fleet(tmp_path, "loads")


def test_fleet_needs_a_server(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    config = fleet_config(tmp_path)
    done = subprocess.run(
        [
            *CLI,
            "fleet",
            "--data",
            str(config.data.path),
            "--id-column",
            "unique_id",
            "--target-column",
            "load",
            "--groups",
            "2",
            "--output-dir",
            str(tmp_path / "out"),
        ],
        env=env,
        cwd=PROJECT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "Error: forecast fleet needs a Prefect server with workers: set PREFECT_API_URL "
        "(deploy/README.md shows how to start both)."
    ]


def deploy_file(folder: Path, config) -> Path:
    import yaml

    spec = {
        "build": None,
        "push": None,
        "pull": [{"prefect.deployments.steps.set_working_directory": {"directory": str(PROJECT)}}],
        "deployments": [
            {
                "name": "fleet-group",
                "entrypoint": "flows/pipeline.py:forecast_pipeline",
                "work_pool": {"name": POOL},
            },
            {
                "name": "slow-group",
                "entrypoint": "tests/helpers/slow_group.py:slow_group",
                "work_pool": {"name": POOL},
            },
            {
                "name": "fleet",
                "entrypoint": "flows/fleet.py:forecast_fleet",
                "work_pool": {"name": PARENT_POOL},
                "parameters": {"config": config.model_dump(mode="json"), "groups": 2},
            },
        ],
    }
    path = folder / "prefect.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.slow
def test_a_fleet_runs_on_two_workers_once_per_group(tmp_path, postgres: str) -> None:  # noqa: F811
    config = fleet_config(tmp_path, as_of="2016-07-28T00:00:00")
    home = tmp_path / "prefect"
    home.mkdir()
    with prefect_server(home, timeout=180, database_url=postgres) as (api_url, _):
        env = client_environment(tmp_path / "client", api_url)
        for pool in (POOL, PARENT_POOL):
            prefect(["work-pool", "create", pool, "--type", "process"], env)
        prefect(
            [
                "--no-prompt",
                "deploy",
                "--all",
                "--prefect-file",
                str(deploy_file(tmp_path, config)),
            ],
            env,
        )
        with process_workers(POOL, api_url, tmp_path, 2, query_seconds=2):
            with client_for(api_url) as client:
                parent = client.create_flow_run_from_deployment(
                    client.read_deployment_by_name("forecast-fleet/fleet").id
                ).id
                execute = [PREFECT, "flow-run", "execute", str(parent)]
                first = subprocess.run(
                    execute, env=env, cwd=PROJECT, capture_output=True, text=True
                )
                (run,) = final(client, [parent])
                assert run.state_type.value == "COMPLETED", first.stdout[-3000:]
                children = group_runs(client)
                assert len(children) == 2
                assert {child.state_type.value for child in children} == {"COMPLETED"}
                assert {child.parent_task_run_id is not None for child in children} == {True}

                frame = fleet.read_fleet(config.output_dir, "loads")
                assert sorted(frame["group"].unique()) == ["0", "1"]
                assert set(frame["unique_id"]) == set(SERIES)
                assert len(frame) == len(SERIES) * MODEL["horizon"]
                for group in ("0", "1"):
                    published = read_latest(Path(config.output_dir) / "loads" / "groups", group)
                    assert published.manifest["champion"]["model"] in MODEL["candidates"]

                # rerun the same parent run: it finds its children by their keys
                from prefect.states import Cancelling, Scheduled

                client.set_flow_run_state(parent, Scheduled(), force=True)
                subprocess.run(execute, env=env, cwd=PROJECT, capture_output=True, check=True)
                (run,) = final(client, [parent])
                assert run.state_type.value == "COMPLETED"
                assert {child.id for child in group_runs(client)} == {c.id for c in children}
                table = fleet_table(client, parent)
                assert [(row["group"], row["state"], row["series"]) for row in table] == [
                    ("0", "COMPLETED", frame[frame.group == "0"].unique_id.nunique()),
                    ("1", "COMPLETED", frame[frame.group == "1"].unique_id.nunique()),
                ]
                assert {row["champion"] for row in table} <= set(MODEL["candidates"])
                assert all(Path(row["path"]).parent.parent.name in ("0", "1") for row in table)
                assert {row["reason"] for row in table} == {""}

                # cancelling a fleet run while its groups run (they sleep) cancels them
                cancelled = client.create_flow_run_from_deployment(
                    client.read_deployment_by_name("forecast-fleet/fleet").id,
                    parameters={"deployment": "slow-group/slow-group"},
                ).id
                waiting = subprocess.Popen(
                    [PREFECT, "flow-run", "execute", str(cancelled)],
                    env=env,
                    cwd=PROJECT,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
                try:
                    wait_for(
                        lambda: (
                            [c.state_type.value for c in kids(client, cancelled)]
                            == ["RUNNING", "RUNNING"]
                        ),
                        120,
                        "both group runs of the fleet run to start",
                    )
                    client.set_flow_run_state(cancelled, Cancelling(), force=True)
                    (run,) = final(client, [cancelled])
                    assert run.state_type.value == "CANCELLED"
                    groups = final(client, [c.id for c in kids(client, cancelled)], timeout=120)
                    assert [c.state_type.value for c in groups] == ["CANCELLED", "CANCELLED"]
                finally:
                    stop(waiting)

                # a new fleet run that may wait one second: its groups cannot finish by then
                hurried = client.create_flow_run_from_deployment(
                    client.read_deployment_by_name("forecast-fleet/fleet").id,
                    parameters={"wait_timeout_seconds": 1},
                ).id
                subprocess.run(
                    [PREFECT, "flow-run", "execute", str(hurried)],
                    env=env,
                    cwd=PROJECT,
                    capture_output=True,
                )
                (run,) = final(client, [hurried])
                assert run.state_type.value == "FAILED"
                assert run.state.message.startswith(
                    "2 of 2 groups still run after wait_timeout_seconds=1: 0, 1."
                )

            # `forecast fleet` by site, where the middle site's series are too short: that
            # group fails, the high site publishes, and the command names the failed group and
            # its run's reason, which names the group's own data file
            mixed = tmp_path / "mixed.csv"
            rows = pd.read_csv(config.data.path, dtype=str)
            rows[(rows.site == "high") | (rows.date < "2016-07-02")].to_csv(mixed, index=False)
            options = ["--data", str(mixed), "--id-column", "unique_id", "--target-column", "load"]
            options += ["--horizon", "6", "--input-size", "24", "--as-of", "2016-07-28 00:00"]
            options += [
                "--candidates",
                "naive,seasonal_naive",
                "--output-dir",
                str(tmp_path / "out"),
            ]
            done = subprocess.run(
                [*CLI, "fleet", "--name", "mixed", "--group-column", "site", *options],
                env=env,
                cwd=PROJECT,
                capture_output=True,
                text=True,
                timeout=240,
            )
            assert done.returncode == 1, done.stderr[-3000:]
            (line,) = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
            assert line.startswith("Error: 1 of 2 groups did not complete: middle FAILED: ")
            assert f"{tmp_path / 'out' / 'mixed' / 'inputs' / 'middle.csv'}" in line
            assert "too short" in line
            groups = tmp_path / "out" / "mixed" / "groups"
            assert read_latest(groups, "high").forecast["unique_id"].nunique() == 2
            with pytest.raises(PublishError):
                read_latest(groups, "middle")

            # `forecast fleet` runs the fleet run in its own process, with no runner to stop
            # it: it sees its cancellation while it waits and cancels its groups itself
            command = [*CLI, "fleet", "--name", "stopped", "--groups", "2", *options]
            command += ["--deployment", "slow-group/slow-group"]
            waiting = subprocess.Popen(
                command,
                env=env,
                cwd=PROJECT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            try:
                with client_for(api_url) as client:
                    parent = wait_for(
                        lambda: [
                            r.id for r in running_fleets(client) if len(kids(client, r.id)) == 2
                        ],
                        120,
                        "the fleet run of forecast fleet to start its groups",
                    )[0]
                    wait_for(
                        lambda: {c.state_type.value for c in kids(client, parent)} == {"RUNNING"},
                        120,
                        "both group runs of forecast fleet to start",
                    )
                    client.set_flow_run_state(parent, Cancelling(), force=True)
                    assert waiting.wait(timeout=120) == 1
                    assert waiting.stderr is not None
                    assert waiting.stderr.read().strip().splitlines()[-1] == (
                        "Error: The fleet run was cancelled, and so were its unfinished groups."
                    )
                    groups = final(client, [c.id for c in kids(client, parent)], timeout=120)
                    assert [c.state_type.value for c in groups] == ["CANCELLED", "CANCELLED"]
            finally:
                stop(waiting)

            # --wait-timeout: no group run even starts within a second (workers look for work
            # every 2 s), so the command fails; the groups run on and end by themselves
            command = [*CLI, "fleet", "--name", "hurried", "--groups", "2", *options]
            command += ["--wait-timeout", "1"]
            hurried = subprocess.run(command, env=env, cwd=PROJECT, capture_output=True, text=True)
            assert hurried.returncode == 1, hurried.stderr[-2000:]
            assert (
                hurried.stderr.strip()
                .splitlines()[-1]
                .startswith("Error: 2 of 2 groups still run after wait_timeout_seconds=1: 0, 1.")
            )
    assert not list(tmp_path.rglob("*.db"))  # every process used the PostgreSQL-backed server


def fleet_table(client, parent) -> list[dict]:
    import json

    from tests.test_serving import artifacts_of

    return json.loads(artifacts_of(client, parent)["loads-fleet"].data)


def kids(client, parent):
    """The group runs a fleet run started."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    only = FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent]))
    return client.read_flow_runs(flow_run_filter=only)


def running_fleets(client):
    """Fleet runs now running."""
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )

    running = FlowRunFilterState(type=FlowRunFilterStateType(any_=["RUNNING"]))
    return client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=["forecast-fleet"])),
        flow_run_filter=FlowRunFilter(state=running),
    )


def group_runs(client):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    return client.read_flow_runs(
        deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["fleet-group"]))
    )
