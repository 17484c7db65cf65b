"""PostgreSQL for a Prefect server, started and stopped by deploy/postgres.sh in a temporary
folder on a free loopback port; shared by the tests and benchmarks/scale.py."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.helpers.prefect_server import PROJECT, free_port

SCRIPT = PROJECT / "deploy" / "postgres.sh"


def postgres_missing() -> str | None:
    """Why PostgreSQL cannot start here, or None when its programs are installed."""
    found = shutil.which("initdb") or any(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return None if found else "PostgreSQL is not installed (apt-get install postgresql)"


@contextmanager
def postgres_database() -> Iterator[tuple[str, int]]:
    """Starts PostgreSQL with deploy/postgres.sh and yields (the Prefect database URL, the
    postmaster's PID); stops it with the script at the end and checks that PID gone.

    Raises:
        RuntimeError: The script failed, or PostgreSQL still runs after `stop`.
    """
    folder = Path(tempfile.mkdtemp(prefix="recurrent-pg-"))
    folder.chmod(0o755)  # as root, the script hands the data folder below it to `postgres`
    database = folder / "db"
    try:
        started = subprocess.run(
            [str(SCRIPT), "start", str(database), str(free_port())],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if started.returncode != 0:
            raise RuntimeError(f"deploy/postgres.sh start failed: {started.stderr}")
        pid = int((database / "data" / "postmaster.pid").read_text().split()[0])
        try:
            yield started.stdout.strip(), pid
        finally:
            subprocess.run([str(SCRIPT), "stop", str(database)], check=True, timeout=120)
            if alive(pid):
                raise RuntimeError(f"PostgreSQL (PID {pid}) still runs after postgres.sh stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def alive(pid: int) -> bool:
    """Whether `pid` still runs: a zombie (exited, not yet reaped by PID 1) does not."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    return fields[0] != "Z"
