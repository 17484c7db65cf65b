"""Child processes for the store's writer tests. Imports `forecasting.store` and nothing heavy
(no TensorFlow, Keras or Prefect), so a test can start it in a fraction of a second, SIGKILL it
at any moment, or run two at once.

Modes (one line of text per message on stdout):
    serve OUT NAME KEEP     fork server: for each `go INDEX` line on stdin, forks a worker that
                            publishes runs INDEX, INDEX+1, ... until it is killed, answers
                            `pid PID`, reaps it and answers `exit STATUS` (-9 for SIGKILL).
                            The worker says `writing` as it starts publishing and
                            `batch SECONDS` after each batch of BATCH runs.
    once OUT NAME INDEX LOG answers `ready`, waits for `go` on stdin, publishes run INDEX once
                            (logging each file write to LOG, slowed down so that two writers
                            without a lock would interleave) and answers `done RUN_DIR`.
    read OUT NAME           answers `ready`, reads `latest` in a loop until stdin closes, then
                            answers `reads N`, an `error ...` line per failure, and `done`.
    hold LOCK               takes the file lock LOCK, answers `locked`, then sleeps.

The tests import its run builders and small helpers, so parent and child publish the same runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

import pandas as pd
from filelock import FileLock

from forecasting.store import backend, formats, layout, reader, writer

MODEL_BYTES = 200_000
BATCH = 6
START = pd.Timestamp("2024-01-01 00:00")


def run_id_for(index: int) -> str:
    """Run ids that sort like their index: the as-of moves one hour per index."""
    return layout.make_run_id(START + pd.Timedelta(hours=index), _fingerprint(index))


def run_files(index: int) -> tuple[str, dict[str, bytes], dict]:
    """A realistic run: forecast (CSV, Parquet), candidates, leaderboard, a fake model, the
    preprocessing spec, and a manifest whose as-of grows with `index`."""
    as_of = START + pd.Timedelta(hours=index)
    run_id = run_id_for(index)
    steps = range(1, 25)
    forecast = pd.DataFrame(
        {
            "unique_id": [series for series in ("a", "b") for _ in steps],
            "ds": [as_of + pd.Timedelta(hours=step) for _ in ("a", "b") for step in steps],
            "horizon_step": [step for _ in ("a", "b") for step in steps],
            "y_hat": [float(index + step) for _ in ("a", "b") for step in steps],
            **{column: 0.0 for column in layout.INTERVAL_COLUMNS},
            "model": "gru",
            "run_id": run_id,
            "as_of": as_of,
        }
    )
    board = pd.DataFrame({"model": ["naive", "gru"], "status": "ok", "mase": [1.0, 0.5]})
    backtest = forecast[["unique_id", "ds", "horizon_step", "y_hat"]].rename(columns={"y_hat": "y"})
    files = formats.frame_files(forecast, forecast, board, backtest)
    files["model.keras"] = os.urandom(MODEL_BYTES)
    files["preprocessing.json"] = formats.json_bytes({"input_size": 48, "horizon": 24})
    manifest = {"schema_version": 1, "run_id": run_id, "as_of": layout.iso(as_of)}
    return run_id, files, manifest


def publish(output_dir: Path, index: int, keep_runs: int = writer.KEEP_RUNS) -> Path:
    """Publishes run `index` of pipeline `demo`."""
    run_id, files, manifest = run_files(index)
    return writer.publish_run(output_dir, "demo", run_id, files, manifest, keep_runs)


def latest_id(output_dir: Path) -> str:
    return os.path.basename(os.readlink(output_dir / "demo" / "latest"))


def temporary_entries(pipeline_dir: Path) -> list[Path]:
    """Temporary files and folders in a pipeline folder, its runs folder and each run."""
    folders = [pipeline_dir, *(p for p in (pipeline_dir / "runs").iterdir() if p.is_dir())]
    return [p for folder in folders for p in folder.iterdir() if p.name.endswith(".tmp")]


def _fingerprint(index: int) -> str:
    return hashlib.sha256(str(index).encode()).hexdigest()


def _die_with_parent() -> None:
    """Linux: the kernel SIGKILLs this worker if the server dies, so none outlives a test."""
    with contextlib.suppress(AttributeError, OSError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _say(message: str) -> None:
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


def serve(output_dir: Path | str, name: str, keep_runs: int) -> None:
    _say("ready")
    for line in sys.stdin:
        index = int(line.split()[1])
        pid = os.fork()
        if pid == 0:
            _die_with_parent()
            try:
                _publish_forever(output_dir, name, index, keep_runs)
            except BaseException:
                traceback.print_exc()
            os._exit(1)  # only an exception gets here: the parent expects SIGKILL
        _say(f"pid {pid}")
        _, status = os.waitpid(pid, 0)
        _say(f"exit {os.waitstatus_to_exitcode(status)}")


def _publish_forever(output_dir: Path | str, name: str, index: int, keep_runs: int) -> None:
    """Publishes runs in batches of BATCH. The files of a batch are built before any of them is
    published; `writing` is said as the first batch starts and `batch SECONDS` after each, so
    that the parent can aim its kills at the publishing rather than at pandas."""
    said = False
    while True:
        batch = [run_files(index + offset) for offset in range(BATCH)]
        if not said:
            _say("writing")
            said = True
        started = time.perf_counter()
        for run_id, files, manifest in batch:
            writer.publish_run(output_dir, name, run_id, files, manifest, keep_runs)
        _say(f"batch {time.perf_counter() - started:.4f}")
        index += BATCH


def once(output_dir: Path, name: str, index: int, log: Path) -> None:
    write = backend._write_atomic

    def logged_write(path: Path, data: bytes) -> None:
        descriptor = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(descriptor, f"{os.getpid()} start {path.name}\n".encode())
            time.sleep(0.02)
            write(path, data)
            os.write(descriptor, f"{os.getpid()} end {path.name}\n".encode())
        finally:
            os.close(descriptor)

    backend._write_atomic = logged_write
    run_id, files, manifest = run_files(index)
    _say("ready")
    sys.stdin.readline()
    run_dir = writer.publish_run(output_dir, name, run_id, files, manifest)
    _say(f"done {run_dir}")


def read(output_dir: Path | str, name: str) -> None:
    """Reads `latest` in a loop until stdin closes, checking that every file of the run it
    read belongs to that run; then says `reads N` and one `error ...` line per failure."""
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    reads, errors = 0, []
    _say("ready")
    while not stop.is_set():
        try:
            run = reader.read_latest(output_dir, name)
            labels, run_id = set(run.forecast["run_id"]), layout.basename(run.path)
            if run.manifest["run_id"] != run_id or labels != {run_id}:
                raise AssertionError(f"{run_id} holds the files of {labels}")
            reads += 1
        except Exception as error:  # every failure is a finding
            errors.append(repr(error))
        time.sleep(0.001)  # leaves the writers some CPU on a small machine
    _say(f"reads {reads}")
    for error in errors[:20]:
        _say(f"error {error}")
    _say("done")


def hold(lock_path: Path) -> None:
    with FileLock(lock_path):
        _say("locked")
        time.sleep(600)


def _location(text: str) -> Path | str:
    """A folder, or an s3:// URL (the S3 tests give one, with the endpoint in the environment)."""
    return text if layout.url_scheme(text) else Path(text)


def main(argv: list[str]) -> None:
    heavy = {"tensorflow", "keras", "prefect"} & set(sys.modules)
    if heavy:
        sys.exit(f"publish_child imported {sorted(heavy)}; it must stay light")
    mode, *args = argv
    if mode == "serve":
        serve(_location(args[0]), args[1], int(args[2]))
    elif mode == "once":
        once(Path(args[0]), args[1], int(args[2]), Path(args[3]))
    elif mode == "read":
        read(_location(args[0]), args[1])
    elif mode == "hold":
        hold(Path(args[0]))
    else:
        sys.exit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
