"""Shared fixtures: the project's scripts run as real subprocesses on tiny sine data."""

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

RunScript = Callable[..., subprocess.CompletedProcess]


@pytest.fixture
def tiny_sine() -> list[str]:
    """Overrides for a run of a few seconds on one CPU core: 2 epochs of 12 windows, 8 units."""
    return [
        "data.n_points=600",
        "seq_length=10",
        "model.hidden_size=8",
        "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
    ]


@pytest.fixture
def run_script(tmp_path: Path) -> RunScript:
    """``run_script("train.py", *args)``: the script under this interpreter, in ``tmp_path``.

    The checkout goes on PYTHONPATH (CI installs the package instead, where this is harmless)."""
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))

    def run(script: str, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(REPO / "scripts" / script), *args],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": pythonpath},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run
