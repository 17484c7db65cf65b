"""Prefect's temporary server, started before the run's heavy imports.

With no server configured, Prefect starts a temporary one when the first flow needs it: the
client imports the server's code (~2 s) and then waits for it to boot (~5 s), all before the
first task, with one of the two cores idle. `forecast run` and `backfill` start that same server
(uvicorn on `prefect.server.api.server:create_app` with the UI off, as Prefect does) in a child
process right after the data checks, so it boots on the other core while this process imports
TensorFlow. The child reads Prefect's settings itself and declines when they name a server (an
API URL in a profile, for example) or forbid a temporary one; this process hears its answer
before it imports Prefect, and then points PREFECT_API_URL at it. The server stops when this
process exits, after Prefect has sent its last logs, and also when this process is killed.
It boots with garbage collection paused, and once up calls the routes a run uses, read-only, so
that the run's first calls do not wait for FastAPI to prepare them; unless it runs triggers, the
runs it records send no heartbeats, which nothing would read (benchmarks/README.md).

    python -P -m flows.temporary_server   # the child: prints "serving PORT" or "declined"
"""

from __future__ import annotations

import atexit
import gc
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import AbstractContextManager, nullcontext

SERVING = "serving"
DECLINED = "declined"
WARM_UP_ROUTES = ("flows", "flow_runs", "task_runs", "artifacts")  # read with `/filter`
STARTUP_TIMEOUT_SECONDS = 120  # a first start migrates a new database: ~10 s, more under load


class TemporaryServer:
    """The child process serving Prefect's API on a loopback port it binds itself."""

    def __init__(self) -> None:
        self.port: int | None = None
        self.url = ""
        self.process = subprocess.Popen(
            # -P: never import a `flows` module from the working directory instead of ours
            [sys.executable, "-P", "-m", "flows.temporary_server"],
            stdin=subprocess.PIPE,  # the child stops when this pipe closes: when we are gone
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,  # Ctrl-C stops the run, which then stops the server
        )
        atexit.register(self.stop)  # before Prefect's own exit handlers, so it runs after them

    def adopt(self) -> bool:
        """Waits for the child's answer; when it serves, points Prefect at it (call before
        importing Prefect). False when it declined: Prefect then does what it would anyway."""
        assert self.process.stdout is not None
        for line in self.process.stdout:  # lines that are not an answer are someone else's
            answer, _, port = line.strip().partition(" ")
            if answer == SERVING and port.isdigit():
                self.port = int(port)
                self.url = f"http://127.0.0.1:{self.port}/api"
                os.environ["PREFECT_API_URL"] = self.url
                os.environ["PREFECT_UI_URL"] = ""  # the server has no UI: no link to nowhere
                return True
            if answer == DECLINED:
                self.process.wait(timeout=30)  # it exits by itself
                break
        self.stop()
        return False

    def wait(self) -> None:
        """Returns once the API answers; raises if the child exits or the startup times out."""
        timeout = float(
            os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS")
            or STARTUP_TIMEOUT_SECONDS
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"Prefect's temporary server on port {self.port} exited with code "
                    f"{self.process.returncode} before it answered (its messages are above)."
                )
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.05)
        raise RuntimeError(
            f"Prefect's temporary server on port {self.port} did not answer within {timeout:.0f} "
            "s; raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS or start `prefect server "
            "start` and set PREFECT_API_URL."
        )

    def run_settings(self) -> AbstractContextManager:
        """Prefect settings for the flow runs this server records: no flow-run heartbeats,
        unless it runs triggers. Heartbeats matter only to triggers (Recurrent's crash
        automation) and this server runs none unless told to (flows/environment.py), while each
        run's heartbeat thread, which sleeps in 1 s steps and is joined at the run's end, held
        every run up to 1 s."""
        from prefect.settings import (
            PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
            get_current_settings,
            temporary_settings,
        )

        if get_current_settings().server.services.triggers.enabled:
            return nullcontext()
        return temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})

    def stop(self) -> None:
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _stop_when_parent_is_gone() -> None:
    """Waits for end-of-file on stdin, which the kernel delivers when the parent exits or dies
    (it never writes), then stops this server gracefully."""
    sys.stdin.read()
    os.kill(os.getpid(), signal.SIGTERM)


def _serve() -> None:
    # The boot creates several hundred thousand objects that live as long as the server, and
    # collecting garbage among them while they are created cost ~15% of the boot's CPU.
    gc.disable()
    threading.Thread(target=_stop_when_parent_is_gone, daemon=True).start()
    os.environ.update(
        {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
    )
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    if settings.api.url or not settings.server.ephemeral.enabled:
        print(DECLINED, flush=True)
        return
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))  # bound before it is announced: no one can take the port
    print(f"{SERVING} {listener.getsockname()[1]}", flush=True)
    os.dup2(2, 1)  # closes the answer pipe; anything printed later goes to stderr
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if not self.should_exit:  # it did start
                await _warm_up(self.config.loaded_app)
            gc.freeze()  # the boot's objects are never scanned again
            gc.enable()

    config = uvicorn.Config(
        "prefect.server.api.server:create_app",
        factory=True,
        log_level="error",
        lifespan="on",
    )
    Server(config).run(sockets=[listener])


async def _warm_up(app: object) -> None:
    """FastAPI prepares its routes on their first request, which made the run's first API call
    wait ~0.5 s; this makes read-only calls to the routes a run uses while the run is still
    importing. A failure here only means the run's first calls are slower."""
    import httpx

    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://warm-up/api") as api:
            await api.get("/admin/version")
            for route in WARM_UP_ROUTES:
                await api.post(f"/{route}/filter", json={"limit": 1})
    except Exception:  # noqa: BLE001, S110 - an optimisation only
        pass


if __name__ == "__main__":
    _serve()
