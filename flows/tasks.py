"""Prefect tasks: the library pipeline's steps (`forecasting.pipeline`), each run as a task.
Retries only where I/O can flake."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from forecasting import pipeline
from forecasting.errors import ForecastingError

T = TypeVar("T")


def _retry_unless_user_error(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except ForecastingError:
        return False
    except Exception:
        return True
    return True


# Task settings by step; a step not named here runs as a plain task.
_OPTIONS: dict[Callable, dict[str, Any]] = {
    pipeline.load: {
        "retries": 2,
        "retry_delay_seconds": [2, 10],
        "retry_condition_fn": _retry_unless_user_error,
    },
    pipeline.train: {"task_run_name": "train-{kind}"},
}


@functools.cache
def as_task(function: Callable[..., T]) -> Task[..., T]:
    """The step as a Prefect task named after it. Inputs are models and large arrays: never
    hash them for caching."""
    return task(cache_policy=NO_CACHE, **_OPTIONS.get(function, {}))(function)


def run_step(function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Runs one pipeline step as a Prefect task (see `forecasting.pipeline.Step`)."""
    return as_task(function)(*args, **kwargs)


class RunLog:
    """The current run's logger, looked up at each line: inside a task, the task run's."""

    def info(self, msg: str, /) -> None:
        get_run_logger().info(msg)

    def warning(self, msg: str, /) -> None:
        get_run_logger().warning(msg)
