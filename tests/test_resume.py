"""Resuming (issue 9), with real processes and real signals: a run killed outright continues exactly as if
it had never stopped, a signal stops it cleanly with its state saved, SLURM's requeue continues a job in
its own folder, and a bad resume= is refused without touching anything. Every run gets a folder of its
own (a named folder that holds a run is refused). Sweeps stopped by a signal: tests/test_faults.py."""

import contextlib
import json
import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from seqexp.app.run_status import read_status
from seqexp.trackers.metrics_csv import read_rows
from tests import warm_start
from tests.helpers import SMALL_CORPUS_TRAINING, assert_user_error, grammar_corpus, read_events, script_env
from tests.launching import (
    TRAIN,
    WAIT_S,
    Launched,
    checkpoint_step_logged,
    run_train,
    wait_for,
    wait_for_a_checkpoint_and_its_step,
)
from tests.tracker_readers import mlflow_steps, wandb_history

# Logged every step, validated mid-epoch (an epoch of the default sine data is 15 windows), with 2 layers
# and dropout so that a resume must restore the random generators too, and a cosine schedule, which reads
# the run's length before the checkpoint is restored.
LONG_RUN = [
    "scheduler=cosine",
    "trainer.log_every_n_steps=1",
    "trainer.val_check_interval=10",
    "trainer.enable_progress_bar=false",
    "model.hidden_size=16",
    "model.num_layers=2",
    "model.dropout=0.2",
]
MAX_STEPS = 60  # 4 epochs; the kills and signals come after the first checkpoint, at step 4
SAVE_OFTEN = "save_every_steps=4"  # periodic checkpoints, between the validations too
# Measured from the clock, so they differ between any two runs; everything else must match exactly.
WALL_CLOCK_TAGS = {"train/tokens_per_s"}
# Not points of a curve: the custom-scalars layout, which every process writes once at step 0 (TensorBoard
# shows the latest).
LAYOUT_TAG = "custom_scalars__config__"


def last_ckpt(run_dir: Path) -> Path:
    return run_dir / "checkpoints" / "last.ckpt"


def wait_for_checkpoint(run: Launched, run_dir: Path) -> None:
    wait_for(last_ckpt(run_dir).exists, run, f"{last_ckpt(run_dir)}")


def global_step(run_dir: Path) -> int:
    return torch.load(last_ckpt(run_dir), weights_only=True)["global_step"]


def steps(run_dir: Path, tag: str) -> list[int]:
    return [event.step for event in read_events(run_dir).Scalars(tag)]


def assert_finished(run: Launched, run_dir: Path, max_steps: int) -> None:
    assert run.wait() == 0, run.output()
    assert read_status(run_dir).status == "ok", run.output()
    assert global_step(run_dir) == max_steps


def assert_same_weights(run_dir: Path, reference: Path) -> None:
    ours = torch.load(last_ckpt(run_dir), weights_only=True)["state_dict"]
    theirs = torch.load(last_ckpt(reference), weights_only=True)["state_dict"]
    assert ours.keys() == theirs.keys()
    for name in theirs:
        torch.testing.assert_close(ours[name], theirs[name], rtol=0, atol=1e-6, msg=name)


READERS = {"scalars": "Scalars", "images": "Images", "tensors": "Tensors"}


def assert_same_points(run_dir: Path, reference: Path, only: set[str] | None = None) -> None:
    """The same points as ``reference`` for every tag it logged (or the tags in ``only``): scalars,
    images (the sine fit) and text (samples) alike, none duplicated, none missing, at the same steps,
    with the same values (pixels and the wall-clock tags aside)."""
    ours, theirs = read_events(run_dir), read_events(reference)
    for kind, reader in READERS.items():
        tags = set(theirs.Tags()[kind])
        if only is None:
            assert set(ours.Tags()[kind]) == tags, kind
        for tag in sorted((tags if only is None else tags & only) - {LAYOUT_TAG}):
            mine, ref = getattr(ours, reader)(tag), getattr(theirs, reader)(tag)
            assert [e.step for e in mine] == [e.step for e in ref], tag
            if kind == "scalars" and tag not in WALL_CLOCK_TAGS:
                values, expected = [e.value for e in mine], [e.value for e in ref]
                assert values == pytest.approx(expected, rel=1e-6, abs=1e-6), tag
            if kind == "tensors":
                assert [e.tensor_proto for e in mine] == [e.tensor_proto for e in ref], tag


def kill_group_after_checkpoint(run: Launched, run_dir: Path, max_steps: int) -> None:
    """SIGKILL the run and all its processes (DDP ranks included) shortly after its first checkpoint,
    which must be mid-run."""
    wait_for_a_checkpoint_and_its_step(run, run_dir)
    time.sleep(0.1)  # a step or two more, which the resume must not log twice
    # Not between a later checkpoint and the logging of its step (docs/design.md §6), which is not what
    # this test is about: the run is frozen while that is checked, and killed as the check saw it.
    while True:
        os.killpg(run.process.pid, signal.SIGSTOP)
        if checkpoint_step_logged(run_dir / "checkpoints" / "last.ckpt", in_tensorboard=True):
            break
        os.killpg(run.process.pid, signal.SIGCONT)
        time.sleep(0.01)
    os.killpg(run.process.pid, signal.SIGKILL)
    # Killed by the signal, not ended on its own: it was still training.
    assert run.wait() == -signal.SIGKILL, f"the run ended before the kill: raise max_steps\n{run.output()}"
    assert 0 < global_step(run_dir) < max_steps


# --------------------------------------------------------------------------------------------------------
# 1. A SIGKILL loses nothing but time: the resumed run equals one that was never interrupted.

TEXT = [
    "data=text",
    "data.path=corpus.txt",
    *SMALL_CORPUS_TRAINING,
    "seq_length=20",
    "data.batch_size=8",
    "callbacks.text_sample.prime=the",
]
KILL_CASES = [
    pytest.param(["model=lstm", SAVE_OFTEN], id="sine-lstm"),
    pytest.param(["model=rnn", SAVE_OFTEN], id="sine-rnn", marks=pytest.mark.slow),
    pytest.param(["model=gru", SAVE_OFTEN], id="sine-gru", marks=pytest.mark.slow),
    pytest.param(["model=peephole-lstm", SAVE_OFTEN], id="sine-peephole-lstm", marks=pytest.mark.slow),
    pytest.param(  # every tracker too: each holds every step once
        [*TEXT, "model=gru", SAVE_OFTEN, "logger=[tensorboard,mlflow,wandb]"],
        id="text-gru",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        [*TEXT, "data.tokenizer=bpe", "data.vocab_size=280", "model=gru", SAVE_OFTEN],
        id="text-bpe-gru",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        # Each process carries data.batch_size rows: 2 each keeps the validation split long enough.
        ["model=lstm", "trainer=ddp_cpu", "trainer.devices=2", "data.batch_size=2", SAVE_OFTEN],
        id="sine-lstm-ddp",
        marks=pytest.mark.slow,
    ),
    # Only validations save: the kill always follows a checkpoint that a validation wrote.
    pytest.param(["model=lstm"], id="sine-lstm-validation-checkpoint", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("overrides", KILL_CASES)
def test_a_run_killed_after_a_checkpoint_resumes_exactly(tmp_path, launch, overrides):
    max_steps = MAX_STEPS
    if "data=text" in overrides:
        (tmp_path / "corpus.txt").write_text(grammar_corpus(300), encoding="utf-8")
    config = [*LONG_RUN, *overrides, f"trainer.max_steps={max_steps}"]
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    uninterrupted = launch(*config, f"hydra.run.dir={reference}")
    interrupted = launch(*config, f"hydra.run.dir={killed}")

    kill_group_after_checkpoint(interrupted, killed, max_steps)
    logged_before_the_kill = train_loss_steps(killed)
    resumed = launch(f"resume={killed}")
    assert_finished(resumed, killed, max_steps)
    assert_finished(uninterrupted, reference, max_steps)

    assert steps(killed, "train/loss") == list(range(max_steps))
    assert_same_points(killed, reference)
    assert_same_weights(killed, reference)
    if any(override.startswith("logger=") for override in overrides):
        assert_every_tracker_holds_each_step_once(killed, tmp_path, max_steps, logged_before_the_kill)


def train_loss_steps(run_dir: Path) -> list[int]:
    return [step for step, name, _, _ in read_rows(run_dir / "metrics.csv") if name == "train/loss"]


def assert_every_tracker_holds_each_step_once(
    run_dir: Path, cwd: Path, max_steps: int, logged_before_the_kill: list[int]
) -> None:
    ids = json.loads((run_dir / "trackers.json").read_text())
    assert train_loss_steps(run_dir) == list(range(max_steps))
    mlflow = mlflow_steps(f"file:{cwd / 'outputs' / 'mlruns'}", ids["mlflow"], "train/loss")
    assert mlflow == list(range(max_steps))
    # W&B's service writes its files in its own time, and a SIGKILL loses what it had not written yet;
    # the resumed run cannot tell those points from the ones it kept, so it sends only what comes after.
    wandb = [row["trainer/global_step"] for row in wandb_history(run_dir) if "train/loss" in row]
    assert wandb == sorted(set(wandb)) and wandb[-1] == max_steps - 1
    assert set(range(max(logged_before_the_kill) + 1, max_steps)) <= set(wandb)


# --------------------------------------------------------------------------------------------------------
# 2. A signal stops the run after its step, with a validation and a checkpoint; resume= continues it.


@pytest.mark.parametrize(
    "signum",
    [
        signal.SIGTERM,
        pytest.param(signal.SIGINT, marks=pytest.mark.slow),
        pytest.param(signal.SIGUSR1, marks=pytest.mark.slow),
        pytest.param(signal.SIGUSR2, marks=pytest.mark.slow),
    ],
    ids=lambda s: s.name,
)
def test_a_signal_stops_the_run_with_its_state_saved_and_resume_continues_it(tmp_path, launch, signum):
    max_steps = MAX_STEPS
    config = [*LONG_RUN, SAVE_OFTEN, "model=lstm", f"trainer.max_steps={max_steps}"]
    reference, run_dir = tmp_path / "reference", tmp_path / "run"
    uninterrupted = launch(*config, f"hydra.run.dir={reference}")
    run = launch(*config, f"hydra.run.dir={run_dir}")
    wait_for_checkpoint(run, run_dir)
    run.process.send_signal(signum)

    assert run.wait() == 128 + signum, run.output()
    assert "Traceback" not in run.output()
    status = read_status(run_dir)
    assert (status.status, status.signal) == ("interrupted", signum)
    stopped_at = global_step(run_dir)  # the checkpoint loads with weights_only=True
    assert 0 < stopped_at < max_steps
    if status.note is None:
        # It validated at the step where it stopped (Lightning logs a validation at global_step - 1).
        assert steps(run_dir, "val/loss")[-1] == stopped_at - 1
    else:  # on busy cores the signal may land in a validation, which it cuts short by design
        cut_short = f"the signal cut short the validation at step {stopped_at} "
        assert status.note.startswith(cut_short), status.note

    resumed = launch(f"resume={run_dir}")
    assert_finished(resumed, run_dir, max_steps)
    val_steps = steps(run_dir, "val/loss")
    assert val_steps == sorted(set(val_steps)), "duplicated validation points"
    assert val_steps[-1] == max_steps - 1 and any(s > stopped_at for s in val_steps)
    # The extra validation at the stop changed nothing in training: the same run as one not stopped, and the
    # same learning rate at each step (its points log as a step starts, before any other callback).
    assert_finished(uninterrupted, reference, max_steps)
    assert_same_points(run_dir, reference, only={"train/loss", "lr-Adam"})
    assert_same_weights(run_dir, reference)


EPOCH = 15  # windows in an epoch of the default sine data


def ended_at_three_epochs(
    tmp_path: Path, launch, config: list[str], max_steps: int
) -> tuple[Path, Callable[[set[str]], None]]:
    """A run of ``config`` that ended at its third epoch's last window (its folder), and a function that
    extends it to ``max_steps`` and compares the ``tags`` and weights with a run of them never stopped
    (started alongside)."""
    reference, run_dir = tmp_path / "reference", tmp_path / "run"
    uninterrupted = launch(*config, f"trainer.max_steps={max_steps}", f"hydra.run.dir={reference}")
    first = launch(*config, f"trainer.max_steps={3 * EPOCH}", f"hydra.run.dir={run_dir}")
    assert_finished(first, run_dir, 3 * EPOCH)

    def extend_and_compare(tags: set[str]) -> None:
        assert_finished(launch(f"resume={run_dir}", f"trainer.max_steps={max_steps}"), run_dir, max_steps)
        assert_finished(uninterrupted, reference, max_steps)
        assert_same_points(run_dir, reference, only=tags)
        assert_same_weights(run_dir, reference)

    return run_dir, extend_and_compare


@pytest.mark.slow
def test_a_run_that_ended_at_an_epochs_last_window_continues_exactly(tmp_path, launch):
    """A run that stops after an epoch's last window (its limit here; a signal or max_time alike) validates
    there, off Lightning's own schedule, and saves before the epoch ends. Resumed, it goes on with the
    next epoch's first window, trained once: the curve and weights of a run never stopped. (Lightning's
    restart trained the first window twice, which a submitit requeue that landed at step 45 showed.)"""
    # A constant learning rate: a cosine anneals over the run's length, which the extension changes.
    config = [*LONG_RUN, SAVE_OFTEN, "model=gru", "scheduler=none"]
    assert 3 * EPOCH % 4 and 3 * EPOCH % 10, "neither a periodic save nor a scheduled validation at the stop"
    run_dir, extend_and_compare = ended_at_three_epochs(tmp_path, launch, config, MAX_STEPS)
    assert steps(run_dir, "val/loss")[-1] == 3 * EPOCH - 1  # the validation that ended it
    extend_and_compare({"train/loss"})


@pytest.mark.slow
def test_a_plateau_schedule_continues_exactly_from_a_run_ended_at_an_epochs_last_window(tmp_path, launch):
    """ReduceLROnPlateau steps when an epoch ends, after the validation whose checkpoint ended the run, and
    Lightning skips that step in a resumed run's first epoch as well. The resumed run makes both: its
    learning rate and curve are those of a run never stopped (its rate missed the halving at step 75)."""
    # Validated at each epoch's end, the plateau's cue: the validation at the stop is a scheduled one.
    config = [*(o for o in LONG_RUN if not o.startswith("trainer.val_check_interval")), "model=gru"]
    config += ["scheduler=plateau", "scheduler.patience=0"]
    # A periodic save falls on that window too, before the validation, which must still write its own.
    config.append(f"save_every_steps={EPOCH}")
    run_dir, extend_and_compare = ended_at_three_epochs(tmp_path, launch, config, 6 * EPOCH)
    assert torch.load(last_ckpt(run_dir), weights_only=True)["seqexp"]["validated_at_step"] == 3 * EPOCH
    extend_and_compare({"train/loss", "lr-Adam"})


def test_ctrl_c_twice_stops_at_once_as_interrupted_with_a_checkpoint_to_resume(tmp_path, launch):
    run_dir = tmp_path / "run"
    run = launch(
        *LONG_RUN, SAVE_OFTEN, "model=lstm", f"trainer.max_steps={MAX_STEPS}", f"hydra.run.dir={run_dir}"
    )
    wait_for_checkpoint(run, run_dir)
    run.process.send_signal(signal.SIGINT)
    time.sleep(0.05)  # the second press, before the step and the stop's validation are over
    run.process.send_signal(signal.SIGINT)

    assert run.wait() == 128 + signal.SIGINT, run.output()
    assert "Traceback" not in run.output()
    status = read_status(run_dir)
    assert (status.status, status.signal) == ("interrupted", signal.SIGINT)
    assert 0 < global_step(run_dir) < MAX_STEPS  # the last checkpoint loads with weights_only=True
    assert_finished(launch(f"resume={run_dir}"), run_dir, MAX_STEPS)


# --------------------------------------------------------------------------------------------------------
# 3. SLURM requeues a job after a timeout or preemption: same command, same job id, same folder.


def slurm_env(job_id: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in script_env().items() if not k.startswith("SLURM_")}
    if job_id is not None:
        env["SLURM_JOB_ID"] = job_id
    return {**env, **extra}


def snapshot(folder: Path) -> dict[Path, tuple[bytes, int] | None]:
    """Every path under ``folder``: a file's bytes and mtime, a folder as None."""
    return {
        path: (path.read_bytes(), path.stat().st_mtime_ns) if path.is_file() else None
        for path in sorted(folder.rglob("*"))
    }


@pytest.mark.slow
def test_a_job_that_slurm_requeues_continues_in_its_folder_and_other_jobs_are_refused(tmp_path, launch):
    max_steps = MAX_STEPS
    config = [*LONG_RUN, SAVE_OFTEN, "model=gru", f"trainer.max_steps={max_steps}"]
    reference, job = tmp_path / "reference", tmp_path / "job"
    uninterrupted = launch(*config, f"hydra.run.dir={reference}")
    first = launch(*config, f"hydra.run.dir={job}", env=slurm_env("4242"))
    wait_for_checkpoint(first, job)
    first.process.send_signal(signal.SIGUSR2)  # what submitit sends before a timeout or a preemption
    assert first.wait() == 128 + signal.SIGUSR2, first.output()
    status = read_status(job)
    assert (status.status, status.signal, status.slurm_job) == ("interrupted", signal.SIGUSR2, "4242")
    assert global_step(job) < max_steps

    before = snapshot(job)
    for other in (slurm_env("4243"), slurm_env(None)):
        refused = run_train(*config, f"hydra.run.dir={job}", cwd=tmp_path, env=other)
        assert_user_error(refused, f"hydra.run.dir='{job}' holds another run", f"resume={job}")
        assert snapshot(job) == before

    requeued = launch(*config, f"hydra.run.dir={job}", env=slurm_env("4242", SLURM_RESTART_COUNT="1"))
    assert_finished(requeued, job, max_steps)
    assert "resuming from" in requeued.output()
    assert_finished(uninterrupted, reference, max_steps)
    assert_same_points(job, reference, only={"train/loss"})
    assert_same_weights(job, reference)


def submitit_task(sweep: Launched) -> int:
    """The pid of the process in which submitit's local executor runs the sweep's job."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        pid = int(cmdline.parent.name)
        with contextlib.suppress(OSError):
            if os.getsid(pid) == sweep.process.pid and b"submitit.core._submit" in cmdline.read_bytes():
                return pid
    pytest.fail(f"no submitit task in the sweep's session:\n{sweep.output()}")


@pytest.mark.slow
def test_a_job_that_the_real_submitit_requeues_continues_in_its_generated_folder(tmp_path, launch):
    """Preempted under submitit's local executor (``hydra/launcher=submitit_local``), the job is requeued
    by submitit itself: it composes the job's config again, seconds later, in a new process. The sweep's
    folder is generated from the clock (``${now:...}``) and is resolved again then: Hydra copies the sweep's
    resolved values into each job's config (``OmegaConf.copy_cache``), and they travel in submitit's
    pickle, so the job finds its own folder and continues to the result of a run never stopped."""
    config = [*LONG_RUN, SAVE_OFTEN, "model=gru", f"trainer.max_steps={MAX_STEPS}"]
    reference = tmp_path / "reference"
    uninterrupted = launch(*config, f"hydra.run.dir={reference}")
    sweep = launch("-m", "hydra/launcher=submitit_local", *config)  # in outputs/multiruns/<date>/<time>
    saved = "outputs/multiruns/*/*/0_*/checkpoints/last.ckpt"
    wait_for(lambda: any(tmp_path.glob(saved)), sweep, saved)
    # Frozen while the clock's second moves on (a folder name generated again would then differ): the whole
    # job takes about a second on fast cores, so left running it could end before the preemption.
    task = submitit_task(sweep)
    os.kill(task, signal.SIGSTOP)
    time.sleep(1.1)
    os.kill(task, signal.SIGUSR2)  # a preemption, as submitit's LocalJob._interrupt sends, pending till...
    os.kill(task, signal.SIGCONT)  # ...the job runs again
    assert sweep.wait() == 0, sweep.output()

    (job,) = tmp_path.glob("outputs/multiruns/*/*/0_*")
    assert len(list(tmp_path.glob("outputs/multiruns/*/*"))) == 1, "the requeued job made a new sweep folder"
    logs = "".join(path.read_text() for path in sorted(job.parent.glob(".submitit/*/*_log.*")))
    assert "Requeued job" in logs and "resuming from" in logs, logs[-3000:]
    assert_finished(uninterrupted, reference, MAX_STEPS)
    assert read_status(job).status == "ok"
    assert global_step(job) == MAX_STEPS
    assert_same_points(job, reference, only={"train/loss"})
    assert_same_weights(job, reference)


# --------------------------------------------------------------------------------------------------------
# 4. Sweeps stopped by a signal, and their resume: tests/test_faults.py.


# --------------------------------------------------------------------------------------------------------
# 5. A resume= that cannot be honoured is one error line, and nothing is written anywhere.

TINY = [
    "data.n_points=600",
    "seq_length=10",
    "model.hidden_size=8",
    "trainer.enable_progress_bar=false",
    "trainer.log_every_n_steps=1",
    "trainer.max_steps=5",  # mid-epoch (an epoch is 11 windows): the run validates at its last step
]


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory) -> dict[str, Path]:
    """Two short finished runs, an RNN and a GRU, each in a folder of its own (started together)."""
    root = tmp_path_factory.mktemp("finished")
    runs = {cell: root / cell for cell in ("rnn", "gru")}
    commands = [[TRAIN, *TINY, f"model={cell}", f"hydra.run.dir={folder}"] for cell, folder in runs.items()]
    for result in warm_start.run_together(commands, cwd=root, timeout=WAIT_S):
        assert result.returncode == 0, result.stderr[-3000:]
    return runs


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


# Each case: how to spoil the copied run folder, the resume= value (relative to tmp_path) and what the
# error line must name. `trainer.max_steps=50` extends the finished run, so it is not "nothing to resume".
BAD_RESUMES = [
    pytest.param(None, "nowhere", "resume='{tmp}/nowhere' does not exist", id="missing-path"),
    pytest.param(
        lambda run, other: shutil.rmtree(run / "checkpoints"),
        "run",
        "resume='{tmp}/run' is a folder with no checkpoints/last.ckpt",
        id="no-checkpoints-folder",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        lambda run, other: (run.parent / "empty").mkdir(),
        "empty",
        "resume='{tmp}/empty' is a folder with no checkpoints/last.ckpt",
        id="empty-folder",
        marks=pytest.mark.slow,
    ),
    pytest.param(
        lambda run, other: truncate(last_ckpt(run)),
        "run",
        "is not a readable checkpoint of scripts/train.py",
        id="truncated-checkpoint",
    ),
    pytest.param(
        lambda run, other: shutil.copy2(last_ckpt(other), run / "checkpoints" / "gru.ckpt"),
        "run/checkpoints/gru.ckpt",
        "holds a model that differs from this run's",
        id="checkpoint-of-another-model",
        marks=pytest.mark.slow,
    ),
]


@pytest.mark.parametrize(("spoil", "resume", "message"), BAD_RESUMES)
def test_a_resume_that_cannot_be_honoured_is_refused_and_writes_nothing(
    tmp_path, finished_runs, spoil, resume, message
):
    run = tmp_path / "run"
    shutil.copytree(finished_runs["rnn"], run)
    if spoil:
        spoil(run, finished_runs["gru"])
    before = snapshot(tmp_path)
    result = run_train(f"resume={tmp_path / resume}", "trainer.max_steps=50", cwd=tmp_path)
    assert_user_error(result, message.format(tmp=tmp_path))
    assert snapshot(tmp_path) == before


def test_a_resume_that_changes_more_than_the_limits_is_refused_and_writes_nothing(tmp_path, finished_runs):
    run = tmp_path / "run"
    shutil.copytree(finished_runs["rnn"], run)
    before = snapshot(tmp_path)
    result = run_train(f"resume={run}", "trainer.max_steps=50", "model.hidden_size=64", cwd=tmp_path)
    assert_user_error(result, "'model.hidden_size=64' cannot change a resumed run", "trainer.max_steps")
    assert snapshot(tmp_path) == before


def test_a_finished_run_extended_with_more_steps_continues_its_curves(tmp_path, finished_runs):
    run = tmp_path / "run"
    shutil.copytree(finished_runs["rnn"], run)
    result = run_train(f"resume={run}", "trainer.max_steps=12", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert read_status(run).status == "ok"
    assert global_step(run) == 12
    assert steps(run, "train/loss") == list(range(12))
    # The first run's last validation, then the end of the first epoch and the new last step.
    assert steps(run, "val/loss") == [4, 10, 11]


def test_a_run_whose_burn_in_adapted_resumes(tmp_path):
    # data.eval_burn_in: null adapts to the splits when the run is built: with batch 8 the sine's
    # validation rows are too short for the default burn-in of one window, so it becomes 0. The resume
    # must compare it as it will be, not as a datamodule that was never fitted to the Trainer says.
    run = tmp_path / "run"
    short = ["data.batch_size=8", "data.n_points=600", "seq_length=10", "model.hidden_size=8"]
    first = run_train(*short, "trainer.max_steps=5", f"hydra.run.dir={run}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "data.eval_burn_in: 0 rather than" in first.stdout + first.stderr
    resumed = run_train(f"resume={run}", "trainer.max_steps=8", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert global_step(run) == 8


def test_a_resume_on_changed_text_with_the_same_characters_is_refused_and_writes_nothing(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(grammar_corpus(300), encoding="utf-8")
    run = tmp_path / "run"
    tiny_text = [
        "data=text",
        f"data.path={corpus}",
        *SMALL_CORPUS_TRAINING,
        "seq_length=20",
        "model.hidden_size=8",
    ]
    first = run_train(*tiny_text, "trainer.max_steps=3", f"hydra.run.dir={run}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    lines = corpus.read_text(encoding="utf-8").splitlines(keepends=True)
    corpus.write_text("".join(reversed(lines)), encoding="utf-8")  # the same characters, other text
    before = snapshot(run)

    resumed = run_train(f"resume={run}", "trainer.max_steps=6", cwd=tmp_path)
    assert_user_error(resumed, "was trained on a corpus with sha256", "the text changed")
    # The log gains the lines of the check (the changed corpus is prepared to be compared); all else stays.
    log = run / "train.log"
    assert log.read_bytes().startswith(before.pop(log)[0])
    assert {path: files for path, files in snapshot(run).items() if path != log} == before


def test_two_resumes_of_one_run_started_together_train_once(tmp_path, finished_runs):
    # Long enough (400 steps) that the two always overlap; whichever comes second is refused, by the
    # folder's lock or, once the first has written it, by its running status.
    run = tmp_path / "run"
    shutil.copytree(finished_runs["rnn"], run)
    both = warm_start.run_together(
        [[TRAIN, f"resume={run}", "trainer.max_steps=400", "trainer.max_epochs=100"] for _ in range(2)],
        cwd=tmp_path,
        timeout=WAIT_S,
    )
    assert sorted(result.returncode for result in both) == [0, 2], [r.stderr[-2000:] for r in both]
    (refused,) = [result for result in both if result.returncode == 2]
    assert_user_error(refused)
    assert (
        "is in use by another process of seqexp" in refused.stderr
        or "that run is still going" in refused.stderr
    )
    assert read_status(run).status == "ok"
    assert global_step(run) == 400
    train_steps = steps(run, "train/loss")
    assert train_steps == sorted(set(train_steps)), "two processes logged the same steps"


def test_a_run_folder_held_by_another_process_is_refused_before_its_status_says_so(tmp_path, finished_runs):
    # The moment between a resume's start and its running status: the lock alone tells them apart.
    from seqexp.app.run_folder import holding

    run = tmp_path / "run"
    shutil.copytree(finished_runs["rnn"], run)
    before = snapshot(run)
    with holding(run):
        second = run_train(f"resume={run}", "trainer.max_steps=40", cwd=tmp_path)
    assert_user_error(second, f"{run} is in use by another process of seqexp")
    assert snapshot(run) == before
