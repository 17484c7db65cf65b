"""Runs like `forecast run` does, minus the models: `environment.prepare`, then a small flow on
Prefect's temporary server. Says `ready` once its environment is set, then which database its
server used."""

from __future__ import annotations

import sys

from flows import environment

environment.prepare()
print("ready", flush=True)

from prefect import flow, task  # noqa: E402  (after the environment, as in the CLI)
from prefect.settings import get_current_settings  # noqa: E402


@task
def step(index: int) -> int:
    return index


@flow
def tiny() -> int:
    return sum(step(index) for index in range(5))


if __name__ == "__main__":
    state = tiny(return_state=True)
    database = get_current_settings().server.database.connection_url.get_secret_value()
    print(f"{state.type.value} {database}", flush=True)
    sys.exit(0 if state.is_completed() else 1)
