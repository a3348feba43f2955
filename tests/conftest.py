"""Shared fixtures: the project's scripts run as real processes on tiny sine data."""

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests import warm_start
from tests.helpers import REPO, read_events
from tests.launching import TRAIN, Launch, Launched

RunScript = Callable[..., subprocess.CompletedProcess]


@pytest.fixture
def tiny_sine() -> list[str]:
    """Overrides for a run of about a second on one CPU core: 2 epochs of 11 windows, 8 units."""
    return [
        "data.n_points=600",
        "seq_length=10",
        "model.hidden_size=8",
        "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false",
    ]


@pytest.fixture
def run_script(tmp_path: Path) -> RunScript:
    """``run_script("train.py", *args)``: the script under this interpreter, run as a user would, in
    ``tmp_path`` (so anything written outside the folders the test names shows up there). The process
    is a fork of the session's zygote (tests/warm_start.py), which has the imports done already."""

    def run(script: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return warm_start.run([REPO / "scripts" / script, *args], cwd=tmp_path, timeout=timeout)

    return run


@pytest.fixture(scope="session", autouse=True)
def zygote() -> Iterator[None]:
    """The zygote of tests/warm_start.py ends with the session (it starts on first use)."""
    yield
    warm_start.ZYGOTE.stop()


@pytest.fixture
def best_val_loss() -> Callable[[Path], float]:
    """The smallest val/loss in a run's TensorBoard events, read with TensorBoard's reader."""

    def read(run_dir: Path) -> float:
        return min(event.value for event in read_events(run_dir).Scalars("val/loss"))

    return read


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    """A real file system of 2 MB (tmpfs), mounted for the test; skipped where mounting is not allowed."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launch]:
    """``launch(*overrides, env=..., cwd=...)`` starts scripts/train.py; whatever of its process group is
    still alive when the test ends is killed (a failed test leaves no training behind)."""
    started: list[subprocess.Popen | warm_start.WarmProcess] = []

    def start(*overrides: str, env: dict[str, str] | None = None, cwd: Path = tmp_path) -> Launched:
        log = tmp_path / f"train-{len(started)}.log"
        with log.open("w") as out:
            process = warm_start.popen(
                [TRAIN, *overrides],
                cwd=cwd,
                env=env,
                stdout=out,  # a file, not a pipe nobody reads while the run goes on
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started.append(process)
        return Launched(process, log)

    yield start
    for process in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
