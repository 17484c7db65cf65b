"""The Prefect environment that `forecast` commands run flows in: settings that must precede
Prefect's import, a database of its own for each concurrent run, Prefect's temporary server
started early (flows/temporary_server.py), and the flow run itself.

Nothing here imports Prefect or TensorFlow at import time: the CLI checks a user's input first.
"""

from __future__ import annotations

import atexit
import os
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, cast

from flows.temporary_server import STARTUP_TIMEOUT_SECONDS

if TYPE_CHECKING:
    from flows.temporary_server import TemporaryServer
    from forecasting.config import PipelineConfig

# For the temporary server only: it records flow runs, task runs (through the task run
# recorder, which stays on), logs and artifacts, but not the event feed. Reactive triggers,
# event persistence and event streaming cost it about 1 s of CPU per run and nothing reads them
# (the shipped automations watch served runs, which use a real server). A first start on a new
# Prefect home also migrates the database, which can outlast Prefect's default 20 s timeout on
# a busy 2-core machine.
TEMPORARY_SERVER_SETTINGS = {
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED": "false",
    "PREFECT_SERVER_EVENTS_STREAM_OUT_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": str(STARTUP_TIMEOUT_SECONDS),
}
# A user's own server or database: with any of these set, the database is theirs to choose.
_CONFIGURED = (
    "PREFECT_API_URL",
    "PREFECT_SERVER_DATABASE_CONNECTION_URL",
    "PREFECT_API_DATABASE_CONNECTION_URL",
)
_SLOTS = 16  # past 16 runs at once, the rest share the default database


class FlowRunFailed(Exception):
    """The flow run ended in a state other than Completed; the message is the state's."""


def quiet() -> None:
    """No usage analytics from Prefect, and TensorFlow's C++ logging at warnings; a value
    already in the environment wins."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def prepare(lean_server: bool = True) -> None:
    """Settings that must be in place before Prefect and TensorFlow are imported.

    With no PREFECT_API_URL, Prefect starts a temporary server for this process on the SQLite
    file $PREFECT_HOME/prefect.db (~/.prefect), shared by every such server, and SQLite refuses
    some concurrent writes outright ("database is locked") whatever its timeouts. So each
    `forecast run` takes a slot with a file lock, held until it exits (the kernel frees it if
    the process dies): slot 0 keeps Prefect's default database (a lone run changes nothing, its
    history included); a run started while another runs gets its own file, recurrent-<slot>.db
    next to it, kept for the next time, so concurrent runs never share one. Nothing changes
    when PREFECT_API_URL or a database URL is set in the environment; with an API URL in a
    Prefect profile no temporary server starts, so the database setting goes unused.

    Args:
        lean_server: Whether the temporary server leaves out the event feed
            (`TEMPORARY_SERVER_SETTINGS`; run and backfill, not serve); a setting already in
            the environment wins.
    """
    quiet()
    if set(_CONFIGURED) & os.environ.keys():
        return
    if lean_server:
        for name, value in TEMPORARY_SERVER_SETTINGS.items():
            os.environ.setdefault(name, value)
    _take_database_slot(Path(os.environ.get("PREFECT_HOME") or "~/.prefect").expanduser())


def _take_database_slot(home: Path) -> None:
    """Holds the first free slot's lock until exit; any slot but 0 gets its own database."""
    from filelock import FileLock, Timeout

    for slot in range(_SLOTS):
        lock = FileLock(home / f".recurrent-server-{slot}.lock")
        try:
            home.mkdir(parents=True, exist_ok=True)
            lock.acquire(timeout=0)
        except Timeout:
            continue
        except OSError:
            return  # an unwritable Prefect home: Prefect reports it better
        atexit.register(lock.release)  # also keeps the lock alive until exit
        if slot:
            database = f"sqlite+aiosqlite:///{home / f'recurrent-{slot}.db'}"
            os.environ["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database
        return


def start_server(config: PipelineConfig) -> TemporaryServer | None:
    """Starts Prefect's temporary server now, unless one is configured, and loads Keras while it
    boots; Keras loads here in every case, so a run's training seconds never include that
    import. No server when Prefect is already imported (a program that calls the CLI
    in-process): its settings are fixed by then, so Prefect decides.

    Returns:
        The server this process's flow runs will use, or None: a server is configured, or
        Prefect's settings name one or forbid a temporary one.
    """
    server = None
    if "PREFECT_API_URL" not in os.environ and "prefect" not in sys.modules:
        from flows.temporary_server import TemporaryServer

        server = TemporaryServer()
    if config.model.trains_rnns:
        import keras  # noqa: F401 - the run needs it anyway

    if server is None or not server.adopt():
        return None
    return server


def run_flow(config: PipelineConfig, server: TemporaryServer | None) -> dict:
    """Runs the pipeline flow, on `server` when one was started.

    Returns:
        The flow's summary (`path`, `run_id`, `champion`, `reason`, `reused`, ...).

    Raises:
        FlowRunFailed: The run did not complete.
    """
    from flows.pipeline import forecast_pipeline

    if server is not None:
        server.wait()
    with server.run_settings() if server is not None else nullcontext():
        state = forecast_pipeline(config, return_state=True)
    if not state.is_completed():
        raise FlowRunFailed(state.message)
    return cast(dict, state.result())  # a completed run returns its summary
