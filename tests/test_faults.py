"""Faults injected into real processes, from one table (issue 19): FAULTS.

Each row starts scripts/train.py (a run or a sweep) in a session of its own, waits for its moment and
strikes: a signal to the process or to its whole group, a kill of one DDP rank, ... Then it says what must
come out: the exit status, the status.json of the run (or of each job of a sweep, in job order) with the
signal recorded, and a line the output must hold. The same checks hold for every row:

- no traceback, and no process of the session is left behind (DDP ranks, joblib workers);
- every checkpoint left behind loads with ``weights_only=True``;
- ``resume=<folder>`` finishes the work: every run ends ``ok`` at its last step, and its train/loss curve
  has every step once.

To add a fault, add a row to FAULTS: the overrides, a strike (the helpers below, or a new one) and the
outcome. Faults that need checks of their own are further down (a read-only folder, a sweep folder whose
jobs never composed), and the older ones live beside the code they test:

- kills and signals to one run, a second Ctrl-C, SLURM's requeue, concurrent resumes, a changed corpus,
  an adapted burn-in: tests/test_resume.py;
- full disks (checkpoint, status file), generated folders taken in a race: tests/test_run_endings.py;
- full disk or a kill during token-file preparation: tests/test_token_file.py;
- two sweeps in the same second: tests/test_sweeps.py;
- damaged or cut event files, a report piped into head: tests/test_report.py, tests/test_user_mistakes.py.
"""

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from seqexp.app.run_status import read_status
from tests.helpers import read_events
from tests.launching import Launched, run_train, wait_for, wait_for_a_checkpoint_and_its_step

MAX_STEPS = 200  # long enough that every strike lands mid-run, even on busy cores
TINY = [
    "data.n_points=600",
    "seq_length=10",
    "model.hidden_size=8",
    "trainer.enable_progress_bar=false",
    "trainer.log_every_n_steps=1",  # every step's train/loss: a resume must neither repeat nor skip one
    "save_every_steps=4",
    f"trainer.max_steps={MAX_STEPS}",
]
Strike = Callable[[Launched, Path], None]


def checkpoints(folder: Path) -> list[Path]:
    return sorted(folder.glob("**/checkpoints/last.ckpt"))


def saving_seldom(overrides: list[str]) -> list[str]:
    """For a SIGKILL: checkpoints far apart, so that the strike misses the instant between a checkpoint
    and its step's scalars (tests/launching.py::wait_for_a_checkpoint_and_its_step)."""
    return [o if not o.startswith("save_every_steps=") else "save_every_steps=50" for o in overrides]


def after_checkpoints(count: int, signum: int, group: bool = False) -> Strike:
    """Once ``count`` runs (jobs of a sweep) under the folder have saved, send ``signum`` to the process,
    or to its whole process group as a terminal's Ctrl-C does."""

    def strike(run: Launched, folder: Path) -> None:
        wait_for(lambda: len(checkpoints(folder)) >= count, run, f"{count} checkpoint(s) under {folder}")
        if signum == signal.SIGKILL:  # not between a checkpoint and its step's scalars
            wait_for_a_checkpoint_and_its_step(run, folder)
        if group:
            os.killpg(run.process.pid, signum)
        else:
            run.process.send_signal(signum)

    return strike


def kill_rank(rank: int) -> Strike:
    """Once the run has saved, SIGKILL its DDP rank ``rank`` (a process Lightning started)."""

    def strike(run: Launched, folder: Path) -> None:
        wait_for_a_checkpoint_and_its_step(run, folder)
        os.kill(rank_pid(run, rank), signal.SIGKILL)

    return strike


def rank_pid(run: Launched, rank: int) -> int:
    for environ in Path("/proc").glob("[0-9]*/environ"):
        pid = int(environ.parent.name)
        with contextlib.suppress(OSError):
            if os.getsid(
                pid
            ) == run.process.pid and f"LOCAL_RANK={rank}".encode() in environ.read_bytes().split(b"\0"):
                return pid
    pytest.fail(f"no process of rank {rank} in the run's session:\n{run.output()}")


CUT_SHORT = "the signal cut short the validation at step "


def cut_short_early(note: str | None) -> bool:
    """The status says the validation was cut short after a few of its batches (not after all of them)."""
    found = re.search(re.escape(CUT_SHORT) + r"10 after (\d+) of (\d+) batches", note or "")
    return found is not None and int(found[1]) < int(found[2]) // 2


@dataclass(frozen=True)
class Fault:
    id: str
    overrides: list[str]
    strike: Strike
    exit_code: int
    statuses: list[str]  # of the run, or of each job of a sweep in job order
    signal: int | None  # what every status records
    says: str = ""  # in the output
    # What the status's note says. A strike that waits for a checkpoint can still land while the run
    # validates (an epoch's end comes at any moment on busy cores); then that validation is cut short.
    note: Callable[[str | None], bool] = lambda note: note is None or note.startswith(CUT_SHORT)
    max_steps: int = MAX_STEPS
    jobs: int = 1  # that resume= finishes: a sweep's jobs, also those that never got a folder
    marks: list[pytest.MarkDecorator] = field(default_factory=list)

    @property
    def sweep(self) -> bool:
        return "-m" in self.overrides


SWEEP = ["-m", "model=rnn,gru,lstm", *TINY]

FAULTS = [
    Fault(
        "sweep-sigterm-to-the-joblib-parent",
        # SIGTERM to the sweep's process alone, as `kill PID` or `timeout` send it: the sweep passes it
        # on to the two jobs running in joblib workers; the third, queued, never starts.
        [*SWEEP, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
        after_checkpoints(2, signal.SIGTERM),
        exit_code=128 + signal.SIGTERM,
        statuses=["interrupted", "interrupted", "not started"],
        signal=signal.SIGTERM,
        says="the sweep was stopped by signal 15: python scripts/train.py resume=",
        jobs=3,
        marks=[pytest.mark.slow],  # 35 s; sweep-ctrl-c keeps a sweep's signal in the fast tier
    ),
    Fault(
        "sweep-ctrl-c",
        # Ctrl-C reaches the whole process group; the basic launcher runs the jobs in the sweep's process.
        SWEEP,
        after_checkpoints(1, signal.SIGINT, group=True),
        exit_code=128 + signal.SIGINT,
        statuses=["interrupted", "not started", "not started"],
        signal=signal.SIGINT,
        says="the sweep was stopped by signal 2",
        jobs=3,
    ),
    Fault(
        "sweep-sigkill",
        # Nothing can be recorded: the job in progress stays "running" (the report says killed), and the
        # jobs after it never got a folder. resume=<sweep dir> still finishes all three.
        saving_seldom(SWEEP),
        after_checkpoints(1, signal.SIGKILL, group=True),
        exit_code=-signal.SIGKILL,
        statuses=["running"],
        signal=None,
        jobs=3,
        marks=[pytest.mark.slow],
    ),
    Fault(
        "ddp-rank-killed",
        # Rank 0 sees a gloo transport error that names no rank; it finds the dead one and says so.
        saving_seldom(["trainer=ddp_cpu", "trainer.devices=2", *TINY, "data.batch_size=2"]),
        kill_rank(1),
        exit_code=1,
        statuses=["failed"],
        signal=None,
        says="error: DDP rank 1 (process ",
        marks=[pytest.mark.slow],
    ),
    Fault(
        "sigterm-during-a-long-validation",
        # 9000 validation batches of one window each; the checkpoint at step 10 comes just before the
        # validation at step 10 starts. The stop must not wait for it to end (SLURM kills 30 s after).
        [
            *TINY,
            "data.n_points=100000",
            "data.val_fraction=0.9",
            "data.batch_size=1",
            "trainer.val_check_interval=10",
            "save_every_steps=10",
            "trainer.max_steps=12",
        ],  # fmt: skip
        after_checkpoints(1, signal.SIGTERM),
        exit_code=128 + signal.SIGTERM,
        statuses=["interrupted"],
        signal=signal.SIGTERM,
        says="the signal cut short the validation at step 10",
        note=cut_short_early,
        max_steps=12,
    ),
]


def job_dirs(sweep: Path) -> list[Path]:
    return sorted((p.parent for p in sweep.glob("*/.hydra")), key=lambda job: int(job.name.split("_")[0]))


def assert_session_ends(run: Launched) -> None:
    """No process of the run's session is left (its group is the session's: start_new_session)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(run.process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    pytest.fail(f"processes of the run outlived it:\n{run.output()}")


def train_loss_steps(run_dir: Path) -> list[int]:
    return [event.step for event in read_events(run_dir).Scalars("train/loss")]


@pytest.mark.parametrize("fault", [pytest.param(f, id=f.id, marks=f.marks) for f in FAULTS])
def test_a_fault_ends_as_the_table_says_and_resume_finishes_the_work(tmp_path, launch, fault):
    folder = tmp_path / "work"
    run = launch(*fault.overrides, f"hydra.{'sweep' if fault.sweep else 'run'}.dir={folder}")
    fault.strike(run, folder)
    assert run.wait() == fault.exit_code, run.output()
    output = run.output()
    assert "Traceback" not in output, output
    assert fault.says in output, output
    assert_session_ends(run)

    runs = job_dirs(folder) if fault.sweep else [folder]
    statuses = [read_status(r) for r in runs]
    assert [s.status for s in statuses] == fault.statuses, output
    assert {s.signal for s in statuses} == {fault.signal}
    assert all(fault.note(s.note) for s in statuses), [s.note for s in statuses]
    for saved in checkpoints(folder):
        assert torch.load(saved, weights_only=True)["global_step"] < fault.max_steps

    resumed = run_train(f"resume={folder}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    runs = job_dirs(folder) if fault.sweep else [folder]
    assert len(runs) == fault.jobs
    for r in runs:
        assert read_status(r).status == "ok", resumed.stderr[-3000:]
        assert (
            torch.load(r / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == fault.max_steps
        )
        assert train_loss_steps(r) == list(range(fault.max_steps)), r.name


def test_a_finished_sweep_resumed_has_nothing_to_do_and_a_search_is_resumed_trial_by_trial(
    tmp_path, run_script, tiny_sine
):
    sweep = tmp_path / "sweep"
    result = run_script("train.py", "-m", "model=rnn,gru", f"hydra.sweep.dir={sweep}", *tiny_sine)
    assert result.returncode == 0, result.stderr[-3000:]
    before = {job: (job / "status.json").read_bytes() for job in job_dirs(sweep)}

    again = run_script("train.py", f"resume={sweep}")
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("finished earlier (status ok): nothing to resume") == 2, again.stdout
    assert {job: (job / "status.json").read_bytes() for job in job_dirs(sweep)} == before

    added = run_script("train.py", f"resume={sweep}", "trainer.max_steps=50")
    assert added.returncode == 2 and "error: 'trainer.max_steps=50': resume=<sweep dir>" in added.stderr

    search = tmp_path / "search"
    result = run_script(
        "train.py", "-m", "hparams_search=optuna", "hydra.sweeper.n_trials=1", f"hydra.sweep.dir={search}",
        *tiny_sine, "trainer.max_epochs=1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    refused = run_script("train.py", f"resume={search}")
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert refused.stderr.startswith(f"error: resume='{search}' is a search (OptunaSweeper)"), refused.stderr
    assert "Traceback" not in refused.stderr


# --------------------------------------------------------------------------------------------------------
# Faults with checks of their own.


def test_a_resume_in_a_read_only_folder_is_one_line_and_changes_nothing(small_disk, run_script, tiny_sine):
    run = small_disk / "run"
    result = run_script("train.py", *tiny_sine, "trainer.max_steps=3", f"hydra.run.dir={run}")
    assert result.returncode == 0, result.stderr[-3000:]
    before = {path: path.read_bytes() for path in run.rglob("*") if path.is_file()}
    remounted = subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], capture_output=True)
    if remounted.returncode != 0:
        pytest.skip(f"cannot remount read-only here: {remounted.stderr.decode().strip()}")

    refused = run_script("train.py", f"resume={run}", "trainer.max_steps=6")
    assert refused.returncode == 2
    assert refused.stderr == (
        f"error: resume='{run}': cannot write in {run} (Read-only file system); a resumed run continues in "
        "its own folder: make it writable, or copy the run somewhere writable and resume the copy\n"
    )
    assert {path: path.read_bytes() for path in run.rglob("*") if path.is_file()} == before


def test_a_sweep_folder_whose_jobs_did_not_compose_takes_the_corrected_sweep(tmp_path, run_script, tiny_sine):
    sweep = tmp_path / "sweep"
    typo = run_script("train.py", "-m", "model=rnn,nope", *tiny_sine, f"hydra.sweep.dir={sweep}")
    assert typo.returncode == 2 and typo.stderr.startswith("error: In 'train': Could not find 'model/nope'")
    assert sweep.is_dir()  # claimed, with Hydra's multirun.yaml, before the jobs were composed

    fixed = run_script("train.py", "-m", "model=rnn,gru", *tiny_sine, f"hydra.sweep.dir={sweep}")
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    assert [read_status(job).status for job in job_dirs(sweep)] == ["ok", "ok"]
    again = run_script("train.py", "-m", "model=rnn,gru", *tiny_sine, f"hydra.sweep.dir={sweep}")
    assert again.returncode == 2 and "holds another run" in again.stderr  # one with jobs is not taken
