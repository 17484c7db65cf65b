"""The `forecast-fleet` flow: splits a many-series file into groups (`forecasting.fleet`) and
starts one `forecast-pipeline` run per group through a deployment, as subflows that process
workers on any machine pick up; waits for them and leaves a table of the groups."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, cast
from uuid import UUID

from prefect import Flow, flow
from prefect.artifacts import create_table_artifact
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterParentFlowRunId,
)
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.logging import get_run_logger
from prefect.runtime import flow_run
from prefect.states import Cancelled, Cancelling, Failed, State
from pydantic import Field

from flows import artifacts, scheduling
from flows.pipeline import install_log_filter
from forecasting import fleet
from forecasting.config import PipelineConfig
from forecasting.errors import ForecastingError, PublishError
from forecasting.store.reader import read_latest

GROUP_DEPLOYMENT = "forecast-pipeline/fleet-group"
POLL_SECONDS = 2.0
READ_LIMIT = 200  # runs per request: the server's default page limit


def _cancel_groups(flow: Flow, flow_run: FlowRun, state: State) -> None:
    """The on_cancellation hook: cancels the group runs this run started that have not
    finished. A runner or worker that stops the fleet run's process runs it; a fleet run with
    no runner (`forecast fleet`) sees its own cancellation while it waits instead."""
    with get_client(sync_client=True) as client:
        only = FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run.id]))
        children: list[FlowRun] = []
        while page := client.read_flow_runs(
            flow_run_filter=only, limit=READ_LIMIT, offset=len(children)
        ):
            children += page
        _cancel(client, [child.id for child in children])


@flow(name="forecast-fleet", validate_parameters=True, on_cancellation=[_cancel_groups])
def forecast_fleet(
    config: PipelineConfig | None = None,
    group_column: str | None = None,
    groups: int | None = None,
    deployment: str = GROUP_DEPLOYMENT,
    wait_timeout_seconds: Annotated[
        float | None,
        Field(
            gt=0,
            description="Seconds to wait for every group run after starting them; when they "
            "run out, the fleet run fails naming the groups still running. Empty: no limit.",
        ),
    ] = None,
) -> dict | State:
    """Splits the data into groups (by `group_column`, or into `groups` groups by a stable hash
    of each series' id), runs deployment `deployment` (a forecast-pipeline) once per group with
    the group's data, publishing to `<output_dir>/<name>/groups/<group>/`, and fails when any
    group fails (the others' publications stand), naming each failed group and its run's
    reason. Rerunning this flow run starts no second child run for a group: each child
    carries an idempotency key of this run and its group. Cancelling this run cancels its
    unfinished group runs. With `wait_timeout_seconds`, the run fails when its groups have not
    all finished that long after they were started, naming the groups still running (they run
    on and may still publish)."""
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
    finished = _wait(parent, [child.id for child in children], wait_timeout_seconds)
    if finished is None:
        return Cancelled(message="The fleet run was cancelled, and so were its unfinished groups.")
    if len(finished) < len(children):
        running = [m.name for m, c in zip(members, children, strict=True) if c.id not in finished]
        return Failed(
            message=f"{len(running)} of {len(children)} groups still run after "
            f"wait_timeout_seconds={wait_timeout_seconds:g}: {', '.join(running)}. They run on "
            "and may still publish; raise the timeout, or add workers to the pool."
        )
    rows = [
        _row(member, finished[child.id]) for member, child in zip(members, children, strict=True)
    ]
    _report(config.name, rows)
    failed = [
        f"{r['group']} {r['state']}: {r['reason']}" for r in rows if r["state"] != "COMPLETED"
    ]
    if failed:
        return Failed(
            message=f"{len(failed)} of {len(rows)} groups did not complete: {'; '.join(failed)}"
        )
    return {"groups": rows, "path": str(fleet.groups_dir(config.output_dir, config.name))}


def _wait(
    parent: UUID, ids: list[UUID], timeout: float | None = None
) -> dict[UUID, FlowRun] | None:
    """Polls the child runs until every one is in a final state, or `timeout` seconds have
    passed; returns those in a final state. When the parent run is cancelled meanwhile (from
    the UI, the API or `prefect flow-run cancel`), cancels the unfinished children and
    returns None."""
    deadline = None if timeout is None else time.monotonic() + timeout
    finished: dict[UUID, FlowRun] = {}
    with get_client(sync_client=True) as client:
        while len(finished) < len(ids):
            own = client.read_flow_run(parent).state
            if own is not None and (own.is_cancelling() or own.is_cancelled()):
                _cancel(client, [run_id for run_id in ids if run_id not in finished])
                return None
            waiting = [run_id for run_id in ids if run_id not in finished]
            for first in range(0, len(waiting), READ_LIMIT):  # a request per page, not per run
                page = waiting[first : first + READ_LIMIT]
                only = FlowRunFilter(id=FlowRunFilterId(any_=page))
                for run in client.read_flow_runs(flow_run_filter=only, limit=len(page)):
                    if run.state is not None and run.state.is_final():
                        finished[run.id] = run
            if len(finished) == len(ids) or (deadline is not None and time.monotonic() > deadline):
                break
            time.sleep(POLL_SECONDS)
    return finished


def _cancel(client: SyncPrefectClient, ids: list[UUID]) -> None:
    """Cancels child runs as Prefect does: one not yet picked up by a worker at once, one a
    worker holds through Cancelling (its worker then stops the run's process)."""
    for run_id in ids:
        state = client.read_flow_run(run_id).state
        if state is None or state.is_final():
            continue
        message = "The fleet run was cancelled."
        cancel = Cancelled if state.is_scheduled() else Cancelling
        client.set_flow_run_state(run_id, cancel(message=message), force=True)


def _row(member: fleet.Group, run: FlowRun) -> dict:
    """One line of the table: the group's child run, its state, what it published, and for a
    run that did not complete the first line of its state's message."""
    champion, path, reason = "", "", ""
    if run.state is not None and run.state.is_completed():
        try:
            published = read_latest(member.config.output_dir, member.name)
            champion = published.manifest["champion"]["model"]
            path = str(published.path)
        except PublishError as error:  # a superseded run publishes nothing
            path = str(error)
    else:
        message = (run.state.message if run.state is not None else None) or "no reason given"
        reason = message.strip().splitlines()[0]
    return {
        "group": member.name,
        "child run": run.name,
        "state": run.state.type.value if run.state is not None else "UNKNOWN",
        "champion": champion,
        "series": member.series,
        "path": path,
        "reason": reason,
    }


def _report(name: str, rows: list[dict]) -> None:
    try:
        create_table_artifact(
            rows, key=artifacts.key(name, "fleet"), description=f"Groups of fleet {name}."
        )
    except Exception as error:  # noqa: BLE001 - the groups published either way
        get_run_logger().warning(f"Could not create a Prefect artifact: {error}")
