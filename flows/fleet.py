"""The `forecast-fleet` flow: splits a many-series file into groups (`forecasting.fleet`) and
starts one `forecast-pipeline` run per group through a deployment, as subflows that process
workers on any machine pick up; waits for them and leaves a table of the groups."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import cast
from uuid import UUID

from prefect import flow
from prefect.artifacts import create_table_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.logging import get_run_logger
from prefect.runtime import flow_run
from prefect.states import Failed, State

from flows import artifacts, scheduling
from flows.pipeline import install_log_filter
from forecasting import fleet
from forecasting.config import PipelineConfig
from forecasting.errors import ForecastingError, PublishError
from forecasting.store.reader import read_latest

GROUP_DEPLOYMENT = "forecast-pipeline/fleet-group"
POLL_SECONDS = 2.0


@flow(name="forecast-fleet", validate_parameters=True)
def forecast_fleet(
    config: PipelineConfig | None = None,
    group_column: str | None = None,
    groups: int | None = None,
    deployment: str = GROUP_DEPLOYMENT,
) -> dict | State:
    """Splits the data into groups (by `group_column`, or into `groups` groups by a stable hash
    of each series' id), runs deployment `deployment` (a forecast-pipeline) once per group with
    the group's data, publishing to `<output_dir>/<name>/groups/<group>/`, and fails when any
    group fails (the others' publications stand). Rerunning this flow run starts no second
    child run for a group: each child carries an idempotency key of this run and its group."""
    install_log_filter()
    config = config or PipelineConfig()
    try:
        members = fleet.split(config, group_column, groups)
    except ForecastingError as error:
        return Failed(message=str(error))
    logger = get_run_logger()
    parent = flow_run.id
    # every child is due when this run was, so scheduled children forecast as of the same time
    run = scheduling.current()
    due = run.expected_start if run is not None else datetime.now(UTC)
    children = [
        cast(
            FlowRun,
            run_deployment(
                deployment,
                parameters={"config": member.config.model_dump(mode="json")},
                scheduled_time=due,
                flow_run_name=f"{config.name}-{member.name}",
                timeout=0,
                idempotency_key=fleet.idempotency_key(parent, member.name),
                as_subflow=True,
            ),
        )
        for member in members
    ]
    logger.info(f"Started {len(children)} group runs of {deployment}")
    finished = _wait([child.id for child in children])
    rows = [
        _row(member, finished[child.id]) for member, child in zip(members, children, strict=True)
    ]
    _report(config.name, rows)
    failed = [row["group"] for row in rows if row["state"] != "COMPLETED"]
    if failed:
        return Failed(message=f"{len(failed)} of {len(rows)} groups did not complete: {failed}")
    return {"groups": rows, "path": str(fleet.groups_dir(config.output_dir, config.name))}


def _wait(ids: list[UUID]) -> dict[UUID, FlowRun]:
    """Polls the child runs until every one is in a final state."""
    finished: dict[UUID, FlowRun] = {}
    with get_client(sync_client=True) as client:
        while len(finished) < len(ids):
            for run_id in ids:
                if run_id not in finished:
                    run = client.read_flow_run(run_id)
                    if run.state is not None and run.state.is_final():
                        finished[run_id] = run
            if len(finished) < len(ids):
                time.sleep(POLL_SECONDS)
    return finished


def _row(member: fleet.Group, run: FlowRun) -> dict:
    """One line of the table: the group's child run, its state, and what it published."""
    champion, path = "", ""
    if run.state is not None and run.state.is_completed():
        try:
            published = read_latest(member.config.output_dir, member.name)
            champion = published.manifest["champion"]["model"]
            path = str(published.path)
        except PublishError as error:  # a superseded run publishes nothing
            path = str(error)
    return {
        "group": member.name,
        "child run": run.name,
        "state": run.state.type.value if run.state is not None else "UNKNOWN",
        "champion": champion,
        "series": member.series,
        "path": path,
    }


def _report(name: str, rows: list[dict]) -> None:
    try:
        create_table_artifact(
            rows, key=artifacts.key(name, "fleet"), description=f"Groups of fleet {name}."
        )
    except Exception as error:  # noqa: BLE001 - the groups published either way
        get_run_logger().warning(f"Could not create a Prefect artifact: {error}")
