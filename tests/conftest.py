"""Shared helpers: run the real entry points as subprocesses, and read TensorBoard events back."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# A sine run small enough for a test: a few seconds, most of it importing Lightning.
TINY_SINE = [
    "data.n_points=600",
    "data.batch_size=2",
    "seq_length=20",
    "model.hidden_size=8",
    "trainer.max_epochs=2",
    "trainer.enable_progress_bar=false",
]


def run_script(
    script: str, *args: str, timeout: float = 300, cwd: Path = REPO
) -> subprocess.CompletedProcess:
    """Run ``scripts/<script>`` with ``args`` the way a user would (from the repository root by default)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("HYDRA_FULL_ERROR", None)  # a user's shell may set it; the tests check the plain output
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def read_events(run_dir: Path):
    """TensorBoard's own reader over a run's events (all sizes kept)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    accumulator.Reload()
    return accumulator


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"
