"""Where the candidates train: how many workers, each worker's share of the cores, and the
manifest's record of where each candidate ran.

The library runs candidates one after another; an orchestrator may run them side by side in
worker processes (`pipeline.run`'s `fan_out`; the Prefect flow does with `execution.task_runner`).
A worker calls `limit_threads` before TensorFlow loads, so that workers sharing a machine do not
each start one TensorFlow thread per core.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

from forecasting.config import PipelineConfig

# TensorFlow reads these when it starts; OpenMP and BLAS libraries read the last two.
_THREAD_VARIABLES = (
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
)


def cores() -> int:
    """The cores this process may run on (its CPU affinity where the system says)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def worker_count(config: PipelineConfig) -> int:
    """Workers that train candidates: 1 for `sequential`; else `execution.workers`, or by
    default the cores of this machine, at most one per candidate."""
    if config.execution.task_runner == "sequential":
        return 1
    return config.execution.workers or max(1, min(cores(), len(config.model.candidates)))


def threads_per_worker(workers: int, threads: int | None = None) -> int:
    """Each of `workers` workers' share of `threads` (`execution.threads`; None: this
    machine's cores), at least 1."""
    return max(1, (threads or cores()) // workers)


def limit_threads(threads: int) -> None:
    """Limits TensorFlow in this process to `threads` threads for its operations (intra-op)
    and as many for running operations side by side (inter-op).

    Takes effect through the environment when TensorFlow has not started yet (a fresh worker),
    and through `tf.config.threading` when it is imported but has not run anything. A worker
    whose TensorFlow already runs with other settings keeps them; `placement` reports the limit.
    NumPy's BLAS (the ridge models), loaded before this runs, is limited through threadpoolctl.
    """
    from threadpoolctl import threadpool_limits

    for name in _THREAD_VARIABLES:
        os.environ[name] = str(threads)
    threadpool_limits(limits=threads)  # stays in force for the process
    if "tensorflow" not in sys.modules:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already runs: its pools cannot change
        return


def placement() -> dict[str, Any]:
    """Where this process is: its host, its process id, and the TensorFlow thread limit in
    force (None: TensorFlow's default, one thread per core)."""
    threads = os.environ.get("TF_NUM_INTRAOP_THREADS")
    limit = int(threads) if threads and threads.isdigit() else None
    if "tensorflow" in sys.modules:  # what TensorFlow itself runs with (0: its default)
        import tensorflow as tf

        limit = tf.config.threading.get_intra_op_parallelism_threads() or limit
    return {"host": socket.gethostname(), "pid": os.getpid(), "threads": limit}


def manifest_entry(config: PipelineConfig, placements: dict[str, dict[str, Any]]) -> dict:
    """The manifest's `execution` block.

    Args:
        placements: Per candidate kind, the `placement` of the process that trained it (empty
            for a candidate whose worker died before it finished).
    """
    runner = config.execution.task_runner
    workers = worker_count(config)
    return {
        "task_runner": runner,
        "workers": workers,
        "threads": config.execution.threads,
        "threads_per_worker": None
        if runner == "sequential"
        else threads_per_worker(workers, config.execution.threads),
        "dask_address": config.execution.dask_address,
        "candidates": [
            {
                "model": kind,
                "host": where.get("host"),
                "pid": where.get("pid"),
                "threads": where.get("threads"),
            }
            for kind, where in placements.items()
        ],
    }
