"""Shared fixtures: the project's scripts run as real subprocesses on tiny sine data."""

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import REPO, read_events, script_env

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
    ``tmp_path`` (so anything written outside the folders the test names shows up there)."""
    env = script_env()

    def run(script: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(REPO / "scripts" / script), *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


@pytest.fixture
def best_val_loss() -> Callable[[Path], float]:
    """The smallest val/loss in a run's TensorBoard events, read with TensorBoard's reader."""

    def read(run_dir: Path) -> float:
        return min(event.value for event in read_events(run_dir).Scalars("val/loss"))

    return read


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"
