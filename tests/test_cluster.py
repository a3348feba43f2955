"""Two nodes on one machine, started as a cluster starts them (issue 24): real processes, gloo.

A cluster starts one process per node with the user's own command line, either with ``MASTER_ADDR``,
``MASTER_PORT`` and ``NODE_RANK`` set (Lightning's general cluster environment) or under torchrun with a
c10d rendezvous. Each way, two nodes with one process and batch B must train exactly as one process with
batch 2B, into one run folder that the first node writes, and resume on both nodes after a stop.
"""

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from seqexp.app.run_status import read_status
from tests.helpers import assert_user_error, free_port, grammar_corpus, read_events, script_env
from tests.launching import TRAIN, WAIT_S, Launched, run_train, two_nodes, wait_for

pytestmark = pytest.mark.slow

STEPS = 40
TEXT = [
    "data=text",
    "data.path=corpus.txt",
    "seq_length=10",
    "model=gru",
    "model.hidden_size=16",
    "model.dropout=0",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "trainer.val_check_interval=10",
    f"trainer.max_steps={STEPS}",
]
TWO_NODES = [*TEXT, "trainer=ddp_cpu", "trainer.num_nodes=2", "trainer.devices=1", "data.batch_size=2"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("nodes")
    (folder / "corpus.txt").write_text(grammar_corpus(300), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def one_process(workspace: Path) -> Path:
    """The reference: one process with twice the batch."""
    run = workspace / "one-process"
    result = run_train(*TEXT, "data.batch_size=4", f"hydra.run.dir={run}", cwd=workspace)
    assert result.returncode == 0, result.stderr[-3000:]
    return run


class Nodes:
    """The processes of two nodes, each in a session of its own; whatever is left is killed at the end."""

    def __init__(self, workspace: Path, logs: Path) -> None:
        self.workspace, self.log_folder = workspace, logs
        self.processes: list[subprocess.Popen] = []
        self.logs: list[Path] = []

    def start(self, command: list, env: dict[str, str]) -> subprocess.Popen:
        log = self.log_folder / f"process-{len(self.processes)}.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                [sys.executable, *command], cwd=self.workspace, env=env, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.processes.append(process)
        self.logs.append(log)
        return process

    def with_env(self, overrides: list[str]) -> list[subprocess.Popen]:
        """Lightning's general cluster environment: the same command on each node, NODE_RANK apart."""
        return [self.start(argv, env) for argv, env in two_nodes([TRAIN, *overrides])]

    def with_torchrun(self, overrides: list[str]) -> list[subprocess.Popen]:
        """torchrun on each node, meeting at a c10d rendezvous on the first node's address."""
        launcher = ["--nnodes=2", "--nproc_per_node=1", "--rdzv_backend=c10d"]
        launcher.append(f"--rdzv_id=nodes-{os.getpid()}")
        return [self.start(argv, env) for argv, env in two_nodes([TRAIN, *overrides], torchrun=launcher)]

    def output(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}" for log in self.logs)

    def wait(self) -> list[int]:
        return [process.wait(timeout=WAIT_S) for process in self.processes[-2:]]

    def stop(self) -> None:
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)


@pytest.fixture
def nodes(workspace: Path, tmp_path: Path) -> Iterator[Nodes]:
    started = Nodes(workspace, logs=tmp_path)
    yield started
    started.stop()


def scalars(run: Path, tag: str) -> list[tuple[int, float]]:
    return [(event.step, event.value) for event in read_events(run).Scalars(tag)]


def weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def assert_trained_like(
    run: Path, reference: Path, tags: tuple[str, ...] = ("train/loss", "val/loss")
) -> None:
    for tag in tags:
        ours, theirs = scalars(run, tag), scalars(reference, tag)
        assert [step for step, _ in ours] == [step for step, _ in theirs], tag
        assert [v for _, v in ours] == pytest.approx([v for _, v in theirs], abs=1e-5), tag
    assert len(scalars(run, "train/loss")) == STEPS
    ours, theirs = weights(run), weights(reference)
    assert ours.keys() == theirs.keys()
    for name, tensor in ours.items():
        torch.testing.assert_close(tensor, theirs[name], atol=1e-5, rtol=1e-5, msg=name)


@pytest.mark.parametrize("launcher", ["env", "torchrun"])
def test_two_nodes_train_like_one_process_with_twice_the_batch_into_one_folder(
    workspace, one_process, nodes, launcher
):
    run = workspace / f"two-nodes-{launcher}"
    start = nodes.with_env if launcher == "env" else nodes.with_torchrun
    start([*TWO_NODES, f"hydra.run.dir={run}"])
    assert nodes.wait() == [0, 0], nodes.output()
    assert "Traceback" not in nodes.output(), nodes.output()

    assert_trained_like(run, one_process)
    # One folder, written by the first node: one config, one status, one record of scalars; the second
    # node's process adds its own log and nothing else.
    assert read_status(run).status == "ok"
    events = {path.name.split(".")[4] for path in (run / "tensorboard").glob("events.out.tfevents.*")}
    assert len(events) == 1, events  # one writer's process id
    second = "train_node1.log" if launcher == "env" else "train_node1_rank1.log"
    assert sorted(p.name for p in run.glob("*.log")) == ["train.log", second]
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in (run / second).read_text()
    assert sorted(p.name for p in (run / ".hydra").iterdir()) == [
        "config.yaml",
        "hydra.yaml",
        "overrides.yaml",
    ]


def test_a_two_node_run_stopped_by_a_signal_resumes_on_both_nodes_to_the_same_result(
    workspace, one_process, nodes
):
    run = workspace / "stopped"
    first, _ = nodes.with_env([*TWO_NODES, "save_every_steps=5", f"hydra.run.dir={run}"])
    checkpoint = run / "checkpoints" / "last.ckpt"
    wait_for(checkpoint.exists, Launched(first, nodes.logs[0]), f"{checkpoint} while both nodes trained")
    first.send_signal(signal.SIGTERM)  # to the first node's process alone, as a scheduler's preemption
    codes = nodes.wait()
    assert codes[0] == 128 + signal.SIGTERM, nodes.output()
    assert "Traceback" not in nodes.output(), nodes.output()
    status = read_status(run)
    assert status.status == "interrupted" and status.signal == signal.SIGTERM
    stopped_at = torch.load(checkpoint, weights_only=True)["global_step"]
    assert 0 < stopped_at < STEPS

    nodes.with_env([f"resume={run}"])
    assert nodes.wait() == [0, 0], nodes.output()
    assert read_status(run).status == "ok"
    # (The stop validated at the step it stopped at, which the reference never did: the losses of
    # training and the weights must match.)
    assert_trained_like(run, one_process, tags=("train/loss",))


def test_refusals_of_a_run_on_several_nodes_are_one_line_and_write_nothing(workspace, one_process, nodes):
    # Several nodes with no address to meet at.
    result = run_train(*TWO_NODES, "hydra.run.dir=lonely", cwd=workspace)
    assert_user_error(result, "trainer.num_nodes=2", "MASTER_ADDR")
    # A second node whose folder is generated: each node would read its own clock.
    env = {**script_env(), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "NODE_RANK": "1"}
    result = run_train(*TWO_NODES, cwd=workspace, env=env)
    assert_user_error(result, "hydra.run.dir")

    # A second node pointed at a finished run's folder (the command of a run that has ended, typed again):
    # the first node refuses it, so this one must not wait for it.
    env = {**script_env(), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "NODE_RANK": "1"}
    result = run_train(*TWO_NODES, f"hydra.run.dir={one_process}", cwd=workspace, env=env)
    assert_user_error(result, f"hydra.run.dir='{one_process}' holds another run", f"resume={one_process}")

    # A resume under torchrun with another number of processes than the run's: each worker refuses, and
    # the run's record is left as it was.
    run = one_process
    before = (run / "status.json").read_bytes()
    refused = nodes.start(
        [
            "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2", "--rdzv_backend=c10d",
            f"--rdzv_endpoint=127.0.0.1:{free_port()}", str(TRAIN), f"resume={run}",
            f"trainer.max_steps={STEPS + 10}",
        ],
        script_env(),
    )  # fmt: skip
    assert refused.wait(timeout=WAIT_S) != 0
    errors = {line for line in nodes.logs[-1].read_text().splitlines() if line.startswith("error: ")}
    assert errors == {
        "error: trainer.num_nodes=1 x trainer.devices=1 makes 1 process(es), but torchrun started 2: make "
        "them agree with --nnodes x --nproc_per_node"
    }, nodes.output()
    assert (run / "status.json").read_bytes() == before
