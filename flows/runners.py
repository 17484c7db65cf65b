"""Task runners for the candidates: `execution.task_runner` picks how the flow trains them.

`sequential` runs each candidate as a task in the flow's process, one after another (the
library's own fan-out). `processes` submits each to a Prefect `ProcessPoolTaskRunner`, `dask`
to a `prefect_dask.DaskTaskRunner` (a `LocalCluster` started for the run and closed with it, or
the scheduler at `execution.dask_address`). Workers limit TensorFlow's threads to their share of
the cores, return their results (nothing persisted) and write nothing; the flow's process
publishes. A worker that dies fails only its own candidate.
"""

from __future__ import annotations

import functools
import itertools
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner

from forecasting import execution
from forecasting.config import ExecutionConfig, PipelineConfig
from forecasting.pipeline import FanOut

T = TypeVar("T")
_DONE = object()

# A test hook: a worker given this kind exits at once, as a worker killed mid-run would.
EXIT_HOOK = "RECURRENT_TEST_WORKER_EXIT"
EXIT_HOOK_CODE = 70
ORPHAN_EXIT_CODE = 71  # a worker whose flow's process is gone


def fan_out(config: PipelineConfig) -> FanOut | None:
    """The fan-out of `config.execution`; None for `sequential` (the library's own)."""
    if config.execution.task_runner == "sequential":
        return None
    return WorkerFanOut(config.execution, execution.worker_count(config))


def _in_worker(
    function: Callable[..., T], item: Any, arguments: tuple, workers: int, threads: int | None
) -> T:
    """Runs `function(item, *arguments)` in a worker, TensorFlow held to its share of the
    threads (`execution.threads`, or the worker machine's cores)."""
    from flows.pipeline import install_log_filter  # the flow's module imports this one

    install_log_filter()  # the worker's logs reach the flow's run like its own
    _exit_with_parent()
    execution.limit_threads(execution.threads_per_worker(workers, threads))
    if os.environ.get(EXIT_HOOK) == item:
        os._exit(EXIT_HOOK_CODE)
    return function(item, *arguments)


@functools.cache  # once per worker process
def _exit_with_parent() -> None:
    """Ends this worker as soon as the process that started it is gone. A flow killed outright
    (SIGKILL, the out-of-memory killer) cannot close its pool, and a pool's worker does not end
    by itself: it trained on, holding gigabytes, and then blocked handing back its result."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(ORPHAN_EXIT_CODE)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


# Results travel back in memory; inputs are large arrays: never persist or hash them.
_WORKER_TASK: Task = task(cache_policy=NO_CACHE, persist_result=False)(_in_worker)


class WorkerFanOut:
    """Submits each item as a Prefect task to worker processes (a `pipeline.FanOut`)."""

    def __init__(self, settings: ExecutionConfig, workers: int) -> None:
        self.settings = settings
        self.workers = workers

    def __call__(
        self, function: Callable[..., T], items: Sequence[Any], /, *args: Any
    ) -> Iterator[T | BaseException]:
        with self._runner(self.workers) as runner:
            # Submitting pickles the arguments (every fold's data) in this process: keep at
            # most one task per worker submitted, the next going in as the oldest finishes.
            waiting = iter(items)
            running = deque(
                (item, self._submit(runner, function, item, args))
                for item in itertools.islice(waiting, self.workers)
            )
            while running:
                item, future = running.popleft()
                outcome = _outcome(future)
                if (following := next(waiting, _DONE)) is not _DONE:
                    running.append((following, self._submit(runner, function, following, args)))
                if isinstance(outcome, BrokenProcessPool):
                    # A dead worker breaks the whole pool and every candidate still in it:
                    # each of those trains again alone, so only the one that dies fails.
                    outcome = self._alone(function, item, args)
                yield outcome

    def _alone(self, function: Callable[..., T], item: Any, args: tuple) -> T | BaseException:
        with self._runner(1) as runner:
            return _outcome(self._submit(runner, function, item, args))

    def _submit(self, runner: TaskRunner, function: Callable, item: Any, args: tuple) -> Any:
        """The task's future, or the exception submitting it raised (a pool a dead worker
        broke refuses new tasks)."""
        named = _WORKER_TASK.with_options(task_run_name=f"{function.__name__}-{item}")
        parameters = {"function": function, "item": item, "arguments": args}
        shares = {"workers": self.workers, "threads": self.settings.threads}
        try:
            return runner.submit(named, parameters={**parameters, **shares})
        except Exception as error:  # noqa: BLE001 - that candidate's outcome, handled as one
            return error

    def _runner(self, workers: int) -> AbstractContextManager[TaskRunner]:
        if self.settings.task_runner == "processes":
            return ProcessPoolTaskRunner(max_workers=workers)
        return _dask_runner(self.settings, workers)


def _outcome(future: Any) -> Any:
    """The future's result, or the exception that came instead (a worker died)."""
    if isinstance(future, BaseException):
        return future
    try:
        return future.result()
    except Exception as error:  # noqa: BLE001 - the pipeline records it as the candidate's failure
        return error


@contextmanager
def _dask_runner(settings: ExecutionConfig, workers: int) -> Iterator[TaskRunner]:
    """A started `DaskTaskRunner` on the configured scheduler, or on a local cluster of
    `workers` single-threaded worker processes on 127.0.0.1, closed when the runner exits.
    (The configuration refuses 'dask' where prefect-dask is not installed.)"""
    import dask
    from prefect_dask import DaskTaskRunner

    if settings.dask_address is not None:
        with DaskTaskRunner(address=settings.dask_address) as runner:
            yield runner
        return
    cluster = {
        "n_workers": workers,
        "threads_per_worker": 1,
        "processes": True,
        "host": "127.0.0.1",
        "dashboard_address": ":0",  # its HTTP routes on a free port of 127.0.0.1, not 8787
    }
    # The local scheduler: a task whose worker dies fails at once (a rerun would die again),
    # and each worker holds one task at a time, so no other candidate dies with it.
    local = {
        "distributed.scheduler.allowed-failures": 0,
        "distributed.scheduler.worker-saturation": 1.0,
    }
    with dask.config.set(local), DaskTaskRunner(cluster_kwargs=cluster) as runner:
        yield runner
