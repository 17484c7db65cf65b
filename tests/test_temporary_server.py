"""The temporary server `forecast run` starts early: it declines when Prefect's settings name a
server, and it never outlives the process it serves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from flows.temporary_server import WARM_UP_ROUTES, TemporaryServer
from tests.helpers.prefect_server import own_prefect_environment


def test_it_declines_when_a_prefect_profile_names_a_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "prefect"
    home.mkdir()
    (home / "profiles.toml").write_text(
        'active = "team"\n[profiles.team]\nPREFECT_API_URL = "http://prefect.example:4200/api"\n'
    )
    for name in [n for n in os.environ if n.startswith("PREFECT_")]:
        monkeypatch.delenv(name)  # no profile choice or server from the test's environment
    for name, value in own_prefect_environment(home).items():
        monkeypatch.setenv(name, value)
    server = TemporaryServer()
    assert server.adopt() is False
    assert server.process.returncode == 0
    assert "PREFECT_API_URL" not in os.environ  # Prefect goes on to use the profile's server


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
def test_it_serves_the_api_and_stops_when_its_process_is_killed(tmp_path: Path) -> None:
    serving = (
        "import time\n"
        "from flows.temporary_server import TemporaryServer\n"
        "server = TemporaryServer()\n"
        "assert server.adopt()\n"
        "server.wait()\n"
        "print(server.url, server.process.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", serving],
        env=own_prefect_environment(tmp_path / "prefect"),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        url, pid = parent.stdout.readline().split()
        with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
            assert response.status == 200
        assert url.startswith("http://127.0.0.1:")
        # its warm-up calls the routes a run uses, and must leave the new database as it was
        for route in WARM_UP_ROUTES:
            request = urllib.request.Request(
                f"{url}/{route}/filter", data=b"{}", headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                assert json.load(response) == [], route
    finally:
        parent.kill()  # no exit handlers run: only the server's own watch can stop it
        parent.wait()
    deadline = time.monotonic() + 30
    while alive(int(pid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(int(pid))
