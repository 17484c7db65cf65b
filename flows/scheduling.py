"""What a deployment run knows about its schedule: when it was due, whether the scheduler made
it, and whether a newer scheduled run or a newer published as-of has superseded it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import pandas as pd

from forecasting.store.layout import Location, pipeline_dir
from forecasting.store.reader import latest_as_of

SCHEDULER_TAG = "auto-scheduled"  # the tag Prefect's scheduler puts on the runs it creates


@dataclass(frozen=True)
class DeploymentRun:
    """This flow run, when a deployment started it.

    Attributes:
        flow_run_id: This run.
        deployment_id: Its deployment.
        expected_start: When it was due (its scheduled time), time-zone aware.
        auto_scheduled: Whether Prefect's scheduler created it (not the UI, API or CLI).
    """

    flow_run_id: UUID
    deployment_id: UUID
    expected_start: datetime
    auto_scheduled: bool


def current() -> DeploymentRun | None:
    """This run's schedule facts; None for a run that no deployment started (`forecast run`)."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    run = context.flow_run if context else None
    if run is None or run.deployment_id is None or run.expected_start_time is None:
        return None
    return DeploymentRun(
        run.id,
        run.deployment_id,
        run.expected_start_time,
        bool(run.auto_scheduled) or SCHEDULER_TAG in (run.tags or []),
    )


def newer_due_run(run: DeploymentRun) -> str | None:
    """Names a scheduled run of the same deployment that is due now and was due after this
    one; None when there is none."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterExpectedStartTime,
        FlowRunFilterId,
        FlowRunFilterState,
        FlowRunFilterStateName,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        due = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                deployment_id=FlowRunFilterDeploymentId(any_=[run.deployment_id]),
                state=FlowRunFilterState(name=FlowRunFilterStateName(any_=["Scheduled", "Late"])),
                expected_start_time=FlowRunFilterExpectedStartTime(
                    before_=pd.Timestamp.now("UTC").to_pydatetime(),
                    after_=run.expected_start,
                ),
                id=FlowRunFilterId(not_any_=[run.flow_run_id]),
            ),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
            limit=1,
        )
    newer = [
        (r.name, due_at)
        for r in due
        if (due_at := r.expected_start_time) is not None and due_at > run.expected_start
    ]
    if not newer:
        return None
    name, due_at = newer[0]
    return f"flow run {name!r}, due at {due_at.isoformat()}"


def published_as_of(output_dir: Location, name: str) -> pd.Timestamp | None:
    """The as-of of the run `latest` points to; None when nothing (readable) is published."""
    as_of = latest_as_of(pipeline_dir(output_dir, name))
    try:
        return pd.Timestamp(as_of) if as_of else None
    except ValueError:
        return None
