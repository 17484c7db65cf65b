"""Publishing across processes: writers SIGKILLed at random moments while a reader reads
`latest`, two writers at once, and a lock left by a killed process. The writers run
tests/helpers/publish_child.py, which imports no TensorFlow, so each trial costs milliseconds."""

from __future__ import annotations

import os
import queue
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from filelock import FileLock, Timeout

from forecasting.store.reader import read_latest, read_run, sealed_runs
from tests.helpers.publish_child import (
    BATCH,
    latest_id,
    publish,
    run_id_for,
    temporary_entries,
)

CHILD = Path(__file__).parent / "helpers" / "publish_child.py"
TRIALS = 150
KEEP_RUNS = 5


class Child:
    """A publish_child.py process and its line protocol (see its docstring)."""

    def __init__(self, tmp_path: Path, *args: object) -> None:
        self.stderr_path = tmp_path / f"child-{args[0]}-{time.monotonic_ns()}.err"
        with open(self.stderr_path, "w") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, str(CHILD), *map(str, args)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        self.lines: queue.Queue[str] = queue.Queue()
        self.batch_seconds: list[float] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.strip())

    def send(self, line: str) -> None:
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def expect(self, word: str, timeout: float = 30) -> str:
        """The rest of the next line, which must start with `word`; `batch` lines (how long
        a worker took to publish a batch) are recorded in between."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                line = "<nothing>"
            if not line.startswith("batch "):
                break
            self.batch_seconds.append(float(line.split()[1]))
        assert line.split(" ", 1)[0] == word, f"expected {word!r}, got {line!r}: {self.stderr()}"
        return line.partition(" ")[2]

    def stderr(self) -> str:
        return self.stderr_path.read_text()[-2000:]

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _check_after_kill(pipeline_dir: Path, previous: str) -> None:
    """What a killed writer must leave: a readable `latest` at one of the two newest sealed
    runs (a kill between sealing and switching leaves the newest unswitched), every sealed run
    whole, and the previous `latest` readable unless retention legitimately removed it."""
    sealed = sealed_runs(pipeline_dir)
    latest = read_latest(pipeline_dir.parent, "demo")
    assert latest.path.name in sealed[-2:]
    for run_id in sealed:
        read_run(pipeline_dir / "runs" / run_id)
    if previous not in sealed:
        assert len([run_id for run_id in sealed if run_id > previous]) >= KEEP_RUNS


def _check_clean(pipeline_dir: Path, newest: str) -> None:
    runs = [entry.name for entry in (pipeline_dir / "runs").iterdir()]
    assert not temporary_entries(pipeline_dir)
    assert sorted(runs) == sealed_runs(pipeline_dir)
    assert len(runs) <= KEEP_RUNS and latest_id(pipeline_dir.parent) == newest


@pytest.mark.slow
def test_writers_killed_at_random_never_expose_a_partial_run(tmp_path: Path) -> None:
    output_dir, pipeline_dir = tmp_path / "out", tmp_path / "out" / "demo"
    previous = publish(output_dir, 0).name
    server = Child(tmp_path, "serve", output_dir, "demo", KEEP_RUNS)
    server.expect("ready")
    reader = Child(tmp_path, "read", output_dir, "demo")
    reader.expect("ready")
    rng = random.Random(0)
    started, interrupted, unswitched = time.perf_counter(), 0, 0
    try:
        for trial in range(1, TRIALS + 1):
            server.send(f"go {trial * 1000}")
            pid = int(server.expect("pid"))
            server.expect("writing")
            # Uniform over about the time a batch takes to publish lately on this machine (a
            # little more, so that some batches finish and keep the measure current)
            batch = statistics.median(server.batch_seconds[-9:] or [0.08])
            time.sleep(rng.uniform(0, 1.2 * batch))
            os.kill(pid, signal.SIGKILL)
            assert server.expect("exit") == str(-signal.SIGKILL), server.stderr()
            _check_after_kill(pipeline_dir, previous)
            interrupted += bool(temporary_entries(pipeline_dir))
            unswitched += latest_id(output_dir) != sealed_runs(pipeline_dir)[-1]
            previous = publish(output_dir, trial * 1000 + 999, KEEP_RUNS).name
            _check_clean(pipeline_dir, previous)
    finally:
        server.close()
        reader.process.stdin.close()
    elapsed = time.perf_counter() - started
    reads = int(reader.expect("reads"))
    errors = []
    while (line := reader.lines.get(timeout=30)) != "done":
        errors.append(line)
    reader.close()
    print(
        f"\n{TRIALS} kills in {elapsed:.1f} s: {interrupted} mid-write, {unswitched} sealed but "
        f"not yet switched; {reads} reads of latest in another process, {len(errors)} failed; "
        f"a batch of {BATCH} publishes took {statistics.median(server.batch_seconds or [0]):.3f} s"
    )
    assert errors == []
    assert reads >= TRIALS
    assert interrupted >= TRIALS // 4, "too few kills landed inside a publish to prove much"


def _wait_for_line_from(log: Path, pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and f"{pid} start" in log.read_text():
            return
        time.sleep(0.005)
    raise AssertionError(f"process {pid} never started writing")


@pytest.mark.parametrize("first", ["older", "newer", "neither"])
def test_two_publishers_at_once_take_turns_and_latest_ends_at_the_newer_as_of(
    tmp_path: Path, first: str
) -> None:
    """`first` starts writing before the other is let go; "neither": both are let go at once."""
    output_dir, log = tmp_path / "out", tmp_path / "writes.log"
    publish(output_dir, 0)
    children = {
        "older": Child(tmp_path, "once", output_dir, "demo", 10, log),
        "newer": Child(tmp_path, "once", output_dir, "demo", 20, log),
    }
    try:
        for child in children.values():
            child.expect("ready")
        if first == "neither":
            for child in children.values():
                child.send("go")
        else:
            second = "newer" if first == "older" else "older"
            children[first].send("go")
            _wait_for_line_from(log, children[first].process.pid)
            children[second].send("go")
        run_dirs = [Path(child.expect("done")) for child in children.values()]
    finally:
        for child in children.values():
            child.close()
    assert [run_dir.name for run_dir in run_dirs] == [run_id_for(10), run_id_for(20)]
    for run_dir in run_dirs:
        read_run(run_dir)
    assert latest_id(output_dir) == run_id_for(20)
    writers = [line.split()[0] for line in log.read_text().splitlines()]
    turns = [pid for index, pid in enumerate(writers) if index == 0 or pid != writers[index - 1]]
    assert len(turns) == 2, f"the two publishes interleaved: {writers}"
    if first != "neither":
        assert turns[0] == str(children[first].process.pid)


def test_a_lock_left_by_a_killed_process_does_not_block_the_next_publish(tmp_path: Path) -> None:
    """FileLock uses flock(2) on Linux: the kernel releases it when its holder dies."""
    output_dir = tmp_path / "out"
    publish(output_dir, 0)
    lock_path = output_dir / "demo" / ".publish.lock"
    holder = Child(tmp_path, "hold", lock_path)
    try:
        holder.expect("locked")
        with pytest.raises(Timeout):
            FileLock(lock_path, timeout=0.2).acquire()
    finally:
        holder.process.kill()
        holder.process.wait()
    started = time.perf_counter()
    publish(output_dir, 1)
    assert time.perf_counter() - started < 1.0
    assert latest_id(output_dir) == run_id_for(1)
