"""Real training processes for the tests of signals, kills and resumes: started in a session of their own
(their DDP ranks and joblib workers too), so that a test can signal the whole group, and waited for with
a bound."""

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from seqexp.trackers.metrics_csv import read_rows
from tests import warm_start
from tests.helpers import REPO, free_port, read_events, script_env

TRAIN = REPO / "scripts" / "train.py"
WAIT_S = 300  # bound on every wait: start-up alone takes tens of seconds on busy shared cores


@dataclass
class Launched:
    """A training process started in a session of its own (its DDP ranks and joblib workers too)."""

    process: "subprocess.Popen | warm_start.WarmProcess"
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def wait(self, timeout: float = WAIT_S) -> int:
        return self.process.wait(timeout=timeout)


Launch = Callable[..., Launched]


def run_train(*overrides: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return warm_start.run([TRAIN, *overrides], cwd=cwd, env=env, timeout=WAIT_S)


def wait_for(condition: Callable[[], bool], run: Launched, what: str) -> None:
    """Poll until ``condition()``; fail if the run ends first or it takes longer than WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if run.process.poll() is not None:
            pytest.fail(f"the run ended (exit {run.process.returncode}) before {what}:\n{run.output()}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {WAIT_S} s:\n{run.output()}")
        time.sleep(0.05)


def checkpoint_step_logged(checkpoint: Path, *, in_tensorboard: bool = False) -> bool:
    """Whether the train/loss of the step ``checkpoint`` was saved after is in its run's metrics.csv
    (and, with ``in_tensorboard``, in its TensorBoard events, which are flushed after the CSV)."""
    try:
        saved = torch.load(checkpoint, weights_only=True)["global_step"]
    except (OSError, RuntimeError, EOFError):  # replaced as it was read
        return False
    run_dir = checkpoint.parent.parent
    if not any(
        name == "train/loss" and step >= saved - 1 for step, name, _, _ in read_rows(run_dir / "metrics.csv")
    ):
        return False
    return not in_tensorboard or saved - 1 in [e.step for e in read_events(run_dir).Scalars("train/loss")]


def wait_for_a_checkpoint_and_its_step(run: Launched, folder: Path) -> None:
    """Wait until a run under ``folder`` (the run's folder, or a sweep's) has saved, and metrics.csv holds
    the training loss of the step its latest checkpoint saved, read afresh at every poll.

    A checkpoint saved when a step ends is written before Lightning logs that step's scalars; a SIGKILL in
    between loses that one point for good (docs/design.md §6). On busy cores the gap can outlast a short
    sleep, and a kill there tests that gap rather than the resume these tests are about. Striking right
    after this returns misses the gap unless the next checkpoint comes within the poll's own instant, so
    the tests that strike with SIGKILL save every many steps.
    """

    def saved_and_logged() -> bool:
        saved = list(folder.glob("**/checkpoints/last.ckpt"))
        return bool(saved) and all(checkpoint_step_logged(checkpoint) for checkpoint in saved)

    wait_for(saved_and_logged, run, f"a checkpoint under {folder} and the train/loss of its step")


def two_nodes(script_args: list, torchrun: list[str] | None = None) -> list[tuple[list, dict[str, str]]]:
    """``(arguments after python, environment)`` of the two nodes of one run on this machine, started as
    a cluster starts them: the same command with ``MASTER_ADDR=127.0.0.1``, one free ``MASTER_PORT`` and
    ``NODE_RANK`` 0 and 1; or, given torchrun's own arguments, two torchrun agents whose c10d rendezvous
    is at 127.0.0.1 on a free port (any ``--rdzv_endpoint`` given is replaced)."""
    env = script_env()
    if torchrun is not None:
        launcher = [arg for arg in torchrun if not arg.startswith("--rdzv_endpoint=")]
        endpoint = f"--rdzv_endpoint=127.0.0.1:{free_port()}"
        return [(["-m", "torch.distributed.run", *launcher, endpoint, *script_args], env)] * 2
    port = str(free_port())
    return [
        (list(script_args), {**env, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "NODE_RANK": str(node)})
        for node in (0, 1)
    ]
