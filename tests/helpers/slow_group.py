"""A stand-in for a fleet's group deployment that runs until it is stopped: takes the group's
`config` as forecast-pipeline does and sleeps, so a test can cancel a fleet run while its
groups certainly still run."""

from __future__ import annotations

import time

from prefect import flow


@flow(name="slow-group")
def slow_group(config: dict) -> None:
    time.sleep(600)
