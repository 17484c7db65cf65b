"""The Prefect environment the CLI runs flows in (flows/environment.py): concurrent
`forecast run`s get separate temporary-server databases, and a user's own Prefect server or
database settings are left alone."""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
from pathlib import Path

import pytest
from filelock import FileLock

from flows.environment import TEMPORARY_SERVER_SETTINGS, prepare
from tests.helpers.prefect_server import own_prefect_environment

DATABASE = "PREFECT_SERVER_DATABASE_CONNECTION_URL"
SETTINGS = (
    DATABASE,
    "PREFECT_API_DATABASE_CONNECTION_URL",
    "PREFECT_API_URL",
    "PREFECT_HOME",
    *TEMPORARY_SERVER_SETTINGS,
)


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """No Prefect settings, PREFECT_HOME in tmp_path; exit handlers run at the test's end."""
    for name in SETTINGS:
        monkeypatch.setenv(name, "unset")  # so that monkeypatch restores each one afterwards
        monkeypatch.delenv(name)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    handlers = []
    monkeypatch.setattr(atexit, "register", lambda function, *args: handlers.append(function))
    yield tmp_path / "prefect"
    for handler in handlers:
        handler()


def test_a_lone_run_keeps_prefects_default_database(clean_environment: Path) -> None:
    prepare()
    assert DATABASE not in os.environ


def test_the_temporary_server_skips_the_event_feed_unless_told_otherwise(
    clean_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED", "true")  # the user's choice
    prepare()
    assert os.environ["PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED"] == "true"
    assert os.environ["PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED"] == "false"
    assert os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] == "120"


def test_serving_keeps_every_server_service(clean_environment: Path) -> None:
    prepare(lean_server=False)
    assert not TEMPORARY_SERVER_SETTINGS.keys() & os.environ.keys()


def test_a_run_started_while_another_runs_gets_its_own_database(clean_environment: Path) -> None:
    clean_environment.mkdir()
    with FileLock(clean_environment / ".recurrent-server-0.lock"):  # another `forecast run`
        prepare()
    assert os.environ[DATABASE] == f"sqlite+aiosqlite:///{clean_environment / 'recurrent-1.db'}"


@pytest.mark.parametrize(
    "setting", ["PREFECT_API_URL", DATABASE, "PREFECT_API_DATABASE_CONNECTION_URL"]
)
def test_a_users_own_server_or_database_is_left_alone(
    clean_environment: Path, monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    monkeypatch.setenv(setting, "http://prefect.example:4200/api")
    clean_environment.mkdir()
    with FileLock(clean_environment / ".recurrent-server-0.lock"):
        prepare()
    assert os.environ.get(DATABASE) == (os.environ[setting] if setting == DATABASE else None)
    assert not (clean_environment / ".recurrent-server-1.lock").exists()
    assert not TEMPORARY_SERVER_SETTINGS.keys() & os.environ.keys()


@pytest.mark.slow
def test_two_runs_at_once_use_separate_temporary_server_databases(tmp_path: Path) -> None:
    """Two processes set up as `forecast run` does, each with Prefect's temporary server."""
    script = Path(__file__).parent / "helpers" / "tiny_flow.py"
    home = tmp_path / "prefect"
    environment = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    environment["PREFECT_HOME"] = str(home)
    children = []
    for _ in range(2):
        child = subprocess.Popen(
            [sys.executable, str(script)], env=environment, stdout=subprocess.PIPE, text=True
        )
        assert child.stdout.readline().strip() == "ready"  # holds its slot before the next starts
        children.append(child)
    outputs = [child.communicate(timeout=120)[0].split() for child in children]
    assert [child.returncode for child in children] == [0, 0]
    assert outputs == [
        ["COMPLETED", f"sqlite+aiosqlite:///{home / 'prefect.db'}"],
        ["COMPLETED", f"sqlite+aiosqlite:///{home / 'recurrent-1.db'}"],
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("candidates", "loads_keras"), [(None, True), (["naive", "linear"], False)]
)
def test_keras_loads_before_the_flow_even_with_a_users_own_server(
    tmp_path: Path, candidates: list[str] | None, loads_keras: bool
) -> None:
    """So a run's training seconds never include TensorFlow's import, whichever server it uses."""
    model = "" if candidates is None else f"model={{'candidates': {candidates!r}}}"
    check = (
        "import sys\n"
        "from flows.environment import start_server\n"
        "from forecasting.config import PipelineConfig\n"
        "assert 'keras' not in sys.modules\n"
        f"assert start_server(PipelineConfig({model})) is None\n"
        "print('keras' in sys.modules)\n"
    )
    env = own_prefect_environment(tmp_path / "prefect")
    env.update(PREFECT_API_URL="http://127.0.0.1:9/api", TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, "-c", check], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == str(loads_keras)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("case", "heartbeat"),
    [("temporary server", "None"), ("with triggers", "180"), ("Prefect's own server", "180")],
)
def test_flow_runs_on_the_temporary_server_have_heartbeats_off(
    tmp_path: Path, case: str, heartbeat: str
) -> None:
    """Heartbeats matter only to triggers, which the temporary server runs only when told to;
    a run on any other server (here Prefect's own, which an earlier import leaves it to) keeps
    them. The run still reports to the same server, and afterwards the setting is Prefect's."""
    first = "import prefect\n" if case == "Prefect's own server" else ""
    check = first + (
        "import flows.environment\n"
        "from forecasting.config import PipelineConfig\n"
        "flows.environment.prepare()\n"
        "config = PipelineConfig(model={'candidates': ['naive']})\n"
        "server = flows.environment.start_server(config)\n"
        "import flows.pipeline\n"
        "from prefect import flow\n"
        "from prefect.settings import get_current_settings\n"
        "@flow\n"
        "def probe(config):\n"
        "    return get_current_settings()\n"
        "flows.pipeline.forecast_pipeline = probe\n"
        "inside, after = flows.environment.run_flow(config, server), get_current_settings()\n"
        "print(server is not None, inside.api.url == after.api.url,\n"
        "      inside.flows.heartbeat_frequency, after.flows.heartbeat_frequency)\n"
    )
    env = own_prefect_environment(tmp_path / "prefect")
    if case == "with triggers":
        env["PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED"] = "true"
    done = subprocess.run(
        [sys.executable, "-c", check], env=env, capture_output=True, text=True, check=True
    )
    ours = str(case != "Prefect's own server")
    assert done.stdout.split()[-4:] == [ours, "True", heartbeat, "180"]
