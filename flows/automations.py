"""The Prefect automations a scheduled Recurrent needs, created (or replaced, by name) with
`forecast automations`:

- `recurrent-crashed-heartbeat`: a flow run that stops sending heartbeats (its process was
  killed, its machine died) is marked Crashed, which frees its deployment's concurrency slot.
  A self-hosted server does not do this by itself. Runs send a heartbeat every
  `PREFECT_FLOWS_HEARTBEAT_FREQUENCY` seconds (`forecast serve` sets 30; set it for workers too),
  so the window must be longer than that.
- `recurrent-scheduled-failure`: a scheduled run that fails or crashes sends a notification
  through a block the operator chooses (a webhook URL given here becomes a
  CustomWebhookNotificationBlock; any other notification block works by name).
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import cast

CRASH_AUTOMATION = "recurrent-crashed-heartbeat"
FAILURE_AUTOMATION = "recurrent-scheduled-failure"
_FINAL = ["Completed", "Failed", "Cancelled", "Crashed"]


def crash_automation(within_seconds: float):
    """Marks a flow run Crashed when no heartbeat or final state follows its last heartbeat
    within `within_seconds`."""
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    return Automation(
        name=CRASH_AUTOMATION,
        description="Marks a flow run Crashed when its heartbeats stop, freeing its slot.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", *(f"prefect.flow-run.{s}" for s in _FINAL)},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=within_seconds),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"No heartbeat for {within_seconds:g} s: the run's process is gone.",
            )
        ],
    )


def failure_automation(block_document_id):
    """Notifies through a notification block when a scheduled run fails or crashes."""
    from prefect.automations import Automation
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    return Automation(
        name=FAILURE_AUTOMATION,
        description="Notifies the operator when a scheduled forecast run fails or crashes.",
        trigger=EventTrigger(
            expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
            match=ResourceSpecification({"prefect.resource.id": "prefect.flow-run.*"}),
            match_related=ResourceSpecification(
                {
                    "prefect.resource.role": "tag",
                    "prefect.resource.id": "prefect.tag.auto-scheduled",
                }
            ),
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=[
            SendNotification(
                block_document_id=block_document_id,
                subject="{{ deployment.name }}: {{ flow_run.name }} {{ flow_run.state.name }}",
                body="{{ flow_run.state.message }} (scheduled for "
                "{{ flow_run.expected_start_time }})",
            )
        ],
    )


def install(
    within_seconds: float = 90.0, webhook_url: str | None = None, block: str | None = None
) -> list[str]:
    """Creates both automations on the configured Prefect server, replacing any of the same
    name; the failure one only when a webhook URL or a notification block name is given.

    Returns:
        The names of the automations created.
    """
    from prefect.automations import Automation

    automations = [crash_automation(within_seconds)]
    if webhook_url or block:
        automations.append(failure_automation(_notification_block(webhook_url, block)))
    for automation in automations:
        with contextlib.suppress(ValueError):  # ValueError: none of that name yet
            # Called from sync code, so it returns the automation; Prefect's stubs say coroutine.
            cast(Automation, Automation.read(name=automation.name)).delete()
        automation.create()
    return [automation.name for automation in automations]


def _notification_block(webhook_url: str | None, block: str | None):
    from prefect.blocks.notifications import CustomWebhookNotificationBlock, NotificationBlock

    if block:
        return cast(NotificationBlock, NotificationBlock.load(block))._block_document_id
    webhook = CustomWebhookNotificationBlock(
        name="recurrent",
        url=webhook_url,
        json_data={"text": "{{subject}}\n{{body}}"},
    )
    return webhook.save("recurrent-failure-webhook", overwrite=True)
